// 对账报告: the daily payments reconciliation (WeChat Pay's trade bill of a Beijing day against
// our paid payments and succeeded refunds): the reports newest first, one day's report with
// its mismatches (#/reconciliation/<YYYY-MM-DD>), reconciling a day again now; and the points
// reconciliation runs (each account against its ledger), run now on demand. Admins only:
// /v1/admin/payments/reconciliations[/{date}[/run]], /v1/admin/points/reconciliations.
import * as api from './api.js';
import { clear, h, pager, table, toast, when, yuan } from './dom.js';

const STATUS = { matched: ['一致', 'ok'], mismatched: ['有差异', 'bad'], failed: ['失败', 'warn'] };
const KINDS = {
  missing_here: '账单有、我方未记为已支付', missing_there: '我方已支付、账单没有', amount: '金额不一致',
  transaction: '微信交易号不一致', refund_missing_here: '账单有退款、我方没有',
  refund_missing_there: '我方退款成功、账单没有', refund_amount: '退款金额不一致',
};
const badge = (s) => h('span', { class: `badge ${(STATUS[s] || [])[1] || ''}` }, (STATUS[s] || [s])[0]);
const money = (v) => (v === undefined || v === null ? '' : yuan(v));
const yesterday = () => new Date(Date.now() + 8 * 3600e3 - 86400e3).toISOString().slice(0, 10);

async function run(day, ctx) {
  try {
    await api.post(`/v1/admin/payments/reconciliations/${day}/run`);
    toast(`${day} 已重新对账`);
  } catch (error) {
    toast(error.describe(), true);
  }
  ctx.navigate('reconciliation', [day]);
}

async function renderDay(root, ctx, day) {
  let report;
  try {
    report = await api.get(`/v1/admin/payments/reconciliations/${day}`);
  } catch (error) {
    if (error.status !== 404) throw error;
    root.append(h('div', { class: 'toolbar' }, h('a', { href: '#/reconciliation' }, '← 返回对账报告')),
      h('h2', {}, `${day} 还没有对账报告`), h('button', { type: 'button', class: 'primary', onclick: () => run(day, ctx) }, '立即对账'));
    return;
  }
  root.append(h('div', { class: 'toolbar' }, h('a', { href: '#/reconciliation' }, '← 返回对账报告')),
    h('div', { class: 'toolbar' }, h('h2', { class: 'grow' }, `${report.bill_date} 支付对账`), h('span', { id: 'report-status' }, badge(report.status)),
      h('button', { type: 'button', onclick: () => run(day, ctx) }, '重新对账')),
    report.detail ? h('p', { class: 'error' }, report.detail) : null,
    h('div', { class: 'stats' },
      h('div', { class: 'card stat' }, h('div', { class: 'value' }, String(report.bill_count)), h('div', { class: 'label' }, `微信账单笔数 · 净额 ${yuan(report.bill_total)}`)),
      h('div', { class: 'card stat' }, h('div', { class: 'value' }, String(report.our_count)), h('div', { class: 'label' }, `我方笔数 · 净额 ${yuan(report.our_total)}`)),
      h('div', { class: 'card stat' }, h('div', { class: 'value', id: 'mismatch-count' }, String(report.mismatch_count)), h('div', { class: 'label' }, '差异'))),
    h('div', { id: 'mismatches' }, table([
      { title: '差异', value: (m) => KINDS[m.kind] || m.kind },
      { title: '商户订单号', value: (m) => m.out_trade_no || '' },
      { title: '退款单号', value: (m) => m.out_refund_no || '' },
      { title: '账单金额', class: 'num', value: (m) => money(m.bill_amount) },
      { title: '我方金额', class: 'num', value: (m) => money(m.our_amount) },
      { title: '说明', value: (m) => [m.our_status ? `我方状态 ${m.our_status}` : '', m.transaction_id || '',
        m.bill_transaction_id ? `账单 ${m.bill_transaction_id} / 我方 ${m.our_transaction_id}` : ''].filter(Boolean).join(' ') },
    ], report.mismatches, '没有差异')),
    report.mismatch_count > report.mismatches.length ? h('p', { class: 'muted' }, `仅列出前 ${report.mismatches.length} 条`) : null);
}

async function pointsRuns(ctx) {
  const box = h('div', { id: 'points-runs' });
  async function load() {
    const result = await api.get('/v1/admin/points/reconciliations', { page: Number(ctx.query.ppage) || 1, limit: 5 });
    clear(box, table([
      { title: '开始', value: (r) => when(r.started_at) },
      { title: '完成', value: (r) => (r.finished_at ? when(r.finished_at) : '进行中') },
      { title: '核对账户', class: 'num', value: (r) => String(r.accounts_checked) },
      { title: '不一致', class: 'num', value: (r) => (r.drift_count ? h('span', { class: 'badge bad' }, String(r.drift_count)) : h('span', { class: 'badge ok' }, '0')) },
      { title: '示例（用户：余额 / 流水合计）', value: (r) => r.drifts.slice(0, 5).map((d) => `${d.user_id}：${d.balance} / ${d.ledger_sum}`).join('；') },
    ], result.items, '还没有积分核对记录'), pager(result, (p) => ctx.navigate('reconciliation', [], { ...ctx.query, ppage: p })));
  }
  await load();
  return [h('div', { class: 'toolbar' }, h('h3', { class: 'grow section' }, '积分核对（余额 vs 流水）'),
    h('button', { type: 'button', onclick: async () => {
      try { await api.post('/v1/admin/points/reconciliations'); toast('积分核对已完成'); await load(); } catch (error) { toast(error.describe(), true); }
    } }, '立即核对')), box];
}

export default {
  title: '对账报告',
  async render(root, ctx) {
    if (ctx.args[0]) return renderDay(root, ctx, ctx.args[0]);
    const page = Number(ctx.query.page) || 1;
    const result = await api.get('/v1/admin/payments/reconciliations', { page, limit: 20 });
    const day = h('input', { type: 'date', value: yesterday(), 'aria-label': '对账日期', required: true });
    root.append(h('div', { class: 'toolbar' }, h('h2', { class: 'grow' }, '对账报告'),
      h('form', { class: 'toolbar', onsubmit: (e) => { e.preventDefault(); run(day.value, ctx); } }, day,
        h('button', { type: 'submit' }, '对账此日'))),
    h('p', { class: 'muted' }, '每天 10:30 自动对账前一天（北京时间）的微信支付账单；差异会通知管理员。'),
    h('div', { id: 'reconciliations' }, table([
      { title: '账单日期', value: (r) => h('a', { href: `#/reconciliation/${r.bill_date}` }, r.bill_date) },
      { title: '结果', value: (r) => badge(r.status) },
      { title: '微信笔数', class: 'num', value: (r) => String(r.bill_count) },
      { title: '微信净额', class: 'num', value: (r) => yuan(r.bill_total) },
      { title: '我方笔数', class: 'num', value: (r) => String(r.our_count) },
      { title: '我方净额', class: 'num', value: (r) => yuan(r.our_total) },
      { title: '差异', class: 'num', value: (r) => String(r.mismatch_count) },
      { title: '更新时间', value: (r) => when(r.updated_at) },
    ], result.items.map((r) => ({ ...r, id: r.bill_date })), '还没有对账报告')),
    pager(result, (p) => ctx.navigate('reconciliation', [], { page: p })), ...(await pointsRuns(ctx)));
  },
};
