// Image uploads from the console, through the same media flow the app uses (docs/media.md):
// POST /v1/media {kind, size, content_type, sha256} -> a presigned URL (or an instant answer
// for a file already stored), PUT the bytes there, POST /v1/media/{id}/complete, then wait
// for the media worker to make it ready (GET /v1/media/{id}). The media belongs to the
// signed-in staff member's user (a merchant's images are the merchant's).
import * as api from './api.js';
import { h } from './dom.js';

const IMAGE_TYPES = ['image/jpeg', 'image/png', 'image/webp', 'image/gif'];
const WAIT_MS = 90_000;

export class UploadError extends Error {}

async function sha256Hex(file) {
  if (!globalThis.crypto || !crypto.subtle) return undefined; // not a secure context: no instant upload
  const digest = await crypto.subtle.digest('SHA-256', await file.arrayBuffer());
  return Array.from(new Uint8Array(digest), (b) => b.toString(16).padStart(2, '0')).join('');
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

// Uploads one image file; resolves to the ready media ({media_id, status, variants, ...}).
// `onState(text)` is told each step (上传中 / 处理中).
export async function uploadImage(file, onState = () => {}) {
  if (!IMAGE_TYPES.includes(file.type)) throw new UploadError(`不支持的图片格式：${file.type || '未知'}`);
  onState('上传中');
  const sha256 = await sha256Hex(file);
  const started = await api.post('/v1/media', { kind: 'image', size: file.size, content_type: file.type, ...(sha256 ? { sha256 } : {}) });
  const mediaId = started.media_id;
  if (!started.instant) {
    const put = await fetch(started.upload_url, { method: started.method || 'PUT', headers: started.headers || {}, body: file });
    if (!put.ok) throw new UploadError(`上传失败（HTTP ${put.status}）`);
    await api.post(`/v1/media/${mediaId}/complete`);
  }
  onState('处理中');
  const deadline = Date.now() + WAIT_MS;
  for (let delay = 300; ; delay = Math.min(delay * 1.5, 2000)) {
    const media = await api.get(`/v1/media/${mediaId}`);
    if (media.status === 'ready') return { ...media, media_id: mediaId };
    if (media.status === 'failed') throw new UploadError(`图片处理失败：${media.fail_reason || '未知原因'}`);
    if (Date.now() > deadline) throw new UploadError('图片处理超时，请稍后重试');
    await sleep(delay);
  }
}

// The smallest variant's URL of a ready media (a thumbnail), or ''.
export function thumbUrl(media) {
  const variants = Object.values(media.variants || {}).filter((v) => String(v.content_type || '').startsWith('image/'));
  variants.sort((a, b) => (a.width || 0) - (b.width || 0));
  return variants.length ? variants[0].url : '';
}

// An image list editor: thumbnails in order (the first is the cover), each removable and
// movable forward, plus a file picker that uploads. `images` is [{media_id, url}];
// `onChange(images)` after every change. Returns {element, images(), busy()}.
export function imageList({ images = [], max = 9, label = '图片', onError = () => {} } = {}) {
  let items = images.map((i) => ({ media_id: i.media_id, url: i.thumb_url || i.url || '' }));
  let pending = 0;
  const list = h('div', { class: 'image-list' });
  const status = h('span', { class: 'muted upload-status', 'aria-live': 'polite' });
  const input = h('input', { type: 'file', accept: IMAGE_TYPES.join(','), multiple: max > 1, 'aria-label': `上传${label}` });
  function draw() {
    list.replaceChildren(...items.map((item, index) => h('figure', { class: 'image-item', dataset: { mediaId: String(item.media_id) } },
      item.url ? h('img', { src: item.url, alt: `${label} ${index + 1}` }) : h('div', { class: 'muted' }, `#${item.media_id}`),
      h('figcaption', {}, index === 0 && max > 1 ? '封面' : '',
        index > 0 ? h('button', { type: 'button', title: '前移', 'aria-label': `前移${label} ${index + 1}`, onclick: () => { [items[index - 1], items[index]] = [items[index], items[index - 1]]; draw(); } }, '←') : null,
        h('button', { type: 'button', class: 'danger', 'aria-label': `删除${label} ${index + 1}`, onclick: () => { items.splice(index, 1); draw(); } }, '删除')))));
    input.disabled = items.length + pending >= max;
    status.textContent = pending ? `${pending} 张处理中…` : `${items.length} / ${max}`;
  }
  input.addEventListener('change', async () => {
    const files = Array.from(input.files || []).slice(0, Math.max(0, max - items.length - pending));
    input.value = '';
    pending += files.length;
    draw();
    await Promise.all(files.map(async (file) => {
      try {
        const media = await uploadImage(file);
        items.push({ media_id: media.media_id, url: thumbUrl(media) });
      } catch (error) {
        onError(error.describe ? error.describe() : error.message);
      } finally {
        pending -= 1;
        draw();
      }
    }));
  });
  draw();
  return {
    element: h('div', { class: 'image-field' }, list, h('label', { class: 'upload' }, `添加${label}`, input), status),
    ids: () => items.map((i) => i.media_id),
    busy: () => pending > 0,
  };
}
