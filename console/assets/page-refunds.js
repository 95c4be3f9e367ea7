// 退款售后: refund requests of the shop's orders (admins: all), approve (the money goes back
// through the payments refund flow) or reject with a reason.
import * as api from './api.js';
import { ask, clear, h, pager, table, toast, when, yuan } from './dom.js';

const STATUS = { requested: '待处理', approved: '已同意', rejected: '已拒绝', refunding: '退款中', refunded: '已退款', failed: '失败', withdrawn: '已撤回' };

export default {
  title: '退款售后',
  async render(root, ctx) {
    const status = ctx.query.status || 'requested';
    const page = Number(ctx.query.page) || 1;
    const go = (q) => ctx.navigate('refunds', [], { status, ...q });
    const body = h('div', {});
    root.append(h('div', { class: 'toolbar' }, h('h2', { class: 'grow' }, '退款售后'),
      h('select', { 'aria-label': '状态', onchange: (e) => go({ status: e.target.value, page: 1 }) },
        Object.entries(STATUS).map(([v, t]) => h('option', { value: v, selected: v === status }, t)))), body);

    async function decide(refund, approve) {
      try {
        if (approve) {
          await api.post(`/v1/merchant/refunds/${refund.id}/approve`, {}, { idempotent: true });
          toast('已同意退款');
        } else {
          const values = await ask('拒绝理由', [{ name: 'reason', label: '理由（买家可见）', type: 'textarea', required: true, maxlength: 255 }], '拒绝');
          if (!values) return;
          await api.post(`/v1/merchant/refunds/${refund.id}/reject`, { reason: values.reason });
          toast('已拒绝');
        }
        await load();
      } catch (error) {
        toast(error.describe(), true);
      }
    }

    async function load() {
      const result = await api.get('/v1/merchant/refunds', { status, page, limit: 20 });
      clear(body, table([
        { title: '退款单', value: (r) => r.refund_no },
        { title: '订单', value: (r) => h('a', { href: `#/orders/${r.order_id}` }, String(r.order_id)) },
        { title: '金额', class: 'num', value: (r) => yuan(r.amount) },
        { title: '原因', value: (r) => [r.reason, r.description].filter(Boolean).join('：') },
        { title: '状态', value: (r) => h('span', { class: 'badge' }, STATUS[r.status] || r.status) },
        { title: '申请时间', value: (r) => when(r.created_at) },
        { title: '', value: (r) => (r.status === 'requested' || (ctx.role === 'admin' && r.status === 'rejected')
          ? h('span', {}, h('button', { type: 'button', class: 'primary', onclick: () => decide(r, true) }, '同意'), ' ',
            r.status === 'requested' ? h('button', { type: 'button', class: 'danger', onclick: () => decide(r, false) }, '拒绝') : null)
          : (r.decision_reason || '')) },
      ], result.items, '暂无退款申请'), pager(result, (p) => go({ page: p })));
    }
    await load();
    return ctx.live.on('order.status', (data) => { if (data.action && data.action.includes('refund')) load().catch(() => {}); });
  },
};
