// The Usage screen: the project's metered requests, data out, storage and realtime peaks as bar
// charts per hour (48) and per day (31), switched by keyboard, readable on a phone; the usage
// route behind it answers superusers only.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { newTenant, openBrowser, shot, signIn } from './lib.mjs';

/** The tenant's usage totals as its superuser reads them. */
async function totals(tenant) {
  const answer = await fetch(`${tenant.url}/api/warren/usage`, { headers: { authorization: tenant.pb.authStore.token } });
  assert.equal(answer.status, 200);
  return (await answer.json()).totals;
}

test('the usage screen charts the metered usage per hour and per day', async (t) => {
  const tenant = await newTenant('usage');
  const anonymous = await fetch(`${tenant.url}/api/warren/usage`);
  assert.equal(anonymous.status, 401);
  for (let i = 0; i < 3; i++) await tenant.pb.health.check();
  // Usage is saved every metering interval (10 s by default): wait for it, ≤ 20 s.
  for (let i = 0; i < 200 && (await totals(tenant)).requests === 0; i++) {
    await new Promise((r) => setTimeout(r, 100));
  }
  assert.ok((await totals(tenant)).requests > 0, 'the usage was saved');

  const { page, errors } = await openBrowser(t);
  await signIn(page, tenant);
  await page.getByRole('link', { name: 'Usage' }).click();
  await page.waitForSelector('.usage-card svg.chart');
  const cards = page.locator('.usage-card');
  assert.equal(await cards.count(), 4);
  const requests = page.locator('[data-measure=requests]');
  assert.equal(await requests.locator('rect').count(), 48);
  assert.match(await requests.locator('svg').getAttribute('aria-label'), /^Requests per hour · 48 h; largest [1-9]/);
  assert.match(await requests.locator('.usage-head .muted').innerText(), /^Total [1-9]/);
  assert.equal(await page.getByRole('button', { name: 'Per hour · 48 h' }).getAttribute('aria-pressed'), 'true');
  await shot(page, 'usage-hours');

  // The period switch works from the keyboard.
  await page.getByRole('button', { name: 'Per day · 31 days' }).focus();
  await page.keyboard.press('Enter');
  assert.equal(await requests.locator('rect').count(), 31);
  assert.equal(await page.getByRole('button', { name: 'Per day · 31 days' }).getAttribute('aria-pressed'), 'true');
  await shot(page, 'usage-days');

  await page.setViewportSize({ width: 390, height: 844 });
  const overflow = await page.evaluate(() => document.documentElement.scrollWidth > window.innerWidth + 1);
  assert.equal(overflow, false, 'the page scrolls sideways on a phone');
  await shot(page, 'usage-phone');
  assert.deepEqual(errors, []);
});
