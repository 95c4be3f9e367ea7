// DOM helpers. Every piece of text goes in through textContent (h() children, text()):
// never innerHTML, so user text (post bodies, nicknames, reasons) always renders as text.

export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (name.startsWith('on') && typeof value === 'function') {
      el.addEventListener(name.slice(2), value);
    } else if (name === 'class') {
      el.className = value;
    } else if (name === 'dataset') {
      Object.assign(el.dataset, value);
    } else if (name in el && typeof value !== 'string') {
      el[name] = value;
    } else {
      el.setAttribute(name, value === true ? '' : String(value));
    }
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const child of children.flat(Infinity)) {
    if (child === undefined || child === null || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
}

export function clear(el, ...children) {
  el.replaceChildren();
  append(el, children);
  return el;
}

export const yuan = (fen) => '¥' + (Number(fen || 0) / 100).toFixed(2);

export function when(value) {
  if (!value) return '';
  const d = new Date(String(value).endsWith('Z') || String(value).includes('+') ? value : value + 'Z');
  if (Number.isNaN(d.getTime())) return String(value);
  const p = (n) => String(n).padStart(2, '0');
  return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())} ${p(d.getHours())}:${p(d.getMinutes())}`;
}

// A table: columns are {title, value(row) -> text|Node, class?}.
export function table(columns, rows, empty = '暂无数据') {
  const head = h('tr', {}, columns.map((c) => h('th', { class: c.class }, c.title)));
  const body = rows.length
    ? rows.map((row) => h('tr', { dataset: row.id !== undefined ? { id: String(row.id) } : {} },
        columns.map((c) => h('td', { class: c.class }, c.value(row)))))
    : [h('tr', {}, h('td', { colspan: columns.length, class: 'muted' }, empty))];
  return h('table', { class: 'grid' }, h('thead', {}, head), h('tbody', {}, body));
}

// Pagination controls for a page result {page, totalPages, total}.
export function pager(result, go) {
  return h('div', { class: 'pager' },
    h('button', { type: 'button', disabled: result.page <= 1, onclick: () => go(result.page - 1) }, '上一页'),
    h('span', { class: 'muted' }, `第 ${result.page} / ${Math.max(1, result.totalPages)} 页，共 ${result.total} 条`),
    h('button', { type: 'button', disabled: result.page >= result.totalPages, onclick: () => go(result.page + 1) }, '下一页'));
}

export function toast(message, bad = false) {
  const box = document.getElementById('toasts');
  const el = h('div', { class: bad ? 'toast bad' : 'toast', role: bad ? 'alert' : 'status' }, message);
  box.append(el);
  setTimeout(() => el.remove(), bad ? 6000 : 3000);
}

// A modal form: fields are {name, label, type?, value?, required?, options?}; resolves to
// the values, or null when cancelled.
export function ask(title, fields, submitText = '确定') {
  return new Promise((resolve) => {
    const inputs = fields.map((f) => {
      const input = f.options
        ? h('select', { name: f.name }, f.options.map(([v, label]) => h('option', { value: v, selected: v === f.value }, label)))
        : h(f.type === 'textarea' ? 'textarea' : 'input',
            { name: f.name, type: f.type === 'textarea' ? undefined : (f.type || 'text'),
              value: f.value ?? '', required: f.required, maxlength: f.maxlength, min: f.min, step: f.step });
      return h('label', {}, f.label, input);
    });
    const dialog = h('dialog', {});
    const form = h('form', { method: 'dialog' },
      h('strong', {}, title), inputs,
      h('div', { class: 'buttons' },
        h('button', { type: 'button', onclick: () => { dialog.close(); } }, '取消'),
        h('button', { type: 'submit', class: 'primary' }, submitText)));
    let result = null;
    form.addEventListener('submit', () => {
      result = Object.fromEntries(new FormData(form).entries());
    });
    dialog.addEventListener('close', () => { dialog.remove(); resolve(result); });
    dialog.append(form);
    document.body.append(dialog);
    dialog.showModal();
  });
}
