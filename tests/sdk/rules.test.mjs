// API rules as seen by a guest, two users and a superuser; email visibility of auth records.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import {
  superuserClient, guestClient, createUser, uniqueName, rand, dropCollections, expectError,
} from './lib/setup.mjs';

let su;
let guest;
let A; // { pb, record, email, password }
let B;
const C = {};

const ONLY_SUPERUSERS = 'Only superusers can perform this action.';

before(async () => {
  su = await superuserClient();
  guest = guestClient();
  [A, B] = await Promise.all([createUser(), createUser()]);

  C.locked = await su.collections.create({
    name: uniqueName('locked'), type: 'base', fields: [{ name: 'title', type: 'text' }],
  });
  C.open = await su.collections.create({
    name: uniqueName('open'), type: 'base',
    listRule: '', viewRule: '', createRule: '', updateRule: '', deleteRule: '',
    fields: [{ name: 'title', type: 'text' }],
  });
  const own = 'owner = @request.auth.id';
  C.owned = await su.collections.create({
    name: uniqueName('owned'),
    type: 'base',
    listRule: own,
    viewRule: own,
    createRule: '@request.auth.id != "" && @request.body.owner = @request.auth.id && @request.body.title != "forbidden"',
    updateRule: `${own} && (@request.body.owner:isset = false || @request.body.owner = @request.auth.id)`,
    deleteRule: own,
    fields: [
      { name: 'title', type: 'text' },
      { name: 'owner', type: 'relation', collectionId: '_pb_users_auth_', maxSelect: 1 },
    ],
  });
  C.teams = await su.collections.create({
    name: uniqueName('teams'), type: 'base', listRule: '', viewRule: '',
    fields: [
      { name: 'name', type: 'text' },
      { name: 'members', type: 'relation', collectionId: '_pb_users_auth_', maxSelect: 10 },
    ],
  });
  C.docs = await su.collections.create({
    name: uniqueName('docs'), type: 'base',
    listRule: 'team.members.id ?= @request.auth.id',
    viewRule: 'team.members.id ?= @request.auth.id',
    fields: [
      { name: 'title', type: 'text' },
      { name: 'team', type: 'relation', collectionId: C.teams.id, maxSelect: 1 },
    ],
  });
  C.people = await su.collections.create({
    name: uniqueName('people'), type: 'auth', listRule: '', viewRule: '', createRule: '',
    fields: [{ name: 'nick', type: 'text' }],
  });
});

after(async () => {
  await dropCollections(su, C.docs?.name, C.teams?.name, C.owned?.name, C.open?.name, C.locked?.name, C.people?.name);
  for (const u of [A, B]) if (u) await su.collection('users').delete(u.record.id).catch(() => {});
});

test('a null rule is superuser-only: 403 for guests and users', async () => {
  const rec = await su.collection(C.locked.name).create({ title: 'locked' });
  for (const pb of [guest, A.pb]) {
    const c = pb.collection(C.locked.name);
    for (const call of [
      () => c.getList(), () => c.getOne(rec.id), () => c.create({ title: 'x' }),
      () => c.update(rec.id, { title: 'x' }), () => c.delete(rec.id),
    ]) {
      const err = await expectError(call(), 403);
      assert.equal(err.response.message, ONLY_SUPERUSERS);
      assert.deepEqual(err.response.data, {});
    }
  }
  const s = su.collection(C.locked.name);
  assert.equal((await s.getList()).totalItems, 1);
  assert.equal((await s.update(rec.id, { title: 'y' })).title, 'y');
  assert.equal(await s.delete(rec.id), true);
});

test('an empty rule lets everyone through', async () => {
  const c = guest.collection(C.open.name);
  const r = await c.create({ title: 'by guest' });
  assert.equal((await c.getOne(r.id)).title, 'by guest');
  assert.equal((await A.pb.collection(C.open.name).update(r.id, { title: 'by A' })).title, 'by A');
  assert.ok((await B.pb.collection(C.open.name).getFullList()).some((x) => x.id === r.id));
  assert.equal(await c.delete(r.id), true);
});

test('owner rules: list filters, view/update/delete 404, create 400', async () => {
  const a = A.pb.collection(C.owned.name);
  const b = B.pb.collection(C.owned.name);
  const g = guest.collection(C.owned.name);
  const mine = await a.create({ title: 'A1', owner: A.record.id });
  await a.create({ title: 'A2', owner: A.record.id });
  const theirs = await b.create({ title: 'B1', owner: B.record.id });

  // Failing create rule: 400 with an empty data object.
  for (const call of [
    () => g.create({ title: 'guest', owner: A.record.id }),
    () => b.create({ title: 'spoof', owner: A.record.id }),
    () => a.create({ title: 'forbidden', owner: A.record.id }),
  ]) {
    const err = await expectError(call(), 400);
    assert.equal(err.response.message, 'Failed to create record.');
    assert.deepEqual(err.response.data, {});
  }

  // List: each caller sees only rows the rule lets through, never a 403.
  assert.deepEqual((await a.getFullList({ sort: 'title' })).map((r) => r.title), ['A1', 'A2']);
  assert.deepEqual((await b.getFullList()).map((r) => r.title), ['B1']);
  const gl = await g.getList(1, 10);
  assert.deepEqual(gl.items, []);
  assert.equal(gl.totalItems, 0);
  // A client filter cannot widen the rule.
  assert.deepEqual((await b.getFullList({ filter: 'id != "" || title != "zzz"' })).map((r) => r.title), ['B1']);
  assert.deepEqual((await b.getFullList({ filter: `owner = "${A.record.id}"` })), []);

  // View / update / delete of someone else's row: 404.
  for (const call of [
    () => b.getOne(mine.id), () => b.update(mine.id, { title: 'hacked' }), () => b.delete(mine.id),
    () => g.getOne(mine.id), () => g.delete(mine.id),
  ]) {
    const err = await expectError(call(), 404);
    assert.equal(err.response.message, "The requested resource wasn't found.");
  }
  // @request.body in the update rule: handing the record to B is refused (as a 404).
  await expectError(a.update(mine.id, { owner: B.record.id }), 404);
  assert.equal((await a.update(mine.id, { title: 'A1 edited' })).title, 'A1 edited');

  // Nothing changed by the refused requests.
  const stored = await su.collection(C.owned.name).getOne(mine.id);
  assert.equal(stored.title, 'A1 edited');
  assert.equal(stored.owner, A.record.id);
  // Superuser sees everything.
  const all = await su.collection(C.owned.name).getFullList({ sort: 'title' });
  assert.deepEqual(all.map((r) => r.title), ['A1 edited', 'A2', 'B1']);

  assert.equal(await b.delete(theirs.id), true);
});

test('rules can follow relations (team.members.id ?= @request.auth.id)', async () => {
  const team = await su.collection(C.teams.name).create({ name: 'team', members: [A.record.id] });
  const other = await su.collection(C.teams.name).create({ name: 'other', members: [B.record.id] });
  const d1 = await su.collection(C.docs.name).create({ title: 'team doc', team: team.id });
  await su.collection(C.docs.name).create({ title: 'other doc', team: other.id });

  assert.deepEqual((await A.pb.collection(C.docs.name).getFullList()).map((r) => r.title), ['team doc']);
  assert.deepEqual((await B.pb.collection(C.docs.name).getFullList()).map((r) => r.title), ['other doc']);
  assert.deepEqual(await guest.collection(C.docs.name).getFullList(), []);
  await expectError(B.pb.collection(C.docs.name).getOne(d1.id), 404);

  // Adding B to the team opens the doc to B.
  await su.collection(C.teams.name).update(team.id, { 'members+': B.record.id });
  assert.equal((await B.pb.collection(C.docs.name).getOne(d1.id)).title, 'team doc');
});

test('non-superusers cannot filter or sort by @collection or @request', async () => {
  const c = A.pb.collection(C.open.name);
  const col = await expectError(c.getList(1, 10, { filter: `@collection.${C.open.name}.title = "x"` }), 403);
  assert.equal(col.response.message, 'Only superusers can filter by @collection.');
  const req = await expectError(c.getList(1, 10, { filter: '@request.auth.id != ""' }), 403);
  assert.equal(req.response.message, 'Only superusers can filter by @request.');
  await expectError(guest.collection(C.open.name).getList(1, 10, { sort: '@request.auth.id' }), 403);
  // Superusers may.
  const ok = await su.collection(C.open.name).getList(1, 10, { filter: '@request.auth.id != ""' });
  assert.equal(typeof ok.totalItems, 'number');
});

test('users: email is hidden from others unless emailVisibility', async () => {
  // Self sees its own email even with emailVisibility off.
  const self = await A.pb.collection('users').getOne(A.record.id);
  assert.equal(self.email, A.email);
  assert.equal(self.emailVisibility, false);
  assert.ok(!('password' in self) && !('tokenKey' in self));
  // The default users rules only show yourself.
  assert.deepEqual((await A.pb.collection('users').getFullList()).map((u) => u.id), [A.record.id]);
  await expectError(A.pb.collection('users').getOne(B.record.id), 404);
  // Superuser sees the email.
  assert.equal((await su.collection('users').getOne(B.record.id)).email, B.email);

  // An auth collection everyone may read: the email shows only with emailVisibility.
  const hidden = await guest.collection(C.people.name).create({
    email: `h_${rand()}@example.com`, password: 'secret-pass-1', passwordConfirm: 'secret-pass-1', nick: 'hidden',
  });
  const shown = await guest.collection(C.people.name).create({
    email: `s_${rand()}@example.com`, password: 'secret-pass-1', passwordConfirm: 'secret-pass-1', nick: 'shown', emailVisibility: true,
  });
  // The create response itself is already subject to visibility.
  assert.ok(!('email' in hidden), JSON.stringify(hidden));
  const list = await B.pb.collection(C.people.name).getFullList({ sort: 'nick' });
  const byNick = Object.fromEntries(list.map((r) => [r.nick, r]));
  assert.ok(!('email' in byNick.hidden), JSON.stringify(byNick.hidden));
  assert.equal(byNick.shown.email, shown.email);
  assert.ok(!('password' in byNick.shown) && !('tokenKey' in byNick.shown));
  assert.equal((await guest.collection(C.people.name).getOne(hidden.id)).email, undefined);
  assert.match((await su.collection(C.people.name).getOne(hidden.id)).email, /^h_/);
  // A hidden email cannot be probed with a filter by others; a visible one can be filtered on.
  const people = (pb, email) => pb.collection(C.people.name).getList(1, 10, { filter: pb.filter('email = {:e}', { e: email }) });
  const hiddenEmail = (await su.collection(C.people.name).getOne(hidden.id)).email;
  assert.equal((await people(guest, hiddenEmail)).totalItems, 0);
  assert.equal((await people(B.pb, hiddenEmail)).totalItems, 0);
  assert.equal((await people(su, hiddenEmail)).totalItems, 1);
  assert.equal((await people(guest, shown.email)).totalItems, 1);
});

test('auth records: verified cannot be set by a non-superuser, passwords are checked', async () => {
  await expectError(
    guest.collection('users').create({ email: `v_${rand()}@example.com`, password: 'secret-pass-1', passwordConfirm: 'secret-pass-1', verified: true }),
    400,
    { verified: 'validation_values_mismatch' },
  );
  await expectError(
    guest.collection('users').create({ email: `v_${rand()}@example.com`, password: 'secret-pass-1', passwordConfirm: 'other-pass-12' }),
    400,
    { passwordConfirm: 'validation_values_mismatch' },
  );
  await expectError(
    guest.collection('users').create({ email: 'not-an-email', password: 'secret-pass-1', passwordConfirm: 'secret-pass-1' }),
    400,
    { email: 'validation_is_email' },
  );
  await expectError(
    guest.collection('users').create({ email: A.email, password: 'secret-pass-1', passwordConfirm: 'secret-pass-1' }),
    400,
    { email: 'validation_not_unique' },
  );
});
