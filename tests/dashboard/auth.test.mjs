// Dashboard sign-in (password, one-time code, MFA) and the pages the tenant's mails link to:
// email verification, password reset, email change, and the end of an OAuth2 sign-in.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import PocketBase from 'pocketbase';
import { newTenant, openBrowser, shot, signIn, suffix, waitForMail } from './lib.mjs';

/** A tenant whose mails link back to its own dashboard. */
async function tenantWithAppUrl(prefix) {
  const tenant = await newTenant(prefix);
  await tenant.pb.settings.update({ meta: { appURL: tenant.url } });
  return tenant;
}

async function readCode(email, seen) {
  const mail = await waitForMail(email, /one-time password is:\s*(?:<strong>)?\s*([0-9A-Za-z]+)/, seen);
  return mail.match[1];
}

/** The dashboard link of the first mail to `to` for `kind` (e.g. "confirm-verification"). */
async function mailLink(tenant, to, kind) {
  const mail = await waitForMail(to, new RegExp(`(https?://[^"\\s]+/_/#/auth/${kind}/[A-Za-z0-9_.-]+)`));
  assert.ok(mail.match[1].startsWith(`${tenant.url}/_/`), mail.match[1]);
  return mail.match[1];
}

test('a superuser signs in with a one-time code from the mail', async (t) => {
  const tenant = await tenantWithAppUrl('otp');
  await tenant.pb.collections.update('_superusers', { otp: { enabled: true } });
  const { page, errors } = await openBrowser(t);
  await page.goto(`${tenant.url}/_/#/login`);
  await page.getByRole('button', { name: 'Email me a one-time code instead' }).click();
  await page.getByLabel('Email').fill(tenant.email);
  await shot(page, 'auth-otp-request');
  const seen = new Set();
  await page.getByRole('button', { name: 'Send code' }).click();
  await page.getByLabel('One-time code').waitFor();
  await page.getByLabel('One-time code').fill('000000');
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.locator('.form-error:not(:empty)').waitFor();
  await shot(page, 'auth-otp-wrong-code');
  await page.getByLabel('One-time code').fill(await readCode(tenant.email, seen));
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.getByRole('navigation', { name: 'Main' }).waitFor();
  assert.match(page.url(), /#\/collections/);
  assert.deepEqual(errors, []);
});

test('a superuser with MFA gives the password, then the emailed code', async (t) => {
  const tenant = await tenantWithAppUrl('mfa');
  await tenant.pb.collections.update('_superusers', { otp: { enabled: true }, mfa: { enabled: true } });
  const { page, errors } = await openBrowser(t);
  await page.goto(`${tenant.url}/_/#/logs`);
  await page.waitForFunction(() => location.hash === '#/login');
  await page.getByLabel('Email').fill(tenant.email);
  await page.getByLabel('Password').fill(tenant.password);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.getByLabel('One-time code').waitFor();
  assert.match(await page.locator('.step').innerText(), /Second step/);
  await shot(page, 'auth-mfa-code');
  await page.getByLabel('One-time code').fill(await readCode(tenant.email, new Set()));
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.waitForFunction(() => location.hash === '#/logs');
  await page.getByRole('navigation', { name: 'Main' }).waitFor();
  assert.deepEqual(errors, []);
});

test('a superuser with MFA may start with the code and finish with the password', async (t) => {
  const tenant = await tenantWithAppUrl('mfa2');
  await tenant.pb.collections.update('_superusers', { otp: { enabled: true }, mfa: { enabled: true } });
  const { page, errors } = await openBrowser(t, { viewport: { width: 390, height: 844 } });
  await page.goto(`${tenant.url}/_/#/login`);
  await page.getByRole('button', { name: 'Email me a one-time code instead' }).click();
  await page.getByLabel('Email').fill(tenant.email);
  await page.getByRole('button', { name: 'Send code' }).click();
  await page.getByLabel('One-time code').fill(await readCode(tenant.email, new Set()));
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.getByLabel('Password').waitFor();
  assert.match(await page.locator('.step').innerText(), /password/);
  assert.equal(await page.getByLabel('Email').count(), 0);
  await shot(page, 'auth-mfa-password-phone');
  await page.getByLabel('Password').fill(tenant.password);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.getByRole('navigation', { name: 'Main' }).waitFor();
  assert.deepEqual(errors, []);
});

test('a superuser who forgot the password resets it through the mailed link', async (t) => {
  const tenant = await tenantWithAppUrl('forgot');
  const { page, errors } = await openBrowser(t);
  await page.goto(`${tenant.url}/_/#/login`);
  await page.getByRole('button', { name: 'Forgot password?' }).click();
  await page.getByLabel('Email').fill(tenant.email);
  await page.getByRole('button', { name: 'Send reset link' }).click();
  await page.getByText('a link to reset the password is on its way').waitFor();
  await shot(page, 'auth-forgot-sent');
  await page.goto(await mailLink(tenant, tenant.email, 'confirm-password-reset'));
  const fresh = `new-${suffix(6)}`;
  await page.getByLabel('New password', { exact: true }).fill(fresh);
  await page.getByLabel('Confirm new password').fill(fresh);
  await page.getByRole('button', { name: 'Set new password' }).click();
  await page.getByText('Your password was changed').waitFor();
  await signIn(page, { ...tenant, password: fresh });
  await page.getByRole('navigation', { name: 'Main' }).waitFor();
  assert.deepEqual(errors, []);
});

test('a wrong password is refused next to the form', async (t) => {
  const tenant = await tenantWithAppUrl('wrong');
  const { page, errors } = await openBrowser(t, { viewport: { width: 390, height: 844 } });
  await page.goto(`${tenant.url}/_/#/login`);
  await page.getByLabel('Email').fill(tenant.email);
  await page.getByLabel('Password').fill('not-it');
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.locator('.form-error:not(:empty)').waitFor();
  assert.match(await page.locator('.form-error').innerText(), /Failed to authenticate/);
  await shot(page, 'auth-wrong-password-phone');
  assert.deepEqual(errors, []);
});

test('the mail links verify, reset the password and change the email', async (t) => {
  const tenant = await tenantWithAppUrl('links');
  const email = `user-${suffix()}@example.com`;
  const password = `pw-${suffix(6)}`;
  const user = await tenant.pb.collection('users').create({ email, password, passwordConfirm: password });
  const guest = new PocketBase(tenant.url);
  guest.autoCancellation(false);
  const { page, errors } = await openBrowser(t);

  await guest.collection('users').requestVerification(email);
  await page.goto(await mailLink(tenant, email, 'confirm-verification'));
  await page.getByText('is verified').waitFor();
  await shot(page, 'auth-verified');
  assert.equal((await tenant.pb.collection('users').getOne(user.id)).verified, true);

  await page.goto(`${tenant.url}/_/#/auth/confirm-verification/not-a-token`);
  await page.getByText('invalid or has expired').waitFor();
  await shot(page, 'auth-invalid-link');

  await guest.collection('users').requestPasswordReset(email);
  await page.goto(await mailLink(tenant, email, 'confirm-password-reset'));
  const fresh = `new-${suffix(6)}`;
  await page.getByLabel('New password', { exact: true }).fill(fresh);
  await page.getByLabel('Confirm new password').fill('something-else');
  await page.getByRole('button', { name: 'Set new password' }).click();
  await page.locator('[data-error-for="passwordConfirm"]:not(:empty)').waitFor();
  await shot(page, 'auth-reset-mismatch');
  await page.getByLabel('Confirm new password').fill(fresh);
  await page.getByRole('button', { name: 'Set new password' }).click();
  await page.getByText('Your password was changed').waitFor();
  await shot(page, 'auth-reset-done');
  await guest.collection('users').authWithPassword(email, fresh);

  const newEmail = `changed-${suffix()}@example.com`;
  await guest.collection('users').requestEmailChange(newEmail);
  await page.goto(await mailLink(tenant, newEmail, 'confirm-email-change'));
  await page.getByText(newEmail).waitFor();
  await page.getByLabel('Password').fill(fresh);
  await shot(page, 'auth-email-change');
  await page.getByRole('button', { name: 'Confirm new email' }).click();
  await page.getByText('Your email address was changed').waitFor();
  await shot(page, 'auth-email-changed');
  assert.equal((await tenant.pb.collection('users').getOne(user.id)).email, newEmail);

  assert.deepEqual(errors, []);
});

test('the OAuth2 landing pages say how the sign-in ended', async (t) => {
  const tenant = await tenantWithAppUrl('oauth');
  const { page, errors } = await openBrowser(t);
  await page.goto(`${tenant.url}/_/#/auth/oauth2-redirect-success`);
  await page.getByText('You are signed in').waitFor();
  await shot(page, 'auth-oauth2-success');
  await page.goto(`${tenant.url}/_/#/auth/oauth2-redirect-failure`);
  await page.getByText('The sign-in did not complete').waitFor();
  await shot(page, 'auth-oauth2-failure');
  assert.deepEqual(errors, []);
});
