// The console's entry point: sign-in, the menu, and a tiny hash router (#/<page>/<id>?k=v)
// that loads one page module at a time and calls its cleanup when the page is left.
import * as api from './api.js';
import { clear, h, toast } from './dom.js';
import * as live from './live.js';
import { PAGES, loadPage } from './pages.js';

const $ = (id) => document.getElementById(id);
let session = null; // {staff, merchant, csrf_token}
let cleanup = null;
let rendering = 0;

function parseHash() {
  const raw = location.hash.replace(/^#\/?/, '');
  const [pathPart, queryPart = ''] = raw.split('?');
  const [page, ...rest] = pathPart.split('/').filter(Boolean);
  return { page: page || 'dashboard', args: rest, query: Object.fromEntries(new URLSearchParams(queryPart)) };
}

export function navigate(page, args = [], query = {}) {
  const qs = new URLSearchParams(query).toString();
  location.hash = `#/${[page, ...args].join('/')}${qs ? '?' + qs : ''}`;
}

function showSignIn(message = '') {
  session = null;
  live.stop();
  $('shell').hidden = true;
  $('signin').hidden = false;
  $('signin-error').textContent = message;
}

function buildNav(role) {
  const nav = $('nav');
  clear(nav);
  let group = '';
  for (const page of PAGES.filter((p) => p.roles.includes(role))) {
    if (page.group !== group) {
      group = page.group;
      nav.append(h('div', { class: 'group' }, group));
    }
    nav.append(h('a', { href: `#/${page.path}`, dataset: { page: page.path } }, page.title));
  }
}

async function route() {
  if (!session) return;
  const { page, args, query } = parseHash();
  const ticket = ++rendering;
  if (cleanup) { try { cleanup(); } catch (e) { console.error(e); } cleanup = null; }
  for (const a of $('nav').querySelectorAll('a')) a.classList.toggle('active', a.dataset.page === page);
  const root = clear($('page'));
  const entry = PAGES.find((p) => p.path === page);
  const role = session.staff.role;
  if (!entry) { root.append(h('h2', {}, '页面不存在')); return; }
  if (!entry.roles.includes(role)) { root.append(h('h2', {}, '无权访问'), h('p', { class: 'muted' }, '当前账号没有此页面的权限。')); return; }
  document.title = `${entry.title} · PAWHome 管理后台`;
  try {
    const module = await loadPage(page);
    if (ticket !== rendering) return;
    const ctx = { staff: session.staff, role, merchant: session.merchant, args, query, navigate, live };
    const done = await module.default.render(root, ctx);
    if (ticket === rendering) cleanup = typeof done === 'function' ? done : null;
    else if (typeof done === 'function') done();
  } catch (error) {
    if (ticket !== rendering) return;
    root.append(h('p', { class: 'error', role: 'alert' }, error.describe ? error.describe() : String(error)));
  }
}

function enter(data) {
  session = data;
  api.setSession(data.csrf_token, () => showSignIn('登录已失效，请重新登录'));
  $('signin').hidden = true;
  $('shell').hidden = false;
  const s = data.staff;
  $('whoami').textContent = `${s.display_name || s.login}（${s.role === 'admin' ? '管理员' : '商家'}）`;
  buildNav(s.role);
  live.start((on) => {
    $('live-state').textContent = on ? '● 实时' : '● 离线';
    $('live-state').classList.toggle('on', on);
  });
  route();
}

async function signIn(event) {
  event.preventDefault();
  const form = event.target;
  const values = Object.fromEntries(new FormData(form).entries());
  const body = { login: values.login, password: values.password };
  if (values.otp) body.otp = values.otp;
  $('signin-error').textContent = '';
  try {
    await api.post('/v1/console/sessions', body);
    form.reset();
    enter(await api.get('/v1/console/sessions'));
  } catch (error) {
    if (error.code === 40111) $('otp-row').hidden = false;
    $('signin-error').textContent = error.code === 42910 && error.data
      ? `${error.message}，请 ${Math.ceil(error.data.retry_after / 60)} 分钟后再试` : error.message;
  }
}

async function signOut() {
  try { await api.del('/v1/console/sessions'); } catch (error) { toast(error.message, true); }
  showSignIn('已退出登录');
}

async function boot() {
  $('signin-form').addEventListener('submit', signIn);
  $('signout').addEventListener('click', signOut);
  window.addEventListener('hashchange', route);
  try {
    enter(await api.get('/v1/console/sessions'));
  } catch {
    showSignIn();
  }
}

boot();
