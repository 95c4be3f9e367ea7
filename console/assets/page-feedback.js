// 用户反馈: every feedback ticket (status, category, search); #/feedback/<id> shows one with
// its images, the user's device, the replies and the timeline; staff reply (the user gets a
// notification), close or reopen. Backed by /v1/admin/feedback (docs/feedback.md).
import * as api from './api.js';
import { ask, clear, h, pager, table, toast, when } from './dom.js';

const STATUS = { open: '待处理', replied: '已回复', closed: '已关闭' };

function image(item) {
  const names = Object.keys(item.variants || {}).sort();
  const v = names.length ? item.variants[names[0]] : null;
  return v ? h('img', { src: v.url, alt: `图片 ${item.media_id}`, loading: 'lazy' }) : null;
}

async function renderOne(root, id) {
  const box = h('div', {});
  root.append(h('div', { class: 'toolbar' }, h('a', { href: '#/feedback' }, '← 返回反馈列表')), box);
  async function act(run, message) {
    try { await run(); toast(message); await load(); } catch (error) { toast(error.describe(), true); }
  }
  async function load() {
    let t;
    try {
      t = await api.get(`/v1/admin/feedback/${id}`);
    } catch (error) {
      if (error.status === 404) { clear(box, h('h2', {}, '反馈不存在')); return; }
      throw error;
    }
    const reply = h('textarea', { 'aria-label': '回复内容', maxlength: 1000, rows: 3, placeholder: '回复用户（会通知对方）' });
    const device = Object.entries(t.device || {}).map(([k, v]) => `${k}: ${v}`).join('，');
    clear(box,
      h('h2', {}, `反馈 #${t.id} · ${t.category_label}`),
      h('div', { class: 'card item' },
        h('div', {},
          h('div', { class: 'meta' }, `${t.user.nickname || '用户'} (#${t.user.id}) · ${when(t.created_at)} · `,
            h('span', { class: 'badge', id: 'feedback-status' }, STATUS[t.status] || t.status)),
          h('div', { class: 'text' }, t.text),
          t.images.length ? h('div', { class: 'media' }, t.images.map(image)) : null,
          h('div', { class: 'meta' }, [t.contact ? `联系方式：${t.contact}` : '', t.app_version ? `版本：${t.app_version}` : '', device].filter(Boolean).join(' · '))),
        h('div', { class: 'actions' },
          t.status === 'closed'
            ? h('button', { type: 'button', onclick: () => act(() => api.post(`/v1/admin/feedback/${id}/actions`, { action: 'reopen' }), '已重新打开') }, '重新打开')
            : h('button', { type: 'button', onclick: async () => {
              const values = await ask('关闭反馈', [{ name: 'reason', label: '原因（可选）', maxlength: 255 }], '关闭');
              if (values) await act(() => api.post(`/v1/admin/feedback/${id}/actions`, { action: 'close', reason: values.reason || '' }), '已关闭');
            } }, '关闭'))),
      h('div', { class: 'card' }, h('h3', {}, '回复'),
        h('div', { class: 'queue', id: 'feedback-replies' }, t.replies.length
          ? t.replies.map((r) => h('div', { class: 'reply' }, h('div', { class: 'meta' }, `客服 #${r.staff_id} · ${when(r.created_at)}`), h('div', { class: 'text' }, r.text)))
          : h('p', { class: 'muted' }, '还没有回复')),
        t.status === 'closed' ? h('p', { class: 'muted' }, '已关闭的反馈需先重新打开才能回复')
          : h('form', { class: 'toolbar', onsubmit: (e) => {
            e.preventDefault();
            const text = reply.value.trim();
            if (text) act(() => api.post(`/v1/admin/feedback/${id}/replies`, { text }), '已回复');
          } }, reply, h('button', { type: 'submit', class: 'primary' }, '发送回复'))),
      h('div', { class: 'card' }, h('h3', {}, '处理记录'),
        table([{ title: '时间', value: (e) => when(e.at) }, { title: '动作', value: (e) => e.action },
          { title: '状态', value: (e) => `${STATUS[e.from] || e.from || '—'} → ${STATUS[e.to] || e.to}` },
          { title: '操作人', value: (e) => `${e.actor_type}${e.actor_id ? ' #' + e.actor_id : ''}` },
          { title: '原因', value: (e) => e.reason || '' }], t.events || [])));
  }
  await load();
}

export default {
  title: '用户反馈',
  async render(root, ctx) {
    if (ctx.args[0]) return renderOne(root, ctx.args[0]);
    const { status = '', category = '', q = '' } = ctx.query;
    const page = Number(ctx.query.page) || 1;
    const go = (changes) => ctx.navigate('feedback', [], { status, category, q, ...changes });
    const list = (await api.get('/v1/feedback/categories')).items;
    const search = h('input', { type: 'search', value: q, placeholder: '编号、内容或联系方式', 'aria-label': '搜索' });
    const result = await api.get('/v1/admin/feedback', { status, category, q, page, limit: 20 });
    root.append(h('div', { class: 'toolbar' }, h('h2', { class: 'grow' }, '用户反馈'),
      h('form', { class: 'toolbar', onsubmit: (e) => { e.preventDefault(); go({ q: search.value.trim(), page: 1 }); } },
        search,
        h('select', { 'aria-label': '状态', onchange: (e) => go({ status: e.target.value, page: 1 }) },
          h('option', { value: '' }, '全部状态'), Object.entries(STATUS).map(([v, t]) => h('option', { value: v, selected: v === status }, t))),
        h('select', { 'aria-label': '分类', onchange: (e) => go({ category: e.target.value, page: 1 }) },
          h('option', { value: '' }, '全部分类'), list.map((c) => h('option', { value: c.value, selected: c.value === category }, c.label))),
        h('button', { type: 'submit' }, '搜索'))),
    h('div', { id: 'feedback-list' }, table([
      { title: '编号', value: (t) => h('a', { href: `#/feedback/${t.id}` }, `#${t.id}`) },
      { title: '分类', value: (t) => t.category_label },
      { title: '内容', value: (t) => (t.text.length > 60 ? t.text.slice(0, 60) + '…' : t.text) },
      { title: '用户', value: (t) => `${t.user.nickname} (#${t.user.id})` },
      { title: '状态', value: (t) => h('span', { class: 'badge' }, STATUS[t.status] || t.status) },
      { title: '提交时间', value: (t) => when(t.created_at) },
    ], result.items, '暂无反馈')), pager(result, (p) => go({ page: p })));
  },
};
