// Collections through the SDK: every field type, rules, schema changes that keep data, truncate.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import {
  superuserClient, guestClient, createUser, uniqueName, dropCollections, expectError,
  DATE_RE, ID_RE,
} from './lib/setup.mjs';

let su;
const created = [];

before(async () => {
  su = await superuserClient();
});

after(async () => {
  // Referencing collections first.
  await dropCollections(su, ...created.reverse());
});

async function createCollection(def) {
  const c = await su.collections.create(def);
  created.push(c.name);
  return c;
}

function allFieldsDef(name, targetId) {
  return {
    name,
    type: 'base',
    listRule: '',
    viewRule: '',
    createRule: '',
    updateRule: '',
    deleteRule: null,
    fields: [
      { name: 'title', type: 'text', required: true, max: 20 },
      { name: 'body', type: 'editor' },
      { name: 'n', type: 'number', min: -5, max: 100 },
      { name: 'whole', type: 'number', onlyInt: true },
      { name: 'flag', type: 'bool' },
      { name: 'mail', type: 'email' },
      { name: 'site', type: 'url' },
      { name: 'when', type: 'date' },
      { name: 'status', type: 'select', values: ['draft', 'published', 'archived'], maxSelect: 1 },
      { name: 'tags', type: 'select', values: ['x', 'y', 'z'], maxSelect: 3 },
      { name: 'doc', type: 'file', maxSelect: 1, maxSize: 1024 },
      { name: 'docs', type: 'file', maxSelect: 4, maxSize: 1024 },
      { name: 'one', type: 'relation', collectionId: targetId, maxSelect: 1, cascadeDelete: false },
      { name: 'many', type: 'relation', collectionId: targetId, maxSelect: 5, cascadeDelete: true },
      { name: 'meta', type: 'json' },
      { name: 'loc', type: 'geoPoint' },
      { name: 'created', type: 'autodate', onCreate: true, onUpdate: false },
      { name: 'updated', type: 'autodate', onCreate: true, onUpdate: true },
    ],
  };
}

test('collection with every field type is created and returned with its definition', async () => {
  const target = await createCollection({ name: uniqueName('target'), type: 'base', fields: [{ name: 'label', type: 'text' }] });
  const name = uniqueName('every');
  const c = await createCollection(allFieldsDef(name, target.id));

  assert.match(c.id, /^pbc_\d+$/);
  assert.equal(c.name, name);
  assert.equal(c.type, 'base');
  assert.equal(c.system, false);
  assert.equal(c.listRule, '');
  assert.equal(c.deleteRule, null);
  assert.match(c.created, DATE_RE);
  assert.match(c.updated, DATE_RE);
  assert.ok(Array.isArray(c.indexes));

  const byName = Object.fromEntries(c.fields.map((f) => [f.name, f]));
  // The id field is added automatically, first, as a system text primary key.
  assert.equal(c.fields[0].name, 'id');
  assert.equal(byName.id.type, 'text');
  assert.equal(byName.id.primaryKey, true);
  assert.equal(byName.id.system, true);
  const expectedTypes = {
    title: 'text', body: 'editor', n: 'number', whole: 'number', flag: 'bool', mail: 'email',
    site: 'url', when: 'date', status: 'select', tags: 'select', doc: 'file', docs: 'file',
    one: 'relation', many: 'relation', meta: 'json', loc: 'geoPoint', created: 'autodate',
    updated: 'autodate',
  };
  for (const [field, type] of Object.entries(expectedTypes)) {
    assert.ok(byName[field], `field ${field} present`);
    assert.equal(byName[field].type, type, `type of ${field}`);
    assert.equal(typeof byName[field].id, 'string');
    assert.ok(byName[field].id.length > 0);
  }
  assert.equal(byName.title.required, true);
  assert.equal(byName.title.max, 20);
  assert.equal(byName.n.min, -5);
  assert.equal(byName.n.max, 100);
  assert.equal(byName.whole.onlyInt, true);
  assert.deepEqual(byName.status.values, ['draft', 'published', 'archived']);
  assert.equal(byName.status.maxSelect, 1);
  assert.equal(byName.tags.maxSelect, 3);
  assert.equal(byName.docs.maxSelect, 4);
  assert.equal(byName.one.collectionId, target.id);
  assert.equal(byName.many.cascadeDelete, true);
  assert.equal(byName.one.cascadeDelete, false);
  assert.equal(byName.updated.onUpdate, true);
  assert.equal(byName.created.onUpdate, false);

  // Reachable by name and by id, and through the list endpoint with a filter.
  const again = await su.collections.getOne(name);
  assert.equal(again.id, c.id);
  const byId = await su.collections.getOne(c.id);
  assert.equal(byId.name, name);
  const list = await su.collections.getList(1, 10, { filter: su.filter('name = {:n}', { n: name }) });
  assert.equal(list.totalItems, 1);
  assert.equal(list.items[0].id, c.id);
});

test('a new record gets the default value of every field type', async () => {
  const target = await createCollection({ name: uniqueName('target'), type: 'base', fields: [{ name: 'label', type: 'text' }] });
  const c = await createCollection(allFieldsDef(uniqueName('defaults'), target.id));
  const r = await su.collection(c.name).create({ title: 'only title' });
  assert.match(r.id, ID_RE);
  assert.match(r.created, DATE_RE);
  // Each autodate field takes its own clock reading (PocketBase reads the clock once a field),
  // so the two may be a millisecond or so apart, never out of order.
  const gap = Date.parse(r.updated.replace(' ', 'T')) - Date.parse(r.created.replace(' ', 'T'));
  assert.ok(gap >= 0 && gap < 1000, `created ${r.created}, updated ${r.updated}`);
  const { id, created: cr, updated: up, ...rest } = r;
  assert.deepEqual(rest, {
    collectionId: c.id,
    collectionName: c.name,
    title: 'only title',
    body: '',
    n: 0,
    whole: 0,
    flag: false,
    mail: '',
    site: '',
    when: '',
    status: '',
    tags: [],
    doc: '',
    docs: [],
    one: '',
    many: [],
    meta: null,
    loc: { lon: 0, lat: 0 },
  });
});

test('field values are normalised the PocketBase way', async () => {
  const target = await createCollection({ name: uniqueName('target'), type: 'base', fields: [{ name: 'label', type: 'text' }] });
  const c = await createCollection(allFieldsDef(uniqueName('norm'), target.id));
  const t1 = await su.collection(target.name).create({ label: 'a' });
  const t2 = await su.collection(target.name).create({ label: 'b' });
  const r = await su.collection(c.name).create({
    title: 12345,
    body: '<p>Hello <b>world</b></p>',
    n: '12.5',
    whole: 7,
    flag: 'true',
    mail: 'someone@example.com',
    site: 'https://example.com/a?b=c',
    when: '2024-01-02T03:04:05+02:00',
    status: 'published',
    tags: ['y', 'x', 'y'],
    one: t1.id,
    many: [t2.id, t1.id, t2.id],
    meta: { a: [1, 2, { b: null }], s: 'str' },
    loc: { lon: 23.32, lat: 42.69 },
  });
  assert.equal(r.title, '12345');
  assert.equal(r.body, '<p>Hello <b>world</b></p>');
  assert.equal(r.n, 12.5);
  assert.equal(r.whole, 7);
  assert.equal(r.flag, true);
  assert.equal(r.mail, 'someone@example.com');
  assert.equal(r.site, 'https://example.com/a?b=c');
  assert.equal(r.when, '2024-01-02 01:04:05.000Z');
  assert.equal(r.status, 'published');
  assert.deepEqual(r.tags, ['y', 'x']);
  assert.equal(r.one, t1.id);
  assert.deepEqual(r.many, [t2.id, t1.id]);
  assert.deepEqual(r.meta, { a: [1, 2, { b: null }], s: 'str' });
  assert.deepEqual(r.loc, { lon: 23.32, lat: 42.69 });

  // A date-only value and a JSON scalar.
  const r2 = await su.collection(c.name).update(r.id, { when: '2030-12-31', meta: 42, flag: false });
  assert.equal(r2.when, '2030-12-31 00:00:00.000Z');
  assert.equal(r2.meta, 42);
  assert.equal(r2.flag, false);

  // Clearing values.
  const r3 = await su.collection(c.name).update(r.id, { when: '', tags: [], one: '', many: [], meta: null, status: '' });
  assert.equal(r3.when, '');
  assert.deepEqual(r3.tags, []);
  assert.equal(r3.one, '');
  assert.deepEqual(r3.many, []);
  assert.equal(r3.meta, null);
  assert.equal(r3.status, '');

  // What we read back is what we wrote.
  const back = await su.collection(c.name).getOne(r.id);
  assert.deepEqual(back, r3);
});

test('collection update changes rules and name; delete removes it', async () => {
  const c = await createCollection({ name: uniqueName('ren'), type: 'base', fields: [{ name: 'title', type: 'text' }] });
  assert.equal(c.listRule, null);
  const newName = uniqueName('renamed');
  const u = await su.collections.update(c.id, { name: newName, listRule: 'title != ""', viewRule: '' });
  created.push(newName);
  assert.equal(u.id, c.id);
  assert.equal(u.name, newName);
  assert.equal(u.listRule, 'title != ""');
  assert.equal(u.viewRule, '');
  assert.equal(u.createRule, null);
  await expectError(su.collections.getOne(c.name), 404);
  const rec = await su.collection(newName).create({ title: 'kept' });
  assert.equal((await su.collection(c.id).getOne(rec.id)).title, 'kept');

  assert.equal(await su.collections.delete(newName), true);
  await expectError(su.collections.getOne(newName), 404);
  await expectError(su.collection(newName).getList(), 404);
});

test('collection validation errors', async () => {
  const name = uniqueName('valid');
  await createCollection({ name, type: 'base', fields: [{ name: 'title', type: 'text' }] });
  // Same name, different case.
  await expectError(su.collections.create({ name: name.toUpperCase(), type: 'base' }), 400, {
    name: 'validation_collection_name_exists',
  });
  // A rule that does not compile.
  await expectError(
    su.collections.create({ name: uniqueName('badrule'), type: 'base', listRule: 'nosuchfield = 1' }),
    400,
    { listRule: 'validation_invalid_rule' },
  );
  // A name with characters outside \w.
  const err = await expectError(su.collections.create({ name: 'has space', type: 'base' }), 400);
  assert.equal(err.response.data.name.code, 'validation_match_invalid');
  assert.equal(err.response.message, 'Failed to create collection.');
});

test('collections API is superuser only', async () => {
  const guest = guestClient();
  await expectError(guest.collections.getList(), 401);
  await expectError(guest.collections.create({ name: uniqueName('nope'), type: 'base' }), 401);
  const { pb: user } = await createUser();
  await expectError(user.collections.getList(), 403);
  await expectError(user.collections.getOne('users'), 403);
});

test('schema changes keep existing data: add, rename and remove a field', async () => {
  const c = await createCollection({
    name: uniqueName('schema'),
    type: 'base',
    listRule: '',
    viewRule: '',
    fields: [
      { name: 'title', type: 'text' },
      { name: 'n', type: 'number' },
    ],
  });
  const coll = su.collection(c.name);
  const a = await coll.create({ title: 'alpha', n: 1 });
  const b = await coll.create({ title: 'beta', n: 2 });

  // Add a field: the existing records get its zero value.
  const withExtra = await su.collections.update(c.id, {
    fields: [...c.fields, { name: 'extra', type: 'text' }],
  });
  assert.ok(withExtra.fields.some((f) => f.name === 'extra'));
  const a1 = await coll.getOne(a.id);
  assert.equal(a1.extra, '');
  assert.equal(a1.title, 'alpha');
  await coll.update(b.id, { extra: 'filled' });

  // Rename a field (same field id, new name): values follow it.
  const renamed = await su.collections.update(c.id, {
    fields: withExtra.fields.map((f) => (f.name === 'title' ? { ...f, name: 'headline' } : f)),
  });
  assert.ok(renamed.fields.some((f) => f.name === 'headline'));
  assert.ok(!renamed.fields.some((f) => f.name === 'title'));
  const b2 = await coll.getOne(b.id);
  assert.equal(b2.headline, 'beta');
  assert.equal(b2.extra, 'filled');
  assert.equal(b2.n, 2);
  assert.ok(!('title' in b2));
  const found = await coll.getFirstListItem('headline = "alpha"');
  assert.equal(found.id, a.id);

  // Remove a field: it disappears from the records, the rest stays.
  const removed = await su.collections.update(c.id, {
    fields: renamed.fields.filter((f) => f.name !== 'n'),
  });
  assert.ok(!removed.fields.some((f) => f.name === 'n'));
  const all = await coll.getFullList({ sort: 'headline' });
  assert.deepEqual(all.map((r) => [r.id, r.headline, r.extra, 'n' in r]), [
    [a.id, 'alpha', '', false],
    [b.id, 'beta', 'filled', false],
  ]);
  // Filtering by the removed field is now an error.
  await expectError(coll.getList(1, 10, { filter: 'n = 1' }), 400);
});

test('a unique index makes duplicate creates fail with validation_not_unique', async () => {
  const name = uniqueName('uniq');
  const c = await createCollection({
    name, type: 'base', fields: [{ name: 'slug', type: 'text' }, { name: 'other', type: 'text' }],
  });
  const coll = su.collection(name);
  await coll.create({ slug: 'one', other: 'x' });
  await coll.create({ slug: 'two', other: 'x' });

  const withIdx = await su.collections.update(c.id, {
    indexes: [`CREATE UNIQUE INDEX idx_${name}_slug ON ${name} (slug)`],
  });
  assert.equal(withIdx.indexes.length, 1);
  assert.match(withIdx.indexes[0], /CREATE UNIQUE INDEX/);

  const err = await expectError(coll.create({ slug: 'one' }), 400, { slug: 'validation_not_unique' });
  assert.equal(err.response.message, 'Failed to create record.');
  const two = await coll.getFirstListItem('slug = "two"');
  await expectError(coll.update(two.id, { slug: 'one' }), 400, { slug: 'validation_not_unique' });
  assert.equal((await coll.getList(1, 10)).totalItems, 2);

  // An index that existing data violates is refused and nothing changes.
  await expectError(
    su.collections.update(c.id, {
      indexes: [...withIdx.indexes, `CREATE UNIQUE INDEX idx_${name}_other ON ${name} (other)`],
    }),
    400,
  );
  assert.equal((await su.collections.getOne(c.id)).indexes.length, 1);
  assert.equal((await coll.getList(1, 10)).totalItems, 2);
});

test('truncate deletes every record and keeps the collection', async () => {
  const c = await createCollection({ name: uniqueName('trunc'), type: 'base', fields: [{ name: 'title', type: 'text' }] });
  const coll = su.collection(c.name);
  for (let i = 0; i < 5; i++) await coll.create({ title: `t${i}` });
  assert.equal((await coll.getList(1, 1)).totalItems, 5);
  assert.equal(await su.collections.truncate(c.name), true);
  const after = await coll.getList(1, 10);
  assert.equal(after.totalItems, 0);
  assert.deepEqual(after.items, []);
  assert.equal((await su.collections.getOne(c.id)).name, c.name);
  await coll.create({ title: 'again' });
  assert.equal((await coll.getList(1, 10)).totalItems, 1);
});

test('a collection referenced by a relation cannot be deleted', async () => {
  const target = await createCollection({ name: uniqueName('reftarget'), type: 'base', fields: [{ name: 'label', type: 'text' }] });
  const src = await createCollection({
    name: uniqueName('refsrc'),
    type: 'base',
    fields: [{ name: 'link', type: 'relation', collectionId: target.id, maxSelect: 1 }],
  });
  await expectError(su.collections.delete(target.name), 400);
  assert.equal((await su.collections.getOne(target.id)).name, target.name);
  await su.collections.delete(src.id);
  assert.equal(await su.collections.delete(target.id), true);
});
