// The records grid and record panel: a superuser adds, filters, sorts, pages, edits and deletes
// records of every field type, manages superusers and impersonates a user; the JS SDK sees each
// change exactly.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import PocketBase from 'pocketbase';
import { newTenant, openBrowser, shot, signIn } from './lib.mjs';

const PNG = Buffer.from('iVBORw0KGgoAAAANSUhEUgAAABAAAAAQCAIAAACQkWg2AAABlklEQVR42g3LQQEAIQgAQSMQwQhEIIIRjEAEIhjBCETguU8jGMEId/Of1hrS6A1tWGM0ZsMb0ViN3chGNU7jNl6jNUGELqhgwhCm4EIIS9hCCiUc4QpP/tCRTu9oxzqjMzveic7q7E52qnM6t/P6HxRRuqKKKUOZiiuhLGUrqZRylKs8/YMhRjfUMGMY03AjjGVsI40yjnGNZ38YyKAPdGCDMZgDH8RgDfYgBzU4gzt44w8TmfSJTmwyJnPik5isyZ7kpCZncidv/sERpzvqmDOc6bgTznK2k045x7nO8z8EEvRAAwtGMAMPIljBDjKo4AQ3ePGHhSz6Qhe2GIu58EUs1mIvclGLs7iLt/6wkU3f6MY2YzM3vonN2uxNbmpzNnfz9h8SSXqiiSUjmYknkaxkJ5lUcpKbvPxDIUUvtLBiFLPwIopV7CKLKk5xi1d/OMihH/Rgh3GYBz/EYR32IQ91OId7eOcPF7n0i17sMi7z4pe4rMu+5KUu53Iv7/7hIY/+0Ic9xmM+/BGP9diPfNTjPO7jPT6GdLgQ8hjYogAAAABJRU5ErkJggg==', 'base64');

async function setUp(pb) {
  const authors = await pb.collections.create({
    name: 'authors', type: 'base', listRule: '', viewRule: '',
    fields: [{ name: 'name', type: 'text', presentable: true, required: true }],
  });
  await pb.collections.create({
    name: 'posts', type: 'base',
    fields: [
      { name: 'title', type: 'text', required: true },
      { name: 'views', type: 'number' },
      { name: 'published', type: 'bool' },
      { name: 'status', type: 'select', values: ['draft', 'live'], maxSelect: 1 },
      { name: 'when', type: 'date' },
      { name: 'meta', type: 'json' },
      { name: 'body', type: 'editor' },
      { name: 'cover', type: 'file', maxSelect: 1, thumbs: ['100x100'] },
      { name: 'author', type: 'relation', collectionId: authors.id, maxSelect: 1 },
      { name: 'place', type: 'geoPoint' },
      { name: 'created', type: 'autodate', onCreate: true },
      { name: 'updated', type: 'autodate', onCreate: true, onUpdate: true },
    ],
  });
  await pb.collection('authors').create({ name: 'Ada Lovelace' });
  await pb.collection('authors').create({ name: 'Grace Hopper' });
  for (let i = 1; i <= 12; i++) {
    await pb.collection('posts').create({ title: `seed ${String(i).padStart(2, '0')}`, views: i * 10 });
  }
}

/** Opens a collection's grid and waits until it, not the one shown before, is on screen. */
async function openCollection(page, tenant, name) {
  await page.goto(`${tenant.url}/_/#/collections?collection=${name}`);
  await page.waitForFunction((n) => {
    const heading = document.querySelector('.page-header h1');
    return heading && heading.textContent === n && document.querySelector('.records-table');
  }, name);
}

/** The grid's row titles, top to bottom. */
async function titles(page) {
  return page.locator('.records-table tbody td[data-col="title"]').allInnerTexts();
}

test('a superuser manages records of every field type in the grid and the panel', async (t) => {
  const tenant = await newTenant('records');
  const { pb } = tenant;
  await setUp(pb);
  const { page, errors } = await openBrowser(t);
  page.on('dialog', (d) => d.dismiss());
  await signIn(page, tenant);
  await openCollection(page, tenant, 'posts');
  // Sign-in lands on the first collection's grid; wait until the posts grid replaced it.
  await page.waitForFunction(() => document.querySelectorAll('.records-table tbody tr').length === 12);
  assert.equal(await page.locator('.records-table tbody tr').count(), 12);
  await shot(page, 'records-grid');

  // A new record with every field, a file and a relation chosen in the picker.
  await page.getByRole('button', { name: 'New record' }).click();
  const form = page.getByRole('dialog', { name: 'New posts record' });
  await form.getByLabel('title *', { exact: true }).fill('Hello world');
  await form.getByLabel('views', { exact: true }).fill('7');
  await form.getByLabel('published', { exact: true }).check();
  await form.getByLabel('status', { exact: true }).selectOption('live');
  await form.getByLabel('when', { exact: true }).fill('2025-06-01T12:30:00');
  await form.getByLabel('meta', { exact: true }).fill('{bad json');
  await form.getByRole('textbox', { name: 'body' }).fill('Some rich text');
  await form.getByLabel('Upload cover').setInputFiles({ name: 'cover.png', mimeType: 'image/png', buffer: PNG });
  await form.locator('.file-item.new img.thumb').waitFor();
  await form.getByLabel('place longitude').fill('2.35');
  await form.getByLabel('place latitude').fill('48.85');
  await form.getByRole('button', { name: 'Choose author' }).click();
  const picker = page.getByRole('dialog', { name: 'Choose from authors' });
  await picker.getByRole('radio').first().waitFor();
  await picker.getByLabel('Search authors').fill('Grace');
  await page.waitForFunction(() => document.querySelectorAll('.picker .pick-item').length === 1);
  await shot(page, 'records-picker');
  await picker.getByRole('radio').check();
  await picker.getByRole('button', { name: 'Select' }).click();
  await form.locator('.chip', { hasText: 'Grace Hopper' }).waitFor();
  await form.getByRole('button', { name: 'Create' }).click();
  await form.locator('[data-error-for="meta"]', { hasText: 'valid JSON' }).waitFor();
  await form.getByLabel('meta', { exact: true }).fill('{"tags": ["a", "b"]}');
  await shot(page, 'records-form-new');
  await form.getByRole('button', { name: 'Create' }).click();
  await form.waitFor({ state: 'detached' });

  const grace = await pb.collection('authors').getFirstListItem('name = "Grace Hopper"');
  const hello = await pb.collection('posts').getFirstListItem('title = "Hello world"');
  assert.equal(hello.views, 7);
  assert.equal(hello.published, true);
  assert.equal(hello.status, 'live');
  assert.equal(new Date(hello.when.replace(' ', 'T')).getTime(), new Date('2025-06-01T12:30:00').getTime());
  assert.deepEqual(hello.meta, { tags: ['a', 'b'] });
  assert.match(hello.body, /Some rich text/);
  assert.match(hello.cover, /^cover.*\.png$/);
  assert.equal(hello.author, grace.id);
  assert.deepEqual(hello.place, { lon: 2.35, lat: 48.85 });

  // The grid shows the thumbnail and the related author's name.
  const row = page.locator('.records-table tbody tr', { hasText: 'Hello world' });
  await row.waitFor();
  await row.locator('img.thumb').waitFor();
  await page.waitForFunction(() => [...document.querySelectorAll('.records-table img.thumb')].some((i) => i.complete && i.naturalWidth > 0));
  assert.match(await row.locator('td[data-col="author"]').innerText(), /Grace Hopper/);
  await shot(page, 'records-grid-filled');

  // A bad filter shows the server's error; a good one narrows the grid.
  const filter = page.getByRole('searchbox', { name: 'Filter' });
  await filter.fill('title ~~ (');
  await filter.press('Enter');
  await page.locator('[data-error-for="filter"]').filter({ hasText: /\S/ }).waitFor();
  await shot(page, 'records-filter-error');
  await filter.fill('views >= 100');
  await filter.press('Enter');
  await page.waitForFunction(() => document.querySelectorAll('.records-table tbody tr').length === 3);
  assert.equal(await page.locator('[data-error-for="filter"]').innerText(), '');
  assert.deepEqual((await titles(page)).sort(), ['seed 10', 'seed 11', 'seed 12']);
  assert.match(page.url(), /filter=views/);

  // Sorting by a column header, ascending then descending.
  const viewsHeader = page.getByRole('columnheader', { name: 'views' });
  await viewsHeader.getByRole('button').click();
  await page.waitForFunction(() => document.querySelector('th[aria-sort="ascending"]'));
  assert.deepEqual(await titles(page), ['seed 10', 'seed 11', 'seed 12']);
  await viewsHeader.getByRole('button').click();
  await page.waitForFunction(() => document.querySelector('th[aria-sort="descending"]'));
  assert.deepEqual(await titles(page), ['seed 12', 'seed 11', 'seed 10']);

  // Paging: 10 per page over the 13 records, then reload keeps filter, sort and page.
  await page.getByRole('button', { name: 'Clear', exact: true }).first().click();
  await page.getByLabel('Records per page').selectOption('10');
  await page.waitForFunction(() => document.querySelectorAll('.records-table tbody tr').length === 10);
  assert.match(await page.locator('.pager-total').innerText(), /1–10 of 13/);
  await page.getByRole('button', { name: 'Next' }).click();
  await page.waitForFunction(() => document.querySelectorAll('.records-table tbody tr').length === 3);
  assert.deepEqual(await titles(page), ['seed 02', 'seed 01', 'Hello world']);
  await page.reload();
  await page.locator('.records-table').waitFor();
  assert.deepEqual(await titles(page), ['seed 02', 'seed 01', 'Hello world']);
  assert.equal(await page.getByRole('columnheader', { name: 'views' }).getAttribute('aria-sort'), 'descending');

  // Columns: hiding one is remembered across reloads.
  await page.locator('summary', { hasText: 'Columns' }).click();
  await page.getByRole('group', { name: 'Shown columns' }).getByLabel('meta').uncheck();
  assert.equal(await page.locator('td[data-col="meta"]').count(), 0);
  await page.reload();
  await page.locator('.records-table').waitFor();
  assert.equal(await page.locator('th', { hasText: 'meta' }).count(), 0);
  assert.ok(await page.locator('td[data-col="views"]').count() > 0);

  // Edit: only the changed field is sent; the rest stays.
  await page.locator('.records-table tbody tr', { hasText: 'Hello world' }).focus();
  await page.keyboard.press('Enter');
  const edit = page.getByRole('dialog', { name: 'Edit posts record' });
  await edit.waitFor();
  await shot(page, 'records-form-edit');
  await edit.locator('.file-item img.thumb').waitFor();
  await edit.getByLabel('views', { exact: true }).fill('42');
  await page.keyboard.press('Escape');
  await page.getByRole('dialog', { name: 'Discard changes?' }).getByRole('button', { name: 'Cancel' }).click();
  assert.equal(await edit.getByLabel('views', { exact: true }).inputValue(), '42');
  await edit.getByRole('button', { name: 'Save changes' }).click();
  await edit.waitFor({ state: 'detached' });
  const edited = await pb.collection('posts').getOne(hello.id);
  assert.equal(edited.views, 42);
  assert.equal(edited.cover, hello.cover);
  assert.equal(edited.author, grace.id);
  assert.deepEqual(edited.meta, hello.meta);

  // Delete one from its panel (42 views moved it to the first page), then two at once from the grid.
  await page.getByRole('button', { name: 'Previous' }).click();
  await page.locator('.records-table tbody tr', { hasText: 'Hello world' }).click();
  await page.getByRole('dialog', { name: 'Edit posts record' }).getByRole('button', { name: 'Delete' }).click();
  await page.getByRole('dialog', { name: 'Are you sure?' }).getByRole('button', { name: 'Delete' }).click();
  await page.getByRole('dialog', { name: 'Edit posts record' }).waitFor({ state: 'detached' });
  await assert.rejects(pb.collection('posts').getOne(hello.id), (e) => e.status === 404);
  await page.getByRole('checkbox', { name: /^Select / }).nth(1).waitFor();
  const ids = await page.locator('.records-table tbody tr').evaluateAll((rows) => rows.slice(0, 2).map((r) => r.dataset.id));
  for (const id of ids) await page.getByRole('checkbox', { name: `Select ${id}` }).check();
  await shot(page, 'records-bulk');
  await page.getByRole('button', { name: 'Delete selected (2)' }).click();
  await page.getByRole('dialog', { name: 'Are you sure?' }).getByRole('button', { name: 'Delete' }).click();
  await page.waitForFunction(() => document.querySelector('.pager-total')?.textContent.includes('of 10'));
  const left = await pb.collection('posts').getFullList();
  assert.equal(left.length, 10);
  for (const id of ids) assert.ok(!left.some((r) => r.id === id));
  assert.deepEqual(errors, []);
});

test('superusers are added and removed, users verified and impersonated', async (t) => {
  const tenant = await newTenant('records-auth');
  const { pb } = tenant;
  const user = await pb.collection('users').create({ email: 'reader@example.com', password: 'reader-pass-1', passwordConfirm: 'reader-pass-1' });
  const { page, errors } = await openBrowser(t);
  page.on('dialog', (d) => d.dismiss());
  await signIn(page, tenant);

  await openCollection(page, tenant, '_superusers');
  await page.locator('.records-table').waitFor();
  await page.getByRole('button', { name: 'New record' }).click();
  const form = page.getByRole('dialog', { name: 'New _superusers record' });
  await form.getByLabel('email *', { exact: true }).fill('second@example.com');
  await form.getByLabel('Password', { exact: true }).fill('short');
  await form.getByLabel('Password confirm').fill('short');
  await form.getByRole('button', { name: 'Create' }).click();
  await form.locator('[data-error-for="password"]').filter({ hasText: /\S/ }).waitFor();
  await form.getByLabel('Password', { exact: true }).fill('second-pass-123');
  await form.getByLabel('Password confirm').fill('second-pass-123');
  await shot(page, 'records-superuser-new');
  await form.getByRole('button', { name: 'Create' }).click();
  await form.waitFor({ state: 'detached' });
  const second = new PocketBase(tenant.url);
  await second.collection('_superusers').authWithPassword('second@example.com', 'second-pass-123');
  assert.ok(second.authStore.isSuperuser);

  await page.locator('.records-table tbody tr', { hasText: 'second@example.com' }).click();
  await page.getByRole('dialog', { name: 'Edit _superusers record' }).getByRole('button', { name: 'Delete' }).click();
  await page.getByRole('dialog', { name: 'Are you sure?' }).getByRole('button', { name: 'Delete' }).click();
  await page.locator('.records-table tbody tr', { hasText: 'second@example.com' }).waitFor({ state: 'detached' });
  assert.equal((await pb.collection('_superusers').getFullList()).length, 1);

  await openCollection(page, tenant, 'users');
  await page.locator('.records-table tbody tr', { hasText: 'reader@example.com' }).click();
  const edit = page.getByRole('dialog', { name: 'Edit users record' });
  await edit.getByLabel('verified', { exact: true }).check();
  await edit.getByRole('button', { name: 'Save changes' }).click();
  await edit.waitFor({ state: 'detached' });
  assert.equal((await pb.collection('users').getOne(user.id)).verified, true);

  await page.locator('.records-table tbody tr', { hasText: 'reader@example.com' }).click();
  await edit.getByRole('button', { name: 'Impersonate' }).click();
  const imp = page.getByRole('dialog', { name: 'Impersonate' });
  await imp.getByLabel('Token duration (seconds)').fill('600');
  await imp.getByRole('button', { name: 'Generate token' }).click();
  await imp.getByLabel('Token', { exact: true }).waitFor();
  const token = await imp.getByLabel('Token', { exact: true }).inputValue();
  assert.ok(token.length > 20);
  await shot(page, 'records-impersonate');
  const asUser = new PocketBase(tenant.url);
  asUser.authStore.save(token, null);
  const seen = await asUser.collection('users').getOne(user.id);
  assert.equal(seen.email, 'reader@example.com');
  assert.deepEqual(errors, []);
});

test('the records grid reads well on a phone', async (t) => {
  const tenant = await newTenant('records-phone');
  await setUp(tenant.pb);
  const { page, errors } = await openBrowser(t, { viewport: { width: 390, height: 844 } });
  await signIn(page, tenant);
  await openCollection(page, tenant, 'posts');
  await page.locator('.records-table').waitFor();
  await shot(page, 'records-phone-grid');
  const overflow = await page.evaluate(() => document.documentElement.scrollWidth > window.innerWidth + 1);
  assert.equal(overflow, false, 'the page scrolls sideways on a phone');
  await page.locator('.records-table tbody tr').first().click();
  await page.getByRole('dialog', { name: 'Edit posts record' }).waitFor();
  await shot(page, 'records-phone-form');
  assert.deepEqual(errors, []);
});

test('files, selects and relations with many values, protected files through a token', async (t) => {
  const tenant = await newTenant('records-many');
  const { pb } = tenant;
  const people = await pb.collections.create({ name: 'people', type: 'base', fields: [{ name: 'name', type: 'text', presentable: true }] });
  await pb.collections.create({
    name: 'albums', type: 'base',
    fields: [
      { name: 'title', type: 'text' },
      { name: 'photos', type: 'file', maxSelect: 3, protected: true },
      { name: 'tags', type: 'select', values: ['red', 'green', 'blue'], maxSelect: 3 },
      { name: 'people', type: 'relation', collectionId: people.id, maxSelect: 5 },
    ],
  });
  const names = ['Alan', 'Barbara', 'Claude'];
  const ids = [];
  for (const name of names) ids.push((await pb.collection('people').create({ name })).id);
  const form = new FormData();
  form.append('title', 'Holiday');
  form.append('photos', new Blob([PNG], { type: 'image/png' }), 'one.png');
  form.append('photos', new Blob([PNG], { type: 'image/png' }), 'two.png');
  const album = await pb.collection('albums').create(form);
  assert.equal(album.photos.length, 2);

  const { page, errors } = await openBrowser(t);
  await signIn(page, tenant);
  await openCollection(page, tenant, 'albums');
  await page.locator('.records-table').waitFor();
  await page.waitForFunction(() => {
    const imgs = [...document.querySelectorAll('.records-table img.thumb')];
    return imgs.length === 2 && imgs.every((i) => i.complete && i.naturalWidth > 0 && i.src.includes('token='));
  });

  await page.locator('.records-table tbody tr').first().click();
  const edit = page.getByRole('dialog', { name: 'Edit albums record' });
  await edit.getByRole('button', { name: `Remove ${album.photos[0]}` }).click();
  await edit.getByLabel('Upload photos').setInputFiles({ name: 'three.png', mimeType: 'image/png', buffer: PNG });
  await edit.getByLabel('red').check();
  await edit.getByLabel('blue').check();
  await edit.getByRole('button', { name: 'Choose people' }).click();
  const picker = page.getByRole('dialog', { name: 'Choose from people' });
  await picker.getByRole('checkbox', { name: /Alan/ }).check();
  await picker.getByRole('checkbox', { name: /Claude/ }).check();
  await picker.getByRole('button', { name: 'Select' }).click();
  await edit.locator('.chip', { hasText: 'Claude' }).waitFor();
  await shot(page, 'records-form-many');
  await edit.getByRole('button', { name: 'Save changes' }).click();
  await edit.waitFor({ state: 'detached' });

  const saved = await pb.collection('albums').getOne(album.id);
  assert.equal(saved.photos.length, 2);
  assert.equal(saved.photos[0], album.photos[1]);
  assert.match(saved.photos[1], /^three.*\.png$/);
  assert.deepEqual(saved.tags, ['red', 'blue']);
  assert.deepEqual(saved.people, [ids[0], ids[2]]);
  assert.equal(saved.title, 'Holiday');
  await page.locator('.records-table td[data-col="people"]', { hasText: 'Claude' }).waitFor();
  assert.deepEqual(errors, []);
});
