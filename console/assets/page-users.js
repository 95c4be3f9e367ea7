// 用户管理: search by id or nickname, filter by role and status; ban (with a reason), unban,
// change the role. Every action is an admin write the audit log records.
import * as api from './api.js';
import { ask, clear, h, pager, table, toast, when } from './dom.js';

const ROLES = { user: '普通用户', merchant: '商家', admin: '管理员' };

export default {
  title: '用户管理',
  async render(root, ctx) {
    const { q = '', role = '', status = '' } = ctx.query;
    const page = Number(ctx.query.page) || 1;
    const go = (changes) => ctx.navigate('users', [], { q, role, status, ...changes });
    const search = h('input', { type: 'search', placeholder: '用户 ID 或昵称', value: q, 'aria-label': '搜索' });
    const body = h('div', {});
    root.append(h('div', { class: 'toolbar' }, h('h2', { class: 'grow' }, '用户管理'),
      h('form', { class: 'toolbar', onsubmit: (e) => { e.preventDefault(); go({ q: search.value.trim(), page: 1 }); } },
        search,
        h('select', { 'aria-label': '角色', onchange: (e) => go({ role: e.target.value, page: 1 }) },
          h('option', { value: '' }, '全部角色'), Object.entries(ROLES).map(([v, t]) => h('option', { value: v, selected: v === role }, t))),
        h('select', { 'aria-label': '状态', onchange: (e) => go({ status: e.target.value, page: 1 }) },
          h('option', { value: '' }, '全部状态'), h('option', { value: 'active', selected: status === 'active' }, '正常'),
          h('option', { value: 'banned', selected: status === 'banned' }, '已封禁')),
        h('button', { type: 'submit' }, '搜索'))), body);

    async function act(run, message) {
      try { await run(); toast(message); await load(); } catch (error) { toast(error.describe(), true); }
    }
    async function ban(user) {
      const values = await ask(`封禁 ${user.nickname || user.id}`, [{ name: 'reason', label: '原因', type: 'textarea', required: true, maxlength: 255 }], '封禁');
      if (values) await act(() => api.post(`/v1/admin/users/${user.id}/ban`, { reason: values.reason }), '已封禁');
    }
    async function setRole(user) {
      const values = await ask(`修改角色：${user.nickname || user.id}`, [{ name: 'role', label: '角色', options: Object.entries(ROLES), value: user.role }], '保存');
      if (values && values.role !== user.role) await act(() => api.put(`/v1/admin/users/${user.id}/role`, { role: values.role }), '角色已修改');
    }
    async function load() {
      const result = await api.get('/v1/admin/users', { q, role, status, page, limit: 20 });
      clear(body, table([
        { title: 'ID', class: 'num', value: (u) => String(u.id) },
        { title: '昵称', value: (u) => u.nickname },
        { title: '角色', value: (u) => ROLES[u.role] || u.role },
        { title: '状态', value: (u) => (u.status === 'banned' ? h('span', { class: 'badge bad', title: u.banned_reason }, '已封禁') : h('span', { class: 'badge ok' }, '正常')) },
        { title: '手机', value: (u) => u.phone || '' },
        { title: '注册时间', value: (u) => when(u.created_at) },
        { title: '最近登录', value: (u) => when(u.last_login_at) },
        { title: '', value: (u) => h('span', {},
          u.status === 'banned'
            ? h('button', { type: 'button', onclick: () => act(() => api.post(`/v1/admin/users/${u.id}/unban`), '已解封') }, '解封')
            : h('button', { type: 'button', class: 'danger', onclick: () => ban(u) }, '封禁'), ' ',
          h('button', { type: 'button', onclick: () => setRole(u) }, '角色')) },
      ], result.items, '没有匹配的用户'), pager(result, (p) => go({ page: p })));
    }
    await load();
  },
};
