// 审计日志: every admin and merchant write (who, what, which record, before/after), newest
// first, filtered by actor, action (exact or a prefix ending in ".") and target.
import * as api from './api.js';
import { h, pager, table, when } from './dom.js';

function summary(value) {
  return value ? h('pre', { class: 'json' }, JSON.stringify(value, null, 1)) : '';
}

export default {
  title: '审计日志',
  async render(root, ctx) {
    const { actor_id = '', action = '', target_type = '', target_id = '' } = ctx.query;
    const page = Number(ctx.query.page) || 1;
    const filters = { actor_id, action, target_type, target_id };
    const go = (changes) => ctx.navigate('audit', [], { ...filters, ...changes });
    const inputs = Object.entries({ actor_id: '操作人 ID', action: '动作（如 product.）', target_type: '对象类型', target_id: '对象 ID' })
      .map(([name, label]) => h('input', { name, placeholder: label, 'aria-label': label, value: filters[name] }));
    const result = await api.get('/v1/admin/audit-log', { ...filters, page, limit: 30 });
    root.append(h('div', { class: 'toolbar' }, h('h2', { class: 'grow' }, '审计日志'),
      h('form', { class: 'toolbar', onsubmit: (e) => { e.preventDefault(); go({ ...Object.fromEntries(new FormData(e.target)), page: 1 }); } },
        inputs, h('button', { type: 'submit' }, '筛选'))),
    table([
      { title: '时间', value: (e) => when(e.created_at) },
      { title: '操作人', value: (e) => `${e.actor_id ?? '系统'}（${e.actor_role}）` },
      { title: '动作', value: (e) => e.action },
      { title: '对象', value: (e) => `${e.target_type} #${e.target_id}` },
      { title: '之前', value: (e) => summary(e.before) },
      { title: '之后', value: (e) => summary(e.after) },
    ], result.items, '没有记录'), pager(result, (p) => go({ page: p })));
  },
};
