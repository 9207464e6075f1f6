// Fills a running PocketBase (any release from 0.23 on) with what a long-lived project holds:
// a collection with every field type that release has, records with files, users with
// passwords, an auth collection with OAuth2 providers configured and one left as created, MFA
// and OTP, a view, an external auth link, a pending OTP and MFA, and tokens. Writes what the
// read checks need (ids, tokens, the OTP's password) as JSON to the file named by STATE.
//
//   PB_URL=http://127.0.0.1:PORT PB_VERSION=0.27.2 SU_EMAIL=… SU_PASSWORD=… STATE=out.json \
//     node import/seed.mjs
import { writeFileSync } from 'node:fs';
import { client, must, atLeast, PNG } from './http.mjs';

const version = process.env.PB_VERSION;
const call = client(process.env.PB_URL);
const PASSWORD = 'import-password-123';

const su = await must(call, 'POST', '/api/collections/_superusers/auth-with-password', {
  body: { identity: process.env.SU_EMAIL, password: process.env.SU_PASSWORD },
});
const token = su.token;
const as = (method, path, opts = {}) => must(call, method, path, { token, ...opts });

// users: the stock auth collection, with OAuth2 providers configured.
const users = await as('GET', '/api/collections/users');
await as('PATCH', '/api/collections/users', {
  body: {
    listRule: '',
    viewRule: '',
    oauth2: {
      enabled: true,
      providers: [
        { name: 'github', clientId: 'gh-client', clientSecret: 'gh-secret' },
        { name: 'google', clientId: 'g-client', clientSecret: 'g-secret', displayName: 'Google!' },
      ],
    },
  },
});

// members: MFA with password and OTP as the two factors.
await as('POST', '/api/collections', {
  body: {
    name: 'members',
    type: 'auth',
    listRule: '',
    viewRule: '',
    fields: [{ name: 'nickname', type: 'text' }],
    otp: { enabled: true, duration: 3600, length: 6 },
    mfa: { enabled: true, duration: 3600 },
  },
});

// staff: an auth collection left as created (no providers: Go writes its empty lists as null).
await as('POST', '/api/collections', { body: { name: 'staff', type: 'auth', fields: [] } });

const fields = [
  { name: 'title', type: 'text', required: true, max: 100 },
  { name: 'body', type: 'editor' },
  { name: 'views', type: 'number', min: 0 },
  { name: 'published', type: 'bool' },
  { name: 'contact', type: 'email', exceptDomains: ['spam.test'] },
  { name: 'site', type: 'url' },
  { name: 'due', type: 'date' },
  { name: 'tags', type: 'select', values: ['a', 'b', 'c'], maxSelect: 3 },
  { name: 'kind', type: 'select', values: ['news', 'note'], maxSelect: 1 },
  { name: 'cover', type: 'file', maxSelect: 1, mimeTypes: ['image/png'], thumbs: ['2x2'] },
  { name: 'docs', type: 'file', maxSelect: 5 },
  { name: 'secret', type: 'file', maxSelect: 1, protected: true },
  { name: 'author', type: 'relation', collectionId: users.id, maxSelect: 1 },
  { name: 'meta', type: 'json' },
  { name: 'created', type: 'autodate', onCreate: true },
  { name: 'updated', type: 'autodate', onCreate: true, onUpdate: true },
];
if (atLeast(version, 27)) fields.push({ name: 'place', type: 'geoPoint' });
const posts = await as('POST', '/api/collections', {
  body: {
    name: 'posts',
    type: 'base',
    listRule: '',
    viewRule: '',
    fields,
    indexes: ['CREATE INDEX `idx_posts_title` ON `posts` (`title`)'],
  },
});

await as('POST', '/api/collections', {
  body: {
    name: 'post_titles',
    type: 'view',
    listRule: '',
    viewRule: '',
    viewQuery: 'SELECT id, title, views FROM posts WHERE published = TRUE',
  },
});

const state = { version, users: {}, posts: [], superuserToken: token };

for (const [i, name] of ['alice', 'bob'].entries()) {
  const rec = await as('POST', '/api/collections/users/records', {
    body: {
      email: `${name}@example.com`,
      emailVisibility: i === 0,
      password: PASSWORD,
      passwordConfirm: PASSWORD,
      name: name[0].toUpperCase() + name.slice(1),
      verified: i === 0,
    },
  });
  const auth = await must(call, 'POST', '/api/collections/users/auth-with-password', {
    body: { identity: `${name}@example.com`, password: PASSWORD },
  });
  state.users[name] = { id: rec.id, token: auth.token };
}

for (let i = 0; i < 4; i++) {
  const form = new FormData();
  form.append('title', `post ${i}`);
  form.append('body', `<p>body of post ${i}, long enough to be cut by an excerpt</p>`);
  form.append('views', String(i * 10));
  form.append('published', String(i % 2 === 0));
  form.append('contact', `p${i}@example.com`);
  form.append('site', `https://example.com/${i}`);
  form.append('due', `2024-0${i + 1}-15 10:00:00.000Z`);
  for (const tag of ['a', 'b', 'c'].slice(0, i)) form.append('tags', tag);
  form.append('kind', i % 2 ? 'note' : 'news');
  form.append('author', i % 2 ? state.users.bob.id : state.users.alice.id);
  form.append('meta', JSON.stringify({ n: i, list: [1, 2, i], nested: { ok: true } }));
  if (atLeast(version, 27)) form.append('place', JSON.stringify({ lon: 10 + i, lat: 20 - i }));
  form.append('cover', new Blob([PNG], { type: 'image/png' }), `cover${i}.png`);
  for (let d = 0; d < i; d++) {
    form.append('docs', new Blob([`document ${d} of post ${i}\n`], { type: 'text/plain' }), `doc${d}.txt`);
  }
  form.append('secret', new Blob([`secret of post ${i}\n`], { type: 'text/plain' }), 'secret.txt');
  const rec = await as('POST', '/api/collections/posts/records', { form });
  state.posts.push(rec.id);
}

// A member with MFA pending: the password step answers 401 with an mfaId, and an OTP (made
// directly, since no mail server is configured) completes it later.
const member = await as('POST', '/api/collections/members/records', {
  body: { email: 'carol@example.com', password: PASSWORD, passwordConfirm: PASSWORD, nickname: 'carol' },
});
const mfa = await call('POST', '/api/collections/members/auth-with-password', {
  body: { identity: 'carol@example.com', password: PASSWORD },
});
if (mfa.status !== 401 || !mfa.body?.mfaId) throw new Error(`no MFA challenge: ${JSON.stringify(mfa)}`);
const otpPassword = '424242';
const membersInfo = await as('GET', '/api/collections/members');
const otp = await as('POST', '/api/collections/_otps/records', {
  body: { collectionRef: membersInfo.id, recordRef: member.id, password: otpPassword },
});
state.member = { id: member.id, mfaId: mfa.body.mfaId, otpId: otp.id, otpPassword };

// An OAuth2 link of alice's account.
await as('POST', '/api/collections/_externalAuths/records', {
  body: {
    collectionRef: users.id,
    recordRef: state.users.alice.id,
    provider: 'github',
    providerId: 'gh-12345',
  },
});

state.postsId = posts.id;
writeFileSync(process.env.STATE, JSON.stringify(state, null, 2));
console.log(`seeded PocketBase ${version}: ${state.posts.length} posts, users, members, staff, a view`);
