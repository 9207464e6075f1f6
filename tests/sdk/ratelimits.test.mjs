// settings.rateLimits: rules by `collection:action` tag, `METHOD /path` and `/path/` prefix,
// per audience, answered with 429 in the error envelope; superusers are exempt, rule changes
// apply at once, and invalid rules are refused. Every rule names this file's own collection,
// so test files running alongside are never limited.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { superuserClient, guestClient, expectError, dropCollections, uniqueName, rand, raw } from './lib/setup.mjs';

const R = uniqueName('limited');
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
  await su.settings.update({ rateLimits: { enabled: false, rules: DEFAULT_RULES } });
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
