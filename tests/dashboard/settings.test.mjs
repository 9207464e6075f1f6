// The settings and logs screens: application name, test mail, S3 check, backups (take, download,
// restore, a damaged upload), rate limits, collections export and import, and the request logs.
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { test } from 'node:test';
import { newTenant, openBrowser, shot, signIn, suffix, waitForMail } from './lib.mjs';

const settingsPage = async (page, tenant, name) => {
  await page.goto(`${tenant.url}/_/#/settings/${name}`);
  await page.locator('.side-link.active').waitFor();
  await page.locator('h1').waitFor();
};

async function until(check, what) {
  for (let i = 0; i < 200; i++) {
    if (await check()) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`timed out waiting for ${what}`);
}

test('a superuser changes the application name and rate limits', async (t) => {
  const tenant = await newTenant('settings');
  const { page, errors } = await openBrowser(t);
  await signIn(page, tenant);

  await settingsPage(page, tenant, 'application');
  await shot(page, 'settings-application');
  const name = `Acme ${suffix()}`;
  await page.getByLabel('Application name').fill(name);
  await page.getByLabel('Application URL').fill('not a url');
  await page.getByRole('button', { name: 'Save changes' }).click();
  await page.locator('[data-error-for="meta.appURL"]:not(:empty)').waitFor();
  await shot(page, 'settings-application-error');
  await page.getByLabel('Application URL').fill('https://acme.example.com');
  await page.getByRole('button', { name: 'Save changes' }).click();
  await page.locator('.brand-name', { hasText: name }).waitFor();
  assert.equal((await tenant.pb.settings.getAll()).meta.appName, name);

  await settingsPage(page, tenant, 'rate-limits');
  await page.getByLabel('Enable rate limiting').check();
  const before = await page.locator('.rule-row').count();
  await page.getByRole('button', { name: 'Add rule' }).click();
  await page.getByRole('button', { name: 'Add rule' }).click();
  const rows = page.locator('.rule-row');
  await rows.nth(before).getByLabel('Label').fill('/api/dashboard-test');
  await rows.nth(before).getByLabel('Max requests').fill('77');
  await rows.nth(before).getByLabel('Interval (seconds)').fill('9');
  await rows.nth(before).getByLabel('Audience').selectOption('@guest');
  await page.getByRole('button', { name: `Remove rule ${before + 2}` }).click();
  assert.equal(await rows.count(), before + 1);
  await shot(page, 'settings-rate-limits');
  await Promise.all([
    page.waitForResponse((r) => r.url().endsWith('/api/settings') && r.request().method() === 'PATCH'),
    page.getByRole('button', { name: 'Save changes' }).click(),
  ]);
  const limits = (await tenant.pb.settings.getAll()).rateLimits;
  assert.equal(limits.enabled, true);
  assert.equal(limits.rules.length, before + 1);
  assert.deepEqual(limits.rules.find((r) => r.label === '/api/dashboard-test'),
    { label: '/api/dashboard-test', maxRequests: 77, duration: 9, audience: '@guest' });
  assert.deepEqual(errors, []);
});

test('a superuser sends a test mail and checks the S3 connection', async (t) => {
  const tenant = await newTenant('mail');
  const { page, errors } = await openBrowser(t);
  await signIn(page, tenant);

  await settingsPage(page, tenant, 'mail');
  await shot(page, 'settings-mail');
  await page.getByRole('button', { name: 'Send test email' }).click();
  const to = `someone-${suffix()}@example.com`;
  await page.getByLabel('Template').selectOption('password-reset');
  await page.getByLabel('To email address').fill(to);
  await shot(page, 'settings-mail-test');
  await page.getByRole('button', { name: 'Send', exact: true }).click();
  await page.locator('.toast', { hasText: 'The test email was sent.' }).waitFor();
  await waitForMail(to, /reset/i);

  await settingsPage(page, tenant, 'storage');
  await page.getByRole('button', { name: 'Test connection' }).click();
  await page.locator('.test-result.error:not(:empty)').waitFor();
  assert.ok((await page.locator('.test-result').innerText()).length > 3);
  await shot(page, 'settings-storage');
  assert.deepEqual(errors, []);
});

test('a superuser takes, downloads, restores and deletes a backup, and a damaged upload is refused', async (t) => {
  const tenant = await newTenant('backups');
  const { pb } = tenant;
  await pb.collections.create({ name: 'notes', type: 'base', fields: [{ name: 'title', type: 'text' }] });
  await pb.collection('notes').create({ title: 'before' });
  const { page, errors } = await openBrowser(t);
  await signIn(page, tenant);

  await settingsPage(page, tenant, 'backups');
  await page.getByRole('button', { name: 'New backup' }).click();
  await page.getByLabel('Name').fill('before_notes.zip');
  await page.getByRole('button', { name: 'Start backup' }).click();
  const row = page.locator('tr', { hasText: 'before_notes.zip' });
  await row.waitFor();
  await shot(page, 'settings-backups');

  const [download] = await Promise.all([
    page.waitForEvent('download'),
    page.getByRole('button', { name: 'Download before_notes.zip' }).click(),
  ]);
  const zip = await readFile(await download.path());
  assert.equal(zip.subarray(0, 2).toString(), 'PK');

  await pb.collection('notes').create({ title: 'after' });
  await page.getByRole('button', { name: 'Restore before_notes.zip' }).click();
  assert.match(await page.locator('dialog').innerText(), /before_notes\.zip/);
  await page.locator('dialog').getByRole('button', { name: 'Restore' }).click();
  await page.locator('.toast', { hasText: 'Restoring the backup before_notes.zip.' }).waitFor({ timeout: 60000 });
  await until(async () => {
    try {
      const titles = (await pb.collection('notes').getFullList()).map((r) => r.title);
      return titles.length === 1 && titles[0] === 'before';
    } catch { return false; }
  }, 'the restored records');
  await page.getByRole('button', { name: 'Restore before_notes.zip' }).waitFor();

  await page.locator('input[type=file]').setInputFiles({ name: 'broken.zip', mimeType: 'application/zip', buffer: Buffer.from('this is not a zip archive') });
  await page.locator('[data-error-for="file"]:not(:empty), .toast-error').first().waitFor();
  await shot(page, 'settings-backups-upload-error');

  await page.getByRole('button', { name: 'Delete before_notes.zip' }).click();
  await page.locator('dialog').getByRole('button', { name: 'Delete' }).click();
  await row.waitFor({ state: 'detached' });
  assert.equal((await pb.backups.getFullList()).some((b) => b.key === 'before_notes.zip'), false);
  assert.deepEqual(errors, []);
});

test('a superuser exports and imports collections, then reads the logs of it', async (t) => {
  const tenant = await newTenant('sync');
  const { pb } = tenant;
  await pb.collections.create({ name: 'posts', type: 'base', fields: [{ name: 'title', type: 'text' }] });
  const { page, errors } = await openBrowser(t);
  await signIn(page, tenant);

  await settingsPage(page, tenant, 'export');
  const exported = JSON.parse(await page.getByLabel('Collections JSON').inputValue());
  assert.ok(exported.some((c) => c.name === 'posts'));
  const [download] = await Promise.all([page.waitForEvent('download'), page.getByRole('button', { name: 'Download JSON' }).click()]);
  assert.equal(download.suggestedFilename(), 'collections.json');
  await shot(page, 'settings-export');

  await settingsPage(page, tenant, 'import');
  const box = page.getByLabel('Or paste the collections JSON');
  await box.fill(JSON.stringify([{ name: 'broken', type: 'base', fields: [{ name: 'x', type: 'no-such-type' }] }]));
  await page.getByRole('button', { name: 'Review and import' }).click();
  await page.locator('dialog').getByRole('button', { name: 'Import' }).click();
  await page.locator('.toast-error').first().waitFor();
  await shot(page, 'settings-import-error');
  const imported = [...exported, { name: 'tags', type: 'base', fields: [{ name: 'label', type: 'text' }] }];
  await box.fill(JSON.stringify(imported));
  await page.getByRole('button', { name: 'Review and import' }).click();
  await page.locator('dialog').getByRole('button', { name: 'Import' }).click();
  await page.locator('.toast', { hasText: 'The collections were imported.' }).waitFor();
  assert.equal((await pb.collections.getOne('tags')).name, 'tags');
  await shot(page, 'settings-import');

  await page.goto(`${tenant.url}/_/#/logs`);
  await page.getByLabel('Include superuser requests').check();
  await page.locator('.chart .bar').first().waitFor();
  assert.match(await page.locator('.chart title').first().textContent(), /per hour/);
  await page.getByLabel('Filter').fill('data.url ~ ');
  await page.getByRole('button', { name: 'Search' }).click();
  await page.locator('[data-error-for="filter"]:not(:empty)').waitFor();
  await shot(page, 'logs-filter-error');
  await page.getByLabel('Filter').fill("data.url ~ '/api/collections/import'");
  // Request logs are written in batches (about once a second): search again until it shows.
  const entry = page.locator('.log-message .link-button').first();
  for (let i = 0; i < 20 && !(await entry.isVisible()); i++) {
    await page.getByRole('button', { name: 'Search' }).click();
    await entry.waitFor({ timeout: 500 }).catch(() => {});
  }
  await entry.waitFor();
  await shot(page, 'logs');
  await page.locator('.log-message .link-button').first().click();
  const detail = page.locator('dialog.panel');
  await detail.locator('dt', { hasText: 'data.url' }).waitFor();
  assert.match(await detail.innerText(), /\/api\/collections\/import/);
  await shot(page, 'logs-detail');
  assert.deepEqual(errors, []);
});

test('the settings and logs pages read well on a phone', async (t) => {
  const tenant = await newTenant('setphone');
  const { page, errors } = await openBrowser(t, { viewport: { width: 390, height: 844 } });
  await signIn(page, tenant);
  for (const name of ['application', 'mail', 'storage', 'backups', 'rate-limits', 'export', 'import']) {
    await settingsPage(page, tenant, name);
    await shot(page, `phone-settings-${name}`);
    const overflow = await page.evaluate(() => document.documentElement.scrollWidth > window.innerWidth + 1);
    assert.equal(overflow, false, `settings/${name} scrolls sideways on a phone`);
  }
  await page.goto(`${tenant.url}/_/#/logs`);
  await page.locator('.chart').waitFor();
  await shot(page, 'phone-logs');
  assert.equal(await page.evaluate(() => document.documentElement.scrollWidth > window.innerWidth + 1), false);
  assert.deepEqual(errors, []);
});
