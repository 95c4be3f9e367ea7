// 商品与库存: the shop's products (admins: every shop's); #/products/<id> shows its images and
// SKUs, where stock is adjusted with a reason (each adjustment is a ledger entry, sent with an
// Idempotency-Key so a double click adjusts once), and puts it on sale (to review), off sale
// or deletes it; #/products/new and #/products/<id>/edit are the editor (product-editor.js).
import * as api from './api.js';
import { ask, clear, h, pager, table, toast, when, yuan } from './dom.js';
import { KINDS, renderEditor } from './product-editor.js';

const STATUS = { draft: '草稿', reviewing: '审核中', on_sale: '在售', off_sale: '已下架', rejected: '未通过' };

function price(p) {
  return p.price_min === p.price_max ? yuan(p.price_min) : `${yuan(p.price_min)} – ${yuan(p.price_max)}`;
}

async function renderOne(root, ctx, id) {
  const box = h('div', {});
  root.append(h('div', { class: 'toolbar' }, h('a', { href: '#/products' }, '← 返回商品列表')), box);
  async function act(run, message) {
    try { await run(); toast(message); await load(); } catch (error) { toast(error.describe(), true); }
  }
  async function remove(product) {
    const sure = await ask(`删除「${product.name}」？已下的订单不受影响，商品不再出售。`, [], '删除');
    if (!sure) return;
    try {
      await api.del(`/v1/merchant/products/${product.id}`);
      toast('已删除');
      ctx.navigate('products', [], {});
    } catch (error) { toast(error.describe(), true); }
  }
  function buttons(product) {
    const out = [h('a', { class: 'button', href: `#/products/${product.id}/edit` }, '编辑')];
    if (ctx.role !== 'admin' && ['draft', 'off_sale', 'rejected'].includes(product.status)) {
      out.push(h('button', { type: 'button', class: 'primary', onclick: () => act(() => api.post(`/v1/merchant/products/${product.id}/on-sale`), '已提交审核') }, '提交上架'));
    }
    if (ctx.role === 'admin' && ['reviewing', 'rejected'].includes(product.status)) {
      out.push(h('button', { type: 'button', class: 'primary', onclick: () => act(() => api.post(`/v1/admin/products/${product.id}/approve`), '已通过并上架') }, '审核通过'));
    }
    if (['on_sale', 'reviewing'].includes(product.status)) {
      out.push(h('button', { type: 'button', onclick: () => act(() => api.post(`/v1/merchant/products/${product.id}/off-sale`), '已下架') }, '下架'));
    }
    out.push(h('button', { type: 'button', class: 'danger', onclick: () => remove(product) }, '删除'));
    return h('div', { class: 'toolbar actions', id: 'product-actions' }, out);
  }
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
      h('p', {}, h('span', { class: 'badge', id: 'product-status' }, STATUS[product.status] || product.status),
        ` ${KINDS[product.kind] || product.kind} · 价格 ${price(product)} · 销量 ${product.sales_count}`),
      product.status_reason ? h('p', { class: 'muted' }, product.status_reason) : null,
      buttons(product),
      h('div', { class: 'image-list' }, product.images.map((image, i) => h('img', { class: 'thumb', src: image.thumb_url, alt: `商品图 ${i + 1}` }))),
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
    if (ctx.args[0] === 'new') return renderEditor(root, ctx, null);
    if (ctx.args[0] && ctx.args[1] === 'edit') return renderEditor(root, ctx, ctx.args[0]);
    if (ctx.args[0]) return renderOne(root, ctx, ctx.args[0]);
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
      ctx.role === 'admin' ? null : h('a', { class: 'button primary', href: '#/products/new' }, '新增商品'),
      h('select', { 'aria-label': '状态', onchange: (e) => go({ status: e.target.value, page: 1 }) },
        h('option', { value: '' }, '全部状态'),
        Object.entries(STATUS).map(([v, t]) => h('option', { value: v, selected: v === status }, t)))),
      table(columns, result.items, '暂无商品'), pager(result, (p) => go({ page: p })));
  },
};
