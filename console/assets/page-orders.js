// 订单: the shop's orders (admins: every shop's) by status, live: an order.status event
// (a merchant's own stream; admins watch staff:orders) reloads the list. #/orders/<id> shows
// one order and ships it. The API decides what a merchant may see: another shop's order is
// a 404 however its id is typed.
import * as api from './api.js';
import { ask, clear, h, pager, table, toast, when, yuan } from './dom.js';

const STATUS = {
  pending_payment: '待付款', paid: '待发货', paid_waiting_group: '拼团中', shipped: '已发货',
  ready_for_pickup: '待自提', completed: '已完成', cancelled: '已取消', refunding: '退款中', refunded: '已退款',
};

async function ship(order, done) {
  const values = await ask(`发货：订单 ${order.order_no}`, [
    { name: 'carrier', label: '快递公司', required: true, maxlength: 32, value: '顺丰速运' },
    { name: 'tracking_no', label: '运单号', required: true, maxlength: 64 },
  ], '确认发货');
  if (!values) return;
  try {
    await api.post(`/v1/merchant/orders/${order.id}/ship`, values);
    toast('已发货');
    done();
  } catch (error) {
    toast(error.describe(), true);
  }
}

function items(order) {
  return order.items.map((i) => `${i.name}${i.spec_text ? '（' + i.spec_text + '）' : ''} × ${i.quantity}`).join('；');
}

async function renderOne(root, ctx, id) {
  const box = h('div', {});
  root.append(h('div', { class: 'toolbar' }, h('a', { href: '#/orders' }, '← 返回订单列表')), box);
  async function load() {
    let order;
    try {
      order = await api.get(`/v1/merchant/orders/${id}`);
    } catch (error) {
      if (error.status === 404 || error.status === 403) {
        clear(box, h('h2', {}, '订单不存在或无权查看'));
        return;
      }
      throw error;
    }
    const address = order.address ? [order.address.contact_name, order.address.phone, order.address.province, order.address.city, order.address.district, order.address.detail].filter(Boolean).join(' ') : '';
    clear(box,
      h('h2', {}, `订单 ${order.order_no}`),
      h('div', { class: 'card' },
        h('p', {}, '状态：', h('span', { class: 'badge', id: 'order-status' }, STATUS[order.status] || order.status)),
        h('p', {}, `商品：${items(order)}`),
        h('p', {}, `实付：${yuan(order.paid_amount)}（应付 ${yuan(order.payable_amount)}，运费 ${yuan(order.delivery_fee)}）`),
        h('p', {}, `配送：${order.fulfilment} ${address}`),
        order.tracking_no ? h('p', {}, `物流：${order.carrier} ${order.tracking_no}`) : null,
        order.remark ? h('p', {}, `买家备注：${order.remark}`) : null,
        order.status === 'paid' && order.fulfilment !== 'pickup'
          ? h('button', { type: 'button', class: 'primary', onclick: () => ship(order, load) }, '发货') : null),
      order.timeline ? h('div', { class: 'card' }, h('h3', {}, '时间线'),
        table([{ title: '时间', value: (e) => when(e.at) }, { title: '动作', value: (e) => e.action },
          { title: '状态', value: (e) => `${STATUS[e.from] || e.from || '—'} → ${STATUS[e.to] || e.to}` },
          { title: '原因', value: (e) => e.reason || '' }], order.timeline)) : null);
  }
  await load();
  const stop = ctx.live.on('order.status', (data) => { if (data.order_id === Number(id)) load(); });
  return stop;
}

export default {
  title: '订单',
  async render(root, ctx) {
    if (ctx.args[0]) return renderOne(root, ctx, ctx.args[0]);
    const status = ctx.query.status || '';
    const page = Number(ctx.query.page) || 1;
    const go = (q) => ctx.navigate('orders', [], { status, ...q });
    const body = h('div', { id: 'orders-list' });
    root.append(h('div', { class: 'toolbar' }, h('h2', { class: 'grow' }, '订单'),
      h('select', { 'aria-label': '状态', onchange: (e) => go({ status: e.target.value, page: 1 }) },
        h('option', { value: '' }, '全部状态'),
        Object.entries(STATUS).map(([v, t]) => h('option', { value: v, selected: v === status }, t)))), body);

    async function load() {
      const result = await api.get('/v1/merchant/orders', { status, page, limit: 20 });
      const columns = [
        { title: '订单号', value: (o) => h('a', { href: `#/orders/${o.id}` }, o.order_no) },
        { title: '商品', value: items },
        { title: '实付', class: 'num', value: (o) => yuan(o.paid_amount || o.payable_amount) },
        { title: '状态', value: (o) => h('span', { class: 'badge' }, STATUS[o.status] || o.status) },
        { title: '下单时间', value: (o) => when(o.created_at) },
        { title: '', value: (o) => (o.status === 'paid' && o.fulfilment !== 'pickup'
          ? h('button', { type: 'button', onclick: () => ship(o, load) }, '发货') : '') },
      ];
      if (ctx.role === 'admin') columns.splice(1, 0, { title: '店铺', value: (o) => o.merchant.name });
      clear(body, table(columns, result.items, '暂无订单'), pager(result, (p) => go({ page: p })));
    }

    await load();
    const stops = [ctx.live.on('order.status', () => load().catch(() => {})),
      ctx.live.on('live.connected', () => load().catch(() => {}))];
    if (ctx.role === 'admin') stops.push(ctx.live.watch('staff:orders'));
    return () => stops.forEach((stop) => stop());
  },
};
