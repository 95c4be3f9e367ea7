// 商城分类: the category tree (disabled ones too); add a top-level or child category, edit its
// name, icon, sort and whether it shows, move it up or down among its siblings, delete one no
// product and no child uses. Admins only (GET/POST/PATCH/DELETE /v1/admin/categories).
import * as api from './api.js';
import { ask, clear, h, table, toast } from './dom.js';

const FIELDS = (c = {}) => [
  { name: 'name', label: '名称', required: true, maxlength: 32, value: c.name ?? '' },
  { name: 'icon', label: '图标地址', maxlength: 512, value: c.icon ?? '' },
  { name: 'sort', label: '排序（小的在前）', type: 'number', value: String(c.sort ?? 0) },
  { name: 'enabled', label: '状态', options: [['1', '显示'], ['0', '隐藏']], value: c.enabled === false ? '0' : '1' },
];
const body = (v) => ({ name: v.name, icon: v.icon, sort: Number(v.sort) || 0, enabled: v.enabled === '1' });

function flatten(nodes, depth = 0, out = []) {
  nodes.forEach((node, i) => {
    out.push({ ...node, depth, siblings: nodes, index: i });
    flatten(node.children || [], depth + 1, out);
  });
  return out;
}

export default {
  title: '商城分类',
  async render(root) {
    const box = h('div', { id: 'categories' });
    async function act(run, message) {
      try { await run(); toast(message); await load(); } catch (error) { toast(error.describe(), true); }
    }
    async function create(parent) {
      const v = await ask(parent ? `添加「${parent.name}」的子分类` : '新增一级分类', FIELDS(), '添加');
      if (v) await act(() => api.post('/v1/admin/categories', { ...body(v), parent_id: parent ? parent.id : null }), '分类已添加');
    }
    async function edit(c) {
      const v = await ask(`编辑分类：${c.name}`, FIELDS(c), '保存');
      if (v) await act(() => api.patch(`/v1/admin/categories/${c.id}`, body(v)), '分类已保存');
    }
    async function move(c, step) {
      // The siblings renumbered 10, 20, ... in their new order; only changed ones are sent.
      const order = [...c.siblings];
      const [moved] = order.splice(c.index, 1);
      order.splice(c.index + step, 0, moved);
      await act(async () => {
        for (const [i, s] of order.entries()) {
          if (s.sort !== (i + 1) * 10) await api.patch(`/v1/admin/categories/${s.id}`, { sort: (i + 1) * 10 });
        }
      }, '顺序已调整');
    }
    async function remove(c) {
      if (await ask(`删除分类「${c.name}」？`, [], '删除')) await act(() => api.del(`/v1/admin/categories/${c.id}`), '分类已删除');
    }
    async function load() {
      const tree = await api.get('/v1/admin/categories');
      const rows = flatten(Array.isArray(tree) ? tree : tree.items);
      clear(box, table([
        { title: 'ID', class: 'num', value: (c) => String(c.id) },
        { title: '名称', value: (c) => h('span', { class: `depth-${Math.min(c.depth, 3)} name` }, c.name) },
        { title: '排序', class: 'num', value: (c) => String(c.sort) },
        { title: '状态', value: (c) => (c.enabled ? h('span', { class: 'badge ok' }, '显示') : h('span', { class: 'badge' }, '隐藏')) },
        { title: '', value: (c) => h('span', { class: 'actions' },
          h('button', { type: 'button', disabled: c.index === 0, onclick: () => move(c, -1) }, '上移'),
          h('button', { type: 'button', disabled: c.index === c.siblings.length - 1, onclick: () => move(c, 1) }, '下移'),
          h('button', { type: 'button', onclick: () => edit(c) }, '编辑'),
          c.depth < 3 ? h('button', { type: 'button', onclick: () => create(c) }, '添加子类') : null,
          h('button', { type: 'button', class: 'danger', onclick: () => remove(c) }, '删除')) },
      ], rows, '还没有分类'));
    }
    root.append(h('div', { class: 'toolbar' }, h('h2', { class: 'grow' }, '商城分类'),
      h('button', { type: 'button', class: 'primary', onclick: () => create(null) }, '新增一级分类')), box);
    await load();
  },
};
