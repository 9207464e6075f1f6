// The tenant API client of the dashboard: requests with the superuser's token, errors as ApiError.

const STORAGE_KEY = 'warren_dashboard_auth';

/** An API answer outside 2xx, in PocketBase's envelope: `status`, `message`, `data`. */
export class ApiError extends Error {
  constructor(status, body) {
    super((body && body.message) || (status ? `Request failed (${status}).` : 'Network error.'));
    this.status = status;
    this.data = (body && body.data) || {};
    this.response = body || {};
  }
}

function decodePayload(token) {
  try {
    const part = token.split('.')[1].replace(/-/g, '+').replace(/_/g, '/');
    return JSON.parse(atob(part));
  } catch {
    return null;
  }
}

/** The signed-in superuser: `token`, `record`, kept in localStorage. */
export const auth = {
  token: '',
  record: null,
  listeners: new Set(),
  load() {
    try {
      const saved = JSON.parse(localStorage.getItem(STORAGE_KEY) || 'null');
      if (saved && saved.token) { this.token = saved.token; this.record = saved.record; }
    } catch { /* a damaged entry counts as signed out */ }
  },
  save(token, record) {
    this.token = token || '';
    this.record = record || null;
    localStorage.setItem(STORAGE_KEY, JSON.stringify({ token: this.token, record: this.record }));
    this.listeners.forEach((fn) => fn(this));
  },
  clear() {
    this.token = '';
    this.record = null;
    localStorage.removeItem(STORAGE_KEY);
    this.listeners.forEach((fn) => fn(this));
  },
  /** Whether a token is held and not past its expiry. */
  isValid() {
    const payload = this.token && decodePayload(this.token);
    return !!payload && (!payload.exp || payload.exp * 1000 > Date.now());
  },
  onChange(fn) { this.listeners.add(fn); return () => this.listeners.delete(fn); },
};
auth.load();

/** A query string from an object (undefined, null and '' skipped), with a leading '?'. */
export function queryString(query) {
  const params = new URLSearchParams();
  for (const [key, value] of Object.entries(query || {})) {
    if (value === undefined || value === null || value === '') continue;
    params.set(key, String(value));
  }
  const text = params.toString();
  return text ? `?${text}` : '';
}

/**
 * One API request. `query`: object; `body`: JSON-serialized unless FormData; `raw`: return the
 * Response itself; `signal`: AbortSignal. Resolves with the parsed JSON (null for 204).
 * A 401 signs the superuser out (the app returns to the sign-in page).
 */
export async function api(method, path, { query, body, raw, signal, headers } = {}) {
  const init = { method, headers: { ...(headers || {}) }, signal };
  if (auth.token) init.headers.Authorization = auth.token;
  if (body instanceof FormData) init.body = body;
  else if (body !== undefined) {
    init.headers['Content-Type'] = 'application/json';
    init.body = JSON.stringify(body);
  }
  let response;
  try {
    response = await fetch(path + queryString(query), init);
  } catch (e) {
    if (e.name === 'AbortError') throw e;
    throw new ApiError(0, { message: 'The server could not be reached.' });
  }
  if (raw && response.ok) return response;
  const text = response.status === 204 ? '' : await response.text();
  let json = null;
  try { json = text ? JSON.parse(text) : null; } catch { json = null; }
  if (!response.ok) {
    if (response.status === 401 && auth.token && !path.includes('/auth-with-')) auth.clear();
    throw new ApiError(response.status, json);
  }
  return json;
}

/** The URL of a record's file (`thumb` e.g. "100x100"; `token` for protected files). */
export function fileUrl(collection, record, filename, { thumb, token, download } = {}) {
  const base = `/api/files/${encodeURIComponent(collection)}/${encodeURIComponent(record)}/${encodeURIComponent(filename)}`;
  return base + queryString({ thumb, token, download: download ? 1 : undefined });
}

/** A short-lived file token for protected files and backup downloads. */
export async function fileToken() {
  const answer = await api('POST', '/api/files/token');
  return answer.token;
}

/** Every collection (cached until `invalidateCollections()`). */
let collectionsCache = null;
export function collections() {
  if (!collectionsCache) {
    collectionsCache = api('GET', '/api/collections', { query: { perPage: 500, sort: 'name' } })
      .then((page) => page.items)
      .catch((e) => { collectionsCache = null; throw e; });
  }
  return collectionsCache;
}
export function invalidateCollections() {
  collectionsCache = null;
}

/**
 * The stored token, refreshed once when the dashboard starts: a refused one signs the
 * superuser out (the app then shows the sign-in page); a network failure keeps it.
 */
export const refreshed = auth.token
  ? api('POST', '/api/collections/_superusers/auth-refresh')
    .then((answer) => auth.save(answer.token, answer.record))
    .catch((e) => { if (e.status) auth.clear(); })
  : Promise.resolve();
