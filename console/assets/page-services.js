// 服务预约: the merchant's providers (admins: all); for the chosen one its staff, weekly
// hours, overrides (add extra hours / a day off / a holiday, remove), and the appointments
// of a day (Asia/Shanghai).
import * as api from './api.js';
import { ask, clear, h, table, toast, yuan } from './dom.js';

const WEEKDAYS = ['周一', '周二', '周三', '周四', '周五', '周六', '周日'];
const KINDS = { extra: '加班', day_off: '休息', holiday: '节假日' };
const APPT = { pending_confirmation: '待确认', confirmed: '已确认', checked_in: '已到店', completed: '已完成', cancelled: '已取消', no_show: '未到店' };

function shanghaiToday() {
  return new Intl.DateTimeFormat('en-CA', { timeZone: 'Asia/Shanghai' }).format(new Date());
}

export default {
  title: '服务预约',
  async render(root, ctx) {
    const providers = (await api.get('/v1/merchant/providers')).items;
    if (!providers.length) { root.append(h('h2', {}, '服务预约'), h('p', { class: 'muted' }, '还没有服务门店')); return; }
    const providerId = Number(ctx.query.provider) || providers[0].id;
    const day = ctx.query.date || shanghaiToday();
    const go = (q) => ctx.navigate('services', [], { provider: providerId, date: day, ...q });
    const body = h('div', {});
    root.append(h('div', { class: 'toolbar' }, h('h2', { class: 'grow' }, '服务预约'),
      h('select', { 'aria-label': '门店', onchange: (e) => go({ provider: e.target.value }) },
        providers.map((p) => h('option', { value: p.id, selected: p.id === providerId }, p.name))),
      h('input', { type: 'date', value: day, 'aria-label': '日期', onchange: (e) => go({ date: e.target.value }) })), body);

    const staffName = (staff, id) => (id ? (staff.find((s) => s.id === id) || { name: `#${id}` }).name : '全店');

    async function addOverride(staff) {
      const values = await ask('添加排班例外', [
        { name: 'kind', label: '类型', options: Object.entries(KINDS), value: 'day_off' },
        { name: 'staff_id', label: '员工', options: [['', '全店'], ...staff.map((s) => [String(s.id), s.name])], value: '' },
        { name: 'day', label: '日期', type: 'date', required: true, value: day },
        { name: 'start', label: '开始（加班）', type: 'time' },
        { name: 'end', label: '结束（加班）', type: 'time' },
        { name: 'note', label: '备注', maxlength: 128 },
      ], '添加');
      if (!values) return;
      const payload = { kind: values.kind, day: values.day, note: values.note || '', staff_id: values.staff_id ? Number(values.staff_id) : null };
      if (values.kind === 'extra') Object.assign(payload, { start: values.start, end: values.end });
      try {
        const reply = await api.post(`/v1/merchant/providers/${providerId}/overrides`, payload);
        toast(reply.conflicts && reply.conflicts.length ? `已添加，但与 ${reply.conflicts.length} 个预约冲突` : '已添加');
        await load();
      } catch (error) { toast(error.describe(), true); }
    }
    async function removeOverride(o) {
      try { await api.del(`/v1/merchant/providers/${providerId}/overrides/${o.id}`); toast('已删除'); await load(); } catch (error) { toast(error.describe(), true); }
    }

    async function load() {
      const [staff, schedule, appts] = await Promise.all([
        api.get(`/v1/providers/${providerId}/staff`).then((r) => r.items || r),
        api.get(`/v1/merchant/providers/${providerId}/schedule`),
        api.get(`/v1/merchant/providers/${providerId}/appointments`, { date: day, limit: 100 }),
      ]);
      clear(body,
        h('div', { class: 'card' }, h('h3', {}, `${day} 的预约`),
          table([
            { title: '时间', value: (a) => `${a.start.slice(11, 16)}–${a.end.slice(11, 16)}` },
            { title: '员工', value: (a) => staffName(staff, a.staff_id) },
            { title: '服务', value: (a) => `#${a.service_id}` },
            { title: '宠物', value: (a) => `#${a.pet_id}` },
            { title: '价格', class: 'num', value: (a) => yuan(a.price) },
            { title: '状态', value: (a) => h('span', { class: 'badge' }, APPT[a.status] || a.status) },
            { title: '备注', value: (a) => a.remark },
          ], appts.items, '当天没有预约')),
        h('div', { class: 'charts' },
          h('div', { class: 'card' }, h('h3', {}, '员工'),
            table([{ title: '姓名', value: (s) => s.name }, { title: '职位', value: (s) => s.title || '' },
              { title: '状态', value: (s) => (s.active ? '在职' : '停用') }], staff, '暂无员工')),
          h('div', { class: 'card' }, h('h3', {}, '每周营业时间'),
            table([{ title: '员工', value: (x) => staffName(staff, x.staff_id) }, { title: '星期', value: (x) => WEEKDAYS[x.weekday] },
              { title: '时间', value: (x) => `${x.start}–${x.end}` }], schedule.hours, '未设置营业时间'))),
        h('div', { class: 'card' }, h('div', { class: 'toolbar' }, h('h3', { class: 'grow' }, '排班例外'),
          h('button', { type: 'button', onclick: () => addOverride(staff) }, '添加')),
        table([{ title: '日期', value: (o) => o.day }, { title: '员工', value: (o) => staffName(staff, o.staff_id) },
          { title: '类型', value: (o) => KINDS[o.kind] || o.kind }, { title: '时间', value: (o) => (o.start ? `${o.start}–${o.end}` : '全天') },
          { title: '备注', value: (o) => o.note }, { title: '', value: (o) => h('button', { type: 'button', class: 'danger', onclick: () => removeOverride(o) }, '删除') }],
        schedule.overrides, '没有排班例外')));
    }
    await load();
  },
};
