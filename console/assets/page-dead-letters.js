// 失败任务: tasks that exhausted their retries (dead letters), with their error; retry
// re-enqueues the task and marks the letter resolved (once, however many admins click).
import * as api from './api.js';
import { clear, h, pager, table, toast, when } from './dom.js';

export default {
  title: '失败任务',
  async render(root, ctx) {
    const state = ctx.query.state || 'open';
    const page = Number(ctx.query.page) || 1;
    const go = (q) => ctx.navigate('dead-letters', [], { state, ...q });
    const body = h('div', {});
    root.append(h('div', { class: 'toolbar' }, h('h2', { class: 'grow' }, '失败任务'),
      h('select', { 'aria-label': '状态', onchange: (e) => go({ state: e.target.value, page: 1 }) },
        [['open', '未处理'], ['resolved', '已处理'], ['all', '全部']].map(([v, t]) => h('option', { value: v, selected: v === state }, t)))), body);
    async function retry(letter) {
      try {
        await api.post(`/v1/admin/dead-letters/${letter.id}/retry`);
        toast('已重新投递');
        await load();
      } catch (error) {
        toast(error.describe(), true);
      }
    }
    async function load() {
      const result = await api.get('/v1/admin/dead-letters', { state, page, limit: 20 });
      clear(body, table([
        { title: 'ID', class: 'num', value: (d) => String(d.id) },
        { title: '任务', value: (d) => d.task_name },
        { title: '参数', value: (d) => h('pre', { class: 'json' }, JSON.stringify({ args: d.args, kwargs: d.kwargs })) },
        { title: '错误', value: (d) => d.error },
        { title: '重试次数', class: 'num', value: (d) => String(d.retries) },
        { title: '失败时间', value: (d) => when(d.failed_at) },
        { title: '', value: (d) => (d.resolved_at ? `已处理 ${when(d.resolved_at)}` : h('button', { type: 'button', onclick: () => retry(d) }, '重试')) },
      ], result.items, '没有失败任务'), pager(result, (p) => go({ page: p })));
    }
    await load();
  },
};
