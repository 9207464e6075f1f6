// A small OAuth2/OIDC provider on 127.0.0.1 for the auth tests: authorization code with PKCE
// (S256), a real token endpoint that checks client credentials, code, redirect URI and verifier
// and answers with an RS256-signed id token, a userinfo endpoint and the JSON Web Key Set at
// /jwks. `authorize(user)` plays the browser: it registers a user for the next code and returns
// that code; its `idToken` option bends the id token (other audience, issuer, expiry, nonce or a
// signature by a key the key set does not hold) for the tests of refusals. `/files/<name>` serves
// pictures registered with `serveFile`.
import http from 'node:http';
import { createHash, randomBytes, generateKeyPairSync, sign } from 'node:crypto';

const b64url = (value) => Buffer.from(value).toString('base64url');

function signJwt(claims, privateKey, kid) {
  const input = `${b64url(JSON.stringify({ alg: 'RS256', typ: 'JWT', kid }))}.${b64url(JSON.stringify(claims))}`;
  return `${input}.${sign('RSA-SHA256', Buffer.from(input), privateKey).toString('base64url')}`;
}

export async function startProvider({ clientId, clientSecret }) {
  const codes = new Map(); // code -> { user, challenge, redirectUri, nonce, idToken }
  const tokens = new Map(); // access token -> user
  const files = new Map(); // path -> { type, body, delayMs }
  const signing = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const rogue = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const kid = randomBytes(6).toString('hex');
  let base = '';
  const server = http.createServer(async (req, res) => {
    const url = new URL(req.url, 'http://127.0.0.1');
    const send = (status, body) => {
      res.writeHead(status, { 'Content-Type': 'application/json' });
      res.end(JSON.stringify(body));
    };
    if (req.method === 'POST' && url.pathname === '/token') {
      let raw = '';
      for await (const chunk of req) raw += chunk;
      const form = new URLSearchParams(raw);
      let id = form.get('client_id');
      let secret = form.get('client_secret');
      const basic = req.headers.authorization || '';
      if (basic.startsWith('Basic ')) {
        const [u, p] = Buffer.from(basic.slice(6), 'base64').toString().split(':');
        id = decodeURIComponent(u);
        secret = decodeURIComponent(p);
      }
      if (id !== clientId || secret !== clientSecret) return send(401, { error: 'invalid_client' });
      const grant = codes.get(form.get('code'));
      codes.delete(form.get('code'));
      if (!grant || form.get('grant_type') !== 'authorization_code') return send(400, { error: 'invalid_grant' });
      if (grant.redirectUri !== form.get('redirect_uri')) return send(400, { error: 'invalid_grant' });
      const verifier = form.get('code_verifier') || '';
      const challenge = createHash('sha256').update(verifier).digest('base64url');
      if (challenge !== grant.challenge) return send(400, { error: 'invalid_grant' });
      const access = randomBytes(16).toString('hex');
      tokens.set(access, grant.user);
      const now = Math.floor(Date.now() / 1000);
      const bend = grant.idToken || {};
      const claims = {
        iss: bend.iss || base,
        aud: bend.aud || clientId,
        exp: bend.exp || now + 300,
        iat: now,
        ...grant.user,
      };
      const nonce = 'nonce' in bend ? bend.nonce : grant.nonce;
      if (nonce) claims.nonce = nonce;
      const idToken = signJwt(claims, (bend.rogue ? rogue : signing).privateKey, kid);
      return send(200, { access_token: access, token_type: 'Bearer', expires_in: 3600, refresh_token: 'r-' + access, id_token: idToken });
    }
    if (req.method === 'GET' && url.pathname === '/jwks') {
      const jwk = signing.publicKey.export({ format: 'jwk' });
      return send(200, { keys: [{ ...jwk, kid, alg: 'RS256', use: 'sig' }] });
    }
    if (req.method === 'GET' && files.has(url.pathname)) {
      const file = files.get(url.pathname);
      if (file.delayMs) await new Promise((r) => setTimeout(r, file.delayMs));
      res.writeHead(200, { 'Content-Type': file.type, 'Content-Length': file.body.length });
      return res.end(file.body);
    }
    if (req.method === 'GET' && url.pathname === '/userinfo') {
      const auth = req.headers.authorization || '';
      const user = tokens.get(auth.replace(/^Bearer /, ''));
      if (!user) return send(401, { error: 'invalid_token' });
      return send(200, user);
    }
    send(404, { error: 'not_found' });
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  base = `http://127.0.0.1:${server.address().port}`;
  return {
    issuer: base,
    authURL: `${base}/authorize`,
    tokenURL: `${base}/token`,
    userInfoURL: `${base}/userinfo`,
    jwksURL: `${base}/jwks`,
    /** What the browser leg yields: a code bound to the challenge, redirect URI and nonce. */
    authorize(user, { codeChallenge, redirectUri, nonce = null, idToken = null }) {
      const code = randomBytes(12).toString('hex');
      codes.set(code, { user, challenge: codeChallenge, redirectUri, nonce, idToken });
      return code;
    },
    /** Serves `body` at `/files/<name>` (optionally after a delay); returns its URL. */
    serveFile(name, type, body, { delayMs = 0 } = {}) {
      files.set(`/files/${name}`, { type, body: Buffer.from(body), delayMs });
      return `${base}/files/${name}`;
    },
    close: () => new Promise((resolve) => {
      server.close(resolve);
      server.closeAllConnections();
    }),
  };
}
