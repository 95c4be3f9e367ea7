// 优惠券: coupon templates (a merchant's own shop's; admins every one, platform coupons too):
// create one, change its name, description and quantities, stop issuing it; each row shows
// how many were claimed. GET/POST/PATCH /v1/merchant/coupon-templates[/{id}], …/{id}/stop.
import * as api from './api.js';
import { ask, clear, h, pager, table, toast, when, yuan } from './dom.js';

const KINDS = { threshold: '满减', no_threshold: '无门槛', percent: '折扣' };
const SCOPES = { all: '全场', merchant: '指定店铺', category: '指定分类', products: '指定商品' };
const fen = (v) => Math.round(Number(v || 0) * 100);
const optional = (v) => (v === '' || v === undefined ? null : Number(v));

function terms(t) {
  const off = t.kind === 'percent' ? `${t.percent_off}% 折扣，最高 ${yuan(t.max_discount)}` : `减 ${yuan(t.amount_off)}`;
  return t.min_spend ? `满 ${yuan(t.min_spend)} ${off}` : off;
}

function validity(t) {
  if (t.valid_days) return `领取后 ${t.valid_days} 天`;
  return `${when(t.valid_from).slice(0, 10)} 至 ${when(t.valid_until).slice(0, 10)}`;
}

export default {
  title: '优惠券',
  async render(root, ctx) {
    const admin = ctx.role === 'admin';
    const status = ctx.query.status || '';
    const page = Number(ctx.query.page) || 1;
    const go = (q) => ctx.navigate('coupons', [], { status, ...q });
    const box = h('div', { id: 'coupons-list' });

    async function act(run, message) {
      try { await run(); toast(message); await load(); } catch (error) { toast(error.describe(), true); }
    }
    async function create() {
      const scopes = admin ? Object.entries(SCOPES).filter(([k]) => k !== 'products') : [['merchant', '本店铺']];
      const v = await ask('新建优惠券', [
        { name: 'name', label: '名称', required: true, maxlength: 40 },
        { name: 'kind', label: '类型', options: Object.entries(KINDS), value: 'threshold' },
        { name: 'amount_off', label: '减免金额（元，满减 / 无门槛）', type: 'number', step: '0.01', value: '10' },
        { name: 'min_spend', label: '使用门槛（元，满减 / 折扣）', type: 'number', step: '0.01', value: '99' },
        { name: 'percent_off', label: '折扣（减免百分比，折扣券）', type: 'number', value: '0' },
        { name: 'max_discount', label: '最高优惠（元，折扣券）', type: 'number', step: '0.01', value: '0' },
        { name: 'scope', label: '适用范围', options: scopes, value: scopes[0][0] },
        { name: 'target', label: '店铺 ID / 分类 ID（按范围）', type: 'number' },
        { name: 'valid_days', label: '领取后有效天数', type: 'number', required: true, value: '30', min: 1 },
        { name: 'total_quantity', label: '发行总量', type: 'number', required: true, value: '100', min: 1 },
        { name: 'per_user_limit', label: '每人限领', type: 'number', required: true, value: '1', min: 1 },
        { name: 'code', label: '兑换码（留空：按钮领取）', maxlength: 32 },
      ], '创建');
      if (!v) return;
      const body = {
        name: v.name, kind: v.kind, scope: v.scope, valid_days: Number(v.valid_days),
        total_quantity: Number(v.total_quantity), per_user_limit: Number(v.per_user_limit),
        amount_off: v.kind === 'percent' ? 0 : fen(v.amount_off),
        min_spend: v.kind === 'no_threshold' ? 0 : fen(v.min_spend),
        percent_off: v.kind === 'percent' ? Number(v.percent_off) : 0,
        max_discount: v.kind === 'percent' ? fen(v.max_discount) : 0,
        claim_method: v.code ? 'code' : 'button', code: v.code || null,
      };
      if (v.scope === 'merchant' && admin) body.merchant_id = optional(v.target);
      if (v.scope === 'category') body.category_id = optional(v.target);
      await act(() => api.post('/v1/merchant/coupon-templates', body), '优惠券已创建');
    }
    async function edit(t) {
      const v = await ask(`编辑优惠券：${t.name}`, [
        { name: 'name', label: '名称', required: true, maxlength: 40, value: t.name },
        { name: 'description', label: '说明', type: 'textarea', maxlength: 200, value: t.description },
        { name: 'total_quantity', label: `发行总量（已领 ${t.issued_count}）`, type: 'number', required: true, value: String(t.total_quantity), min: 1 },
        { name: 'per_user_limit', label: '每人限领', type: 'number', required: true, value: String(t.per_user_limit), min: 1 },
      ], '保存');
      if (v) {
        await act(() => api.patch(`/v1/merchant/coupon-templates/${t.id}`, {
          name: v.name, description: v.description, total_quantity: Number(v.total_quantity),
          per_user_limit: Number(v.per_user_limit) }), '优惠券已保存');
      }
    }
    async function stop(t) {
      if (await ask(`停发「${t.name}」？已领取的券仍可使用。`, [], '停发')) {
        await act(() => api.post(`/v1/merchant/coupon-templates/${t.id}/stop`), '已停止发放');
      }
    }
    async function load() {
      const result = await api.get('/v1/merchant/coupon-templates', { status, page, limit: 20 });
      const columns = [
        { title: 'ID', class: 'num', value: (t) => String(t.id) },
        { title: '名称', value: (t) => h('span', { class: 'name' }, t.name) },
        { title: '类型', value: (t) => KINDS[t.kind] || t.kind },
        { title: '优惠', value: terms },
        { title: '范围', value: (t) => SCOPES[t.scope] || t.scope },
        { title: '有效期', value: validity },
        { title: '领取方式', value: (t) => (t.claim_method === 'code' ? `兑换码 ${t.code}` : '按钮领取') },
        { title: '已领 / 总量', class: 'num', value: (t) => h('span', { class: 'issued' }, `${t.issued_count} / ${t.total_quantity}`) },
        { title: '状态', value: (t) => (t.status === 'active' ? h('span', { class: 'badge ok' }, '发放中') : h('span', { class: 'badge' }, '已停发')) },
        { title: '', value: (t) => (t.status === 'active' ? h('span', { class: 'actions' },
          h('button', { type: 'button', onclick: () => edit(t) }, '编辑'),
          h('button', { type: 'button', class: 'danger', onclick: () => stop(t) }, '停发')) : '') },
      ];
      if (admin) columns.splice(2, 0, { title: '发行方', value: (t) => (t.issuer === 'platform' ? '平台' : `店铺 ${t.issuer_merchant_id}`) });
      clear(box, table(columns, result.items, '还没有优惠券'), pager(result, (p) => go({ page: p })));
    }
    root.append(h('div', { class: 'toolbar' }, h('h2', { class: 'grow' }, '优惠券'),
      h('select', { 'aria-label': '状态', onchange: (e) => go({ status: e.target.value, page: 1 }) },
        h('option', { value: '' }, '全部'), h('option', { value: 'active', selected: status === 'active' }, '发放中'),
        h('option', { value: 'stopped', selected: status === 'stopped' }, '已停发')),
      h('button', { type: 'button', class: 'primary', onclick: create }, '新建优惠券')), box);
    await load();
  },
};
