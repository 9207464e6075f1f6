// The read checks of the import suite: the same requests against any server holding the seeded
// data (the PocketBase that wrote it, PocketBase 0.40.6 upgrading it, a Warren tenant that
// imported it, PocketBase serving Warren's export). Writes `{check: {status, body}}` as JSON to
// ANSWERS; compare.mjs compares two such files.
//
//   PB_URL=… STATE=state.json ANSWERS=out.json node import/read.mjs
import { readFileSync, writeFileSync } from 'node:fs';
import { createHash } from 'node:crypto';
import { client } from './http.mjs';

const state = JSON.parse(readFileSync(process.env.STATE, 'utf8'));
const call = client(process.env.PB_URL);
const PASSWORD = 'import-password-123';
const answers = {};
const alice = state.users.alice;
const [p0, p1, p2] = state.posts;

async function check(name, method, path, opts) {
  answers[name] = await call(method, path, opts);
  return answers[name];
}

/** A file download as status, type and a digest of the bytes. */
async function file(name, path) {
  const res = await call('GET', path, { raw: true });
  const type = res.headers.get('content-type');
  answers[name] = {
    status: res.status,
    body: type?.startsWith('application/json')
      ? JSON.parse(res.bytes.toString('utf8'))
      : { type, sha256: createHash('sha256').update(res.bytes).digest('hex') },
  };
  return answers[name];
}

// Old tokens, issued by the PocketBase that wrote the data, still work.
const su = state.superuserToken;
await check('superuser old token: collections', 'GET', '/api/collections?perPage=100&sort=name', { token: su });
await check('user old token: auth-refresh', 'POST', '/api/collections/users/auth-refresh', { token: alice.token });

// Records: list, view, expand, filters, fields, pagination.
await check('list posts', 'GET', '/api/collections/posts/records?sort=title');
await check('view post', 'GET', `/api/collections/posts/records/${p1}`);
await check('expand author', 'GET', '/api/collections/posts/records?sort=title&expand=author');
await check('filter numbers and bools', 'GET',
  `/api/collections/posts/records?sort=-views&filter=${encodeURIComponent('views >= 10 && published = false')}`);
await check('filter multi select', 'GET',
  `/api/collections/posts/records?sort=title&filter=${encodeURIComponent("tags ~ 'b'")}`);
await check('filter through relation', 'GET',
  `/api/collections/posts/records?sort=title&filter=${encodeURIComponent("author.name = 'Bob'")}`);
await check('filter json and dates', 'GET',
  `/api/collections/posts/records?sort=title&filter=${encodeURIComponent("meta.n > 1 && due > '2024-02-01'")}`);
await check('fields and excerpt', 'GET',
  '/api/collections/posts/records?sort=title&fields=id,title,body:excerpt(12,true)');
await check('page two', 'GET', '/api/collections/posts/records?sort=title&perPage=3&page=2');
await check('view collection', 'GET', '/api/collections/post_titles/records?sort=title');
await check('users as guest', 'GET', '/api/collections/users/records?sort=name');
await check('users as superuser', 'GET', '/api/collections/users/records?sort=name', { token: su });

// Files: plain, several per field, thumbnail, protected with and without a file token.
const post = answers['view post'].body;
await file('download cover', `/api/files/posts/${p1}/${post.cover}`);
await file('download doc', `/api/files/posts/${p1}/${post.docs[0]}`);
await file('download thumb', `/api/files/posts/${p1}/${post.cover}?thumb=2x2`);
await file('protected without token', `/api/files/posts/${p1}/${post.secret}`);
const fileToken = await call('POST', '/api/files/token', { token: su });
await file('protected with token', `/api/files/posts/${p1}/${post.secret}?token=${fileToken.body?.token}`);
const p2rec = await call('GET', `/api/collections/posts/records/${p2}`);
await file('download second doc', `/api/files/posts/${p2}/${p2rec.body.docs[1]}`);
await file('missing file', `/api/files/posts/${p0}/nope.txt`);

// Auth: the same password, wrong password, auth methods of each auth collection, OAuth2 links.
await check('password sign-in', 'POST', '/api/collections/users/auth-with-password', {
  body: { identity: 'alice@example.com', password: PASSWORD },
});
await check('wrong password', 'POST', '/api/collections/users/auth-with-password', {
  body: { identity: 'alice@example.com', password: 'not-the-password' },
});
await check('auth methods users', 'GET', '/api/collections/users/auth-methods');
await check('auth methods members', 'GET', '/api/collections/members/auth-methods');
await check('auth methods staff', 'GET', '/api/collections/staff/auth-methods');
await check('external auths of alice', 'GET',
  '/api/collections/_externalAuths/records?fields=provider,providerId,recordRef', { token: alice.token });

// MFA and OTP: the pending MFA issued by the old server completes with the OTP it stored.
await check('mfa: password step', 'POST', '/api/collections/members/auth-with-password', {
  body: { identity: 'carol@example.com', password: PASSWORD },
});
await check('mfa: otp step with the old mfaId', 'POST', '/api/collections/members/auth-with-otp', {
  body: { otpId: state.member.otpId, password: state.member.otpPassword, mfaId: state.member.mfaId },
});

// Bad input still answers in PocketBase's envelope.
await check('unknown collection', 'GET', '/api/collections/nope/records');
await check('bad filter', 'GET', `/api/collections/posts/records?filter=${encodeURIComponent('nope ==')}`);

writeFileSync(process.env.ANSWERS, JSON.stringify(answers, null, 2));
