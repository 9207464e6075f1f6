// Authentication flows through the SDK: auth methods, refresh, the auth store, impersonation,
// verification, password reset, email change, OTP, MFA (password + OTP) and OAuth2 against a
// local OIDC provider. Mails are read from the suite's SMTP sink.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import {
  PocketBase, PB_URL, superuserClient, guestClient, expectError, dropCollections, uniqueName, rand, raw, ID_RE,
} from './lib/setup.mjs';
import { useSink, waitForMail, SMTP_PORT } from './lib/mail.mjs';
import { startProvider } from './lib/oidc.mjs';

const NAME = uniqueName('members');
const CLIENT = { clientId: 'warren-client', clientSecret: 'warren-secret-123' };
let su;
let provider;

before(async () => {
  su = await superuserClient();
  if (SMTP_PORT) await useSink(su);
  provider = await startProvider(CLIENT);
  await su.collections.create({
    name: NAME,
    type: 'auth',
    listRule: 'id = @request.auth.id',
    viewRule: 'id = @request.auth.id',
    createRule: '',
    updateRule: 'id = @request.auth.id',
    otp: { enabled: true, duration: 180, length: 6 },
    oauth2: {
      enabled: true,
      providers: [{ name: 'oidc', displayName: 'Local', ...CLIENT, authURL: provider.authURL, tokenURL: provider.tokenURL, userInfoURL: provider.userInfoURL }],
    },
    fields: [{ name: 'name', type: 'text' }],
  });
});

after(async () => {
  await dropCollections(su, NAME);
  await provider?.close();
});

async function member() {
  const email = `m_${rand(12)}@example.com`;
  const password = `pw-${rand(16)}`;
  const record = await guestClient().collection(NAME).create({ email, password, passwordConfirm: password });
  return { email, password, record };
}

function tokenFrom(mail, path) {
  const m = mail.match(new RegExp(`${path}/([A-Za-z0-9_.-]+)`));
  assert.ok(m, `mail carries a ${path} link: ${mail.slice(0, 400)}`);
  return m[1];
}

test('auth-methods lists password, OTP and the OIDC provider with PKCE', async () => {
  const methods = await guestClient().collection(NAME).listAuthMethods();
  assert.deepEqual(methods.password, { identityFields: ['email'], enabled: true });
  assert.deepEqual(methods.otp, { enabled: true, duration: 180 });
  assert.deepEqual(methods.mfa, { enabled: false, duration: 0 });
  assert.equal(methods.oauth2.enabled, true);
  const [p] = methods.oauth2.providers;
  assert.equal(p.name, 'oidc');
  assert.equal(p.displayName, 'Local');
  assert.equal(p.state.length, 30);
  assert.equal(p.codeVerifier.length, 43);
  assert.equal(p.codeChallengeMethod, 'S256');
  assert.ok(p.authURL.startsWith(provider.authURL + '?'));
  assert.ok(p.authURL.endsWith('&redirect_uri='));
  const url = new URL(p.authURL);
  assert.equal(url.searchParams.get('client_id'), CLIENT.clientId);
  assert.equal(url.searchParams.get('code_challenge'), p.codeChallenge);
  const users = await raw('GET', '/api/collections/users/auth-methods');
  assert.equal(users.status, 200);
  assert.deepEqual(users.body.oauth2, { providers: [], enabled: false });
  const missing = await raw('GET', '/api/collections/nope_' + rand() + '/auth-methods');
  assert.equal(missing.status, 404);
});

test('authRefresh renews the token and the auth store survives a cookie round trip', async () => {
  const { email, password, record } = await member();
  const pb = guestClient();
  await pb.collection(NAME).authWithPassword(email, password);
  const first = pb.authStore.token;
  await new Promise((r) => setTimeout(r, 1100)); // a later exp makes a different token
  const refreshed = await pb.collection(NAME).authRefresh();
  assert.equal(refreshed.record.id, record.id);
  assert.equal(refreshed.record.email, email);
  assert.notEqual(refreshed.token, first);
  assert.equal(pb.authStore.token, refreshed.token);

  const cookie = pb.authStore.exportToCookie({ secure: false, httpOnly: false });
  const restored = new PocketBase(PB_URL);
  restored.authStore.loadFromCookie(cookie);
  assert.equal(restored.authStore.record.id, record.id);
  assert.ok(restored.authStore.isValid);
  const again = await restored.collection(NAME).authRefresh();
  assert.equal(again.record.id, record.id);

  await expectError(guestClient().collection(NAME).authRefresh(), 401);
  await expectError(su.collection(NAME).authRefresh(), 403);
});

test('impersonate gives a non-refreshable token that refresh echoes back', async () => {
  const { record } = await member();
  const imp = await su.collection(NAME).impersonate(record.id, 100);
  assert.equal(imp.authStore.record.id, record.id);
  const payload = JSON.parse(Buffer.from(imp.authStore.token.split('.')[1], 'base64url').toString());
  assert.equal(payload.refreshable, false);
  assert.equal(payload.type, 'auth');
  assert.ok(payload.exp <= Math.floor(Date.now() / 1000) + 101);
  const refreshed = await imp.collection(NAME).authRefresh();
  assert.equal(refreshed.token, imp.authStore.token);
  await expectError(su.collection(NAME).impersonate('missingmissing1', 10), 404);
  await expectError(guestClient().collection(NAME).impersonate(record.id, 10), 401);
  const err = await expectError(su.collection(NAME).impersonate(record.id, -1), 400, {
    duration: 'validation_min_greater_equal_than_required',
  });
  assert.equal(err.response.message, 'An error occurred while validating the submitted data.');
});

test('request-verification is 204 for unknown addresses and verifies through the mailed token', { skip: !SMTP_PORT }, async () => {
  const { email } = await member();
  assert.equal(await guestClient().collection(NAME).requestVerification(`nobody_${rand()}@example.com`), true);
  assert.equal(await guestClient().collection(NAME).requestVerification(email), true);
  const mail = await waitForMail(email);
  assert.ok(mail.includes('http://app.example.com/_/#/auth/confirm-verification/'));
  const token = tokenFrom(mail, 'confirm-verification');
  const claims = JSON.parse(Buffer.from(token.split('.')[1], 'base64url').toString());
  assert.deepEqual(Object.keys(claims), ['collectionId', 'email', 'exp', 'id', 'type']);
  assert.equal(claims.type, 'verification');
  assert.equal(claims.email, email);
  assert.equal(await guestClient().collection(NAME).confirmVerification(token), true);
  const { password } = { password: null };
  void password;
  await expectError(guestClient().collection(NAME).confirmVerification('not-a-token'), 400, {
    token: 'validation_invalid_token_claims',
  });
  await expectError(guestClient().collection('_superusers').requestVerification('a@example.com'), 400);
});

test('password reset sets a new password and signs other sessions out', { skip: !SMTP_PORT }, async () => {
  const { email, password } = await member();
  const old = guestClient();
  await old.collection(NAME).authWithPassword(email, password);
  assert.equal(await guestClient().collection(NAME).requestPasswordReset(email), true);
  assert.equal(await guestClient().collection(NAME).requestPasswordReset(`nobody_${rand()}@example.com`), true);
  const token = tokenFrom(await waitForMail(email), 'confirm-password-reset');
  await expectError(guestClient().collection(NAME).confirmPasswordReset(token, 'short', 'other'), 400, {
    password: 'validation_length_out_of_range',
    passwordConfirm: 'validation_values_mismatch',
  });
  const next = `new-${rand(16)}`;
  assert.equal(await guestClient().collection(NAME).confirmPasswordReset(token, next, next), true);
  await expectError(guestClient().collection(NAME).authWithPassword(email, password), 400);
  const pb = guestClient();
  await pb.collection(NAME).authWithPassword(email, next);
  assert.equal(pb.authStore.record.verified, true);
  await expectError(old.collection(NAME).authRefresh(), 401);
});

test('email change is confirmed with the token mailed to the new address and the password', { skip: !SMTP_PORT }, async () => {
  const { email, password } = await member();
  const pb = guestClient();
  await pb.collection(NAME).authWithPassword(email, password);
  const newEmail = `n_${rand(12)}@example.com`;
  await expectError(pb.collection(NAME).requestEmailChange(email), 400, { newEmail: 'validation_not_in_invalid' });
  await expectError(guestClient().collection(NAME).requestEmailChange(newEmail), 401);
  assert.equal(await pb.collection(NAME).requestEmailChange(newEmail), true);
  const token = tokenFrom(await waitForMail(newEmail), 'confirm-email-change');
  await expectError(guestClient().collection(NAME).confirmEmailChange(token, 'wrong-password'), 400, {
    password: 'validation_invalid_password',
  });
  assert.equal(await guestClient().collection(NAME).confirmEmailChange(token, password), true);
  const fresh = guestClient();
  const auth = await fresh.collection(NAME).authWithPassword(newEmail, password);
  assert.equal(auth.record.email, newEmail);
  assert.equal(auth.record.verified, true);
});

test('OTP: request answers an id for any address and the mailed code signs in once', { skip: !SMTP_PORT }, async () => {
  const { email, record } = await member();
  const fake = await guestClient().collection(NAME).requestOTP(`nobody_${rand()}@example.com`);
  assert.match(fake.otpId, ID_RE);
  const { otpId } = await guestClient().collection(NAME).requestOTP(email);
  assert.match(otpId, ID_RE);
  const mail = await waitForMail(email);
  const code = mail.match(/<strong>(\d{6})<\/strong>/)[1];
  const wrong = await expectError(guestClient().collection(NAME).authWithOTP(otpId, '000000x'), 400);
  assert.equal(wrong.response.message, 'Invalid or expired OTP.');
  const pb = guestClient();
  const auth = await pb.collection(NAME).authWithOTP(otpId, code);
  assert.equal(auth.record.id, record.id);
  assert.equal(auth.record.verified, true);
  await expectError(guestClient().collection(NAME).authWithOTP(otpId, code), 400);
  const off = await expectError(guestClient().collection('users').requestOTP(email), 403);
  assert.equal(off.response.message, 'The collection is not configured to allow OTP authentication.');
});

test('MFA: a password login answers 401 {mfaId}; an OTP login with it completes', { skip: !SMTP_PORT }, async () => {
  const name = uniqueName('mfa');
  await su.collections.create({
    name, type: 'auth', createRule: '',
    otp: { enabled: true, duration: 180, length: 6 },
    mfa: { enabled: true, duration: 600 },
  });
  try {
    const email = `f_${rand(12)}@example.com`;
    const password = `pw-${rand(16)}`;
    await guestClient().collection(name).create({ email, password, passwordConfirm: password });
    const first = await raw('POST', `/api/collections/${name}/auth-with-password`, { body: { identity: email, password } });
    assert.equal(first.status, 401);
    assert.deepEqual(Object.keys(first.body), ['mfaId']);
    const mfaId = first.body.mfaId;
    const again = await expectError(guestClient().collection(name).authWithPassword(email, password, { mfaId }), 400);
    assert.equal(again.response.message, 'A different authentication method is required.');
    const { otpId } = await guestClient().collection(name).requestOTP(email);
    const code = (await waitForMail(email)).match(/<strong>(\d{6})<\/strong>/)[1];
    const pb = guestClient();
    const auth = await pb.collection(name).authWithOTP(otpId, code, { mfaId });
    assert.equal(auth.record.email, email);
    assert.ok(pb.authStore.isValid);
    const reused = await expectError(guestClient().collection(name).authWithPassword(email, password, { mfaId }), 400);
    assert.equal(reused.response.message, 'Invalid or expired MFA session.');
  } finally {
    await dropCollections(su, name);
  }
});

test('OAuth2: a provider user signs up, is linked in _externalAuths, and signs in again', async () => {
  const methods = await guestClient().collection(NAME).listAuthMethods();
  const p = methods.oauth2.providers[0];
  const redirectUri = 'http://app.example.com/callback';
  const user = { sub: `sub-${rand()}`, email: `o_${rand(12)}@example.com`, email_verified: true, name: 'Olive' };
  const code = provider.authorize(user, { codeChallenge: p.codeChallenge, redirectUri });
  const pb = guestClient();
  const auth = await pb.collection(NAME).authWithOAuth2Code('oidc', code, p.codeVerifier, redirectUri, { name: 'From createData' });
  assert.equal(auth.meta.isNew, true);
  assert.equal(auth.meta.id, user.sub);
  assert.equal(auth.meta.email, user.email);
  assert.equal(auth.record.email, user.email);
  assert.equal(auth.record.name, 'From createData');
  assert.equal(auth.record.verified, true);
  const links = await su.collection('_externalAuths').getFullList({ filter: `recordRef = "${auth.record.id}"` });
  assert.equal(links.length, 1);
  assert.equal(links[0].provider, 'oidc');
  assert.equal(links[0].providerId, user.sub);

  const p2 = (await guestClient().collection(NAME).listAuthMethods()).oauth2.providers[0];
  const code2 = provider.authorize(user, { codeChallenge: p2.codeChallenge, redirectUri });
  const second = await guestClient().collection(NAME).authWithOAuth2Code('oidc', code2, p2.codeVerifier, redirectUri);
  assert.equal(second.meta.isNew, false);
  assert.equal(second.record.id, auth.record.id);

  const p3 = (await guestClient().collection(NAME).listAuthMethods()).oauth2.providers[0];
  const code3 = provider.authorize(user, { codeChallenge: p3.codeChallenge, redirectUri });
  const bad = await expectError(guestClient().collection(NAME).authWithOAuth2Code('oidc', code3, 'wrong-verifier-' + rand(30), redirectUri), 400);
  assert.equal(bad.response.message, 'Failed to fetch OAuth2 token.');
  await expectError(guestClient().collection(NAME).authWithOAuth2Code('github', 'x', 'y', redirectUri), 400, {
    provider: 'validation_invalid_provider',
  });
});

test('OAuth2 links an existing account by the provider email', async () => {
  const { email, record } = await member();
  const p = (await guestClient().collection(NAME).listAuthMethods()).oauth2.providers[0];
  const redirectUri = 'http://app.example.com/callback';
  const code = provider.authorize({ sub: `sub-${rand()}`, email, email_verified: true }, { codeChallenge: p.codeChallenge, redirectUri });
  const auth = await guestClient().collection(NAME).authWithOAuth2Code('oidc', code, p.codeVerifier, redirectUri);
  assert.equal(auth.record.id, record.id);
  assert.equal(auth.meta.isNew, false);
});
