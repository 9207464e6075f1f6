// What deleting a referenced record does: cascade, restrict, and clearing references.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { superuserClient, uniqueName, dropCollections, expectError } from './lib/setup.mjs';

let su;
const C = {};

before(async () => {
  su = await superuserClient();
  C.parents = await su.collections.create({
    name: uniqueName('parents'), type: 'base', fields: [{ name: 'name', type: 'text' }],
  });
  // Deleting a parent deletes its children.
  C.cascade = await su.collections.create({
    name: uniqueName('cascade'),
    type: 'base',
    fields: [
      { name: 'name', type: 'text' },
      { name: 'parent', type: 'relation', collectionId: C.parents.id, maxSelect: 1, cascadeDelete: true },
    ],
  });
  // A required, non-cascading reference blocks the delete.
  C.restrict = await su.collections.create({
    name: uniqueName('restrict'),
    type: 'base',
    fields: [
      { name: 'name', type: 'text' },
      { name: 'parent', type: 'relation', collectionId: C.parents.id, maxSelect: 1, required: true, cascadeDelete: false },
    ],
  });
  // Optional references are cleared.
  C.loose = await su.collections.create({
    name: uniqueName('loose'),
    type: 'base',
    fields: [
      { name: 'name', type: 'text' },
      { name: 'one', type: 'relation', collectionId: C.parents.id, maxSelect: 1 },
      { name: 'many', type: 'relation', collectionId: C.parents.id, maxSelect: 5 },
      { name: 'manyCascade', type: 'relation', collectionId: C.parents.id, maxSelect: 5, cascadeDelete: true },
    ],
  });
});

after(async () => {
  await dropCollections(su, C.loose?.name, C.restrict?.name, C.cascade?.name, C.parents?.name);
});

const col = (c) => su.collection(C[c].name);

test('cascadeDelete removes the referencing records', async () => {
  const p = await col('parents').create({ name: 'p' });
  const other = await col('parents').create({ name: 'other' });
  const kids = [];
  for (let i = 0; i < 3; i++) kids.push(await col('cascade').create({ name: `k${i}`, parent: p.id }));
  const stay = await col('cascade').create({ name: 'stay', parent: other.id });

  assert.equal(await col('parents').delete(p.id), true);
  for (const k of kids) await expectError(col('cascade').getOne(k.id), 404);
  assert.equal((await col('cascade').getOne(stay.id)).parent, other.id);
});

test('a required relation blocks deleting the referenced record', async () => {
  const p = await col('parents').create({ name: 'held' });
  const child = await col('restrict').create({ name: 'child', parent: p.id });
  const err = await expectError(col('parents').delete(p.id), 400);
  assert.deepEqual(err.response.data, {});
  assert.equal(
    err.response.message,
    'Failed to delete record. Make sure that the record is not part of a required relation reference.',
  );
  // Nothing was deleted.
  assert.equal((await col('parents').getOne(p.id)).name, 'held');
  assert.equal((await col('restrict').getOne(child.id)).parent, p.id);
  // Once the reference is gone the delete works.
  await col('restrict').delete(child.id);
  assert.equal(await col('parents').delete(p.id), true);
});

test('optional references are cleared; multi cascade deletes only when no ids remain', async () => {
  const a = await col('parents').create({ name: 'a' });
  const b = await col('parents').create({ name: 'b' });
  const r = await col('loose').create({ name: 'r', one: a.id, many: [a.id, b.id], manyCascade: [a.id, b.id] });
  const onlyA = await col('loose').create({ name: 'onlyA', manyCascade: [a.id] });

  await col('parents').delete(a.id);
  const after = await col('loose').getOne(r.id);
  assert.equal(after.one, '');
  assert.deepEqual(after.many, [b.id]);
  assert.deepEqual(after.manyCascade, [b.id]);
  await expectError(col('loose').getOne(onlyA.id), 404);
});

test('a relation to a deleted record cannot be set', async () => {
  const p = await col('parents').create({ name: 'gone' });
  await col('parents').delete(p.id);
  await expectError(col('cascade').create({ name: 'x', parent: p.id }), 400, {
    parent: 'validation_missing_rel_records',
  });
  await expectError(col('restrict').create({ name: 'x' }), 400, { parent: 'validation_required' });
});
