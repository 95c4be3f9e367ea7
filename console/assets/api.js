// The console's one API client: the same /v1 endpoints a script calls. The session cookie
// (HttpOnly) goes with every request by itself; writes add the session's CSRF token header.
// Errors become ApiError (status, code, message, field errors); a 401 sends the page back
// to the sign-in form.

let csrfToken = '';
let onSignedOut = () => {};

export class ApiError extends Error {
  constructor(status, body) {
    super((body && body.message) || `HTTP ${status}`);
    this.status = status;
    this.code = body && body.code;
    this.errors = (body && body.errors) || [];
    this.data = body && body.data;
  }
  describe() {
    const fields = this.errors.map((e) => `${e.field}: ${e.message}`).join('；');
    return fields ? `${this.message}（${fields}）` : this.message;
  }
}

export function setSession(token, signedOut) {
  csrfToken = token || '';
  if (signedOut) onSignedOut = signedOut;
}

function withQuery(path, query) {
  if (!query) return path;
  const params = new URLSearchParams();
  for (const [k, v] of Object.entries(query)) {
    if (v !== undefined && v !== null && v !== '') params.set(k, String(v));
  }
  const qs = params.toString();
  return qs ? `${path}?${qs}` : path;
}

export async function request(method, path, { query, body, idempotent } = {}) {
  const headers = { Accept: 'application/json' };
  if (method !== 'GET') {
    headers['X-CSRF-Token'] = csrfToken;
    headers['Content-Type'] = 'application/json';
  }
  if (idempotent) headers['Idempotency-Key'] = crypto.randomUUID();
  const reply = await fetch(withQuery(path, query), {
    method, headers, credentials: 'same-origin',
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  let json = null;
  try { json = await reply.json(); } catch { json = null; }
  if (!reply.ok || !json || json.code !== 0) {
    const error = new ApiError(reply.status, json);
    if (reply.status === 401 && !path.startsWith('/v1/console/sessions')) onSignedOut();
    throw error;
  }
  return json.data;
}

export const get = (path, query) => request('GET', path, { query });
export const post = (path, body, options = {}) => request('POST', path, { body: body ?? {}, ...options });
export const put = (path, body, options = {}) => request('PUT', path, { body: body ?? {}, ...options });
export const patch = (path, body, options = {}) => request('PATCH', path, { body: body ?? {}, ...options });
export const del = (path, options = {}) => request('DELETE', path, options);
