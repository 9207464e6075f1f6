// OpenID Connect sign-in from the id token: with no user-info URL the provider's id token is
// the user, accepted only when signed by a key of the provider's key set and stating this
// client as audience, the configured issuer, a live expiry and (where the server sent one) the
// sign-in's nonce. Runs against the local provider on loopback.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { superuserClient, guestClient, expectError, dropCollections, uniqueName, rand, PB_URL } from './lib/setup.mjs';
import { startProvider } from './lib/oidc.mjs';

const NAME = uniqueName('oidc_users');
const CLIENT = { clientId: 'warren-oidc-client', clientSecret: 'warren-oidc-secret-1' };
const REDIRECT = 'http://app.example.com/callback';
let su;
let provider;

before(async () => {
  su = await superuserClient();
  provider = await startProvider(CLIENT);
  await su.collections.create({
    name: NAME,
    type: 'auth',
    createRule: '',
    oauth2: {
      enabled: true,
      mappedFields: { name: 'name', avatarURL: 'avatar' },
      providers: [{
        name: 'oidc', displayName: 'Local ID', ...CLIENT,
        authURL: provider.authURL, tokenURL: provider.tokenURL, userInfoURL: '',
        extra: { jwksURL: provider.jwksURL, issuers: [provider.issuer] },
      }],
    },
    fields: [
      { name: 'name', type: 'text' },
      { name: 'avatar', type: 'file', maxSelect: 1, maxSize: 4096, mimeTypes: ['image/png', 'image/jpeg'] },
    ],
  });
});

after(async () => {
  await dropCollections(su, NAME);
  await provider?.close();
});

/** Runs one sign-in: auth-methods, the provider's browser leg, then the code exchange. */
async function signIn(user, idToken = null) {
  const p = (await guestClient().collection(NAME).listAuthMethods()).oauth2.providers[0];
  const nonce = new URL(p.authURL).searchParams.get('nonce');
  const code = provider.authorize(user, { codeChallenge: p.codeChallenge, redirectUri: REDIRECT, nonce, idToken });
  return guestClient().collection(NAME).authWithOAuth2Code('oidc', code, p.codeVerifier, REDIRECT);
}

function newUser() {
  return { sub: `sub-${rand()}`, email: `i_${rand(12)}@example.com`, email_verified: true, name: 'Ida Token' };
}

test('with no user-info URL the verified id token signs the user up, then in', async () => {
  const user = newUser();
  const auth = await signIn(user);
  assert.equal(auth.meta.isNew, true);
  assert.equal(auth.meta.id, user.sub);
  assert.equal(auth.meta.email, user.email);
  assert.equal(auth.meta.rawUser.iss, provider.issuer);
  assert.equal(auth.meta.rawUser.aud, CLIENT.clientId);
  assert.equal(auth.record.email, user.email);
  assert.equal(auth.record.name, 'Ida Token');
  assert.equal(auth.record.verified, true);
  const again = await signIn(user);
  assert.equal(again.meta.isNew, false);
  assert.equal(again.record.id, auth.record.id);
});

test('id tokens signed by another key, for another audience or issuer, or expired are refused', async () => {
  const refused = async (idToken) => {
    const err = await expectError(signIn(newUser(), idToken), 400);
    assert.equal(err.response.message, 'Failed to fetch OAuth2 user.');
  };
  await refused({ rogue: true });
  await refused({ aud: 'someone-else' });
  await refused({ iss: 'http://127.0.0.1:1/not-the-issuer' });
  await refused({ exp: Math.floor(Date.now() / 1000) - 3600 });
});

test('a nonce the server sent must come back unchanged', async (t) => {
  const p = (await guestClient().collection(NAME).listAuthMethods()).oauth2.providers[0];
  if (!new URL(p.authURL).searchParams.get('nonce')) {
    t.skip('this server sends no nonce');
    return;
  }
  const err = await expectError(signIn(newUser(), { nonce: 'replayed-' + rand(20) }), 400);
  assert.equal(err.response.message, 'Failed to fetch OAuth2 user.');
  const ok = await signIn(newUser());
  assert.equal(ok.meta.isNew, true);
});

test('the Apple client secret is an ES256 JWT from the team id, key id and private key', async () => {
  const { generateKeyPairSync, verify } = await import('node:crypto');
  const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const pem = privateKey.export({ type: 'pkcs8', format: 'pem' });
  const body = { clientId: 'com.example.web', teamId: 'TEAM123456', keyId: 'KEY1234567', privateKey: pem, duration: 3600 };
  const res = await su.send('/api/settings/apple/generate-client-secret', { method: 'POST', body });
  const [h, c, s] = res.secret.split('.');
  const header = JSON.parse(Buffer.from(h, 'base64url').toString());
  const claims = JSON.parse(Buffer.from(c, 'base64url').toString());
  assert.equal(header.alg, 'ES256');
  assert.equal(header.kid, 'KEY1234567');
  assert.equal(claims.iss, 'TEAM123456');
  assert.equal(claims.sub, 'com.example.web');
  assert.deepEqual([claims.aud].flat(), ['https://appleid.apple.com']);
  assert.equal(claims.exp - claims.iat, 3600);
  assert.ok(verify('sha256', Buffer.from(`${h}.${c}`), { key: publicKey, dsaEncoding: 'ieee-p1363' }, Buffer.from(s, 'base64url')));

  const bad = await expectError(
    su.send('/api/settings/apple/generate-client-secret', { method: 'POST', body: { ...body, teamId: 'short', privateKey: 'nope', duration: 0 } }),
    400,
  );
  assert.equal(bad.response.message, 'Invalid client secret data.');
  assert.deepEqual(Object.keys(bad.response.data).sort(), ['duration', 'privateKey', 'teamId']);
  assert.equal(bad.response.data.privateKey.code, 'validation_match_invalid');
  await expectError(guestClient().send('/api/settings/apple/generate-client-secret', { method: 'POST', body }), 401);
});

// A 1×1 PNG.
const PNG = Buffer.from(
  'iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg==',
  'base64',
);

test('the provider picture is downloaded into the mapped file field on sign-up', async () => {
  // Warren fetches loopback pictures only because the suite starts it with the test provider
  // allowance; PocketBase never fetches private or loopback addresses.
  const fetchesLoopback = process.env.SDK_TARGET === 'warren';
  const user = { ...newUser(), picture: provider.serveFile(`p_${rand()}.png`, 'image/png', PNG) };
  const auth = await signIn(user);
  assert.equal(auth.meta.avatarURL, user.picture);
  if (!fetchesLoopback) {
    assert.equal(auth.record.avatar, '');
    return;
  }
  assert.match(auth.record.avatar, /^p_\w+\.png$/);
  const res = await fetch(`${PB_URL}/api/files/${auth.record.collectionId}/${auth.record.id}/${auth.record.avatar}`);
  assert.equal(res.status, 200);
  assert.deepEqual(Buffer.from(await res.arrayBuffer()), PNG);

  // Pictures the field refuses (type, size) are left out; the sign-up still succeeds.
  const text = await signIn({ ...newUser(), picture: provider.serveFile(`t_${rand()}.png`, 'text/plain', 'not a picture at all') });
  assert.equal(text.record.avatar, '');
  const big = await signIn({ ...newUser(), picture: provider.serveFile(`b_${rand()}.png`, 'image/png', Buffer.concat([PNG, Buffer.alloc(8192)])) });
  assert.equal(big.record.avatar, '');
  // An existing account keeps its record; the picture is only taken at sign-up.
  const again = await signIn({ ...user, picture: provider.serveFile(`q_${rand()}.png`, 'image/png', PNG) });
  assert.equal(again.record.avatar, auth.record.avatar);
});
