// The collections screens: a superuser designs base, view and auth collections in the browser
// (fields of every common type, rules with the server's errors inline, indexes, a checked view
// query, auth options), edits, duplicates and deletes them; the JS SDK sees each change.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { newTenant, openBrowser, shot, signIn } from './lib.mjs';

/** The editor panel that is open. */
const editorPanel = (page) => page.locator('dialog.panel[open]');

/** Adds a field of `type` named `name` in the open editor; returns its card. */
async function addField(page, type, name) {
  const panel = editorPanel(page);
  await panel.getByLabel('New field type').selectOption(type);
  await panel.getByRole('button', { name: 'Add field' }).click();
  const card = panel.locator('.ce-field').last();
  await card.getByLabel('Field name').fill(name);
  return card;
}

async function openTab(page, name) {
  await editorPanel(page).getByRole('tab', { name }).click();
}

/** Saves the open editor and waits for it to close. */
async function saveEditor(page) {
  await editorPanel(page).getByRole('button', { name: /^(Create|Save changes)$/ }).click();
  await editorPanel(page).waitFor({ state: 'detached' });
}

async function openCollection(page, name) {
  const link = page.getByRole('complementary', { name: 'Collections' }).getByRole('link', { name, exact: true });
  await link.click();
  // The sidebar and the records page render together: once the link is current, so is the page.
  await page.locator(`.sidebar a[aria-current="page"][title^="${name} ("]`).waitFor();
  await page.getByRole('button', { name: 'Edit collection' }).click();
  await editorPanel(page).waitFor();
}

test('a superuser designs, edits and deletes collections; the SDK sees every change', async (t) => {
  const tenant = await newTenant('colls');
  const { pb } = tenant;
  const users = await pb.collections.getOne('users');
  const { page, errors } = await openBrowser(t);
  await signIn(page, tenant);
  await page.getByRole('complementary', { name: 'Collections' }).waitFor();
  await shot(page, 'collections-sidebar');

  // A base collection with seven field types.
  await page.getByRole('button', { name: 'New collection' }).first().click();
  const panel = editorPanel(page);
  await panel.getByLabel('Name', { exact: true }).fill('posts');
  await shot(page, 'collections-new');
  let card = await addField(page, 'text', 'title');
  await card.getByLabel('Nonempty (required)').check();
  await card.getByLabel('Max length').fill('200');
  await card.getByLabel('Help text').fill('The headline readers see');
  card = await addField(page, 'number', 'views');
  await card.getByLabel('Only integers').check();
  await card.getByLabel('Min', { exact: true }).fill('0');
  await addField(page, 'bool', 'published');
  card = await addField(page, 'select', 'status');
  await card.getByLabel('Choices').fill('draft, published');
  await addField(page, 'date', 'publishedAt');
  card = await addField(page, 'file', 'cover');
  await card.getByLabel('Allowed MIME types').fill('image/png, image/jpeg');
  await card.getByLabel('Thumb sizes').fill('100x100');
  card = await addField(page, 'relation', 'author');
  await card.getByLabel('Related collection').selectOption(users.id);
  await card.getByLabel('Cascade delete').check();
  await shot(page, 'collections-fields');

  // A rule naming an unknown field is refused, with the error beside the rule.
  await openTab(page, 'API rules');
  await panel.getByLabel('List/Search rule: superusers only').uncheck();
  await panel.getByLabel('List/Search rule', { exact: true }).fill('nosuchfield = 1');
  await panel.getByLabel('View rule: superusers only').uncheck();
  await panel.getByLabel('Create rule: superusers only').uncheck();
  await panel.getByLabel('Create rule', { exact: true }).fill('@request.auth.id != ""');
  await panel.getByRole('button', { name: 'Create', exact: true }).click();
  const ruleError = panel.locator('[data-error-for="listRule"]');
  await ruleError.filter({ hasText: /./ }).waitFor();
  assert.ok((await ruleError.innerText()).length > 0);
  await shot(page, 'collections-rule-error');
  await panel.getByLabel('List/Search rule', { exact: true }).fill('published = true');

  await openTab(page, 'Indexes');
  await panel.getByLabel('title', { exact: true }).check();
  await panel.getByLabel('Unique', { exact: true }).check();
  await panel.getByRole('button', { name: 'Add index' }).click();
  await panel.locator('.ce-index').waitFor();
  await shot(page, 'collections-indexes');
  await saveEditor(page);

  let posts = await pb.collections.getOne('posts');
  const byName = Object.fromEntries(posts.fields.map((f) => [f.name, f]));
  assert.equal(byName.title.type, 'text');
  assert.equal(byName.title.required, true);
  assert.equal(byName.title.max, 200);
  assert.equal(byName.title.help, 'The headline readers see');
  assert.equal(byName.views.type, 'number');
  assert.equal(byName.views.onlyInt, true);
  assert.equal(byName.published.type, 'bool');
  assert.deepEqual(byName.status.values, ['draft', 'published']);
  assert.equal(byName.publishedAt.type, 'date');
  assert.deepEqual(byName.cover.mimeTypes, ['image/png', 'image/jpeg']);
  assert.deepEqual(byName.cover.thumbs, ['100x100']);
  assert.equal(byName.author.collectionId, users.id);
  assert.equal(byName.author.cascadeDelete, true);
  assert.equal(posts.listRule, 'published = true');
  assert.equal(posts.viewRule, '');
  assert.equal(posts.createRule, '@request.auth.id != ""');
  assert.equal(posts.updateRule, null);
  assert.equal(posts.deleteRule, null);
  assert.equal(posts.indexes.length, 1);
  assert.match(posts.indexes[0], /CREATE UNIQUE INDEX .* ON `posts` \(`title`\)/);

  // The sidebar's search narrows the list, system collections included.
  const sidebar = page.getByRole('complementary', { name: 'Collections' });
  await sidebar.getByRole('link', { name: 'posts', exact: true }).waitFor();
  await sidebar.getByLabel('Search collections').fill('super');
  await sidebar.getByRole('link', { name: '_superusers', exact: true }).waitFor();
  assert.equal(await sidebar.getByRole('link', { name: 'posts', exact: true }).isVisible(), false);
  await shot(page, 'collections-search');
  await sidebar.getByLabel('Search collections').fill('');

  // Edit: rename a field (the index follows), move another up.
  await openCollection(page, 'posts');
  await shot(page, 'collections-edit');
  await panel.getByRole('group', { name: 'Field title' }).getByLabel('Field name').fill('headline');
  await panel.getByRole('button', { name: 'Move published up' }).focus();
  await page.keyboard.press('Enter');
  // The moved field's button keeps the focus, so a keyboard user can press again.
  assert.equal(await page.evaluate(() => document.activeElement.getAttribute('aria-label')), 'Move published up');
  await saveEditor(page);
  posts = await pb.collections.getOne('posts');
  const names = posts.fields.map((f) => f.name);
  assert.ok(names.includes('headline') && !names.includes('title'), names.join());
  assert.ok(names.indexOf('published') < names.indexOf('views'), names.join());
  assert.equal(posts.fields.find((f) => f.name === 'headline').id, byName.title.id);
  assert.match(posts.indexes[0], /\(`headline`\)/);

  // A view collection whose query is checked before it is saved.
  // The dry run is checked here when the server offers it; the save checks the query either way.
  const probe = await fetch(`${tenant.url}/api/collections/meta/dry-run-view`, {
    method: 'POST', headers: { authorization: pb.authStore.token, 'content-type': 'application/json' }, body: '{"query":"SELECT 1 AS id"}' });
  const dryRun = probe.status !== 404;
  await page.getByRole('button', { name: 'New collection' }).first().click();
  await panel.getByLabel('Name', { exact: true }).fill('headlines');
  await panel.getByLabel('Type', { exact: true }).selectOption('view');
  await panel.getByLabel('Select query').fill('SELECT id, nosuchcolumn FROM posts');
  await panel.getByRole('button', { name: dryRun ? 'Check query' : 'Create', exact: true }).click();
  const queryError = panel.locator('[data-error-for="viewQuery"]');
  await queryError.filter({ hasText: /nosuchcolumn/ }).waitFor();
  await shot(page, 'collections-view-error');
  await panel.getByLabel('Select query').fill('SELECT id, headline, views FROM posts');
  if (dryRun) {
    await panel.getByRole('button', { name: 'Check query' }).click();
    await panel.getByRole('list', { name: 'Fields of the view' }).waitFor();
    assert.equal(await queryError.innerText(), '');
    assert.match(await panel.locator('.ce-view-result').innerText(), /headline \(text\)/);
    await shot(page, 'collections-view');
  }
  await openTab(page, 'API rules');
  await panel.getByLabel('List/Search rule: superusers only').uncheck();
  await shot(page, 'collections-view-rules');
  await saveEditor(page);
  const view = await pb.collections.getOne('headlines');
  assert.equal(view.type, 'view');
  assert.match(view.viewQuery, /SELECT id, headline, views FROM posts/);
  assert.deepEqual(view.fields.map((f) => f.name).sort(), ['headline', 'id', 'views']);
  assert.equal(view.listRule, '');

  // An auth collection's options.
  await openCollection(page, 'users');
  await openTab(page, 'Auth options');
  await panel.getByLabel('Enable OTP sign-in').check();
  await panel.getByLabel('Duration (seconds)').first().fill('300');
  await panel.getByLabel('Password length').fill('8');
  await panel.getByLabel('Enable OAuth2 sign-in').check();
  await panel.getByLabel('OAuth2 provider to add').selectOption('google');
  await panel.getByRole('button', { name: 'Add provider' }).click();
  await panel.getByLabel('Client ID').fill('google-client');
  await panel.getByLabel('Client secret').fill('google-secret');
  await shot(page, 'collections-auth-oauth2');
  await panel.getByLabel('Auth token', { exact: true }).fill('3600');
  await panel.getByText('Verification mail', { exact: true }).click();
  await panel.getByLabel('Subject').first().fill('Verify your {APP_NAME} account');
  await shot(page, 'collections-auth');
  await openTab(page, 'API rules');
  await shot(page, 'collections-auth-rules');
  await saveEditor(page);
  const authed = await pb.collections.getOne('users');
  assert.equal(authed.otp.enabled, true);
  assert.equal(authed.otp.duration, 300);
  assert.equal(authed.otp.length, 8);
  assert.equal(authed.oauth2.enabled, true);
  assert.equal(authed.oauth2.providers[0].name, 'google');
  assert.equal(authed.oauth2.providers[0].clientId, 'google-client');
  assert.equal(authed.authToken.duration, 3600);
  assert.equal(authed.verificationTemplate.subject, 'Verify your {APP_NAME} account');

  // Closing with unsaved changes asks first.
  await openCollection(page, 'posts');
  await panel.getByRole('group', { name: 'Field headline' }).getByLabel('Field name').fill('changed');
  await panel.getByRole('button', { name: 'Cancel' }).click();
  await page.locator('dialog.dialog[open]').getByRole('button', { name: 'Discard' }).click();
  await editorPanel(page).waitFor({ state: 'detached' });
  assert.ok((await pb.collections.getOne('posts')).fields.some((f) => f.name === 'headline'));

  // Truncate deletes the records and keeps the collection.
  await pb.collection('posts').create({ headline: 'Hello' });
  await openCollection(page, 'posts');
  await panel.getByText('More…').click();
  await panel.getByRole('button', { name: 'Delete all records' }).click();
  await page.locator('dialog.dialog[open]').getByRole('button', { name: 'Truncate' }).click();
  await editorPanel(page).waitFor({ state: 'detached' });
  assert.equal((await pb.collection('posts').getList(1, 1)).totalItems, 0);

  // Duplicate, then delete the copy by typing its name.
  await openCollection(page, 'posts');
  await panel.getByText('More…').click();
  await panel.getByRole('button', { name: 'Duplicate' }).click();
  await editorPanel(page).getByRole('heading', { name: 'Copy of posts' }).waitFor();
  await saveEditor(page);
  const copy = await pb.collections.getOne('posts_copy');
  assert.equal(copy.fields.length, posts.fields.length);
  await openCollection(page, 'posts_copy');
  await panel.getByText('More…').click();
  await panel.getByRole('button', { name: 'Delete collection' }).click();
  const confirm = page.locator('dialog.dialog[open]');
  await confirm.getByLabel('Type posts_copy to confirm').fill('posts_copy');
  await shot(page, 'collections-delete');
  await confirm.getByRole('button', { name: 'Delete' }).click();
  await editorPanel(page).waitFor({ state: 'detached' });
  await assert.rejects(pb.collections.getOne('posts_copy'), (e) => e.status === 404);
  assert.deepEqual(errors, []);
});

test('the collection editor fits a phone; new auth collections get their system fields', async (t) => {
  const tenant = await newTenant('collsphone');
  const { page, errors } = await openBrowser(t, { viewport: { width: 390, height: 844 } });
  await signIn(page, tenant);
  await page.getByRole('button', { name: 'New collection' }).first().click();
  await editorPanel(page).getByLabel('Name', { exact: true }).fill('notes');
  await addField(page, 'text', 'body');
  for (const type of ['editor', 'email', 'url', 'json', 'geoPoint']) await addField(page, type, `my${type}`);
  await editorPanel(page).locator('.ce-field').filter({ has: page.locator('.badge', { hasText: /^email$/ }) }).getByLabel('Only domains').fill('example.com');
  const second = await addField(page, 'number', 'bad name!');
  await shot(page, 'phone-collections-editor');
  const overflow = await page.evaluate(() => [...document.querySelectorAll('dialog.panel[open] *')].some((el) => el.getBoundingClientRect().right > window.innerWidth + 1));
  assert.equal(overflow, false, 'the editor scrolls sideways on a phone');
  await editorPanel(page).getByRole('button', { name: 'Create', exact: true }).click();
  await second.locator('.ce-field-head .error').filter({ hasText: /./ }).waitFor();
  await shot(page, 'phone-collections-field-error');
  await second.getByLabel('Field name').fill('score');
  await saveEditor(page);
  const notes = await tenant.pb.collections.getOne('notes');
  assert.deepEqual(notes.fields.filter((f) => !f.system).map((f) => `${f.name}:${f.type}`), ['created:autodate', 'updated:autodate', 'body:text',
    'myeditor:editor', 'myemail:email', 'myurl:url', 'myjson:json', 'mygeoPoint:geoPoint', 'score:number']);
  assert.deepEqual(notes.fields.find((f) => f.name === 'myemail').onlyDomains, ['example.com']);

  await page.getByRole('button', { name: 'New collection' }).first().click();
  await editorPanel(page).getByLabel('Name', { exact: true }).fill('members');
  await editorPanel(page).getByLabel('Type', { exact: true }).selectOption('auth');
  await addField(page, 'password', 'pin');
  await openTab(page, 'Auth options');
  await editorPanel(page).getByLabel('Enable OTP sign-in').check();
  await shot(page, 'phone-collections-auth');
  await saveEditor(page);
  const members = await tenant.pb.collections.getOne('members');
  assert.equal(members.type, 'auth');
  assert.equal(members.otp.enabled, true);
  const names = members.fields.map((f) => f.name);
  assert.ok(['email', 'password', 'verified', 'pin', 'created'].every((n) => names.includes(n)), names.join());

  await page.emulateMedia({ colorScheme: 'dark' });
  await openCollection(page, 'members');
  await shot(page, 'phone-collections-dark');
  assert.deepEqual(errors, []);
});
