// Every OAuth2 provider PocketBase 0.40 ships (Apple aside), each pointed at a local fake that
// speaks the provider's token and user-info JSON: auth-methods lists it as PocketBase does, the
// code exchange and the provider's user mapping give PocketBase's AuthUser fields in `meta`, a
// new user is created and linked, and a second sign-in finds the link.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { superuserClient, guestClient, expectError, dropCollections, uniqueName, DATE_RE } from './lib/setup.mjs';
import { PROVIDERS, person, startFakes } from './lib/oauth2-fakes.mjs';

const NAME = uniqueName('oauth2_all');
const CLIENT = { clientId: 'warren-client-1', clientSecret: 'warren-secret-1' };
const REDIRECT = 'http://app.example.com/callback';
let su;
let fakes;

before(async () => {
  su = await superuserClient();
  fakes = await startFakes(CLIENT);
  await su.collections.create({
    name: NAME,
    type: 'auth',
    createRule: '',
    fields: [
      { name: 'name', type: 'text' },
      { name: 'handle', type: 'text' },
      { name: 'providerId', type: 'text' },
    ],
    oauth2: {
      enabled: true,
      mappedFields: { name: 'name', username: 'handle', id: 'providerId' },
      providers: PROVIDERS.map((p) => fakes.config(p)),
    },
  });
});

after(async () => {
  await dropCollections(su, NAME);
  await fakes?.close();
});

async function listing(name) {
  const methods = await guestClient().collection(NAME).listAuthMethods();
  return methods.oauth2.providers.find((p) => p.name === name);
}

/** auth-methods, the provider's browser leg, then the code exchange. */
async function signIn(provider, user, createData = undefined) {
  const p = await listing(provider.name);
  const code = fakes.authorize(provider, user, { codeChallenge: p.codeChallenge, redirectUri: REDIRECT });
  return guestClient().collection(NAME).authWithOAuth2Code(provider.name, code, p.codeVerifier, REDIRECT, createData);
}

test('auth-methods lists every provider in the configured order, as PocketBase does', async () => {
  const methods = await guestClient().collection(NAME).listAuthMethods();
  assert.equal(methods.oauth2.enabled, true);
  const listed = methods.oauth2.providers;
  assert.deepEqual(listed.map((p) => p.name), PROVIDERS.map((p) => p.name));
  for (const [i, provider] of PROVIDERS.entries()) {
    const p = listed[i];
    const at = `${provider.name}`;
    assert.equal(p.displayName, provider.display, at);
    assert.equal(p.authUrl, p.authURL, at);
    assert.equal(p.state.length, 30, at);
    assert.ok(p.authURL.endsWith('&redirect_uri='), at);
    const url = new URL(p.authURL);
    assert.equal(`${url.origin}${url.pathname}`, fakes.config(provider).authURL, at);
    const q = url.searchParams;
    assert.equal(q.get('client_id'), CLIENT.clientId, at);
    assert.equal(q.get('response_type'), 'code', at);
    assert.equal(q.get('state'), p.state, at);
    assert.equal(q.get('scope'), provider.scope, at);
    if (provider.pkce) {
      assert.equal(p.codeVerifier.length, 43, at);
      assert.equal(p.codeChallengeMethod, 'S256', at);
      assert.equal(q.get('code_challenge'), p.codeChallenge, at);
      assert.equal(q.get('code_challenge_method'), 'S256', at);
    } else {
      assert.deepEqual([p.codeVerifier, p.codeChallenge, p.codeChallengeMethod], ['', '', ''], at);
      assert.equal(q.get('code_challenge'), null, at);
    }
  }
});

for (const provider of PROVIDERS) {
  test(`${provider.name}: the provider's user signs up with PocketBase's mapping, then signs in by the link`, async () => {
    const user = person();
    const expected = { refreshToken: undefined, ...provider.expect(user) };
    // The collection's email field is required: where the provider vouches for no address,
    // the client supplies one.
    const createData = expected.email ? undefined : { email: `own_${user.email}` };
    if (process.env.SDK_TARGET === 'pocketbase' && provider.pocketbaseRefuses) {
      // PocketBase 0.40.6 reads this provider's answer with a case-sensitive JSON decoder and
      // misses a field it names in another case: every such user is refused.
      const err = await expectError(signIn(provider, user, createData), 400);
      assert.equal(err.response.message, 'Failed to fetch OAuth2 user.');
      return;
    }
    const auth = await signIn(provider, user, createData);
    const meta = auth.meta;
    for (const key of ['id', 'name', 'username', 'email', 'avatarURL']) {
      assert.equal(meta[key], expected[key], `meta.${key}`);
    }
    assert.equal(meta.avatarUrl, expected.avatarURL, 'meta.avatarUrl');
    assert.equal(meta.isNew, true);
    assert.match(meta.accessToken, /^at-/);
    assert.equal(meta.refreshToken, expected.refreshToken ?? `rt-${meta.accessToken}`);
    assert.match(meta.expiry, DATE_RE);
    const inOneHour = Date.now() + 3600_000;
    assert.ok(Math.abs(Date.parse(meta.expiry.replace(' ', 'T')) - inOneHour) < 120_000, meta.expiry);
    assert.deepEqual(meta.rawUser, { ...provider.user(user), ...(provider.rawExtra || {}) });

    const record = auth.record;
    assert.equal(record.collectionName, NAME);
    assert.equal(record.name, expected.name.trim() ? expected.name : '');
    assert.equal(record.handle, expected.username);
    assert.equal(record.providerId, expected.id);
    if (expected.email) {
      assert.equal(record.email, expected.email);
      assert.equal(record.verified, true);
    } else {
      assert.equal(record.email, createData.email);
      assert.equal(record.verified, false);
    }
    const links = await su.collection('_externalAuths').getFullList({ filter: `recordRef = "${record.id}"` });
    assert.deepEqual(links.map((l) => [l.provider, l.providerId]), [[provider.name, expected.id]]);

    const again = await signIn(provider, user);
    assert.equal(again.meta.isNew, false);
    assert.equal(again.record.id, record.id);
    assert.equal(again.meta.id, expected.id);
    assert.notEqual(again.meta.accessToken, meta.accessToken);
  });
}

test('an inactive provider account is refused', async () => {
  const gitea = PROVIDERS.find((p) => p.name === 'gitea');
  const err = await expectError(signIn(gitea, { ...person(), inactive: true }), 400);
  assert.equal(err.response.message, 'Failed to fetch OAuth2 user.');
});

test('a code the provider refuses is a 400 on the token', async () => {
  const github = PROVIDERS.find((p) => p.name === 'github');
  const p = await listing('github');
  fakes.authorize(github, person(), { codeChallenge: p.codeChallenge, redirectUri: REDIRECT });
  const err = await expectError(
    guestClient().collection(NAME).authWithOAuth2Code('github', 'not-a-code', p.codeVerifier, REDIRECT),
    400,
  );
  assert.equal(err.response.message, 'Failed to fetch OAuth2 token.');
});

test('superusers list every provider PocketBase knows, in its order', async () => {
  const list = await su.send('/api/collections/meta/oauth2-providers', {});
  assert.deepEqual(list.map((p) => p.name), [
    'apple', 'google', 'microsoft', 'yandex', 'facebook', 'instagram2', 'github', 'gitlab',
    'bitbucket', 'gitee', 'gitea', 'discord', 'twitter', 'kakao', 'vk', 'linear', 'notion',
    'monday', 'lark', 'box', 'spotify', 'trakt', 'twitch', 'patreon', 'strava', 'wakatime',
    'livechat', 'mailcow', 'planningcenter', 'oidc', 'oidc2', 'oidc3',
  ]);
  const display = Object.fromEntries(list.map((p) => [p.name, p.displayName]));
  for (const provider of PROVIDERS) assert.equal(display[provider.name], provider.display);
  assert.equal(display.apple, 'Apple');
  for (const p of list) assert.deepEqual(Object.keys(p).sort(), ['displayName', 'logo', 'name']);
  await expectError(guestClient().send('/api/collections/meta/oauth2-providers', {}), 401);
});
