// Record CRUD through the SDK: listing and paging, single-record calls, modifiers, validation.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import {
  superuserClient, guestClient, uniqueName, rand, dropCollections, expectError, ClientResponseError,
  DATE_RE, ID_RE,
} from './lib/setup.mjs';

let su;
let guest;
let items; // collection with 7 records, n = 1..7
let things; // collection for writes and validation
let target; // relation target
const names = [];

before(async () => {
  su = await superuserClient();
  guest = guestClient();
  const open = { listRule: '', viewRule: '', createRule: '', updateRule: '', deleteRule: '' };
  items = await su.collections.create({
    name: uniqueName('items'),
    type: 'base',
    ...open,
    fields: [
      { name: 'title', type: 'text' },
      { name: 'n', type: 'number' },
      { name: 'group', type: 'text' },
    ],
  });
  names.push(items.name);
  for (let i = 1; i <= 7; i++) {
    await su.collection(items.name).create({ title: `item ${i}`, n: i, group: i % 2 ? 'odd' : 'even' });
  }
  target = await su.collections.create({
    name: uniqueName('reltarget'), type: 'base', ...open, fields: [{ name: 'label', type: 'text' }],
  });
  names.push(target.name);
  things = await su.collections.create({
    name: uniqueName('things'),
    type: 'base',
    ...open,
    fields: [
      { name: 'title', type: 'text', required: true, max: 10 },
      { name: 'count', type: 'number', min: 0, max: 1000 },
      { name: 'whole', type: 'number', onlyInt: true },
      { name: 'mail', type: 'email' },
      { name: 'site', type: 'url' },
      { name: 'status', type: 'select', values: ['a', 'b', 'c'], maxSelect: 1 },
      { name: 'tags', type: 'select', values: ['x', 'y', 'z', 'w'], maxSelect: 4 },
      { name: 'refs', type: 'relation', collectionId: target.id, maxSelect: 5 },
      { name: 'loc', type: 'geoPoint' },
      { name: 'meta', type: 'json', maxSize: 100 },
      { name: 'created', type: 'autodate', onCreate: true },
      { name: 'updated', type: 'autodate', onCreate: true, onUpdate: true },
    ],
  });
  names.push(things.name);
});

after(async () => {
  await dropCollections(su, ...names.reverse());
});

test('getList pages, sorts and counts', async () => {
  const coll = guest.collection(items.name);
  const p1 = await coll.getList(1, 3, { sort: 'n' });
  assert.deepEqual(Object.keys(p1), ['items', 'page', 'perPage', 'totalItems', 'totalPages']);
  assert.equal(p1.page, 1);
  assert.equal(p1.perPage, 3);
  assert.equal(p1.totalItems, 7);
  assert.equal(p1.totalPages, 3);
  assert.deepEqual(p1.items.map((r) => r.n), [1, 2, 3]);
  for (const r of p1.items) {
    assert.match(r.id, ID_RE);
    assert.equal(r.collectionId, items.id);
    assert.equal(r.collectionName, items.name);
  }

  const p3 = await coll.getList(3, 3, { sort: 'n' });
  assert.deepEqual(p3.items.map((r) => r.n), [7]);
  assert.equal(p3.totalItems, 7);

  const beyond = await coll.getList(4, 3, { sort: 'n' });
  assert.deepEqual(beyond.items, []);
  assert.equal(beyond.page, 4);
  assert.equal(beyond.totalItems, 7);
  assert.equal(beyond.totalPages, 3);

  const desc = await coll.getList(1, 2, { sort: '-n' });
  assert.deepEqual(desc.items.map((r) => r.n), [7, 6]);

  const multi = await coll.getList(1, 10, { sort: 'group,-n' });
  assert.deepEqual(multi.items.map((r) => r.n), [6, 4, 2, 7, 5, 3, 1]);

  const filtered = await coll.getList(1, 2, { filter: 'n > 4', sort: 'n' });
  assert.equal(filtered.totalItems, 3);
  assert.equal(filtered.totalPages, 2);
  assert.deepEqual(filtered.items.map((r) => r.n), [5, 6]);

  const skip = await coll.getList(1, 2, { sort: 'n', skipTotal: true });
  assert.equal(skip.totalItems, -1);
  assert.equal(skip.totalPages, -1);
  assert.deepEqual(skip.items.map((r) => r.n), [1, 2]);

  // Defaults: page 1, perPage 30.
  const dflt = await coll.getList();
  assert.equal(dflt.page, 1);
  assert.equal(dflt.perPage, 30);
  assert.equal(dflt.items.length, 7);

  const empty = await coll.getList(1, 5, { filter: 'n > 100' });
  assert.deepEqual(empty, { items: [], page: 1, perPage: 5, totalItems: 0, totalPages: 0 });
});

test('getFullList and getFirstListItem', async () => {
  const coll = guest.collection(items.name);
  const all = await coll.getFullList({ sort: '-n' });
  assert.deepEqual(all.map((r) => r.n), [7, 6, 5, 4, 3, 2, 1]);
  const batched = await coll.getFullList({ batch: 2, sort: 'n', filter: 'group = "odd"' });
  assert.deepEqual(batched.map((r) => r.n), [1, 3, 5, 7]);

  const five = await coll.getFirstListItem('n = 5');
  assert.equal(five.title, 'item 5');
  const firstEven = await coll.getFirstListItem('group = "even"', { sort: '-n' });
  assert.equal(firstEven.n, 6);

  let err;
  try {
    await coll.getFirstListItem('n = 999');
  } catch (e) {
    err = e;
  }
  assert.ok(err instanceof ClientResponseError);
  assert.equal(err.status, 404);
});

test('getOne returns the record and 404 for an unknown id or collection', async () => {
  const five = await guest.collection(items.name).getFirstListItem('n = 5');
  const one = await guest.collection(items.name).getOne(five.id);
  assert.deepEqual(one, five);
  // The collection can be addressed by id too.
  assert.deepEqual(await guest.collection(items.id).getOne(five.id), five);

  const err = await expectError(guest.collection(items.name).getOne('doesnotexist123'), 404);
  assert.equal(err.response.message, "The requested resource wasn't found.");
  assert.deepEqual(err.response.data, {});
  await expectError(guest.collection(uniqueName('missing')).getOne(five.id), 404);
  await expectError(guest.collection(uniqueName('missing')).getList(), 404);
  await expectError(guest.collection(uniqueName('missing')).create({ title: 'x' }), 404);
});

test('create, update and delete round trip', async () => {
  const coll = guest.collection(things.name);
  const r = await coll.create({ title: 'first', count: 3, status: 'a', tags: ['x'] });
  assert.match(r.id, ID_RE);
  assert.match(r.created, DATE_RE);
  assert.equal(r.title, 'first');
  assert.equal(r.count, 3);

  const u = await coll.update(r.id, { title: 'second' });
  assert.equal(u.id, r.id);
  assert.equal(u.title, 'second');
  assert.equal(u.count, 3, 'fields not sent keep their value');
  assert.deepEqual(u.tags, ['x']);
  assert.equal(u.created, r.created);
  assert.ok(u.updated >= r.updated);

  assert.deepEqual(await coll.getOne(r.id), u);
  assert.equal(await coll.delete(r.id), true);
  await expectError(coll.getOne(r.id), 404);
  await expectError(coll.delete(r.id), 404);
  await expectError(coll.update(r.id, { title: 'x' }), 404);
});

test('create with a client-chosen id; the id cannot change afterwards', async () => {
  const coll = guest.collection(things.name);
  const id = rand(15);
  const r = await coll.create({ id, title: 'custom' });
  assert.equal(r.id, id);
  await expectError(coll.create({ id, title: 'dup' }), 400, { id: 'validation_not_unique' });
  await expectError(coll.create({ id: 'short', title: 'bad' }), 400, { id: 'validation_min_text_constraint' });
  await expectError(coll.update(id, { id: 'zzzzzzzzzzzzzzz' }), 400, { id: 'validation_pk_change' });
  await coll.delete(id);
});

test('number modifiers add and subtract', async () => {
  const coll = guest.collection(things.name);
  const r = await coll.create({ title: 'mods', count: 5 });
  const a = await coll.update(r.id, { 'count+': 2 });
  assert.equal(a.count, 7);
  const b = await coll.update(r.id, { 'count-': 3 });
  assert.equal(b.count, 4);
  const c = await coll.update(r.id, { 'count+': 1.5 });
  assert.equal(c.count, 5.5);
  // Modifiers go through validation: 5.5 - 10 < min 0.
  await expectError(coll.update(r.id, { 'count-': 10 }), 400, { count: 'validation_min_number_constraint' });
  assert.equal((await coll.getOne(r.id)).count, 5.5);
});

test('multi-value modifiers append, prepend and remove', async () => {
  const coll = guest.collection(things.name);
  const t1 = await guest.collection(target.name).create({ label: 't1' });
  const t2 = await guest.collection(target.name).create({ label: 't2' });
  const t3 = await guest.collection(target.name).create({ label: 't3' });
  const r = await coll.create({ title: 'multi', tags: ['y'], refs: [t1.id] });

  assert.deepEqual((await coll.update(r.id, { 'tags+': 'x' })).tags, ['y', 'x']);
  assert.deepEqual((await coll.update(r.id, { 'tags+': ['z', 'x'] })).tags, ['y', 'x', 'z']);
  assert.deepEqual((await coll.update(r.id, { 'tags-': 'y' })).tags, ['x', 'z']);
  assert.deepEqual((await coll.update(r.id, { '+tags': 'w' })).tags, ['w', 'x', 'z']);
  assert.deepEqual((await coll.update(r.id, { 'tags-': ['w', 'z', 'nope'] })).tags, ['x']);

  assert.deepEqual((await coll.update(r.id, { 'refs+': [t2.id, t3.id] })).refs, [t1.id, t2.id, t3.id]);
  assert.deepEqual((await coll.update(r.id, { 'refs-': t2.id })).refs, [t1.id, t3.id]);
  assert.deepEqual((await coll.update(r.id, { '+refs': t2.id })).refs, [t2.id, t1.id, t3.id]);

  // Appending an unknown select value is a validation error and changes nothing.
  await expectError(coll.update(r.id, { 'tags+': 'nope' }), 400, { tags: 'validation_invalid_value' });
  assert.deepEqual((await coll.getOne(r.id)).tags, ['x']);
});

test('validation errors carry field codes and nothing is written', async () => {
  const coll = guest.collection(things.name);
  const before = (await coll.getList(1, 1)).totalItems;

  const missing = await expectError(coll.create({}), 400, { title: 'validation_required' });
  assert.equal(missing.response.message, 'Failed to create record.');
  assert.deepEqual(missing.response.data.title, { code: 'validation_required', message: 'Cannot be blank.' });

  const long = await expectError(coll.create({ title: 'x'.repeat(11) }), 400, {
    title: 'validation_max_text_constraint',
  });
  assert.deepEqual(long.response.data.title.params, { max: 10 });

  await expectError(coll.create({ title: 'ok', mail: 'not-an-email' }), 400, { mail: 'validation_is_email' });
  await expectError(coll.create({ title: 'ok', site: 'not a url' }), 400, { site: 'validation_invalid_url' });
  await expectError(coll.create({ title: 'ok', status: 'nope' }), 400, { status: 'validation_invalid_value' });
  await expectError(coll.create({ title: 'ok', tags: ['x', 'nope'] }), 400, { tags: 'validation_invalid_value' });
  await expectError(coll.create({ title: 'ok', count: 1001 }), 400, { count: 'validation_max_number_constraint' });
  await expectError(coll.create({ title: 'ok', whole: 1.5 }), 400, { whole: 'validation_only_int_constraint' });
  await expectError(coll.create({ title: 'ok', refs: ['missingid123456'] }), 400, {
    refs: 'validation_missing_rel_records',
  });
  await expectError(coll.create({ title: 'ok', loc: { lon: 10, lat: 100 } }), 400, {
    loc: 'validation_invalid_latitude',
  });
  await expectError(coll.create({ title: 'ok', meta: { big: 'y'.repeat(200) } }), 400, {
    meta: 'validation_json_size_limit',
  });

  // Several failing fields are reported together.
  await expectError(coll.create({ title: '', mail: 'bad', status: 'nope' }), 400, {
    title: 'validation_required',
    mail: 'validation_is_email',
    status: 'validation_invalid_value',
  });

  assert.equal((await coll.getList(1, 1)).totalItems, before);

  // Update: same codes, its own message, and the stored record is unchanged.
  const r = await coll.create({ title: 'valid' });
  const upd = await expectError(coll.update(r.id, { title: '', mail: 'bad' }), 400, {
    title: 'validation_required',
    mail: 'validation_is_email',
  });
  assert.equal(upd.response.message, 'Failed to update record.');
  assert.equal((await coll.getOne(r.id)).title, 'valid');
});

test('autodate fields ignore client values', async () => {
  const coll = guest.collection(things.name);
  const r = await coll.create({ title: 'auto', created: '2001-01-01 00:00:00.000Z', updated: '2001-01-01 00:00:00.000Z' });
  assert.notEqual(r.created, '2001-01-01 00:00:00.000Z');
  assert.notEqual(r.updated, '2001-01-01 00:00:00.000Z');
  assert.match(r.created, DATE_RE);
  const u = await coll.update(r.id, { title: 'auto2', created: '2001-01-01 00:00:00.000Z' });
  assert.equal(u.created, r.created);
});
