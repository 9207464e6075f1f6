// Settings › Crons: PocketBase's jobs listed with their schedules, a backups cron showing up once
// set, and a job run from the keyboard.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { newTenant, openBrowser, shot, signIn } from './lib.mjs';

test('a superuser lists the cron jobs and runs one from the keyboard', async (t) => {
  const tenant = await newTenant('crons');
  const { page, errors } = await openBrowser(t);
  await signIn(page, tenant);

  await page.goto(`${tenant.url}/_/#/settings/crons`);
  await page.locator('.side-link.active', { hasText: 'Crons' }).waitFor();
  const table = page.getByRole('table', { name: 'Cron jobs' });
  await table.waitFor();
  const ids = await table.locator('tbody td:first-child').allTextContents();
  assert.deepEqual(ids, ['__pbDBOptimize__', '__pbMFACleanup__', '__pbOTPCleanup__', '__pbLogsCleanup__']);
  const row = table.getByRole('row', { name: /__pbLogsCleanup__/ });
  assert.equal(await row.locator('td').nth(1).textContent(), '0 */6 * * *');

  // A backups cron set elsewhere appears after a refresh.
  await tenant.pb.settings.update({ backups: { cron: '@daily', cronMaxKeep: 3 } });
  await page.getByRole('button', { name: 'Refresh' }).click();
  await table.getByRole('row', { name: /__pbAutoBackup__/ }).waitFor();
  assert.equal(await table.getByRole('row', { name: /__pbAutoBackup__/ }).locator('td').nth(1).textContent(), '0 0 * * *');

  // Run a job with the keyboard: focus its button, press Enter, hear the toast.
  const run = page.getByRole('button', { name: 'Run __pbLogsCleanup__' });
  await run.focus();
  const [response] = await Promise.all([
    page.waitForResponse((r) => r.url().endsWith('/api/crons/__pbLogsCleanup__') && r.request().method() === 'POST'),
    page.keyboard.press('Enter'),
  ]);
  assert.equal(response.status(), 204);
  await page.locator('.toast', { hasText: 'The job __pbLogsCleanup__ was started.' }).waitFor();
  await shot(page, 'settings-crons');
  assert.deepEqual(errors, []);
});
