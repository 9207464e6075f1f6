// The index advisor in the dashboard: a collection's slow lists show up in its editor's Indexes
// tab as a suggested index, which "Add index" puts in the collection through the normal save.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import PocketBase from 'pocketbase';
import { newTenant, openBrowser, shot, signIn } from './lib.mjs';

test('a suggested index for slow lists is shown on the collection and added with one click', async (t) => {
  const tenant = await newTenant('advisor');
  const { pb } = tenant;
  await pb.collections.create({
    name: 'notes', type: 'base', listRule: '', viewRule: '',
    fields: [
      { name: 'title', type: 'text' },
      { name: 'number', type: 'number' },
      { name: 'created', type: 'autodate', onCreate: true, onUpdate: false },
    ],
  });
  await pb.send('/api/sql', {
    method: 'POST',
    body: { query: "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 20000) INSERT INTO notes (id, title, number, created) SELECT printf('n%014d', i), 'Note ' || i, i % 1000, printf('2026-01-01 00:00:%02d.%03dZ', i % 60, i % 1000) FROM n" },
  });
  const guest = new PocketBase(tenant.url);
  for (const min of [10, 20]) {
    await guest.collection('notes').getList(2, 30, { filter: `number >= ${min}`, sort: '-created', skipTotal: true });
  }

  const { page, errors } = await openBrowser(t);
  await signIn(page, tenant);
  const link = page.getByRole('complementary', { name: 'Collections' }).getByRole('link', { name: 'notes', exact: true });
  await link.click();
  await page.getByRole('button', { name: 'Edit collection' }).click();
  const panel = page.locator('dialog.panel[open]');
  await panel.getByRole('tab', { name: 'Indexes' }).click();
  const suggestion = panel.locator('.ce-suggested .ce-index');
  await suggestion.waitFor();
  assert.match(await suggestion.innerText(), /CREATE INDEX `idx_notes_created` ON `notes` \(`created`\)/);
  // The two lists above, and the records page the dashboard itself listed.
  assert.match(await suggestion.innerText(), /\d+ slow lists \(up to [\d.]+ ms\), filtered on number, sorted by created/);
  await shot(page, 'collections-index-suggestion');
  await panel.getByRole('button', { name: 'Add suggested index on created' }).click();
  await panel.locator('.ce-suggested .ce-index').waitFor({ state: 'detached' });
  await panel.getByRole('button', { name: /^Save changes$/ }).click();
  await panel.waitFor({ state: 'detached' });

  const notes = await pb.collections.getOne('notes');
  assert.deepEqual(notes.indexes, ['CREATE INDEX `idx_notes_created` ON `notes` (`created`)']);
  const left = await pb.send('/api/warren/indexes/suggestions', {});
  assert.deepEqual(left.items, []);
  assert.deepEqual(errors, []);
});
