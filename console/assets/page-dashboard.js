// 数据概览: figures by day (charts), the fleet's live state, refreshed every 15 s; a slot
// for the daily statistics API (GET /v1/admin/stats/overview) once it exists.
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
  // The statistics work adds GET /v1/admin/stats/overview (DAU/MAU ...): shown when present.
  try {
    const overview = await api.get('/v1/admin/stats/overview');
    const pairs = Object.entries(overview).filter(([, v]) => typeof v === 'number');
    return h('div', { class: 'stats', id: 'stats-overview' },
      pairs.map(([k, v]) => stat(k, String(v))));
  } catch {
    return h('div', { class: 'slot', id: 'stats-overview' },
      '日活 / 月活等每日统计将在统计接口（GET /v1/admin/stats/daily、/overview）上线后显示在这里。');
  }
}

export default {
  title: '数据概览',
  async render(root, ctx) {
    const admin = ctx.role === 'admin';
    const days = Number(ctx.query.days) || 14;
    const body = h('div', {});
    root.append(h('div', { class: 'toolbar' }, h('h2', { class: 'grow' }, '数据概览'),
      h('span', { class: 'muted', id: 'refreshed' }, ''),
      h('select', { onchange: (e) => ctx.navigate('dashboard', [], { days: e.target.value }) },
        [7, 14, 30, 90].map((n) => h('option', { value: n, selected: n === days }, `近 ${n} 天`)))), body);
    const slot = admin ? await overviewSlot() : null;

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
      clear(body, parts);
      document.getElementById('refreshed').textContent = `更新于 ${new Date().toLocaleTimeString('zh-CN')}`;
    }

    await refresh();
    const timer = setInterval(() => refresh().catch(() => {}), REFRESH_MS);
    return () => clearInterval(timer);
  },
};
