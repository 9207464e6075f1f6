// The settings checks a superuser runs from the dashboard: pb.settings.testEmail (the template
// arrives in the SMTP sink) and pb.settings.testS3 (refused while S3 is off), with their
// validation errors and refusals for guests and regular users.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  superuserClient, guestClient, createUser, expectError, rand, raw,
} from './lib/setup.mjs';
import { useSink, waitForMail, SMTP_PORT } from './lib/mail.mjs';

test('testEmail sends the chosen template to the address', { skip: !SMTP_PORT && 'no SMTP sink' }, async () => {
  const su = await superuserClient();
  await useSink(su);
  const to = `probe-${rand(8)}@example.com`;
  assert.equal(await su.settings.testEmail('users', to, 'password-reset'), true);
  const body = await waitForMail(to);
  assert.match(body, /confirm-password-reset\//);
  const otpTo = `otp-${rand(8)}@example.com`;
  assert.equal(await su.settings.testEmail('_superusers', otpTo, 'otp'), true);
  assert.match(await waitForMail(otpTo), /123456/);
});

test('testEmail checks its form', async () => {
  const su = await superuserClient();
  await expectError(su.settings.testEmail('users', 'not-an-address', 'verification'), 400, {
    email: 'validation_is_email',
  });
  await expectError(su.settings.testEmail('users', 'a@example.com', 'welcome'), 400, {
    template: 'validation_in_invalid',
  });
  await expectError(su.settings.testEmail(`missing_${rand(6)}`, 'a@example.com', 'otp'), 400, {
    collection: 'validation_invalid_auth_collection',
  });
  const err = await expectError(su.send('/api/settings/test/email', { method: 'POST', body: {} }), 400, {
    email: 'validation_required',
    template: 'validation_required',
  });
  assert.equal(err.response.message, 'Failed to send the test email.');
});

test('testS3 is refused while S3 is off, and checks its form', async () => {
  const su = await superuserClient();
  for (const filesystem of ['storage', 'backups']) {
    const err = await expectError(su.settings.testS3(filesystem), 400, {});
    assert.equal(
      err.response.message,
      'Failed to test the S3 filesystem. Raw error: \nS3 storage filesystem is not enabled.',
    );
  }
  const err = await expectError(su.settings.testS3('elsewhere'), 400, { filesystem: 'validation_in_invalid' });
  assert.equal(err.response.message, 'Failed to test the S3 filesystem.');
});

test('the settings checks are for superusers only', async () => {
  const guest = guestClient();
  await expectError(guest.settings.testEmail('users', 'a@example.com', 'verification'), 401);
  await expectError(guest.settings.testS3('storage'), 401);
  const { pb: client } = await createUser();
  await expectError(client.settings.testEmail('users', 'a@example.com', 'verification'), 403);
  await expectError(client.settings.testS3('storage'), 403);
});

test('the SQL console and the view dry run answer in the same shape', async () => {
  const su = await superuserClient();
  const token = su.authStore.token;
  let res = await raw('POST', '/api/sql', { token, body: { query: 'select 1; select 2 as two' } });
  assert.equal(res.status, 200, res.text);
  assert.deepEqual(Object.keys(res.body).sort(), ['affectedRows', 'columns', 'execTime', 'rows']);
  assert.deepEqual(res.body.columns, [{ name: 'two', type: '', nullable: true }]);
  assert.deepEqual(res.body.rows, [['2']]);
  res = await raw('POST', '/api/sql', { token, body: { query: 'invalid' } });
  assert.equal(res.status, 400);
  assert.deepEqual(res.body.data, {});
  assert.ok(res.body.message.startsWith('Failed to execute query. Raw error:\n'), res.body.message);
  res = await raw('POST', '/api/sql', { token, body: { query: '' } });
  assert.equal(res.status, 400);
  assert.equal(res.body.data.query.code, 'validation_required');
  assert.equal((await raw('POST', '/api/sql', { body: { query: 'select 1' } })).status, 401);

  const path = '/api/collections/meta/dry-run-view';
  res = await raw('POST', path, { token, body: { query: 'select 1 as id' } });
  assert.equal(res.status, 200, res.text);
  assert.equal(res.body.fields[0].name, 'id');
  assert.equal(res.body.fields[0].type, 'text');
  assert.equal(res.body.sample[0].id, '1');
  res = await raw('POST', path, { token, body: { query: '(select 1 as id union all select 1 as id)' } });
  assert.equal(res.status, 400);
  assert.deepEqual(res.body.data, {});
  assert.ok(res.body.message.startsWith('Invalid view query. Raw error: \n'), res.body.message);
});

test('the collections meta routes answer scaffolds and OAuth2 providers', async () => {
  const su = await superuserClient();
  const scaffolds = await su.collections.getScaffolds();
  assert.deepEqual(Object.keys(scaffolds).sort(), ['auth', 'base', 'view']);
  assert.deepEqual(scaffolds.auth.fields.map((f) => f.name), ['id', 'password', 'tokenKey', 'email', 'emailVisibility', 'verified']);
  assert.deepEqual(scaffolds.base.fields.map((f) => f.name), ['id']);
  assert.deepEqual(scaffolds.view.fields, []);
  assert.equal(scaffolds.view.viewQuery, '');
  for (const scaffold of Object.values(scaffolds)) assert.equal(scaffold.id, '');
  const res = await raw('GET', '/api/collections/meta/oauth2-providers', { token: su.authStore.token });
  assert.equal(res.status, 200);
  const names = res.body.map((p) => p.name);
  for (const name of ['apple', 'google', 'github', 'gitlab', 'discord', 'oidc', 'oidc2', 'oidc3']) {
    assert.ok(names.includes(name), `${name} in ${names}`);
  }
  for (const provider of res.body) {
    assert.deepEqual(Object.keys(provider).sort(), ['displayName', 'logo', 'name']);
  }
  assert.equal(res.body.find((p) => p.name === 'github').displayName, 'GitHub');
  assert.equal((await raw('GET', '/api/collections/meta/scaffolds')).status, 401);
});
