// 商品与库存: the shop's products (admins: every shop's); #/products/<id> shows its SKUs,
// where stock is adjusted with a reason (each adjustment is a ledger entry, sent with an
// Idempotency-Key so a double click adjusts once).
import * as api from './api.js';
import { ask, clear, h, pager, table, toast, when, yuan } from './dom.js';

const STATUS = { draft: '草稿', reviewing: '审核中', on_sale: '在售', off_sale: '已下架', rejected: '未通过' };

function price(p) {
  return p.price_min === p.price_max ? yuan(p.price_min) : `${yuan(p.price_min)} – ${yuan(p.price_max)}`;
}

async function renderOne(root, id) {
  const box = h('div', {});
  root.append(h('div', { class: 'toolbar' }, h('a', { href: '#/products' }, '← 返回商品列表')), box);
  async function adjust(sku) {
    const values = await ask(`调整库存：${sku.spec_text || sku.id}（当前 ${sku.stock}）`, [
      { name: 'stock', label: '调整后库存', type: 'number', required: true, value: String(sku.stock), min: 0 },
      { name: 'reason', label: '原因', required: true, maxlength: 255, value: '盘点' },
    ], '保存');
    if (!values) return;
    const delta = Number(values.stock) - sku.stock;
    if (!Number.isInteger(delta) || delta === 0) { toast('库存没有变化'); return; }
    try {
      await api.post(`/v1/merchant/skus/${sku.id}/stock-adjustments`, { delta, reason: values.reason }, { idempotent: true });
      toast('库存已更新');
      await load();
    } catch (error) {
      toast(error.describe(), true);
    }
  }
  async function load() {
    let product;
    try {
      product = await api.get(`/v1/merchant/products/${id}`);
    } catch (error) {
      if (error.status === 404 || error.status === 403) { clear(box, h('h2', {}, '商品不存在或无权查看')); return; }
      throw error;
    }
    clear(box, h('h2', {}, product.name),
      h('p', {}, h('span', { class: 'badge' }, STATUS[product.status] || product.status), ` 价格 ${price(product)} · 销量 ${product.sales_count}`),
      product.status_reason ? h('p', { class: 'muted' }, product.status_reason) : null,
      table([
        { title: 'SKU', value: (s) => String(s.id) },
        { title: '规格', value: (s) => s.spec_text },
        { title: '价格', class: 'num', value: (s) => yuan(s.price) },
        { title: '库存', class: 'num', value: (s) => h('span', { class: 'stock' }, s.stock < 0 ? '不限' : String(s.stock)) },
        { title: '销量', class: 'num', value: (s) => String(s.sales_count ?? '') },
        { title: '', value: (s) => (s.stock < 0 ? '' : h('button', { type: 'button', onclick: () => adjust(s) }, '调整库存')) },
      ], product.skus, '还没有 SKU'));
  }
  await load();
}

export default {
  title: '商品与库存',
  async render(root, ctx) {
    if (ctx.args[0]) return renderOne(root, ctx.args[0]);
    const status = ctx.query.status || '';
    const page = Number(ctx.query.page) || 1;
    const go = (q) => ctx.navigate('products', [], { status, ...q });
    const result = await api.get('/v1/merchant/products', { status, page, limit: 20 });
    const columns = [
      { title: '商品', value: (p) => h('a', { href: `#/products/${p.id}` }, p.name) },
      { title: '价格', class: 'num', value: price },
      { title: '库存', class: 'num', value: (p) => (p.stock_total < 0 ? '不限' : String(p.stock_total)) },
      { title: '销量', class: 'num', value: (p) => String(p.sales_count) },
      { title: '状态', value: (p) => h('span', { class: 'badge' }, STATUS[p.status] || p.status) },
      { title: '更新时间', value: (p) => when(p.updated_at) },
    ];
    if (ctx.role === 'admin') columns.splice(1, 0, { title: '店铺', value: (p) => String(p.merchant_id) });
    root.append(h('div', { class: 'toolbar' }, h('h2', { class: 'grow' }, '商品与库存'),
      h('select', { 'aria-label': '状态', onchange: (e) => go({ status: e.target.value, page: 1 }) },
        h('option', { value: '' }, '全部状态'),
        Object.entries(STATUS).map(([v, t]) => h('option', { value: v, selected: v === status }, t)))),
      table(columns, result.items, '暂无商品'), pager(result, (p) => go({ page: p })));
  },
};
