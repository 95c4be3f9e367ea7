// The product editor (#/products/new?kind=… and #/products/<id>/edit): a product's fields,
// its images (uploaded here through the media flow, the first is the cover), its spec
// attributes and SKU set (prices in yuan on screen, fen on the wire). Saving creates the
// product (POST /v1/merchant/products) or sends only the fields that changed (PATCH), then
// replaces the SKU set if it changed (PUT …/skus). An existing SKU keeps its stock: stock
// moves through adjustments on the product page. Field errors from the API are shown beside
// the form. docs/console.md ("商品编辑").
import * as api from './api.js';
import { clear, h, toast } from './dom.js';
import { imageList } from './upload.js';

export const KINDS = { physical: '实物商品', virtual_pet_food: '虚拟物品·食物', virtual_pet_toy: '虚拟物品·玩具', virtual_pet_accessory: '虚拟物品·装扮' };
const PETS = { dog: '狗', cat: '猫', rabbit: '兔', bird: '鸟', other: '其他' };
const MAX_ATTRS = 3;

const toFen = (value) => (value === '' || value === undefined ? 0 : Math.round(Number(value) * 100));
const toYuan = (fen) => (fen ? (fen / 100).toFixed(2) : '');
const splitList = (text) => String(text || '').split(/[,，、\n]/).map((t) => t.trim()).filter(Boolean);
const sameJson = (a, b) => JSON.stringify(a) === JSON.stringify(b);

// The category tree as select options, children indented under their parent.
function categoryOptions(tree, selected) {
  const out = [h('option', { value: '' }, '（未选择：上架前需选择）')];
  const walk = (nodes, depth) => {
    for (const c of nodes || []) {
      out.push(h('option', { value: String(c.id), selected: c.id === selected }, `${'　'.repeat(depth)}${c.name}`));
      walk(c.children, depth + 1);
    }
  };
  walk(tree, 0);
  return out;
}

// Every combination of the attributes' values, in order ([[]] without attributes).
function combinations(attrs) {
  return attrs.reduce((acc, attr) => acc.flatMap((prefix) => attr.values.map((v) => [...prefix, v])), [[]]);
}

function skuEditor(product, virtual) {
  const attrRows = h('div', { class: 'spec-attrs' });
  const body = h('tbody', {});
  const existing = new Map((product?.skus || []).map((s) => [JSON.stringify(s.spec_values), s]));
  let rows = []; // [{values, inputs:{...}, existing}]

  function attrInputs(attr = { name: '', values: [] }) {
    const row = h('div', { class: 'spec-attr' },
      h('input', { name: 'attr_name', 'aria-label': '规格名', placeholder: '规格名，如 口味', maxlength: 20, value: attr.name }),
      h('input', { name: 'attr_values', 'aria-label': '规格值', placeholder: '规格值，用逗号分隔，如 鸡肉, 牛肉', value: attr.values.join(', ') }),
      h('button', { type: 'button', class: 'danger', onclick: () => { row.remove(); } }, '删除规格'));
    attrRows.append(row);
  }
  const attrs = () => Array.from(attrRows.querySelectorAll('.spec-attr')).map((row) => ({
    name: row.querySelector('[name=attr_name]').value.trim(),
    values: splitList(row.querySelector('[name=attr_values]').value),
  })).filter((a) => a.name || a.values.length);

  // A row keeps what was typed in it (matched by its spec values); a new combination starts
  // from the saved SKU with those values, else from the first row's prices.
  function rowFor(values, first) {
    const typed = rows.find((r) => sameJson(r.values, values));
    const old = existing.get(JSON.stringify(values));
    const seed = typed ? read(typed) : old ? {
      price: toYuan(old.price), original_price: toYuan(old.original_price), points_price: old.points_price || '',
      stock: old.stock, weight_g: old.weight_g || '', code: old.code || '', purchase_limit: old.purchase_limit || '',
    } : { ...(first ? read(first) : {}), stock: virtual ? -1 : 0, code: '' };
    const number = (name, label, attrs) => h('input', { type: 'number', 'aria-label': label, value: seed[name] ?? '', ...attrs });
    const inputs = {
      price: number('price', '价格（元）', { min: 0, step: '0.01' }),
      original_price: number('original_price', '划线价（元）', { min: 0, step: '0.01' }),
      points_price: number('points_price', '积分价', { min: 0, step: 1 }),
      stock: number('stock', '初始库存', { min: -1, step: 1, disabled: !!old }),
      weight_g: number('weight_g', '重量（克）', { min: 0, step: 1 }),
      code: h('input', { maxlength: 64, 'aria-label': 'SKU 编码', value: seed.code ?? '' }),
      purchase_limit: number('purchase_limit', '限购', { min: 0, max: 999, step: 1 }),
    };
    return { values, inputs, old, image_media_id: old ? old.image_media_id : null };
  }
  const read = (row) => Object.fromEntries(Object.entries(row.inputs).map(([k, el]) => [k, el.value]));

  function regenerate() {
    const list = attrs();
    const combos = list.length ? combinations(list) : [[]];
    if (combos.length > 200) { toast('规格组合超过 200 个', true); return; }
    const first = rows[0];
    rows = combos.map((values) => rowFor(values, first));
    clear(body, rows.map((r) => h('tr', { class: 'sku-row', dataset: { spec: r.values.join(' / ') || '默认' } },
      h('td', {}, r.values.join(' / ') || '默认'),
      Object.entries(r.inputs).map(([name, el]) => h('td', { class: name === 'code' ? '' : 'num' }, el,
        name === 'stock' && r.old ? h('div', { class: 'hint' }, '在商品页调整') : null)))));
  }

  for (const attr of product?.spec_attrs || []) attrInputs(attr);
  regenerate();
  const element = h('div', { class: 'sku-editor' },
    h('h3', { class: 'section' }, '规格与 SKU'),
    h('p', { class: 'muted' }, `最多 ${MAX_ATTRS} 个规格；没有规格时只有一个默认 SKU。价格为 0 时必须填积分价（仅积分兑换）。库存 -1 表示不限（虚拟物品）。`),
    attrRows,
    h('div', { class: 'toolbar' },
      h('button', { type: 'button', onclick: () => { if (attrRows.children.length < MAX_ATTRS) attrInputs(); } }, '添加规格'),
      h('button', { type: 'button', id: 'make-skus', onclick: () => regenerate() }, '生成 SKU 列表')),
    h('table', { class: 'grid', id: 'sku-table' },
      h('thead', {}, h('tr', {}, ['规格', '价格（元）', '划线价（元）', '积分价', '初始库存', '重量（克）', '编码', '限购'].map((t) => h('th', {}, t)))),
      body));
  return {
    element,
    body() {
      regenerate();
      return {
        spec_attrs: attrs(),
        skus: rows.map((r) => ({
          spec_values: r.values,
          price: toFen(r.inputs.price.value),
          original_price: toFen(r.inputs.original_price.value),
          points_price: Number(r.inputs.points_price.value || 0),
          stock: Number(r.inputs.stock.value || 0),
          weight_g: Number(r.inputs.weight_g.value || 0),
          code: r.inputs.code.value.trim(),
          purchase_limit: Number(r.inputs.purchase_limit.value || 0),
          ...(r.image_media_id ? { image_media_id: r.image_media_id } : {}),
        })),
      };
    },
  };
}

// What the SKU set of a saved product looks like in a PUT body (to tell whether it changed).
function savedSkus(product) {
  return {
    spec_attrs: product.spec_attrs || [],
    skus: (product.skus || []).map((s) => ({
      spec_values: s.spec_values, price: s.price, original_price: s.original_price,
      points_price: s.points_price, stock: s.stock, weight_g: s.weight_g, code: s.code,
      purchase_limit: s.purchase_limit, ...(s.image_media_id ? { image_media_id: s.image_media_id } : {}),
    })),
  };
}

export async function renderEditor(root, ctx, id) {
  let product = null;
  if (id) {
    try {
      product = await api.get(`/v1/merchant/products/${id}`);
    } catch (error) {
      if (error.status === 404 || error.status === 403) { root.append(h('h2', {}, '商品不存在或无权查看')); return; }
      throw error;
    }
  }
  const kind = product ? product.kind : (KINDS[ctx.query.kind] ? ctx.query.kind : 'physical');
  const virtual = kind !== 'physical';
  const tree = (await api.get('/v1/categories')).items;
  const p = product || { name: '', subtitle: '', description: '', brand: '', tags: [], pet_types: [], images: [], category_id: null };
  const errors = h('ul', { class: 'field-errors', id: 'product-errors', role: 'alert' });
  const images = imageList({ images: p.images, max: 9, label: '商品图', onError: (m) => toast(m, true) });
  const skus = skuEditor(product, virtual);
  const input = (name, label, attrs = {}) => h('label', {}, label, h('input', { name, ...attrs }));
  const form = h('form', { class: 'card form', id: 'product-form' },
    input('name', '商品名称', { value: p.name, required: true, maxlength: 60 }),
    h('label', {}, '类型', h('select', { name: 'kind', disabled: !!product },
      Object.entries(KINDS).map(([v, t]) => h('option', { value: v, selected: v === kind }, t)))),
    input('subtitle', '副标题', { value: p.subtitle, maxlength: 120 }),
    h('label', {}, '分类', h('select', { name: 'category_id' }, categoryOptions(tree, p.category_id))),
    input('brand', '品牌', { value: p.brand, maxlength: 32 }),
    input('tags', '标签（逗号分隔，最多 10 个）', { value: (p.tags || []).join(', ') }),
    h('fieldset', { class: 'pets' }, h('legend', {}, '适用宠物'),
      Object.entries(PETS).map(([v, t]) => h('label', { class: 'inline' }, h('input', { type: 'checkbox', name: 'pet_types', value: v, checked: (p.pet_types || []).includes(v) }), t))),
    h('label', { class: 'wide' }, '商品描述', h('textarea', { name: 'description', rows: 5, maxlength: 5000 }, p.description || '')),
    h('div', { class: 'wide' }, h('h3', { class: 'section' }, '商品图片（第一张为封面，最多 9 张）'), images.element),
    h('div', { class: 'wide' }, skus.element),
    h('div', { class: 'wide' }, errors),
    h('div', { class: 'buttons' },
      h('a', { href: product ? `#/products/${product.id}` : (virtual ? `#/virtual-items?kind=${kind}` : '#/products') }, '取消'),
      h('button', { type: 'submit', class: 'primary' }, '保存')));

  function showErrors(error) {
    clear(errors, (error.errors || []).map((e) => h('li', { dataset: { field: e.field } }, `${e.field}: ${e.message}`)));
    toast(error.describe ? error.describe() : error.message, true);
  }

  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    if (images.busy()) { toast('图片还在处理中，请稍候', true); return; }
    clear(errors);
    const v = new FormData(form);
    const fields = {
      name: String(v.get('name') || '').trim(),
      subtitle: String(v.get('subtitle') || ''),
      description: String(v.get('description') || ''),
      brand: String(v.get('brand') || ''),
      tags: splitList(v.get('tags')),
      pet_types: v.getAll('pet_types'),
      media_ids: images.ids(),
      category_id: v.get('category_id') ? Number(v.get('category_id')) : null,
    };
    const skuBody = skus.body();
    let saved = product;
    try {
      if (!product) {
        saved = await api.post('/v1/merchant/products', { ...fields, kind });
      } else {
        const before = { name: p.name, subtitle: p.subtitle, description: p.description, brand: p.brand, tags: p.tags, pet_types: p.pet_types, media_ids: p.media_ids, category_id: p.category_id };
        const changed = Object.fromEntries(Object.entries(fields).filter(([k, value]) => !sameJson(value, before[k])));
        if (Object.keys(changed).length) saved = await api.patch(`/v1/merchant/products/${product.id}`, changed);
      }
    } catch (error) { showErrors(error); return; }
    try {
      if (!product || !sameJson(skuBody, savedSkus(product))) await api.put(`/v1/merchant/products/${saved.id}/skus`, skuBody);
    } catch (error) {
      if (!product) { // the product exists now: keep editing it rather than creating another
        toast(`商品已创建为草稿，SKU 未保存：${error.describe()}`, true);
        ctx.navigate('products', [String(saved.id), 'edit'], {});
        return;
      }
      showErrors(error);
      return;
    }
    toast('已保存');
    ctx.navigate('products', [String(saved.id)], {});
  });
  root.append(h('div', { class: 'toolbar' }, h('h2', { class: 'grow' }, product ? `编辑商品 #${product.id}` : `新增${KINDS[kind]}`)), form);
}
