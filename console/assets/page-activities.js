// 活动报名: the organiser's activities (admins: every activity; merchants: their own), a form
// to create or edit one, and #/activities/<id> with publish, cancel (everyone is told and paid
// back), check-in by typing the registrant's code, and the registrations with their answers.
// Backed by /v1/merchant/activities (docs/activities.md).
import * as api from './api.js';
import { ask, clear, h, pager, table, toast, when, yuan } from './dom.js';
import { imageList } from './upload.js';

const STATUS = { draft: '草稿', published: '已发布', cancelled: '已取消', finished: '已结束' };
const KIND = { meetup: '宠物聚会', adoption_day: '领养日', vaccination_day: '疫苗日', other: '其他活动' };
const REG = { waitlisted: '候补中', pending_payment: '待付款', confirmed: '已报名', checked_in: '已签到', cancelled: '已取消', expired: '已失效' };
const PAY = { none: '免费', unpaid: '未付款', paid: '已付款', refunding: '退款中', refunded: '已退款', refund_failed: '退款失败', closed: '已关闭' };

const price = (a) => (a.price_type === 'cash' ? yuan(a.price) : a.price_type === 'points' ? `${a.price} 积分` : '免费');
// datetime-local <-> the API's ISO times (the browser's own zone; the API takes any offset).
const toInput = (iso) => {
  if (!iso) return '';
  const d = new Date(iso);
  const p = (n) => String(n).padStart(2, '0');
  return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())}T${p(d.getHours())}:${p(d.getMinutes())}`;
};
const fromInput = (value) => (value ? new Date(value).toISOString() : undefined);

// Form fields as lines: "key 标签 类型 [必填] [选项1/选项2]".
const fieldsText = (fields) => (fields || []).map((f) => [f.key, f.label, f.type, f.required ? '必填' : '', (f.options || []).join('/')].filter(Boolean).join(' ')).join('\n');
function parseFields(text) {
  return text.split('\n').map((l) => l.trim()).filter(Boolean).map((line) => {
    const [key, label, type, ...rest] = line.split(/ +/);
    const required = rest.includes('必填');
    const options = rest.filter((r) => r !== '必填').join('/').split('/').filter(Boolean);
    return { key, label, type, required, options };
  });
}

function renderForm(root, ctx, activity) {
  const a = activity || { kind: 'meetup', capacity: 20, price_type: 'free', price: 0, place: {}, form_fields: [] };
  const input = (name, label, attrs = {}) => h('label', {}, label, h('input', { name, ...attrs }));
  // An uploaded cover (the organiser's image) wins over a typed URL.
  const cover = imageList({ images: a.cover && a.cover.media_id ? [a.cover] : [], max: 1, label: '封面',
    onError: (m) => toast(m, true) });
  const form = h('form', { class: 'card form', id: 'activity-form' },
    input('title', '标题', { value: a.title || '', required: true, maxlength: 64 }),
    h('label', {}, '类型', h('select', { name: 'kind' }, Object.entries(KIND).map(([v, t]) => h('option', { value: v, selected: v === a.kind }, t)))),
    h('label', {}, '简介', h('textarea', { name: 'description', rows: 3, maxlength: 5000 }, a.description || '')),
    input('cover_url', '封面图片 URL（https，或在下方上传）', { value: a.cover_url || '', type: 'url' }),
    h('div', { class: 'cover' }, h('span', {}, '封面图片'), cover.element),
    input('place_name', '地点名称', { value: a.place.name || '', required: true, maxlength: 64 }),
    input('place_address', '详细地址', { value: a.place.address || '', maxlength: 255 }),
    input('lat', '纬度', { value: a.place.lat ?? '', type: 'number', step: 'any', required: true }),
    input('lng', '经度', { value: a.place.lng ?? '', type: 'number', step: 'any', required: true }),
    input('start_at', '开始时间', { type: 'datetime-local', value: toInput(a.start_at), required: true }),
    input('end_at', '结束时间', { type: 'datetime-local', value: toInput(a.end_at), required: true }),
    input('registration_opens_at', '报名开始（可选）', { type: 'datetime-local', value: toInput(a.registration_opens_at) }),
    input('registration_closes_at', '报名截止（可选，默认开始时间）', { type: 'datetime-local', value: toInput(a.registration_closes_at) }),
    input('cancel_deadline_at', '取消截止（可选，默认报名截止）', { type: 'datetime-local', value: toInput(a.cancel_deadline_at) }),
    input('capacity', '名额', { type: 'number', min: 1, value: a.capacity, required: true }),
    h('label', {}, h('input', { name: 'waitlist_enabled', type: 'checkbox', checked: !!a.waitlist_enabled }), '满员后允许候补'),
    h('label', {}, '收费方式', h('select', { name: 'price_type' }, [['free', '免费'], ['cash', '现金（微信支付）'], ['points', '积分']].map(([v, t]) => h('option', { value: v, selected: v === a.price_type }, t)))),
    input('price', '价格（现金填元，积分填分数）', { type: 'number', min: 0, step: 'any', value: a.price_type === 'cash' ? a.price / 100 : a.price }),
    h('label', {}, '报名表字段（每行：key 标签 类型 [必填] [选项1/选项2]；类型 text、phone、number、choice、date）',
      h('textarea', { name: 'form_fields', rows: 4 }, fieldsText(a.form_fields))),
    h('div', { class: 'buttons' }, h('a', { href: activity ? `#/activities/${activity.id}` : '#/activities' }, '取消'),
      h('button', { type: 'submit', class: 'primary' }, '保存')));
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    const v = Object.fromEntries(new FormData(form).entries());
    const body = {
      title: v.title, kind: v.kind, description: v.description, cover_url: v.cover_url,
      place_name: v.place_name, place_address: v.place_address, lat: Number(v.lat), lng: Number(v.lng),
      start_at: fromInput(v.start_at), end_at: fromInput(v.end_at),
      registration_opens_at: fromInput(v.registration_opens_at),
      registration_closes_at: fromInput(v.registration_closes_at),
      cancel_deadline_at: fromInput(v.cancel_deadline_at),
      capacity: Number(v.capacity), waitlist_enabled: v.waitlist_enabled === 'on', price_type: v.price_type,
      price: v.price_type === 'cash' ? Math.round(Number(v.price) * 100) : v.price_type === 'points' ? Math.round(Number(v.price)) : 0,
      form_fields: parseFields(v.form_fields || ''),
    };
    if (cover.busy()) { toast('封面还在处理中，请稍候', true); return; }
    const [coverId] = cover.ids();
    if (coverId) { body.cover_media_id = coverId; body.cover_url = ''; } else if (activity) { body.cover_media_id = null; }
    for (const k of Object.keys(body)) if (body[k] === undefined) delete body[k];
    try {
      const saved = activity ? await api.patch(`/v1/merchant/activities/${activity.id}`, body)
        : await api.post('/v1/merchant/activities', body);
      toast('已保存');
      ctx.navigate('activities', [String(saved.id)], {});
    } catch (error) { toast(error.describe(), true); }
  });
  root.append(h('h2', {}, activity ? `编辑活动 #${activity.id}` : '新建活动'), form);
}

async function renderOne(root, ctx, id) {
  const box = h('div', {});
  root.append(h('div', { class: 'toolbar' }, h('a', { href: '#/activities' }, '← 返回活动列表')), box);
  async function act(run, message) {
    try { await run(); toast(message); await load(); } catch (error) { toast(error.describe(), true); }
  }
  async function load() {
    let a;
    try {
      a = await api.get(`/v1/merchant/activities/${id}`);
    } catch (error) {
      if (error.status === 404) { clear(box, h('h2', {}, '活动不存在或无权查看')); return; }
      throw error;
    }
    const regs = await api.get(`/v1/merchant/activities/${id}/registrations`, { page: Number(ctx.query.page) || 1, limit: 50 });
    const code = h('input', { id: 'checkin-code', 'aria-label': '签到码', placeholder: '输入或扫描签到码', maxlength: 32 });
    const open = a.status === 'draft' || a.status === 'published';
    clear(box,
      h('h2', {}, a.title),
      h('div', { class: 'card item' },
        h('div', {},
          h('div', { class: 'meta' }, `${KIND[a.kind] || a.kind} · ${a.organiser.name} · `,
            h('span', { class: 'badge', id: 'activity-status' }, STATUS[a.status] || a.status)),
          h('div', { class: 'text' }, a.description),
          h('div', { class: 'meta' }, `${when(a.start_at)} – ${when(a.end_at)} · ${a.place.name} ${a.place.address}`),
          h('div', { class: 'meta' }, `报名 ${when(a.registration_opens_at)} – ${when(a.registration_closes_at)} · 取消截止 ${when(a.cancel_deadline_at)}`),
          h('div', { class: 'meta', id: 'activity-seats' }, `名额 ${a.seats_taken}/${a.capacity} · 候补 ${a.waitlisted}${a.waitlist_enabled ? '' : '（未开启）'} · 已签到 ${a.checked_in} · ${price(a)}`),
          a.cancel_reason ? h('div', { class: 'meta' }, `取消原因：${a.cancel_reason}`) : null),
        h('div', { class: 'actions' },
          a.status === 'draft' ? h('button', { type: 'button', class: 'primary', onclick: () => act(() => api.post(`/v1/merchant/activities/${id}/publish`), '已发布') }, '发布') : null,
          open ? h('a', { href: `#/activities/${id}/edit`, class: 'button' }, '编辑') : null,
          open || a.status === 'cancelled' ? h('button', { type: 'button', onclick: async () => {
            const values = await ask(a.status === 'cancelled' ? '再次结算取消（退款、通知）' : '取消活动（所有报名者将收到通知并退款）', [{ name: 'reason', label: '原因', maxlength: 255 }], '取消活动');
            if (values) await act(() => api.post(`/v1/merchant/activities/${id}/cancel`, { reason: values.reason || '' }, { idempotent: true }), '活动已取消');
          } }, a.status === 'cancelled' ? '重新结算' : '取消活动') : null)),
      a.status === 'published' ? h('form', { class: 'card toolbar', id: 'checkin-form', onsubmit: (e) => {
        e.preventDefault();
        const typed = code.value.trim();
        if (!typed) return;
        act(async () => {
          const done = await api.post(`/v1/merchant/activities/${id}/check-ins`, { code: typed });
          code.value = '';
          return done;
        }, '签到成功');
      } }, h('strong', {}, '签到'), code, h('button', { type: 'submit', class: 'primary' }, '签到')) : null,
      h('div', { class: 'card' }, h('h3', {}, `报名（${regs.total}）`),
        h('div', { id: 'registrations-list' }, table([
          { title: '编号', value: (r) => `#${r.id}` },
          { title: '用户', value: (r) => `${r.nickname || '用户'} (#${r.user_id})` },
          { title: '状态', value: (r) => h('span', { class: 'badge reg-status' }, REG[r.status] || r.status) },
          { title: '付款', value: (r) => PAY[r.payment_status] || r.payment_status },
          { title: '签到码', value: (r) => r.check_in_code },
          { title: '报名信息', value: (r) => Object.entries(r.answers || {}).map(([k, v]) => `${k}: ${v}`).join('，') },
          { title: '报名时间', value: (r) => when(r.created_at) },
          { title: '签到时间', value: (r) => when(r.checked_in_at) },
        ], regs.items, '暂无报名')), pager(regs, (p) => ctx.navigate('activities', [String(id)], { page: p }))));
  }
  await load();
}

export default {
  title: '活动报名',
  async render(root, ctx) {
    const [first, second] = ctx.args;
    if (first === 'new') return renderForm(root, ctx, null);
    if (first && second === 'edit') {
      return renderForm(root, ctx, await api.get(`/v1/merchant/activities/${first}`));
    }
    if (first) return renderOne(root, ctx, first);
    const { status = '' } = ctx.query;
    const page = Number(ctx.query.page) || 1;
    const go = (changes) => ctx.navigate('activities', [], { status, ...changes });
    const result = await api.get('/v1/merchant/activities', { status, page, limit: 20 });
    root.append(h('div', { class: 'toolbar' }, h('h2', { class: 'grow' }, '活动报名'),
      h('select', { 'aria-label': '状态', onchange: (e) => go({ status: e.target.value, page: 1 }) },
        h('option', { value: '' }, '全部状态'), Object.entries(STATUS).map(([v, t]) => h('option', { value: v, selected: v === status }, t))),
      h('a', { href: '#/activities/new', class: 'button primary' }, '新建活动')),
    h('div', { id: 'activities-list' }, table([
      { title: '活动', value: (a) => h('a', { href: `#/activities/${a.id}` }, a.title) },
      { title: '类型', value: (a) => KIND[a.kind] || a.kind },
      { title: '开始时间', value: (a) => when(a.start_at) },
      { title: '地点', value: (a) => a.place.name },
      { title: '名额', value: (a) => `${a.seats_taken}/${a.capacity}${a.waitlisted ? ` +候补 ${a.waitlisted}` : ''}` },
      { title: '价格', value: price },
      { title: '状态', value: (a) => h('span', { class: 'badge' }, STATUS[a.status] || a.status) },
    ], result.items, '暂无活动')), pager(result, (p) => go({ page: p })));
  },
};
