// The dashboard's shell: served at /_/ of every tenant, signs a superuser in and out, refuses
// wrong passwords with the server's message, works on a phone-sized screen.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { newTenant, openBrowser, shot, signIn } from './lib.mjs';

test('a superuser signs in to the dashboard and out again', async (t) => {
  const tenant = await newTenant('shell');
  const { page, errors } = await openBrowser(t);
  await page.goto(`${tenant.url}/_/`);
  await page.waitForFunction(() => location.hash === '#/login');
  await shot(page, 'login');

  await page.getByLabel('Email').fill(tenant.email);
  await page.getByLabel('Password').fill('not-the-password');
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.locator('.form-error:not(:empty)').waitFor();
  assert.match(await page.locator('.form-error').innerText(), /Failed to authenticate/);

  await signIn(page, tenant);
  assert.match(page.url(), /#\/collections/);
  await page.getByRole('navigation', { name: 'Main' }).waitFor();
  await shot(page, 'collections-empty');

  await page.getByRole('button', { name: 'Sign out' }).click();
  await page.waitForFunction(() => location.hash === '#/login');
  assert.deepEqual(errors, []);
});

test('the dashboard reads well on a phone', async (t) => {
  const tenant = await newTenant('phone');
  const { page, errors } = await openBrowser(t, { viewport: { width: 390, height: 844 } });
  await signIn(page, tenant);
  await page.getByRole('navigation', { name: 'Main' }).waitFor();
  await shot(page, 'phone-collections');
  const overflow = await page.evaluate(() => document.documentElement.scrollWidth > window.innerWidth + 1);
  assert.equal(overflow, false, 'the page scrolls sideways on a phone');
  assert.deepEqual(errors, []);
});
