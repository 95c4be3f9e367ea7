// 虚拟物品: the points mall's items for the virtual pet (products of a virtual kind: food,
// toys, accessories), by kind, with their points price and stock. A merchant adds one (a
// draft product of that kind with one SKU: points price, cash price, stock, -1 unlimited),
// puts it on sale (it goes to review) or takes it off; an admin passes one in review or takes
// one off sale. Its images and category (needed to go on sale) are set in the product editor
// (#/products/<id>/edit, "编辑"). GET /v1/merchant/products?kind=…, POST /v1/merchant/products, PUT …/{id}/skus,
// POST …/{id}/on-sale|off-sale, POST /v1/admin/products/{id}/approve|off-sale.
import * as api from './api.js';
import { ask, clear, h, pager, table, toast, when, yuan } from './dom.js';

const KINDS = { virtual_pet_food: '食物', virtual_pet_toy: '玩具', virtual_pet_accessory: '装扮' };
const STATUS = { draft: '草稿', reviewing: '审核中', on_sale: '在售', off_sale: '已下架', rejected: '未通过' };

export default {
  title: '虚拟物品',
  async render(root, ctx) {
    const admin = ctx.role === 'admin';
    const kind = KINDS[ctx.query.kind] ? ctx.query.kind : 'virtual_pet_food';
    const page = Number(ctx.query.page) || 1;
    const box = h('div', { id: 'virtual-items' });
    async function act(run, message) {
      try { await run(); toast(message); await load(); } catch (error) { toast(error.describe(), true); }
    }
    async function create() {
      const v = await ask('新增虚拟物品', [
        { name: 'name', label: '名称', required: true, maxlength: 60 },
        { name: 'kind', label: '类别', options: Object.entries(KINDS), value: kind },
        { name: 'subtitle', label: '效果说明', maxlength: 120 },
        { name: 'points_price', label: '积分价', type: 'number', required: true, min: 1 },
        { name: 'price', label: '现金价（元，0：仅积分兑换）', type: 'number', step: '0.01', value: '0', min: 0 },
        { name: 'stock', label: '库存（-1：不限）', type: 'number', value: '-1', min: -1 },
      ], '添加');
      if (!v) return;
      await act(async () => {
        const product = await api.post('/v1/merchant/products', { name: v.name, kind: v.kind, subtitle: v.subtitle });
        await api.put(`/v1/merchant/products/${product.id}/skus`, { skus: [{
          price: Math.round(Number(v.price || 0) * 100), points_price: Number(v.points_price), stock: Number(v.stock) }] });
        if (v.kind !== kind) ctx.navigate('virtual-items', [], { kind: v.kind });
      }, '虚拟物品已添加（草稿：点「编辑」配好图片和分类后上架）');
    }
    async function adminOff(p) {
      const v = await ask(`下架「${p.name}」`, [{ name: 'reason', label: '原因（商家可见）', required: true, maxlength: 255 }], '下架');
      if (v) await act(() => api.post(`/v1/admin/products/${p.id}/off-sale`, { reason: v.reason }), '已下架');
    }
    const buttons = (p) => {
      const out = [];
      if (admin) {
        if (p.status === 'reviewing' || p.status === 'rejected') out.push(h('button', { type: 'button', onclick: () => act(() => api.post(`/v1/admin/products/${p.id}/approve`), '已通过并上架') }, '通过'));
        if (p.status === 'on_sale') out.push(h('button', { type: 'button', class: 'danger', onclick: () => adminOff(p) }, '下架'));
        return h('span', { class: 'actions' }, out);
      }
      out.push(h('a', { class: 'button', href: `#/products/${p.id}/edit` }, '编辑'));
      if (p.status === 'on_sale' || p.status === 'reviewing') {
        out.push(h('button', { type: 'button', onclick: () => act(() => api.post(`/v1/merchant/products/${p.id}/off-sale`), '已下架') }, '下架'));
      } else {
        out.push(h('button', { type: 'button', onclick: () => act(() => api.post(`/v1/merchant/products/${p.id}/on-sale`), '已提交审核') }, '上架'));
      }
      return h('span', { class: 'actions' }, out);
    };
    async function load() {
      const result = await api.get('/v1/merchant/products', { kind, page, limit: 20 });
      const columns = [
        { title: 'ID', class: 'num', value: (p) => String(p.id) },
        { title: '名称', value: (p) => h('a', { href: `#/products/${p.id}`, class: 'name' }, p.name) },
        { title: '积分价', class: 'num', value: (p) => h('span', { class: 'points' }, p.points_price ? String(p.points_price) : '—') },
        { title: '现金价', class: 'num', value: (p) => (p.price_max ? yuan(p.price_min) : '仅积分') },
        { title: '库存', class: 'num', value: (p) => (p.stock_total < 0 ? '不限' : String(p.stock_total)) },
        { title: '销量', class: 'num', value: (p) => String(p.sales_count) },
        { title: '状态', value: (p) => h('span', { class: 'badge status' }, STATUS[p.status] || p.status) },
        { title: '更新时间', value: (p) => when(p.updated_at) },
        { title: '', value: buttons },
      ];
      if (admin) columns.splice(1, 0, { title: '店铺', value: (p) => String(p.merchant_id) });
      clear(box, table(columns, result.items, '还没有这一类的虚拟物品'),
        pager(result, (p) => ctx.navigate('virtual-items', [], { kind, page: p })));
    }
    root.append(h('div', { class: 'toolbar' }, h('h2', { class: 'grow' }, '虚拟物品'),
      Object.entries(KINDS).map(([k, t]) => h('button', { type: 'button', class: k === kind ? 'primary' : '',
        onclick: () => ctx.navigate('virtual-items', [], { kind: k }) }, t)),
      admin ? null : h('button', { type: 'button', class: 'primary', onclick: create }, '新增虚拟物品')),
    h('p', { class: 'muted' }, '积分商城里给虚拟宠物用的食物、玩具和装扮；用户兑换后进入背包，由虚拟宠物使用。'), box);
    await load();
  },
};
