// 积分规则: the points rules in force (check-in points and streak bonuses, the make-up
// check-in cost, points per yuan paid and the daily cap, the points payment rule, expiry),
// edited as one form and replaced at once (audited). Admins only: GET/PUT /v1/admin/points/rules.
import * as api from './api.js';
import { h, toast } from './dom.js';

const FIELDS = [
  ['checkin_points', '每日签到积分', '0–100000'],
  ['makeup_checkin_cost', '补签消耗积分', '0–100000'],
  ['order_points_per_yuan', '消费每 1 元得积分', '按实付现金整数元计，0 表示不送'],
  ['order_points_daily_cap', '消费得积分每日上限', '每人每天'],
  ['payment_points_per_yuan', '积分抵现：多少积分抵 1 元', '1–100000'],
  ['payment_max_percent', '积分抵现上限（%）', '占应付金额，0 表示不可抵现'],
  ['expiry_days', '积分有效期（天）', '0 表示永不过期'],
];

const streakText = (bonuses) => bonuses.map((b) => `${b.days}:${b.points}`).join(', ');

function parseStreaks(text) {
  return text.split(/[,，\n]+/).map((s) => s.trim()).filter(Boolean).map((pair) => {
    const [days, points] = pair.split(/[:：]/).map((n) => Number(n.trim()));
    return { days, points };
  });
}

export default {
  title: '积分规则',
  async render(root) {
    const rules = await api.get('/v1/admin/points/rules');
    const inputs = Object.fromEntries(FIELDS.map(([name]) =>
      [name, h('input', { type: 'number', name, required: true, min: 0, value: String(rules[name]) })]));
    const streaks = h('input', { name: 'streak_bonuses', value: streakText(rules.streak_bonuses) });
    const form = h('form', { id: 'points-rules', class: 'card', onsubmit: async (e) => {
      e.preventDefault();
      const body = { streak_bonuses: parseStreaks(streaks.value) };
      for (const [name] of FIELDS) body[name] = Number(inputs[name].value);
      try {
        const saved = await api.put('/v1/admin/points/rules', body);
        streaks.value = streakText(saved.streak_bonuses);
        toast('积分规则已保存');
      } catch (error) { toast(error.describe(), true); }
    } },
    h('div', { class: 'form-grid' },
      FIELDS.map(([name, label, hint]) => h('label', {}, label, inputs[name], h('span', { class: 'hint' }, hint))),
      h('label', {}, '连续签到奖励', streaks, h('span', { class: 'hint' }, '“天数:积分”，逗号分隔，如 7:30, 30:100（每连续第 N 天额外奖励）'))),
    h('div', { class: 'toolbar' }, h('button', { type: 'submit', class: 'primary' }, '保存规则'),
      h('span', { class: 'muted' }, '保存后立即生效，并记入审计日志。')));
    root.append(h('h2', {}, '积分规则'), form);
  },
};
