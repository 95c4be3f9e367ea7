// 数据概览: figures by Asia/Shanghai day (charts), the fleet's live state, refreshed every
// 15 s; for admins, the overview (GET /v1/admin/stats/overview) and the daily statistics
// (GET /v1/admin/stats/daily) of a chosen date range as charts, with a CSV export link.
import * as api from './api.js';
import { barChart } from './chart.js';
import { clear, h, table, yuan } from './dom.js';

const REFRESH_MS = 15000;

function stat(label, value, extra) {
  return h('div', { class: 'card stat' }, h('div', { class: 'value' }, value), h('div', { class: 'label' }, label), extra);
}

function chart(title, days, key, format = String) {
  return h('div', { class: 'card chart' }, h('h3', {}, title),
    barChart(days.map((d) => ({ label: d.date, value: d[key] || 0 })), format));
}

function sum(days, key) { return days.reduce((n, d) => n + (d[key] || 0), 0); }

async function overviewSlot() {
  // GET /v1/admin/stats/overview: today so far (Asia/Shanghai) against yesterday.
  try {
    const o = await api.get('/v1/admin/stats/overview');
    const show = (m, v) => (v === null || v === undefined ? '—' : m.unit === 'fen' ? yuan(v) : String(v));
    return h('div', { class: 'stats', id: 'stats-overview' }, o.metrics.map((m) =>
      stat(`今日${m.label.replace('（分）', '')}`, show(m, o.today[m.name]), h('div', { class: 'label' }, `昨日 ${show(m, o.yesterday[m.name])}`))));
  } catch (error) {
    return h('div', { class: 'slot', id: 'stats-overview' }, `今日统计暂时无法读取：${error.describe ? error.describe() : error}`);
  }
}

// The daily statistics charted (the metric names of GET /v1/admin/stats/daily).
const DAILY = [['dau', '日活'], ['mau', '月活（30 天）'], ['new_users', '新增用户'], ['posts', '发帖'],
  ['paid_orders', '支付订单'], ['gmv_fen', 'GMV', yuan], ['refunds', '退款笔数'], ['refund_fen', '退款金额', yuan],
  ['appointments', '服务预约'], ['generations', '虚拟宠物生成'], ['interactions', '宠物互动'],
  ['points_earned', '积分发放'], ['points_spent', '积分消耗']];

const isoDay = (d) => new Date(d.getTime() + 8 * 3600e3).toISOString().slice(0, 10); // Shanghai

async function dailySection(ctx) {
  const to = ctx.query.to || isoDay(new Date());
  const from = ctx.query.from || isoDay(new Date(Date.parse(to) - 29 * 86400e3));
  const range = { from, to, metrics: DAILY.map(([m]) => m).join(',') };
  const csv = `/v1/admin/stats/daily.csv?${new URLSearchParams(range)}`;
  const fromInput = h('input', { type: 'date', name: 'from', value: from, 'aria-label': '开始日期' });
  const toInput = h('input', { type: 'date', name: 'to', value: to, 'aria-label': '结束日期' });
  const head = h('form', { class: 'toolbar', onsubmit: (e) => {
    e.preventDefault();
    ctx.navigate('dashboard', [], { ...ctx.query, from: fromInput.value, to: toInput.value });
  } }, h('h3', { class: 'grow' }, '每日统计（北京时间）'), fromInput, '至', toInput,
  h('button', { type: 'submit' }, '查询'), h('a', { href: csv, download: '', id: 'daily-csv' }, '导出 CSV'));
  let report;
  try {
    report = await api.get('/v1/admin/stats/daily', range);
  } catch (error) {
    return h('div', { id: 'daily-stats' }, head, h('p', { class: 'error' }, error.describe()));
  }
  const charts = DAILY.map(([key, title, format = String]) => h('div', { class: 'card chart', dataset: { metric: key } },
    h('h3', {}, `${title}（合计 ${format(sum(report.days, key))}）`),
    barChart(report.days.map((d) => ({ label: d.day, value: d[key] || 0 })), format)));
  return h('div', { id: 'daily-stats' }, head, h('div', { class: 'charts' }, charts));
}

export default {
  title: '数据概览',
  async render(root, ctx) {
    const admin = ctx.role === 'admin';
    const days = Number(ctx.query.days) || 14;
    const body = h('div', {});
    root.append(h('div', { class: 'toolbar' }, h('h2', { class: 'grow' }, '数据概览'),
      h('span', { class: 'muted', id: 'refreshed' }, ''),
      h('select', { onchange: (e) => ctx.navigate('dashboard', [], { ...ctx.query, days: e.target.value }) },
        [7, 14, 30, 90].map((n) => h('option', { value: n, selected: n === days }, `近 ${n} 天`)))), body);
    const slot = admin ? await overviewSlot() : null;
    const daily = admin ? await dailySection(ctx) : null;

    async function refresh() {
      const data = await api.get(admin ? '/v1/admin/dashboard' : '/v1/merchant/dashboard', { days });
      const d = data.days;
      const today = d[d.length - 1] || {};
      const cards = [
        stat('今日订单（已支付）', String(today.orders || 0)),
        stat('今日成交额 GMV', yuan(today.gmv)),
        stat(`近 ${days} 天订单`, String(sum(d, 'orders'))),
        stat(`近 ${days} 天 GMV`, yuan(sum(d, 'gmv'))),
        stat('今日预约', String(today.appointments || 0)),
      ];
      const charts = [chart('已支付订单 / 天', d, 'orders'), chart('GMV / 天', d, 'gmv', yuan)];
      if (admin) {
        cards.unshift(stat('今日新用户', String(today.new_users || 0)), stat('今日发帖', String(today.posts || 0)));
        charts.unshift(chart('新用户 / 天', d, 'new_users'), chart('发帖 / 天', d, 'posts'));
        charts.push(chart('宠物生成 / 天', d, 'generations'), chart('预约 / 天', d, 'appointments'));
      }
      const parts = [h('div', { class: 'stats' }, cards), slot, h('div', { class: 'charts' }, charts)];
      if (admin && data.fleet) {
        const f = data.fleet;
        parts.push(h('div', { class: 'stats' },
          stat('在线连接', String(f.sockets)),
          stat('待审核帖子', String(f.posts_awaiting_review), h('a', { href: '#/moderation' }, '去审核')),
          stat('未处理失败任务', String(f.dead_letters_open), h('a', { href: '#/dead-letters' }, '查看'))));
        parts.push(h('div', { class: 'charts' },
          h('div', { class: 'card' }, h('h3', {}, '各网关连接数'),
            table([{ title: '网关', value: (g) => g.id }, { title: '连接', class: 'num', value: (g) => String(g.sockets) }], f.gateways, '暂无网关上报')),
          h('div', { class: 'card' }, h('h3', {}, '任务队列积压'),
            f.queues === null ? h('p', { class: 'muted' }, '消息队列暂时无法读取')
              : table([{ title: '队列', value: (q) => q.name }, { title: '等待中', class: 'num', value: (q) => String(q.waiting) }], f.queues, '进程内执行（嵌入模式），无队列'))));
      }
      clear(body, parts, daily);
      document.getElementById('refreshed').textContent = `更新于 ${new Date().toLocaleTimeString('zh-CN')}`;
    }

    await refresh();
    const timer = setInterval(() => refresh().catch(() => {}), REFRESH_MS);
    return () => clearInterval(timer);
  },
};
