// 首页运营: the mall home's banners and pop-ups (image, title, link, sort, time window in
// Beijing time, on/off; pop-ups with their display rule) and the product slots (the picked
// products in order, and what the home shows now). Admins only:
// /v1/admin/home/banners|popups[/{id}], /v1/admin/home/slots/{slot}.
import * as api from './api.js';
import { ask, clear, h, table, toast, when } from './dom.js';

const TABS = { banners: '轮播图', popups: '弹窗', slots: '商品位' };
const LINKS = { none: '无链接', product: '商品', category: '分类', page: '小程序页面', url: '网页' };
const RULES = { once: '只弹一次', daily: '每天一次', new_users: '仅新用户' };
const SLOTS = { recommended: '为你推荐', hot: '热销榜', group_buy: '拼团专区' };

// Beijing wall time <-> the API's instants (datetime-local inputs carry no zone).
const toLocal = (iso) => (iso ? new Date(Date.parse(iso) + 8 * 3600e3).toISOString().slice(0, 16) : '');
const fromLocal = (v) => (v ? `${v}:00+08:00` : null);

function contentFields(kind, c = {}) {
  const fields = [
    { name: 'title', label: '标题', maxlength: 64, value: c.title ?? '' },
    { name: 'image_url', label: '图片地址（https://）', type: 'url', required: true, maxlength: 512, value: c.image_url ?? '' },
    { name: 'link_type', label: '跳转', options: Object.entries(LINKS), value: c.link_type ?? 'none' },
    { name: 'link_value', label: '跳转目标（商品 / 分类 ID、页面路径或网址）', maxlength: 512, value: c.link_value ?? '' },
    { name: 'sort', label: '排序（小的在前）', type: 'number', value: String(c.sort ?? 0) },
    { name: 'starts_at', label: '开始时间（北京时间，留空：立即）', type: 'datetime-local', value: toLocal(c.starts_at) },
    { name: 'ends_at', label: '结束时间（留空：长期）', type: 'datetime-local', value: toLocal(c.ends_at) },
    { name: 'enabled', label: '状态', options: [['1', '启用'], ['0', '停用']], value: c.enabled === false ? '0' : '1' },
  ];
  if (kind === 'popups') fields.splice(2, 0, { name: 'rule', label: '弹出规则', options: Object.entries(RULES), value: c.rule ?? 'once' });
  return fields;
}

function contentBody(kind, v) {
  const body = { title: v.title, image_url: v.image_url, link_type: v.link_type, link_value: v.link_value,
    sort: Number(v.sort) || 0, starts_at: fromLocal(v.starts_at), ends_at: fromLocal(v.ends_at), enabled: v.enabled === '1' };
  if (kind === 'popups') body.rule = v.rule;
  return body;
}

async function renderContent(box, kind) {
  const noun = TABS[kind];
  async function act(run, message) {
    try { await run(); toast(message); await load(); } catch (error) { toast(error.describe(), true); }
  }
  async function save(c) {
    const v = await ask(c ? `编辑${noun}` : `新增${noun}`, contentFields(kind, c || {}), c ? '保存' : '添加');
    if (!v) return;
    const body = contentBody(kind, v);
    await act(() => (c ? api.put(`/v1/admin/home/${kind}/${c.id}`, body) : api.post(`/v1/admin/home/${kind}`, body)),
      c ? `${noun}已保存` : `${noun}已添加`);
  }
  async function remove(c) {
    if (await ask(`删除${noun}「${c.title || c.id}」？`, [], '删除')) await act(() => api.del(`/v1/admin/home/${kind}/${c.id}`), `${noun}已删除`);
  }
  async function load() {
    const { items } = await api.get(`/v1/admin/home/${kind}`);
    const columns = [
      { title: '图片', value: (c) => h('img', { class: 'thumb', src: c.image_url, alt: c.title, loading: 'lazy' }) },
      { title: '标题', value: (c) => h('span', { class: 'title' }, c.title) },
      { title: '跳转', value: (c) => (c.link_type === 'none' ? LINKS.none : `${LINKS[c.link_type] || c.link_type}：${c.link_value}`) },
      { title: '排序', class: 'num', value: (c) => String(c.sort) },
      { title: '时间', value: (c) => `${c.starts_at ? when(c.starts_at) : '立即'} 至 ${c.ends_at ? when(c.ends_at) : '长期'}` },
      { title: '状态', value: (c) => (c.enabled ? h('span', { class: 'badge ok' }, '启用') : h('span', { class: 'badge' }, '停用')) },
      { title: '', value: (c) => h('span', { class: 'actions' },
        h('button', { type: 'button', onclick: () => save(c) }, '编辑'),
        h('button', { type: 'button', class: 'danger', onclick: () => remove(c) }, '删除')) },
    ];
    if (kind === 'popups') columns.splice(3, 0, { title: '规则', value: (c) => RULES[c.rule] || c.rule });
    clear(box, h('div', { class: 'toolbar' }, h('button', { type: 'button', class: 'primary', onclick: () => save(null) }, `新增${noun}`)),
      table(columns, items, `还没有${noun}`));
  }
  await load();
}

async function renderSlots(box) {
  async function edit(slot) {
    const v = await ask(`编辑商品位：${SLOTS[slot.slot]}`, [
      { name: 'ids', label: '商品 ID（按顺序，逗号分隔；须在售）', type: 'textarea', value: slot.product_ids.join(', ') },
    ], '保存');
    if (!v) return;
    const ids = v.ids.split(/[,，\n ]+/).filter(Boolean).map(Number);
    try {
      await api.put(`/v1/admin/home/slots/${slot.slot}`, { product_ids: ids });
      toast('商品位已保存');
      await load();
    } catch (error) { toast(error.describe(), true); }
  }
  async function load() {
    const slots = await Promise.all(Object.keys(SLOTS).map((s) => api.get(`/v1/admin/home/slots/${s}`)));
    clear(box, slots.map((slot) => h('div', { class: 'card', dataset: { slot: slot.slot } },
      h('div', { class: 'toolbar' }, h('h3', { class: 'grow' }, SLOTS[slot.slot] || slot.slot),
        h('button', { type: 'button', onclick: () => edit(slot) }, '编辑')),
      h('p', { class: 'picked' }, slot.product_ids.length ? `已选商品：${slot.product_ids.join('、')}`
        : `未选商品${slot.fallback ? `：自动展示 ${slot.fallback === 'best sellers' ? '销量最高的商品' : '正在拼团的商品'}` : ''}`),
      table([{ title: 'ID', class: 'num', value: (p) => String(p.id) }, { title: '当前展示', value: (p) => p.name }],
        slot.shown || [], '暂无展示商品'))));
  }
  await load();
}

export default {
  title: '首页运营',
  async render(root, ctx) {
    const tab = TABS[ctx.query.tab] ? ctx.query.tab : 'banners';
    const box = h('div', { id: `home-${tab}` });
    root.append(h('div', { class: 'toolbar' }, h('h2', { class: 'grow' }, '首页运营'),
      Object.entries(TABS).map(([k, t]) => h('button', { type: 'button', class: k === tab ? 'primary' : '',
        onclick: () => ctx.navigate('home', [], { tab: k }) }, t))), box);
    await (tab === 'slots' ? renderSlots(box) : renderContent(box, tab));
  },
};
