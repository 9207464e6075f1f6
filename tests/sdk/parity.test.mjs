// PocketBase's own API test tables (apis/*_test.go), ported as data in tests/parity/*.json: the
// fixture is rebuilt through the API, then each case's status and error codes are compared
// exactly. The same tables run in Warren's Rust e2e tests (crates/warren/tests/e2e/parity.rs).
import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { superuserClient, raw, rand } from './lib/setup.mjs';

const DIR = new URL('../parity/', import.meta.url);
const load = (name) => JSON.parse(readFileSync(new URL(name, DIR), 'utf8'));
const fixture = load('fixture.json');
const TABLES = ['collections.json', 'records.json', 'auth.json', 'admin.json'];

const vars = { s: rand(6) };

// `{{name}}` or `{{name.path.to.value}}` inside any string of a case.
function fill(value) {
  if (typeof value === 'string') {
    return value.replace(/\{\{([\w.]+)\}\}/g, (_, path) => {
      let v = vars;
      for (const key of path.split('.')) v = v?.[key];
      assert.ok(v !== undefined && typeof v !== 'object', `fixture value ${path}`);
      return String(v);
    });
  }
  if (Array.isArray(value)) return value.map(fill);
  if (value && typeof value === 'object') return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, fill(v)]));
  return value;
}

async function send(step, defaultAuth) {
  const auth = step.auth ?? defaultAuth;
  const token = auth === 'none' ? undefined : vars[auth]?.token;
  if (auth !== 'none') assert.ok(token, `a token for ${auth}`);
  const options = { token };
  if (step.rawBody !== undefined) {
    options.rawBody = step.rawBody;
    options.headers = { 'Content-Type': 'application/json' };
  } else if (step.body !== undefined) {
    options.body = fill(step.body);
  }
  if (step.headers !== undefined) options.headers = { ...options.headers, ...fill(step.headers) };
  return raw(step.method, fill(step.url), options);
}

// The error data with every `{code, message}` reduced to `{code}`.
function codes(data) {
  if (!data || typeof data !== 'object') return data;
  if (typeof data.code === 'string' && typeof data.message === 'string') return { code: data.code };
  return Object.fromEntries(Object.entries(data).map(([k, v]) => [k, codes(v)]));
}

// `expected` is contained in `actual`: objects by key, arrays element by element and of the
// same length, "<any>" for any present value.
function contains(actual, expected, path = '') {
  if (expected === '<any>') {
    assert.ok(actual !== undefined && actual !== null && actual !== '', `${path} is present`);
  } else if (Array.isArray(expected)) {
    assert.ok(Array.isArray(actual), `${path} is an array: ${JSON.stringify(actual)}`);
    assert.equal(actual.length, expected.length, `${path} length: ${JSON.stringify(actual)}`);
    expected.forEach((e, i) => contains(actual[i], e, `${path}[${i}]`));
  } else if (expected && typeof expected === 'object') {
    assert.ok(actual && typeof actual === 'object', `${path} is an object: ${JSON.stringify(actual)}`);
    for (const [k, e] of Object.entries(expected)) contains(actual[k], e, `${path}.${k}`);
  } else {
    assert.deepEqual(actual, expected, path);
  }
}

export function check(c, res) {
  const body = res.body;
  const show = `${c.method} ${c.url} → ${res.status} ${res.text.slice(0, 600)}`;
  assert.equal(res.status, c.status, show);
  if (c.data !== undefined) assert.deepEqual(codes(body?.data), fill(c.data), show);
  if (c.dataSubset !== undefined) contains(codes(body?.data), fill(c.dataSubset), 'data');
  if (c.json !== undefined) contains(body, fill(c.json), '');
  if (c.jsonPrefix !== undefined) {
    // The answer is a list that starts with these items (it may go on).
    assert.ok(Array.isArray(body) && body.length >= c.jsonPrefix.length, show);
    fill(c.jsonPrefix).forEach((e, i) => contains(body[i], e, `[${i}]`));
  }
  for (const key of c.absent ?? []) assert.ok(!(key in body), `${key} is absent: ${show}`);
  for (const f of fill(c.fieldsInclude ?? [])) {
    const found = body.fields.find((x) => x.name === f.name);
    assert.ok(found, `field ${f.name}: ${show}`);
    contains(found, f, `fields[${f.name}]`);
  }
  for (const name of fill(c.indexesInclude ?? [])) {
    assert.ok(body.indexes.some((i) => i.includes(name)), `index ${name}: ${show}`);
  }
}

before(async () => {
  const su = await superuserClient();
  vars.superuser = { token: su.authStore.token };
  for (const step of fixture.steps) {
    const res = await send(step, 'superuser');
    assert.ok(res.status < 300, `fixture ${step.method} ${fill(step.url)} → ${res.status} ${res.text}`);
    if (step.save) vars[step.save] = res.body;
  }
});

for (const table of TABLES) {
  for (const c of load(table).cases) {
    if (c.skip) continue;
    test(`${table.replace('.json', '')}: ${c.name}`, async () => {
      check(c, await send(c, 'none'));
    });
  }
}
