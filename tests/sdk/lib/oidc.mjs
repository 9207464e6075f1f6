// A small OAuth2/OIDC provider on 127.0.0.1 for the auth tests: authorization code with PKCE
// (S256), a real token endpoint that checks client credentials, code, redirect URI and verifier,
// and a userinfo endpoint. `authorize(user)` plays the browser: it registers a user for the next
// code and returns that code.
import http from 'node:http';
import { createHash, randomBytes } from 'node:crypto';

export async function startProvider({ clientId, clientSecret }) {
  const codes = new Map(); // code -> { user, challenge, redirectUri }
  const tokens = new Map(); // access token -> user
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
      return send(200, { access_token: access, token_type: 'Bearer', expires_in: 3600, refresh_token: 'r-' + access });
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
  const base = `http://127.0.0.1:${server.address().port}`;
  return {
    authURL: `${base}/authorize`,
    tokenURL: `${base}/token`,
    userInfoURL: `${base}/userinfo`,
    /** What the browser leg yields: a code bound to the challenge and redirect URI. */
    authorize(user, { codeChallenge, redirectUri }) {
      const code = randomBytes(12).toString('hex');
      codes.set(code, { user, challenge: codeChallenge, redirectUri });
      return code;
    },
    close: () => new Promise((resolve) => server.close(resolve)),
  };
}
