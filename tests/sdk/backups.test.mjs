// The SDK's pb.backups.* (getFullList, create, upload, getDownloadURL, delete, restore): the
// same calls, statuses, error codes and shapes on PocketBase and on a Warren tenant.
//
// A restore replaces the whole target, so it would wipe the collections of test files running
// beside this one: the restore test runs only when this file runs alone
// (`SDK_TEST_FILES=backups.test.mjs tests/suites/sdk`); the e2e suite restores on every run.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  superuserClient, guestClient, createUser, expectError, dropCollections, uniqueName, rand,
  DATE_RE,
} from './lib/setup.mjs';

const ALONE = (process.env.SDK_TEST_FILES || '').trim() === 'backups.test.mjs';
const KEY_RE = /^[a-z0-9_-]+\.zip$/;

/** A name no other run of this file uses. */
const backupName = () => `sdk_${rand(10)}.zip`;

async function download(su, key) {
  const token = await su.files.getToken();
  const res = await fetch(su.backups.getDownloadURL(token, key));
  return { status: res.status, type: res.headers.get('content-type'), bytes: new Uint8Array(await res.arrayBuffer()) };
}

const zipFile = (bytes, name) => new File([bytes], name, { type: 'application/zip' });

test('backups are listed with key, size and modified, and made with a given or a generated name', async () => {
  const su = await superuserClient();
  const name = backupName();
  const before = (await su.backups.getFullList()).map((b) => b.key);
  assert.equal(await su.backups.create(name), true);
  const list = await su.backups.getFullList();
  const mine = list.find((b) => b.key === name);
  assert.ok(mine, JSON.stringify(list));
  assert.deepEqual(Object.keys(mine).sort(), ['key', 'modified', 'size']);
  assert.ok(mine.size > 0);
  assert.match(mine.modified, DATE_RE);
  for (const b of list) assert.match(b.key, KEY_RE);

  assert.equal(await su.backups.create(''), true);
  const generated = (await su.backups.getFullList())
    .map((b) => b.key)
    .filter((k) => k !== name && !before.includes(k));
  assert.equal(generated.length, 1, JSON.stringify(generated));
  assert.match(generated[0], /^pb_backup_[a-z0-9_]*_\d{14}\.zip$/);

  await expectError(su.backups.create('!test.zip'), 400, { name: 'validation_match_invalid' });
  await expectError(su.backups.create('no-extension'), 400, { name: 'validation_match_invalid' });
  await expectError(su.backups.create(`${'a'.repeat(150)}.zip`), 400, {
    name: 'validation_length_out_of_range',
  });
  await expectError(su.backups.create(name), 400, { name: 'validation_backup_name_exists' });

  const got = await download(su, name);
  assert.equal(got.status, 200);
  assert.equal(got.type, 'application/zip');
  assert.deepEqual([...got.bytes.slice(0, 2)], [0x50, 0x4b], 'a zip');

  assert.equal(await su.backups.delete(name), true);
  assert.equal(await su.backups.delete(generated[0]), true);
  const after = (await su.backups.getFullList()).map((b) => b.key);
  assert.ok(!after.includes(name) && !after.includes(generated[0]));
});

test('guests, users and non-superuser file tokens are refused on every route', async () => {
  const su = await superuserClient();
  const name = backupName();
  await su.backups.create(name);
  const guest = guestClient();
  const { pb: user } = await createUser();
  const file = zipFile(new Uint8Array([0x50, 0x4b, 0x05, 0x06, ...new Array(18).fill(0)]), backupName());
  for (const [who, pb, status] of [['guest', guest, 401], ['user', user, 403]]) {
    await expectError(pb.backups.getFullList(), status, {});
    await expectError(pb.backups.create(backupName()), status, {});
    await expectError(pb.backups.upload({ file }), status, {});
    await expectError(pb.backups.delete(name), status, {});
    await expectError(pb.backups.restore(name), status, {});
    assert.ok(who);
  }
  const userToken = await user.files.getToken();
  for (const token of ['', 'nonsense', su.authStore.token, userToken]) {
    const res = await fetch(su.backups.getDownloadURL(token, name));
    assert.equal(res.status, 403, `token ${token.slice(0, 12)}`);
    const body = await res.json();
    assert.deepEqual(body.data, {});
  }
  assert.ok((await su.backups.getFullList()).some((b) => b.key === name));
  await su.backups.delete(name);
});

test('missing backups and bad uploads are refused alike', async () => {
  const su = await superuserClient();
  const missing = backupName();
  assert.equal((await download(su, missing)).status, 404);
  await expectError(su.backups.delete(missing), 400, {});
  await expectError(su.backups.restore(missing), 400, {});
  await expectError(su.backups.upload({}), 400, { file: 'validation_required' });
  const text = new File([new TextEncoder().encode('not a zip')], backupName(), { type: 'application/zip' });
  await expectError(su.backups.upload({ file: text }), 400, { file: 'validation_invalid_mime_type' });

  // A downloaded backup uploads back under a new name; the same name twice is refused.
  const name = backupName();
  await su.backups.create(name);
  const { bytes } = await download(su, name);
  const again = backupName();
  assert.equal(await su.backups.upload({ file: zipFile(bytes, again) }), true);
  await expectError(su.backups.upload({ file: zipFile(bytes, again) }), 400, {
    file: 'validation_backup_name_exists',
  });
  const listed = await su.backups.getFullList();
  const up = listed.find((b) => b.key === again);
  assert.equal(up.size, bytes.length);
  await su.backups.delete(name);
  await su.backups.delete(again);
});

test('a restore brings back the data of the backup', { skip: !ALONE && 'restores only when this file runs alone' }, async () => {
  const su = await superuserClient();
  const coll = uniqueName('bk');
  await su.collections.create({ name: coll, type: 'base', fields: [{ name: 'text', type: 'text' }] });
  await su.collection(coll).create({ text: 'before' });
  const name = backupName();
  await su.backups.create(name);
  await su.collection(coll).create({ text: 'after' });
  assert.equal(await su.backups.restore(name), true);
  // Both servers answer first and then replace their data (PocketBase restarts itself; Warren
  // drains the tenant): poll until the restored state answers.
  const deadline = Date.now() + 30000;
  let texts;
  for (;;) {
    try {
      const items = await su.collection(coll).getFullList({ sort: 'text' });
      texts = items.map((r) => r.text);
      if (texts.length === 1) break;
    } catch {
      // Unavailable while the data is swapped.
    }
    if (Date.now() > deadline) assert.fail(`not restored after 30 s: ${JSON.stringify(texts)}`);
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
  assert.deepEqual(texts, ['before']);
  assert.ok((await su.backups.getFullList()).some((b) => b.key === name));
  await su.backups.delete(name);
  await dropCollections(su, coll);
});
