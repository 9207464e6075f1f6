// Filters (with pb.filter parameter binding), expand and the fields projection.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import {
  superuserClient, guestClient, uniqueName, dropCollections, expectError,
} from './lib/setup.mjs';

let su;
let guest;
const C = {}; // collections by role
const R = {}; // records by label

const open = { listRule: '', viewRule: '', createRule: '', updateRule: '', deleteRule: '' };

// Titles that are awkward inside a filter literal.
const AWKWARD = [
  `It's "quoted"`,
  'back\\slash',
  '100% _under_',
  '{:notaparam}',
  'ünïcödé ✓ 漢字',
  "x'; DROP TABLE users; --",
  'line\nbreak',
  '  spaced  ',
];

before(async () => {
  su = await superuserClient();
  guest = guestClient();
  C.orgs = await su.collections.create({
    name: uniqueName('orgs'), type: 'base', ...open, fields: [{ name: 'name', type: 'text' }],
  });
  C.authors = await su.collections.create({
    name: uniqueName('authors'),
    type: 'base',
    ...open,
    fields: [
      { name: 'name', type: 'text' },
      { name: 'org', type: 'relation', collectionId: C.orgs.id, maxSelect: 1 },
    ],
  });
  C.tags = await su.collections.create({
    name: uniqueName('tags'), type: 'base', ...open, fields: [{ name: 'name', type: 'text' }],
  });
  C.secret = await su.collections.create({
    // viewRule null: only superusers may see these, also through expand.
    name: uniqueName('secret'), type: 'base', listRule: null, viewRule: null,
    fields: [{ name: 'name', type: 'text' }],
  });
  C.posts = await su.collections.create({
    name: uniqueName('posts'),
    type: 'base',
    ...open,
    fields: [
      { name: 'title', type: 'text' },
      { name: 'body', type: 'editor' },
      { name: 'n', type: 'number' },
      { name: 'published', type: 'bool' },
      { name: 'cats', type: 'select', values: ['a', 'b', 'c'], maxSelect: 3 },
      { name: 'author', type: 'relation', collectionId: C.authors.id, maxSelect: 1 },
      { name: 'tags', type: 'relation', collectionId: C.tags.id, maxSelect: 10 },
      { name: 'hush', type: 'relation', collectionId: C.secret.id, maxSelect: 1 },
      { name: 'meta', type: 'json' },
      { name: 'created', type: 'autodate', onCreate: true },
    ],
  });

  const s = (c) => su.collection(C[c].name);
  R.acme = await s('orgs').create({ name: 'Acme' });
  R.ann = await s('authors').create({ name: 'Ann', org: R.acme.id });
  R.bob = await s('authors').create({ name: 'Bob' });
  R.news = await s('tags').create({ name: 'news' });
  R.tech = await s('tags').create({ name: 'tech' });
  R.hidden = await s('secret').create({ name: 'classified' });
  R.p1 = await s('posts').create({
    title: 'First', n: 1, published: true, cats: ['a', 'b'], author: R.ann.id,
    tags: [R.tech.id, R.news.id], hush: R.hidden.id, meta: { k: 'v', num: 3 },
    body: '<p>Some <b>bold</b> text that goes on and on</p><script>alert(1)</script>',
  });
  R.p2 = await s('posts').create({ title: 'Second', n: 2, published: false, cats: ['b'], author: R.ann.id, tags: [R.news.id] });
  R.p3 = await s('posts').create({ title: 'Third', n: 3, published: true, cats: [], author: R.bob.id, tags: [] });
  for (const [i, title] of AWKWARD.entries()) {
    R[`awk${i}`] = await s('posts').create({ title, n: 100 + i });
  }
});

after(async () => {
  await dropCollections(su, C.posts?.name, C.secret?.name, C.tags?.name, C.authors?.name, C.orgs?.name);
});

const posts = () => guest.collection(C.posts.name);
const titles = (list) => list.map((r) => r.title);

test('pb.filter binds awkward strings exactly', async () => {
  for (const [i, title] of AWKWARD.entries()) {
    const filter = guest.filter('title = {:t}', { t: title });
    const found = await posts().getFullList({ filter });
    assert.deepEqual(found.map((r) => r.id), [R[`awk${i}`].id], `filter ${filter}`);
    const combined = guest.filter('title = {:t} && n > {:n}', { t: title, n: 99 });
    assert.equal((await posts().getList(1, 10, { filter: combined })).totalItems, 1, combined);
    const none = guest.filter('title = {:t} && n > {:n}', { t: title, n: 1000 });
    assert.equal((await posts().getList(1, 10, { filter: none })).totalItems, 0, none);
  }
});

test('filter operators', async () => {
  const q = async (filter) => titles(await posts().getFullList({ filter, sort: 'n' }));
  const base = 'n < 100 && ';
  assert.deepEqual(await q(`${base}n >= 2`), ['Second', 'Third']);
  assert.deepEqual(await q(`${base}n != 2`), ['First', 'Third']);
  assert.deepEqual(await q(`${base}(n = 1 || n = 3)`), ['First', 'Third']);
  assert.deepEqual(await q(`${base}title ~ 'ir'`), ['First', 'Third']);
  assert.deepEqual(await q(`${base}title !~ 'ir'`), ['Second']);
  assert.deepEqual(await q(`${base}published = true`), ['First', 'Third']);
  assert.deepEqual(await q(`${base}cats:each ?= 'b'`), ['First', 'Second']);
  assert.deepEqual(await q(`${base}cats:each = 'b'`), ['Second']);
  assert.deepEqual(await q(`${base}cats:length = 2`), ['First']);
  // Without :each a multi-select field is compared as its stored JSON text.
  assert.deepEqual(await q(`${base}cats ?= 'b'`), []);
  assert.deepEqual(await q(`${base}cats ~ 'b'`), ['First', 'Second']);
  assert.deepEqual(await q(`${base}cats:length = 0`), ['Third']);
  assert.deepEqual(await q(`${base}author.name = 'Ann'`), ['First', 'Second']);
  assert.deepEqual(await q(`${base}author.org.name = 'Acme'`), ['First', 'Second']);
  assert.deepEqual(await q(`${base}tags.name ?= 'tech'`), ['First']);
  assert.deepEqual(await q(`${base}tags.name ?= 'news'`), ['First', 'Second']);
  assert.deepEqual(await q(`${base}meta.k = 'v'`), ['First']);
  assert.deepEqual(await q(`${base}created <= @now`), ['First', 'Second', 'Third']);
  assert.deepEqual(await q(`${base}author = ''`), []);
  assert.deepEqual(await q(`n >= 100 && author = ''`), AWKWARD);
  // The literal % and _ inside ~ are matched literally.
  assert.deepEqual(await q(`title ~ '100%'`), ['100% _under_']);
});

test('filter syntax errors and unknown fields are a 400 generic error', async () => {
  for (const filter of ['title = ', 'nosuchfield = 1', '(n = 1', 'n === 1']) {
    const err = await expectError(posts().getList(1, 10, { filter }), 400);
    assert.deepEqual(err.response.data, {});
    assert.equal(err.response.message, 'Something went wrong while processing your request.');
  }
  await expectError(posts().getList(1, 10, { sort: 'nosuchfield' }), 400);
});

test('expand single, multi, nested and back-relations', async () => {
  const one = await posts().getOne(R.p1.id, { expand: 'author,tags,author.org' });
  assert.equal(one.expand.author.id, R.ann.id);
  assert.equal(one.expand.author.name, 'Ann');
  assert.equal(one.expand.author.collectionName, C.authors.name);
  assert.equal(one.expand.author.expand.org.name, 'Acme');
  // Multi relation: an array in stored order.
  assert.deepEqual(one.expand.tags.map((t) => t.name), ['tech', 'news']);
  // The relation field itself still holds the ids.
  assert.equal(one.author, R.ann.id);

  // Empty relations: expand is an object without the key.
  const three = await posts().getOne(R.p3.id, { expand: 'tags,hush' });
  assert.equal(three.expand.author, undefined);
  assert.deepEqual(three.expand, {});
  // No expand requested: no expand key at all.
  assert.ok(!('expand' in (await posts().getOne(R.p3.id))));

  // Back-relation: authors with the posts that point at them.
  const ann = await guest.collection(C.authors.name).getOne(R.ann.id, { expand: `${C.posts.name}_via_author` });
  const via = ann.expand[`${C.posts.name}_via_author`];
  assert.ok(Array.isArray(via));
  assert.deepEqual(via.map((p) => p.title).sort(), ['First', 'Second']);

  // Nested through a back-relation, on a list.
  const list = await guest.collection(C.tags.name).getFullList({
    sort: 'name', expand: `${C.posts.name}_via_tags.author`,
  });
  const news = list.find((t) => t.name === 'news');
  const newsPosts = news.expand[`${C.posts.name}_via_tags`];
  assert.deepEqual(newsPosts.map((p) => p.title).sort(), ['First', 'Second']);
  for (const p of newsPosts) assert.equal(p.expand.author.name, 'Ann');
});

test('expand respects the related collection view rule', async () => {
  // Guest: the secret record is silently left out.
  const g = await posts().getOne(R.p1.id, { expand: 'hush,author' });
  assert.equal(g.expand.hush, undefined);
  assert.equal(g.expand.author.name, 'Ann');
  assert.equal(g.hush, R.hidden.id);
  // Superuser sees it.
  const s = await su.collection(C.posts.name).getOne(R.p1.id, { expand: 'hush' });
  assert.equal(s.expand.hush.name, 'classified');
});

test('fields picks keys, nested expand keys and excerpts', async () => {
  const one = await posts().getOne(R.p1.id, { fields: 'id,title' });
  assert.deepEqual(one, { id: R.p1.id, title: 'First' });

  const withExpand = await posts().getOne(R.p1.id, { expand: 'author.org', fields: 'title,expand.author.name,expand.author.expand.org.name' });
  assert.deepEqual(withExpand, { title: 'First', expand: { author: { name: 'Ann', expand: { org: { name: 'Acme' } } } } });

  const star = await posts().getOne(R.p1.id, { expand: 'author', fields: '*,expand.author.name' });
  assert.equal(star.title, 'First');
  assert.equal(star.n, 1);
  assert.deepEqual(star.expand, { author: { name: 'Ann' } });

  const ex = await posts().getOne(R.p1.id, { fields: 'id,body:excerpt(9,true)' });
  assert.deepEqual(ex, { id: R.p1.id, body: 'Some bold...' });
  const exNoDots = await posts().getOne(R.p1.id, { fields: 'body:excerpt(9)' });
  assert.deepEqual(exNoDots, { body: 'Some bold' });
  const exLong = await posts().getOne(R.p1.id, { fields: 'body:excerpt(200,true)' });
  assert.deepEqual(exLong, { body: 'Some bold text that goes on and on' });

  // On a list, each item is projected and the paging keys stay.
  const list = await posts().getList(1, 2, { sort: 'n', fields: 'id,n' });
  assert.deepEqual(list.items, [{ id: R.p1.id, n: 1 }, { id: R.p2.id, n: 2 }]);
  assert.equal(list.page, 1);
  assert.equal(list.perPage, 2);
  assert.ok(list.totalItems >= 3);

  // Unknown names are dropped.
  assert.deepEqual(await posts().getOne(R.p2.id, { fields: 'title,nosuch' }), { title: 'Second' });
  // fields applies to create and update responses too.
  const created = await posts().create({ title: 'Projected', n: 50 }, { fields: 'title,n' });
  assert.deepEqual(created, { title: 'Projected', n: 50 });
});

test('sort by relation field and @random', async () => {
  const byAuthor = await posts().getFullList({ filter: 'n < 100 && author != ""', sort: '-author.name,n' });
  assert.deepEqual(titles(byAuthor), ['Third', 'First', 'Second']);
  const random = await posts().getFullList({ filter: 'n < 4', sort: '@random' });
  assert.deepEqual(titles(random).sort(), ['First', 'Second', 'Third']);
});
