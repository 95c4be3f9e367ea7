// 内容审核: posts and comments held for review, pending, or reported, with their images and
// videos; approve, or reject with a reason. Live: the page watches the staff:moderation
// topic, so an item decided elsewhere (another admin, a script) leaves the list at once and
// a newly held post makes the list reload.
import * as api from './api.js';
import { ask, clear, h, pager, toast, when } from './dom.js';

const STATES = [['hidden', '待人工审核'], ['pending', '机审中'], ['reported', '被举报']];
const KINDS = [['post', '帖子'], ['comment', '评论']];

function pickVariant(variants, prefix) {
  const names = Object.keys(variants || {}).filter((n) => n.startsWith(prefix)).sort();
  return names.length ? variants[names[0]] : null;
}

function mediaView(media) {
  const v = media.variants || {};
  if (media.kind === 'video') {
    const video = pickVariant(v, 'video');
    const poster = pickVariant(v, 'poster');
    if (video) return h('video', { src: video.url, poster: poster ? poster.url : undefined, controls: true, preload: 'none' });
  }
  const image = pickVariant(v, 'w') || pickVariant(v, 'poster');
  if (image) return h('img', { src: image.url, alt: `媒体 ${media.id}`, loading: 'lazy' });
  return h('span', { class: 'badge warn' }, `媒体 ${media.id}：${media.status}`);
}

function checkBadge(check) {
  if (!check) return null;
  const cls = check.suggest === 'risky' ? 'bad' : check.suggest === 'pass' ? 'ok' : 'warn';
  return h('span', { class: `badge ${cls}` }, `${check.provider} · ${check.suggest}${check.label ? ' · ' + check.label : ''}`);
}

export default {
  title: '内容审核',
  async render(root, ctx) {
    const kind = ctx.query.kind || 'post';
    const state = ctx.query.state || 'hidden';
    const page = Number(ctx.query.page) || 1;
    const go = (q) => ctx.navigate('moderation', [], { kind, state, ...q });
    const list = h('div', { class: 'queue', id: 'moderation-list' });
    const footer = h('div', {});
    root.append(
      h('div', { class: 'toolbar' }, h('h2', { class: 'grow' }, '内容审核'),
        h('select', { 'aria-label': '类型', onchange: (e) => go({ kind: e.target.value }) },
          KINDS.map(([v, t]) => h('option', { value: v, selected: v === kind }, t))),
        h('select', { 'aria-label': '状态', onchange: (e) => go({ state: e.target.value }) },
          STATES.map(([v, t]) => h('option', { value: v, selected: v === state }, t))),
        h('button', { type: 'button', onclick: () => load() }, '刷新')),
      list, footer);

    function remove(targetType, targetId) {
      const card = list.querySelector(`[data-target="${targetType}:${targetId}"]`);
      if (card) card.remove();
      if (!list.querySelector('[data-target]')) load();
    }

    async function decide(item, approve) {
      const path = `/v1/admin/moderation/${item.target_type}/${item.target_id}`;
      try {
        if (approve) {
          await api.post(`${path}/approve`);
          toast('已通过');
        } else {
          const values = await ask('驳回理由', [{ name: 'reason', label: '理由（会通知作者）', type: 'textarea', required: true, maxlength: 255 }], '驳回');
          if (!values) return;
          await api.post(`${path}/reject`, { reason: values.reason });
          toast('已驳回');
        }
        remove(item.target_type, item.target_id);
      } catch (error) {
        toast(error.describe ? error.describe() : String(error), true);
      }
    }

    function card(item) {
      return h('div', { class: 'card item', dataset: { target: `${item.target_type}:${item.target_id}` } },
        h('div', {},
          h('div', { class: 'meta' }, `#${item.target_id} · 作者 ${item.author_id} · ${when(item.created_at)} `,
            item.report_count ? h('span', { class: 'badge bad' }, `举报 ${item.report_count}`) : null, ' ',
            checkBadge(item.last_check), item.status_reason ? ` · ${item.status_reason}` : ''),
          h('div', { class: 'text' }, item.text),
          item.media && item.media.length ? h('div', { class: 'media' }, item.media.map(mediaView)) : null),
        item.target_type === 'user' ? h('div', { class: 'actions' }, h('a', { href: `#/users?q=${item.target_id}` }, '查看用户'))
          : h('div', { class: 'actions' },
            h('button', { type: 'button', class: 'primary', onclick: () => decide(item, true) }, '通过'),
            h('button', { type: 'button', class: 'danger', onclick: () => decide(item, false) }, '驳回')));
    }

    async function load() {
      const result = await api.get('/v1/admin/moderation', { kind, state, page, limit: 20 });
      clear(list, result.items.length ? result.items.map(card) : h('p', { class: 'muted', id: 'moderation-empty' }, '没有待处理的内容 🎉'));
      clear(footer, pager(result, (p) => go({ page: p })));
    }

    await load();
    const stops = [
      ctx.live.watch('staff:moderation'),
      ctx.live.on('moderation.decided', (data) => remove(data.target_type, data.target_id)),
      ctx.live.on('moderation.queued', (data) => { if (data.target_type === kind && state === 'hidden') load(); }),
      ctx.live.on('live.connected', () => load().catch(() => {})),
    ];
    return () => stops.forEach((stop) => stop());
  },
};
