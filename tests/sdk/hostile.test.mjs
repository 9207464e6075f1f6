// Raw HTTP with hostile input: every answer is the JSON envelope with an exact status, no 500,
// no leak, and nothing is written by a failed request.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import {
  superuserClient, createUser, uniqueName, dropCollections, raw, assertEnvelope,
} from './lib/setup.mjs';

let su;
let A; // a user who owns one row of `mine`
let B;
const C = {};
const GENERIC_400 = 'Something went wrong while processing your request.';

before(async () => {
  su = await superuserClient();
  [A, B] = await Promise.all([createUser(), createUser()]);
  const open = { listRule: '', viewRule: '', createRule: '', updateRule: '', deleteRule: '' };
  C.open = await su.collections.create({
    name: uniqueName('hostile'), type: 'base', ...open,
    fields: [
      { name: 'title', type: 'text', required: true },
      { name: 'n', type: 'number' },
    ],
  });
  const own = 'owner = @request.auth.id';
  C.mine = await su.collections.create({
    name: uniqueName('mine'), type: 'base', listRule: own, viewRule: own,
    fields: [
      { name: 'title', type: 'text' },
      { name: 'owner', type: 'relation', collectionId: '_pb_users_auth_', maxSelect: 1 },
    ],
  });
  await su.collection(C.open.name).create({ title: 'seed', n: 1 });
  await su.collection(C.mine.name).create({ title: 'A secret', owner: A.record.id });
  await su.collection(C.mine.name).create({ title: 'B secret', owner: B.record.id });
});

after(async () => {
  await dropCollections(su, C.open?.name, C.mine?.name);
  for (const u of [A, B]) if (u) await su.collection('users').delete(u.record.id).catch(() => {});
});

const records = () => `/api/collections/${C.open.name}/records`;
const count = async () => (await su.collection(C.open.name).getList(1, 1)).totalItems;

function expectGeneric(res, status, message) {
  assert.equal(res.status, status, res.text);
  assertEnvelope(res.body, status);
  assert.deepEqual(res.body.data, {});
  if (message) assert.equal(res.body.message, message);
  assert.match(res.headers.get('content-type') || '', /^application\/json/);
}

test('malformed and non-object JSON bodies are a generic 400 and write nothing', async () => {
  const before = await count();
  for (const rawBody of ['{"title": ', '{title: "x"}', '[1,2]', '"just a string"', '\u0000\u0001']) {
    const res = await raw('POST', records(), { rawBody, headers: { 'Content-Type': 'application/json' } });
    expectGeneric(res, 400, GENERIC_400);
  }
  const seed = await su.collection(C.open.name).getFirstListItem('title = "seed"');
  const upd = await raw('PATCH', `${records()}/${seed.id}`, { rawBody: '{"title":', headers: { 'Content-Type': 'application/json' } });
  expectGeneric(upd, 400, GENERIC_400);
  assert.equal((await su.collection(C.open.name).getOne(seed.id)).title, 'seed');
  assert.equal(await count(), before);
});

test('an unsupported content type is a 400', async () => {
  const res = await raw('POST', records(), { rawBody: 'title=x', headers: { 'Content-Type': 'text/plain' } });
  expectGeneric(res, 400, 'Unsupported Content-Type.');
});

test('unknown fields are ignored', async () => {
  const res = await raw('POST', records(), {
    body: { title: 'with extras', bogus: 1, collectionName: 'users', expand: { x: 1 }, TITLE: 'upper' },
  });
  assert.equal(res.status, 200, res.text);
  assert.equal(res.body.title, 'with extras');
  assert.equal(res.body.collectionName, C.open.name);
  assert.ok(!('bogus' in res.body));
  assert.ok(!('TITLE' in res.body));
  assert.ok(!('expand' in res.body));
  await su.collection(C.open.name).delete(res.body.id);
});

test('an oversized body is a 413 and writes nothing', async () => {
  const before = await count();
  const rawBody = `{"title":"${'x'.repeat(33 * 1024 * 1024)}"}`;
  const res = await raw('POST', records(), { rawBody, headers: { 'Content-Type': 'application/json' } });
  expectGeneric(res, 413, 'Request entity too large.');
  assert.equal(await count(), before);
});

test('SQL-looking filters are harmless: 400 or empty, never a leak or a 500', async () => {
  const list = (filter, token, coll = C.open.name) =>
    raw('GET', `/api/collections/${coll}/records?filter=${encodeURIComponent(filter)}`, { token });

  // A well-formed filter whose string literal looks like SQL: just no match.
  for (const filter of [`title = "x'; DROP TABLE users; --"`, `title = 'x" OR "1"="1'`, `title ~ "%' OR 1=1 --"`]) {
    const res = await list(filter);
    assert.equal(res.status, 200, `${filter}: ${res.text}`);
    assert.deepEqual(res.body.items, []);
    assert.equal(res.body.totalItems, 0);
  }
  // Broken expressions: a generic 400.
  for (const filter of ['1=1) OR (1=1', `title = '' OR 1=1 --`, 'title = "a"; DELETE FROM users', ')))', 'title = "unterminated']) {
    const res = await list(filter);
    expectGeneric(res, 400, GENERIC_400);
  }
  // Against a rule-protected collection the filter cannot break out of the rule.
  for (const filter of ['1=1) OR (1=1', `owner != "" || owner = ""`, `id != "x") || (1 = 1`]) {
    const res = await list(filter, B.pb.authStore.token, C.mine.name);
    assert.ok([200, 400].includes(res.status), `${filter}: ${res.text}`);
    if (res.status === 200) {
      assert.deepEqual(res.body.items.map((r) => r.title), ['B secret'], filter);
    } else {
      expectGeneric(res, 400, GENERIC_400);
    }
  }
  // Hostile sort, ids and paging parameters.
  expectGeneric(await raw('GET', `${records()}?sort=${encodeURIComponent('title; DROP TABLE users')}`), 400, GENERIC_400);
  expectGeneric(await raw('GET', `${records()}?perPage=abc`), 400, GENERIC_400);
  expectGeneric(await raw('GET', `${records()}?skipTotal=maybe`), 400, GENERIC_400);
  expectGeneric(await raw('GET', `${records()}/${encodeURIComponent("x' OR '1'='1")}`), 404, "The requested resource wasn't found.");
  expectGeneric(await raw('DELETE', `${records()}/${encodeURIComponent("x' OR '1'='1")}`), 404);
  expectGeneric(await raw('GET', `/api/collections/${encodeURIComponent('users; DROP TABLE users')}/records`), 404);

  // Everything is still there.
  assert.equal((await su.collection(C.open.name).getList(1, 1)).totalItems >= 1, true);
  assert.equal((await su.collection(C.mine.name).getList(1, 10)).totalItems, 2);
  assert.equal((await su.collection('users').getOne(A.record.id)).id, A.record.id);
});

test('out-of-range paging is clamped', async () => {
  const res = await raw('GET', `${records()}?page=-1&perPage=5000`);
  assert.equal(res.status, 200, res.text);
  assert.equal(res.body.page, 1);
  assert.equal(res.body.perPage, 1000);
  const zero = await raw('GET', `${records()}?page=0&perPage=0`);
  assert.equal(zero.body.page, 1);
  assert.equal(zero.body.perPage, 30);
});

test('error responses use the envelope for unknown routes and collections', async () => {
  expectGeneric(await raw('GET', '/api/collections/nosuchcollection_zz/records'), 404, 'Missing collection context.');
  expectGeneric(await raw('POST', '/api/collections/nosuchcollection_zz/records', { body: { a: 1 } }), 404);
  expectGeneric(await raw('GET', `${records()}/`), 404);
});
