// pb.createBatch(): several writes in one transaction, all or nothing.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import {
  superuserClient, guestClient, uniqueName, rand, dropCollections, expectError, enableBatch, ID_RE,
} from './lib/setup.mjs';

let su;
let guest;
const C = {};

before(async () => {
  su = await superuserClient();
  guest = guestClient();
  await enableBatch(su);
  const open = { listRule: '', viewRule: '', createRule: '', updateRule: '', deleteRule: '' };
  C.notes = await su.collections.create({
    name: uniqueName('notes'), type: 'base', ...open,
    fields: [
      { name: 'title', type: 'text', required: true },
      { name: 'n', type: 'number' },
    ],
  });
  C.locked = await su.collections.create({
    name: uniqueName('blocked'), type: 'base', fields: [{ name: 'title', type: 'text' }],
  });
});

after(async () => {
  await dropCollections(su, C.notes?.name, C.locked?.name);
});

const count = async (name) => (await su.collection(name).getList(1, 1)).totalItems;

test('a batch of creates, updates, upserts and deletes succeeds as a whole', async () => {
  const notes = C.notes.name;
  const existing = await guest.collection(notes).create({ title: 'existing', n: 1 });
  const doomed = await guest.collection(notes).create({ title: 'doomed', n: 2 });
  const upsertId = rand(15);

  const batch = guest.createBatch();
  batch.collection(notes).create({ title: 'b1', n: 10 });
  batch.collection(notes).create({ title: 'b2', n: 20 }, { fields: 'id,title' });
  batch.collection(notes).update(existing.id, { 'n+': 5 });
  batch.collection(notes).upsert({ id: upsertId, title: 'upserted' });
  batch.collection(notes).upsert({ id: existing.id, title: 'existing upserted' });
  batch.collection(notes).delete(doomed.id);
  const res = await batch.send();

  assert.equal(res.length, 6);
  assert.deepEqual(res.map((r) => r.status), [200, 200, 200, 200, 200, 204]);
  assert.match(res[0].body.id, ID_RE);
  assert.equal(res[0].body.title, 'b1');
  assert.equal(res[0].body.collectionName, notes);
  assert.deepEqual(Object.keys(res[1].body).sort(), ['id', 'title']);
  assert.equal(res[2].body.n, 6);
  assert.equal(res[3].body.id, upsertId);
  assert.equal(res[4].body.title, 'existing upserted');
  assert.equal(res[4].body.n, 6);
  assert.equal(res[5].body, null);

  assert.equal((await guest.collection(notes).getOne(res[0].body.id)).n, 10);
  assert.equal((await guest.collection(notes).getOne(upsertId)).title, 'upserted');
  await expectError(guest.collection(notes).getOne(doomed.id), 404);
});

test('one failing request rolls back the whole batch', async () => {
  const notes = C.notes.name;
  const keep = await guest.collection(notes).create({ title: 'keep', n: 1 });
  const before = await count(notes);

  const batch = guest.createBatch();
  batch.collection(notes).create({ title: 'would be created' });
  batch.collection(notes).update(keep.id, { title: 'would be renamed' });
  batch.collection(notes).create({ n: 3 }); // title is required
  batch.collection(notes).delete(keep.id);
  const err = await expectError(batch.send(), 400);
  assert.equal(err.response.message, 'Batch transaction failed.');
  assert.deepEqual(Object.keys(err.response.data), ['requests']);
  assert.deepEqual(Object.keys(err.response.data.requests), ['2']);
  const item = err.response.data.requests['2'];
  assert.equal(item.code, 'batch_request_failed');
  assert.equal(item.message, 'Batch request failed.');
  assert.deepEqual(item.response, {
    data: { title: { code: 'validation_required', message: 'Cannot be blank.' } },
    message: 'Failed to create record.',
    status: 400,
  });

  assert.equal(await count(notes), before);
  const stored = await guest.collection(notes).getOne(keep.id);
  assert.equal(stored.title, 'keep');
  assert.equal((await guest.collection(notes).getList(1, 1, { filter: 'title = "would be created"' })).totalItems, 0);
});

test('batch items obey the collection rules of the caller', async () => {
  const before = await count(C.notes.name);
  const batch = guest.createBatch();
  batch.collection(C.notes.name).create({ title: 'fine' });
  batch.collection(C.locked.name).create({ title: 'not for guests' });
  const err = await expectError(batch.send(), 400);
  const item = err.response.data.requests['1'];
  assert.equal(item.code, 'batch_request_failed');
  assert.equal(item.response.status, 403);
  assert.equal(await count(C.notes.name), before);
  assert.equal(await count(C.locked.name), 0);

  // The superuser may write to the locked collection in a batch.
  const sb = su.createBatch();
  sb.collection(C.locked.name).create({ title: 'by superuser' });
  const res = await sb.send();
  assert.equal(res[0].status, 200);
  assert.equal(await count(C.locked.name), 1);
});

test('an empty or unknown batch request is a 400', async () => {
  const empty = await expectError(guest.createBatch().send(), 400);
  assert.equal(empty.response.message, 'Invalid batch request data.');
  assert.equal(empty.response.data.requests.code, 'validation_required');
  const bad = await expectError(
    guest.send('/api/batch', {
      method: 'POST',
      body: { requests: [{ method: 'GET', url: `/api/collections/${C.notes.name}/records` }] },
    }),
    400,
  );
  // Only record create/update/upsert/delete may be batched.
  assert.equal(bad.response.message, 'Batch transaction failed.');
  assert.equal(bad.response.data.requests['0'].code, 'batch_request_failed');
  assert.equal(bad.response.data.requests['0'].response.status, 400);
});

test('batch.maxBodySize refuses larger bodies with 413', async () => {
  await su.settings.update({ batch: { maxBodySize: 300 } });
  try {
    const big = guest.createBatch();
    big.collection(C.notes.name).create({ title: 'x'.repeat(400) });
    const err = await expectError(big.send(), 413);
    assert.deepEqual(err.response, { data: {}, message: 'Request entity too large.', status: 413 });
    const small = guest.createBatch();
    small.collection(C.notes.name).create({ title: 'fits' });
    assert.equal((await small.send())[0].status, 200);
  } finally {
    await su.settings.update({ batch: { maxBodySize: 0 } });
  }
});

test('a batch that outlasts batch.timeout fails whole and writes nothing', async () => {
  const members = await su.collections.create({ name: uniqueName('members'), type: 'auth', createRule: '' });
  try {
    await su.settings.update({ batch: { enabled: true, maxRequests: 100, timeout: 1 } });
    // A hundred password hashes take well over a second on either server, idle or loaded.
    const slow = guest.createBatch();
    for (let i = 0; i < 100; i++) {
      const password = `pw-${rand(12)}`;
      slow.collection(members.name).create({ email: `m${i}_${rand(8)}@example.com`, password, passwordConfirm: password });
    }
    const started = Date.now();
    const err = await expectError(slow.send(), 400);
    assert.deepEqual(err.response, { data: {}, message: 'Batch transaction failed.', status: 400 });
    assert.ok(Date.now() - started < 5000, 'the answer waited for the whole batch');
    assert.equal((await su.collection(members.name).getList(1, 1)).totalItems, 0);
  } finally {
    await enableBatch(su);
    await dropCollections(su, members.name);
  }
});
