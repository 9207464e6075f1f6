// Plain HTTP helpers for the import suite: the seed and the read checks speak raw JSON so that
// every PocketBase release from 0.23 on (whatever its SDK expectations) and Warren answer the
// same requests. Importing the SDK suite's set-up installs its `*.localhost` dispatcher.
import '../lib/setup.mjs';

/** A client of one server: `call(method, path, {token, body, form})` → `{status, body}`. */
export function client(base) {
  base = base.replace(/\/+$/, '');
  return async function call(method, path, { token, body, form, raw } = {}) {
    const headers = {};
    if (token) headers.authorization = token;
    let payload;
    if (form) {
      payload = form;
    } else if (body !== undefined) {
      headers['content-type'] = 'application/json';
      payload = JSON.stringify(body);
    }
    const res = await fetch(base + path, { method, headers, body: payload });
    const bytes = Buffer.from(await res.arrayBuffer());
    if (raw) return { status: res.status, headers: res.headers, bytes };
    let parsed = null;
    if (bytes.length) {
      try {
        parsed = JSON.parse(bytes.toString('utf8'));
      } catch {
        parsed = bytes.toString('utf8');
      }
    }
    return { status: res.status, body: parsed };
  };
}

/** Calls and insists on a 2xx answer; returns the body. */
export async function must(call, method, path, opts) {
  const res = await call(method, path, opts);
  if (res.status < 200 || res.status > 299) {
    throw new Error(`${method} ${path} → ${res.status}: ${JSON.stringify(res.body)}`);
  }
  return res.body;
}

/** True when `version` (`0.27.2`) is minor release `minor` or later. */
export function atLeast(version, minor) {
  const [, m] = version.split('.').map(Number);
  return m >= minor;
}

// A 4×4 red PNG, small and valid (thumbnails are made from it).
export const PNG = Buffer.from(
  'iVBORw0KGgoAAAANSUhEUgAAAAQAAAAECAIAAAAmkwkpAAAAEElEQVR4nGP4z8AARwzEcQCukw/x0F8jngAAAABJRU5ErkJggg==',
  'base64',
);
