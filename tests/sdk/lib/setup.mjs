// Shared set-up for the SDK suite: one import per test file.
//
// The suite runs unchanged against the real PocketBase (the oracle) and against a Warren tenant
// reached by hostname (`http://<slug>.localhost:PORT`). The target comes from the environment:
//   PB_URL                  base URL of the target
//   PB_SUPERUSER_EMAIL      an existing superuser of the target
//   PB_SUPERUSER_PASSWORD   its password
//
// Node's resolver does not map `*.localhost` to loopback, so a global undici dispatcher with a
// custom lookup is installed: Node's fetch (used by the SDK) and the EventSource polyfill both go
// through it.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { Agent, setGlobalDispatcher } from 'undici';
import { EventSource } from 'eventsource';
import PocketBase, { ClientResponseError } from 'pocketbase';

export { PocketBase, ClientResponseError };

export const PB_URL = (process.env.PB_URL || 'http://127.0.0.1:8090').replace(/\/+$/, '');
export const SUPERUSER_EMAIL = process.env.PB_SUPERUSER_EMAIL || 'admin@example.com';
export const SUPERUSER_PASSWORD = process.env.PB_SUPERUSER_PASSWORD || 'password123456';

function isLoopbackName(hostname) {
  const h = hostname.toLowerCase().replace(/\.$/, '');
  return h === 'localhost' || h.endsWith('.localhost');
}

setGlobalDispatcher(
  new Agent({
    connect: {
      lookup(hostname, options, callback) {
        if (isLoopbackName(hostname)) {
          // undici asks with `all: true` (array form) on recent versions; answer both shapes.
          if (options && options.all) return callback(null, [{ address: '127.0.0.1', family: 4 }]);
          return callback(null, '127.0.0.1', 4);
        }
        // Only loopback targets are used by this suite.
        return callback(new Error(`refusing to resolve non-loopback host ${hostname}`));
      },
    },
  }),
);

globalThis.EventSource = EventSource;

/** A short random suffix, safe inside collection and field names. */
export function rand(n = 8) {
  return randomBytes(16).toString('hex').slice(0, n);
}

/** A unique collection name for one test file run (names are `^\w+$`). */
export function uniqueName(prefix) {
  return `${prefix}_${rand(10)}`;
}

function newClient() {
  const pb = new PocketBase(PB_URL);
  // Tests issue concurrent identical requests on purpose; never let the SDK abort them.
  pb.autoCancellation(false);
  return pb;
}

/** An unauthenticated client. */
export function guestClient() {
  return newClient();
}

/** A client authenticated as the target's superuser. */
export async function superuserClient() {
  const pb = newClient();
  await pb.collection('_superusers').authWithPassword(SUPERUSER_EMAIL, SUPERUSER_PASSWORD);
  assert.ok(pb.authStore.isValid, 'superuser auth store is valid');
  assert.ok(pb.authStore.isSuperuser, 'superuser auth store is recognised as superuser');
  return pb;
}

/**
 * Creates a record in the built-in `users` auth collection (as a guest, whose createRule is "")
 * and signs in as that user. Returns `{ pb, record, email, password }`.
 */
export async function createUser(extra = {}) {
  const email = `u_${rand(12)}@example.com`;
  const password = `pw-${rand(16)}`;
  const guest = newClient();
  const created = await guest.collection('users').create({
    email,
    password,
    passwordConfirm: password,
    ...extra,
  });
  const pb = newClient();
  const auth = await pb.collection('users').authWithPassword(email, password);
  assert.equal(auth.record.id, created.id);
  return { pb, record: auth.record, email, password };
}

/** Deletes the given collections (by name or id) in order, ignoring ones already gone. */
export async function dropCollections(su, ...names) {
  for (const name of names) {
    try {
      await su.collections.delete(name);
    } catch (err) {
      if (!(err instanceof ClientResponseError) || err.status !== 404) throw err;
    }
  }
}

/**
 * Awaits `promise` and asserts that it rejects with a ClientResponseError of `status`.
 * `dataCodes` (optional) maps field name → expected `response.data[field].code`; when given, the
 * set of erroring fields must be exactly those keys. Returns the error for further checks.
 */
export async function expectError(promise, status, dataCodes) {
  let err;
  try {
    await promise;
  } catch (e) {
    err = e;
  }
  assert.ok(err, `expected a ${status} error, but the request succeeded`);
  assert.ok(err instanceof ClientResponseError, `expected ClientResponseError, got ${err}`);
  assert.equal(err.status, status, `status (response: ${JSON.stringify(err.response)})`);
  assertEnvelope(err.response, status);
  if (dataCodes) {
    const got = {};
    for (const [k, v] of Object.entries(err.response.data)) got[k] = v && v.code;
    assert.deepEqual(got, dataCodes, `validation codes (response: ${JSON.stringify(err.response)})`);
  }
  return err;
}

/** Asserts the error envelope `{data, message, status}` with exactly these keys. */
export function assertEnvelope(body, status) {
  assert.ok(body && typeof body === 'object', `error body is an object: ${JSON.stringify(body)}`);
  assert.deepEqual(Object.keys(body).sort(), ['data', 'message', 'status'], JSON.stringify(body));
  assert.equal(body.status, status);
  assert.equal(typeof body.message, 'string');
  assert.ok(body.message.length > 0);
  assert.ok(/[.?!]$/.test(body.message), `message ends with punctuation: ${body.message}`);
  assert.ok(body.data && typeof body.data === 'object' && !Array.isArray(body.data));
}

/**
 * A raw HTTP request against the target (no SDK). `token` sets Authorization. Returns
 * `{ status, headers, body, text }` where body is parsed JSON when possible.
 */
export async function raw(method, path, { token, body, headers = {}, rawBody } = {}) {
  const h = { ...headers };
  if (token) h.Authorization = token;
  let payload = rawBody;
  if (body !== undefined) {
    payload = JSON.stringify(body);
    h['Content-Type'] = h['Content-Type'] || 'application/json';
  }
  const res = await fetch(PB_URL + path, { method, headers: h, body: payload });
  const text = await res.text();
  let parsed;
  try {
    parsed = text ? JSON.parse(text) : undefined;
  } catch {
    parsed = undefined;
  }
  return { status: res.status, headers: res.headers, body: parsed, text };
}

/** The datetime format every record date uses. */
export const DATE_RE = /^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}\.\d{3}Z$/;

/** Record ids generated by default: 15 chars of [a-z0-9]. */
export const ID_RE = /^[a-z0-9]{15}$/;

/** Enables batch requests on the target (they are off by default); idempotent. */
export async function enableBatch(su) {
  await su.settings.update({ batch: { enabled: true, maxRequests: 50, timeout: 3 } });
}
