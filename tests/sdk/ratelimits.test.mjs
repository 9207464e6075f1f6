// settings.rateLimits: rules by `collection:action` tag, `METHOD /path` and `/path/` prefix,
// per audience, answered with 429 in the error envelope; superusers are exempt, rule changes
// apply at once, and invalid rules are refused. Every rule names this file's own collection,
// so test files running alongside are never limited.
//
// This file also owns the client address the limits count (settings.trustedProxy) and
// settings.superuserIPs, which depends on it: only requests carrying this file's own header
// are ever told apart or refused, so files running alongside are never concerned.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import {
  superuserClient, guestClient, expectError, dropCollections, uniqueName, rand, raw, enableBatch,
  SUPERUSER_EMAIL, SUPERUSER_PASSWORD,
} from './lib/setup.mjs';

const R = uniqueName('limited');
const CLIENT_HEADER = 'X-Sdk-Client-IP';
let su;

const DEFAULT_RULES = [
  { label: '*:auth', audience: '', duration: 3, maxRequests: 2 },
  { label: '*:create', audience: '', duration: 5, maxRequests: 20 },
  { label: '/api/batch', audience: '', duration: 1, maxRequests: 3 },
  { label: '/api/', audience: '', duration: 10, maxRequests: 300 },
];

before(async () => {
  su = await superuserClient();
  await su.collections.create({ name: R, type: 'auth', createRule: '', listRule: '' });
});

after(async () => {
  await su.settings.update({
    rateLimits: { enabled: false, rules: DEFAULT_RULES },
    trustedProxy: { headers: [], useLeftmostIP: false },
    superuserIPs: [],
  });
  await dropCollections(su, R);
});

async function limit(rules) {
  await su.settings.update({ rateLimits: { enabled: true, rules } });
}

function newUser() {
  const password = `pw-${rand(16)}`;
  return { email: `r_${rand(12)}@example.com`, password, passwordConfirm: password };
}

async function expectLimited(promise) {
  const err = await expectError(promise, 429);
  assert.deepEqual(err.response, { data: {}, message: 'Too Many Requests.', status: 429 });
}

test('collection tags, audiences, method paths and prefixes pick the rule; superusers pass', async () => {
  await limit([
    { label: `${R}:create`, audience: '@guest', maxRequests: 2, duration: 60 },
    { label: `${R}:auth`, audience: '', maxRequests: 3, duration: 60 },
    { label: `GET /api/collections/${R}/records`, audience: '@auth', maxRequests: 1, duration: 60 },
    { label: `/api/collections/${R}/`, audience: '', maxRequests: 2, duration: 60 },
  ]);
  const user = newUser();
  await guestClient().collection(R).create(user);
  await guestClient().collection(R).create(newUser());
  await expectLimited(guestClient().collection(R).create(newUser()));
  await su.collection(R).create(newUser()); // superusers are never limited

  // `R:auth` counts every login attempt, failed or not.
  const member = guestClient();
  await member.collection(R).authWithPassword(user.email, user.password);
  await expectError(guestClient().collection(R).authWithPassword(user.email, 'wrong-password'), 400);
  await guestClient().collection(R).authWithPassword(user.email, user.password);
  await expectLimited(guestClient().collection(R).authWithPassword(user.email, user.password));

  // The guest-only create rule does not cover a signed-in caller.
  await member.collection(R).create(newUser());
  // `GET /path` for @auth: one list for the member, guests unaffected.
  await member.collection(R).getList(1, 1);
  await expectLimited(member.collection(R).getList(1, 1));
  await guestClient().collection(R).getList(1, 1);
  await guestClient().collection(R).getList(1, 1);

  // The prefix rule covers the collection's other routes.
  await guestClient().collection(R).listAuthMethods();
  await guestClient().collection(R).listAuthMethods();
  await expectLimited(guestClient().collection(R).listAuthMethods());
  const direct = await raw('GET', `/api/collections/${R}/auth-methods`);
  assert.equal(direct.status, 429);
});

test('rule changes apply at once and disabling lifts every limit', async () => {
  await limit([{ label: `${R}:create`, audience: '', maxRequests: 1, duration: 60 }]);
  await guestClient().collection(R).create(newUser());
  await expectLimited(guestClient().collection(R).create(newUser()));
  await limit([{ label: `${R}:create`, audience: '', maxRequests: 3, duration: 60 }]);
  await guestClient().collection(R).create(newUser());
  await su.settings.update({ rateLimits: { enabled: false } });
  for (let i = 0; i < 4; i++) await guestClient().collection(R).create(newUser());
});

test('invalid rules are refused', async () => {
  const bad = await expectError(
    su.settings.update({
      rateLimits: {
        enabled: true,
        rules: [
          { label: `${R}:create`, audience: '', maxRequests: 1, duration: 60 },
          { label: 'not a label!', audience: '@nobody', maxRequests: 0, duration: 1 },
        ],
      },
    }),
    400,
  );
  assert.equal(bad.response.message, 'An error occurred while saving the new settings.');
  const rules = bad.response.data.rateLimits.rules;
  assert.deepEqual(Object.keys(rules), ['1']);
  assert.equal(rules['1'].label.code, 'validation_match_invalid');
  assert.equal(rules['1'].maxRequests.code, 'validation_required');
  assert.equal(rules['1'].audience.code, 'validation_in_invalid');
  assert.equal(rules['1'].duration, undefined);
  const overlap = await expectError(
    su.settings.update({
      rateLimits: {
        enabled: true,
        rules: [
          { label: `${R}:create`, audience: '', maxRequests: 1, duration: 60 },
          { label: `${R}:create`, audience: '', maxRequests: 2, duration: 60 },
        ],
      },
    }),
    400,
  );
  assert.deepEqual(Object.keys(overlap.response.data.rateLimits.rules), ['1']);
  assert.equal(overlap.response.data.rateLimits.rules['1'].label.code, 'validation_conflicting_rate_limit_rule');
  await expectError(su.settings.update({ rateLimits: { enabled: true, rules: [] } }), 400);
  const settings = await su.settings.getAll();
  assert.equal(settings.rateLimits.enabled, false);
});

/** Send options naming the client through this file's trusted proxy header. */
const from = (ip) => ({ headers: { [CLIENT_HEADER]: ip } });

test('behind a trusted proxy each forwarded client has its own budget; other headers are ignored', async () => {
  await su.settings.update({ trustedProxy: { headers: [CLIENT_HEADER], useLeftmostIP: false } });
  await limit([{ label: `${R}:create`, audience: '', maxRequests: 1, duration: 60 }]);
  await guestClient().collection(R).create(newUser(), from('10.7.0.1'));
  await expectLimited(guestClient().collection(R).create(newUser(), from('10.7.0.1')));
  await guestClient().collection(R).create(newUser(), from('10.7.0.2'));
  // The rightmost valid address of the header's list is the client.
  await expectLimited(guestClient().collection(R).create(newUser(), from('10.7.0.3, 10.7.0.2')));
  // A header that is not trusted changes nothing: both are the peer itself.
  const other = (ip) => ({ headers: { 'X-Forwarded-For': ip } });
  await guestClient().collection(R).create(newUser(), other('10.7.0.4'));
  await expectLimited(guestClient().collection(R).create(newUser(), other('10.7.0.5')));
  // useLeftmostIP takes the first valid address instead.
  await su.settings.update({ trustedProxy: { useLeftmostIP: true } });
  await guestClient().collection(R).create(newUser(), from('garbage, 10.7.0.8, 10.7.0.9'));
  await expectLimited(guestClient().collection(R).create(newUser(), from('10.7.0.8, 10.7.0.10')));
  await su.settings.update({ rateLimits: { enabled: false }, trustedProxy: { headers: [], useLeftmostIP: false } });
});

test('a superuser outside superuserIPs is refused and one inside is served', async () => {
  const invalid = await expectError(su.settings.update({ superuserIPs: ['nope', ''] }), 400);
  assert.deepEqual(invalid.response.data.superuserIPs, {
    0: { code: 'validation_invlaid_ip_or_subnet', message: 'Invalid IP or CIDR subnet.' },
    1: { code: 'validation_required', message: 'Cannot be blank.' },
  });
  // The peer (127.0.0.1, every other test file) stays allowed.
  await su.settings.update({
    trustedProxy: { headers: [CLIENT_HEADER], useLeftmostIP: false },
    superuserIPs: ['127.0.0.1', '10.20.0.0/16'],
  });
  try {
    const inside = await su.send('/api/health', from('10.20.0.5'));
    assert.equal(inside.data.realIP, '10.20.0.5');
    assert.equal(inside.data.possibleProxyHeader, CLIENT_HEADER);
    const refused = await expectError(su.send('/api/health', from('10.30.0.1')), 403);
    assert.deepEqual(refused.response, { data: {}, message: 'You are not allowed to perform this request.', status: 403 });
    await expectError(su.collection(R).getList(1, 1, from('10.30.0.1')), 403);
    await expectError(su.settings.getAll(from('10.20.0.1, 10.30.0.1')), 403);
    await su.settings.getAll(from('10.30.0.1, 10.20.0.1'));
    // Only superusers are concerned.
    await guestClient().collection(R).getList(1, 1, from('10.30.0.1'));
    // Signing in from outside is refused as well; a wrong password is still a 400.
    const login = (password, ip) =>
      guestClient().collection('_superusers').authWithPassword(SUPERUSER_EMAIL, password, from(ip));
    const outside = await expectError(login(SUPERUSER_PASSWORD, '10.30.0.1'), 403);
    assert.equal(outside.response.message, 'You are not allowed to perform this request.');
    await expectError(login('wrong-password-1', '10.30.0.1'), 400);
    await login(SUPERUSER_PASSWORD, '10.20.9.9');
  } finally {
    await su.settings.update({ superuserIPs: [], trustedProxy: { headers: [] } });
  }
});

test('each request inside a batch counts against its own rule', async () => {
  await enableBatch(su);
  await limit([{ label: `${R}:create`, audience: '', maxRequests: 2, duration: 60 }]);
  const total = async () => (await su.collection(R).getList(1, 1)).totalItems;
  const before = await total();
  const batch = guestClient().createBatch();
  for (let i = 0; i < 3; i++) batch.collection(R).create(newUser());
  const failed = await expectError(batch.send(), 400);
  assert.equal(failed.response.message, 'Batch transaction failed.');
  assert.deepEqual(failed.response.data.requests['2'], {
    code: 'batch_request_failed',
    message: 'Batch request failed.',
    response: { data: {}, message: 'Too Many Requests.', status: 429 },
  });
  assert.equal(await total(), before);
  // Batch items have counters of their own: the route called directly still has its budget.
  await guestClient().collection(R).create(newUser());
  await guestClient().collection(R).create(newUser());
  await expectLimited(guestClient().collection(R).create(newUser()));
  const again = guestClient().createBatch();
  again.collection(R).create(newUser());
  await expectError(again.send(), 400);
  await su.settings.update({ rateLimits: { enabled: false } });
});
