// Login alerts and `_authOrigins`: each completed login from a new place (client IP and user
// agent) is remembered; a known record signing in from a new place gets the alert mail; the
// owner can list and delete their origins; a password change forgets them all.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { superuserClient, guestClient, expectError, dropCollections, uniqueName, rand } from './lib/setup.mjs';
import { useSink, waitForMail, countMail, SMTP_PORT } from './lib/mail.mjs';

const NAME = uniqueName('alerted');
const QUIET = uniqueName('quiet');
let su;

before(async () => {
  su = await superuserClient();
  if (SMTP_PORT) await useSink(su);
  await su.collections.create({ name: NAME, type: 'auth', createRule: '', updateRule: 'id = @request.auth.id' });
  await su.collections.create({ name: QUIET, type: 'auth', createRule: '', authAlert: { enabled: false } });
});

after(async () => {
  await dropCollections(su, NAME, QUIET);
});

async function member(collection) {
  const email = `a_${rand(12)}@example.com`;
  const password = `pw-${rand(16)}`;
  const record = await guestClient().collection(collection).create({ email, password, passwordConfirm: password });
  return { email, password, record };
}

/** Signs in with a given user agent; returns the signed-in client. */
async function signIn(collection, email, password, agent) {
  const pb = guestClient();
  await pb.collection(collection).authWithPassword(email, password, { headers: { 'User-Agent': agent } });
  return pb;
}

test('a new origin is remembered and, after the first login, alerted by mail', { skip: !SMTP_PORT }, async () => {
  const { email, password, record } = await member(NAME);
  const pb = await signIn(NAME, email, password, 'Warren-Test/A');
  let origins = await pb.collection('_authOrigins').getFullList();
  assert.equal(origins.length, 1);
  assert.equal(origins[0].recordRef, record.id);
  assert.equal(origins[0].collectionRef, record.collectionId);
  assert.match(origins[0].fingerprint, /^[0-9a-f]{32}$/);

  // The same place again: no new origin.
  await signIn(NAME, email, password, 'Warren-Test/A');
  assert.equal((await pb.collection('_authOrigins').getFullList()).length, 1);

  // A new place: a second origin and the alert.
  await signIn(NAME, email, password, 'Warren-Test/B');
  origins = await pb.collection('_authOrigins').getFullList();
  assert.equal(origins.length, 2);
  const alert = await waitForMail(email);
  assert.ok(alert.includes('We noticed a login to your Warren Tests account from a new location'), alert.slice(0, 600));
  assert.ok(alert.includes('Warren-Test/B'), 'the alert names the new user agent');

  // Known places again, then one more new place: exactly one more alert, naming it.
  await signIn(NAME, email, password, 'Warren-Test/A');
  await signIn(NAME, email, password, 'Warren-Test/C');
  const second = await waitForMail(email, { skip: 1 });
  assert.ok(second.includes('Warren-Test/C'));
  assert.equal(await countMail(email), 2);
});

test('origins are the owner\'s only: others see none, the owner may delete them', async () => {
  const a = await member(NAME);
  const b = await member(NAME);
  const pa = await signIn(NAME, a.email, a.password, 'Warren-Test/A');
  const pb = await signIn(NAME, b.email, b.password, 'Warren-Test/A');
  const [mine] = await pa.collection('_authOrigins').getFullList();
  assert.ok(mine);
  assert.deepEqual(await pb.collection('_authOrigins').getFullList({ filter: `recordRef = "${a.record.id}"` }), []);
  await expectError(pb.collection('_authOrigins').getOne(mine.id), 404);
  await expectError(pb.collection('_authOrigins').delete(mine.id), 404);
  await expectError(guestClient().collection('_authOrigins').getOne(mine.id), 404);
  const seen = await su.collection('_authOrigins').getOne(mine.id);
  assert.equal(seen.recordRef, a.record.id);
  assert.equal(await pa.collection('_authOrigins').delete(mine.id), true);
  assert.deepEqual(await pa.collection('_authOrigins').getFullList(), []);
});

test('a password change forgets every origin; authAlert off records none', async () => {
  const { email, password, record } = await member(NAME);
  const pb = await signIn(NAME, email, password, 'Warren-Test/A');
  await signIn(NAME, email, password, 'Warren-Test/B');
  assert.equal((await su.collection('_authOrigins').getFullList({ filter: `recordRef = "${record.id}"` })).length, 2);
  const next = `new-${rand(16)}`;
  await pb.collection(NAME).update(record.id, { oldPassword: password, password: next, passwordConfirm: next });
  assert.equal((await su.collection('_authOrigins').getFullList({ filter: `recordRef = "${record.id}"` })).length, 0);

  const quiet = await member(QUIET);
  await signIn(QUIET, quiet.email, quiet.password, 'Warren-Test/A');
  await signIn(QUIET, quiet.email, quiet.password, 'Warren-Test/B');
  assert.equal((await su.collection('_authOrigins').getFullList({ filter: `recordRef = "${quiet.record.id}"` })).length, 0);
});

test('deleting an auth record removes its origins', async () => {
  const { email, password, record } = await member(NAME);
  await signIn(NAME, email, password, 'Warren-Test/A');
  assert.equal((await su.collection('_authOrigins').getFullList({ filter: `recordRef = "${record.id}"` })).length, 1);
  await su.collection(NAME).delete(record.id);
  assert.equal((await su.collection('_authOrigins').getFullList({ filter: `recordRef = "${record.id}"` })).length, 0);
});
