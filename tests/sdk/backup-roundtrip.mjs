// Warren only (run by tests/suites/backup, not by the SDK suite): a tenant with collections,
// an auth user, files kept in S3 and realtime subscribers is backed up and restored into a new
// slug, and through the official JS SDK the copy is indistinguishable: same collections, same
// records (ids, fields, timestamps), same file bytes, the user's old token still refreshes and
// subscribes, realtime events are delivered by the same rules, and the original keeps serving
// its own subscribers.
//
//   WARREN_PORT      the server's port (tenants at http://<slug>.localhost:PORT)
//   WARREN_TOKEN     the operator token
//   SLUG             an existing tenant with superuser SU_EMAIL / SU_PASSWORD
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { PocketBase } from './lib/setup.mjs';

const PORT = process.env.WARREN_PORT;
const TOKEN = process.env.WARREN_TOKEN;
const SLUG = process.env.SLUG || 'alpha';
const COPY = `${SLUG}-copy`;
const SU_EMAIL = process.env.SU_EMAIL;
const SU_PASSWORD = process.env.SU_PASSWORD;

const tenant = (slug) => {
  const pb = new PocketBase(`http://${slug}.localhost:${PORT}`);
  pb.autoCancellation(false);
  return pb;
};
const clients = [];
after(() => clients.forEach((pb) => pb.realtime.unsubscribe().catch(() => {})));

async function operator(method, path, body) {
  const res = await fetch(`http://localhost:${PORT}${path}`, {
    method,
    headers: { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/json' },
    body: body ? JSON.stringify(body) : undefined,
  });
  const json = await res.json();
  return { status: res.status, json };
}

async function waitFor(fn, what, ms = 8000) {
  const end = Date.now() + ms;
  for (;;) {
    const v = fn();
    if (v) return v;
    if (Date.now() > end) assert.fail(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

async function bytesOf(pb, record, name) {
  const res = await fetch(pb.files.getURL(record, name));
  return { status: res.status, type: res.headers.get('content-type'), body: Buffer.from(await res.arrayBuffer()) };
}

test('a tenant restored into a new slug is indistinguishable through the JS SDK', async () => {
  const su = tenant(SLUG);
  await su.collection('_superusers').authWithPassword(SU_EMAIL, SU_PASSWORD);
  await su.collections.create({
    name: 'notes',
    type: 'base',
    listRule: '',
    viewRule: '',
    createRule: '@request.auth.id != ""',
    fields: [
      { name: 'title', type: 'text' },
      { name: 'doc', type: 'file', maxSelect: 1, maxSize: 1 << 20 },
    ],
  });
  await su.collections.create({
    name: 'private',
    type: 'base',
    listRule: 'owner = @request.auth.id',
    viewRule: 'owner = @request.auth.id',
    createRule: '@request.auth.id != ""',
    fields: [
      { name: 'title', type: 'text' },
      { name: 'owner', type: 'relation', collectionId: '_pb_users_auth_', maxSelect: 1 },
    ],
  });
  const password = 'user-password-123';
  const user = await su.collection('users').create({
    email: 'ann@example.com', password, passwordConfirm: password, name: 'Ann',
  });
  const ann = tenant(SLUG);
  clients.push(ann);
  await ann.collection('users').authWithPassword('ann@example.com', password);
  const oldToken = ann.authStore.token;

  const form = new FormData();
  form.append('title', 'with a file');
  form.append('doc', new Blob([Buffer.from('bytes kept in the bucket')], { type: 'text/plain' }), 'doc.txt');
  const filed = await ann.collection('notes').create(form);
  await ann.collection('notes').create({ title: 'plain' });
  await ann.collection('private').create({ title: 'mine', owner: user.id });

  // A subscriber on the original, before the backup.
  const originalEvents = [];
  const guest = tenant(SLUG);
  clients.push(guest);
  await guest.collection('notes').subscribe('*', (e) => originalEvents.push(`${e.action} ${e.record.title}`));

  const made = await operator('POST', `/v1/tenants/${SLUG}/backups`);
  assert.equal(made.status, 201, JSON.stringify(made.json));
  const restored = await operator('POST', `/v1/tenants/${SLUG}/backups/restore`, { to: COPY });
  assert.equal(restored.status, 201, JSON.stringify(restored.json));

  // Same collections and records, field for field.
  const suCopy = tenant(COPY);
  await suCopy.collection('_superusers').authWithPassword(SU_EMAIL, SU_PASSWORD);
  const shape = (list) => list.map(({ id, name, type, fields, listRule, viewRule, createRule }) => ({ id, name, type, fields, listRule, viewRule, createRule }));
  assert.deepEqual(shape(await suCopy.collections.getFullList({ sort: 'name' })), shape(await su.collections.getFullList({ sort: 'name' })));
  for (const name of ['notes', 'private', 'users']) {
    assert.deepEqual(
      await suCopy.collection(name).getFullList({ sort: 'id' }),
      await su.collection(name).getFullList({ sort: 'id' }),
      name,
    );
  }
  // The same file, with the same content type.
  const original = await bytesOf(su, filed, filed.doc);
  const copied = await bytesOf(suCopy, filed, filed.doc);
  assert.equal(copied.status, 200);
  assert.deepEqual(copied, original);
  assert.equal(copied.body.toString(), 'bytes kept in the bucket');

  // The user's old token works on the copy: refresh, rules, and realtime auth.
  const annCopy = tenant(COPY);
  clients.push(annCopy);
  annCopy.authStore.save(oldToken, null);
  const refreshed = await annCopy.collection('users').authRefresh();
  assert.equal(refreshed.record.id, user.id);
  assert.equal((await annCopy.collection('private').getFullList()).length, 1);
  const copyEvents = [];
  await annCopy.collection('private').subscribe('*', (e) => copyEvents.push(`${e.action} ${e.record.title}`));
  const guestCopy = tenant(COPY);
  clients.push(guestCopy);
  const guestCopyEvents = [];
  await guestCopy.collection('private').subscribe('*', (e) => guestCopyEvents.push(`${e.action} ${e.record.title}`));
  await annCopy.collection('private').create({ title: 'after restore', owner: user.id });
  await waitFor(() => copyEvents.includes('create after restore'), 'the owner\'s event on the copy');
  // Same rule as the original: a guest never sees the private record.
  await new Promise((r) => setTimeout(r, 300));
  assert.deepEqual(guestCopyEvents, []);
  // And the password still signs in.
  const again = tenant(COPY);
  await again.collection('users').authWithPassword('ann@example.com', password);
  assert.equal(again.authStore.record.id, user.id);

  // The original's subscriber still gets the original's events, and none of the copy's.
  await suCopy.collection('notes').create({ title: 'only on the copy' });
  await ann.collection('notes').create({ title: 'on the original' });
  await waitFor(() => originalEvents.includes('create on the original'), 'the original subscriber\'s event');
  assert.ok(!originalEvents.includes('create only on the copy'), originalEvents.join(', '));
});
