// The ground the other files stand on: the target answers by hostname, and superusers sign in.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  PB_URL, SUPERUSER_EMAIL, superuserClient, guestClient, expectError, raw, ID_RE, DATE_RE,
} from './lib/setup.mjs';

test('health answers through the SDK', async () => {
  const h = await guestClient().health.check();
  assert.equal(h.code, 200);
  assert.equal(h.message, 'API is healthy.');
  assert.deepEqual(h.data, {});
});

test('superuser signs in with a password', async () => {
  const pb = await superuserClient();
  const rec = pb.authStore.record;
  assert.equal(rec.collectionName, '_superusers');
  assert.equal(rec.collectionId, 'pbc_3142635823');
  assert.equal(rec.email, SUPERUSER_EMAIL);
  assert.match(rec.id, ID_RE);
  assert.match(rec.created, DATE_RE);
  assert.ok(!('password' in rec) && !('tokenKey' in rec));
  assert.equal(pb.authStore.token.split('.').length, 3);
  // An authenticated health check carries the superuser extras.
  const h = await pb.health.check();
  assert.equal(h.code, 200);
  assert.equal(typeof h.data.canBackup, 'boolean');
});

test('a wrong superuser password is a 400 without details', async () => {
  const err = await expectError(
    guestClient().collection('_superusers').authWithPassword(SUPERUSER_EMAIL, 'wrong-password-123'),
    400,
  );
  assert.equal(err.response.message, 'Failed to authenticate.');
  assert.deepEqual(err.response.data, {});
});

test('responses are JSON with the security headers', async () => {
  const res = await raw('GET', '/api/health');
  assert.equal(res.status, 200);
  assert.match(res.headers.get('content-type'), /^application\/json/);
  assert.equal(res.headers.get('x-content-type-options'), 'nosniff');
  assert.ok(PB_URL.startsWith('http://'));
});
