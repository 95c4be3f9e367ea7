// 拼团规则: group-buy rules (a merchant's own SKUs; admins every one): sell a SKU by
// group-buy (group size, group price, time to fill, limit per buyer), change a rule, stop or
// restart it (opened groups keep their terms). GET/POST /v1/merchant/group-buy-rules, PATCH …/{id}.
import * as api from './api.js';
import { ask, clear, h, pager, table, toast, when, yuan } from './dom.js';

const fen = (v) => Math.round(Number(v || 0) * 100);

const FIELDS = (r = {}) => [
  { name: 'group_size', label: '成团人数（2–50）', type: 'number', required: true, value: String(r.group_size ?? 2), min: 2 },
  { name: 'group_price', label: '拼团价（元）', type: 'number', step: '0.01', required: true, value: r.group_price ? (r.group_price / 100).toFixed(2) : '' },
  { name: 'time_limit_minutes', label: '成团时限（分钟）', type: 'number', required: true, value: String(r.time_limit_minutes ?? 1440), min: 10 },
  { name: 'limit_per_user', label: '每人限购', type: 'number', required: true, value: String(r.limit_per_user ?? 1), min: 1 },
];
const body = (v) => ({ group_size: Number(v.group_size), group_price: fen(v.group_price),
  time_limit_minutes: Number(v.time_limit_minutes), limit_per_user: Number(v.limit_per_user) });

export default {
  title: '拼团规则',
  async render(root, ctx) {
    const page = Number(ctx.query.page) || 1;
    const box = h('div', { id: 'group-buys-list' });
    async function act(run, message) {
      try { await run(); toast(message); await load(); } catch (error) { toast(error.describe(), true); }
    }
    async function create() {
      const v = await ask('新建拼团', [{ name: 'sku_id', label: 'SKU ID（商品详情页可查）', type: 'number', required: true, min: 1 }, ...FIELDS()], '创建');
      if (v) await act(() => api.post('/v1/merchant/group-buy-rules', { sku_id: Number(v.sku_id), ...body(v) }), '拼团已创建');
    }
    async function edit(r) {
      const v = await ask(`编辑拼团：SKU ${r.sku_id}`, FIELDS(r), '保存');
      if (v) await act(() => api.patch(`/v1/merchant/group-buy-rules/${r.id}`, body(v)), '拼团规则已保存');
    }
    const setStatus = (r, status) => act(() => api.patch(`/v1/merchant/group-buy-rules/${r.id}`, { status }),
      status === 'active' ? '拼团已重新开启' : '拼团已停止');
    async function load() {
      const result = await api.get('/v1/merchant/group-buy-rules', { page, limit: 20 });
      const columns = [
        { title: 'ID', class: 'num', value: (r) => String(r.id) },
        { title: '商品', value: (r) => h('a', { href: `#/products/${r.product_id}` }, `商品 ${r.product_id}`) },
        { title: 'SKU', class: 'num', value: (r) => String(r.sku_id) },
        { title: '成团人数', class: 'num', value: (r) => String(r.group_size) },
        { title: '拼团价', class: 'num', value: (r) => h('span', { class: 'price' }, yuan(r.group_price)) },
        { title: '时限', class: 'num', value: (r) => `${r.time_limit_minutes} 分钟` },
        { title: '每人限购', class: 'num', value: (r) => String(r.limit_per_user) },
        { title: '状态', value: (r) => (r.status === 'active' ? h('span', { class: 'badge ok' }, '进行中') : h('span', { class: 'badge' }, '已停止')) },
        { title: '更新时间', value: (r) => when(r.updated_at) },
        { title: '', value: (r) => h('span', { class: 'actions' },
          h('button', { type: 'button', onclick: () => edit(r) }, '编辑'),
          r.status === 'active'
            ? h('button', { type: 'button', class: 'danger', onclick: () => setStatus(r, 'stopped') }, '停止')
            : h('button', { type: 'button', onclick: () => setStatus(r, 'active') }, '开启')) },
      ];
      if (ctx.role === 'admin') columns.splice(1, 0, { title: '店铺', value: (r) => String(r.merchant_id) });
      clear(box, table(columns, result.items, '还没有拼团规则'), pager(result, (p) => ctx.navigate('group-buys', [], { page: p })));
    }
    root.append(h('div', { class: 'toolbar' }, h('h2', { class: 'grow' }, '拼团规则'),
      h('button', { type: 'button', class: 'primary', onclick: create }, '新建拼团')), box);
    await load();
  },
};
