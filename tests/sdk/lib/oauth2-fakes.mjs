// Local stand-ins for every OAuth2 provider PocketBase 0.40 ships (Apple aside: its users come
// from id tokens signed by Apple's own keys). One HTTP server on 127.0.0.1 serves each provider
// under /<name>/: a token endpoint that checks the client credentials (Basic header or form
// body), the code, the redirect URI and the PKCE verifier, and answers in the provider's token
// shape; and the provider's user-info endpoint (plus its email list where it has one), which
// checks the access token and the headers or GraphQL body the provider requires, and answers in
// the provider's JSON shape. The shapes follow each provider's public API documentation.
//
// Each entry of PROVIDERS says what the provider answers for a person `u` ({ id, num, name,
// username, email, avatar }) and which AuthUser fields PocketBase's mapping makes of it.
import http from 'node:http';
import { createHash, randomBytes } from 'node:crypto';

const expiresIn = 3600;

/** Every provider: name, display name, PKCE default, scope parameter, and its shapes. */
export const PROVIDERS = [
  {
    name: 'google', display: 'Google', pkce: true,
    scope: 'https://www.googleapis.com/auth/userinfo.profile https://www.googleapis.com/auth/userinfo.email',
    userPath: '/oauth2/v3/userinfo',
    user: (u) => ({ sub: u.id, name: u.name, given_name: 'Gia', picture: u.avatar, email: u.email, email_verified: true, locale: 'en' }),
    expect: (u) => ({ id: u.id, name: u.name, username: '', email: u.email, avatarURL: u.avatar }),
  },
  {
    name: 'microsoft', display: 'Microsoft', pkce: true, scope: 'User.Read',
    userPath: '/v1.0/me',
    user: (u) => ({ id: u.id, displayName: u.name, givenName: 'Mia', surname: 'Soft', mail: u.email, userPrincipalName: `${u.username}@tenant.example` }),
    expect: (u) => ({ id: u.id, name: u.name, username: '', email: u.email, avatarURL: '' }),
  },
  {
    name: 'yandex', display: 'Yandex', pkce: true, scope: 'login:email login:avatar login:info',
    userPath: '/info',
    user: (u) => ({ id: u.id, login: u.username, real_name: u.name, default_email: u.email, emails: [u.email], is_avatar_empty: false, default_avatar_id: '31804/abc-123', client_id: 'x' }),
    expect: (u) => ({ id: u.id, name: u.name, username: u.username, email: u.email, avatarURL: 'https://avatars.yandex.net/get-yapic/31804/abc-123/islands-200' }),
  },
  {
    name: 'facebook', display: 'Facebook', pkce: true, scope: 'email',
    userPath: '/me',
    userQuery: '?fields=name,email,picture.type(large)',
    user: (u) => ({ id: u.id, name: u.name, email: u.email, picture: { data: { height: 200, width: 200, is_silhouette: false, url: u.avatar } } }),
    expect: (u) => ({ id: u.id, name: u.name, username: '', email: u.email, avatarURL: u.avatar }),
  },
  {
    name: 'instagram2', display: 'Instagram', pkce: true, scope: 'instagram_business_basic',
    userPath: '/me',
    userQuery: '?fields=id,username,account_type,user_id,name,profile_picture_url,followers_count,follows_count,media_count',
    tokenExtra: () => ({ user_id: 17841400000000000, permissions: ['instagram_business_basic'] }),
    user: (u) => ({ id: `app-${u.id}`, user_id: u.id, username: u.username, name: u.name, account_type: 'BUSINESS', profile_picture_url: u.avatar, followers_count: 12, follows_count: 3, media_count: 40 }),
    // The token answer's permissions join the raw user.
    rawExtra: { permissions: ['instagram_business_basic'] },
    expect: (u) => ({ id: u.id, name: u.name, username: u.username, email: '', avatarURL: u.avatar }),
  },
  {
    name: 'github', display: 'GitHub', pkce: true, scope: 'read:user user:email',
    userPath: '/user',
    // GitHub answers the token request form-encoded unless asked for JSON.
    tokenForm: true,
    user: (u) => ({ login: u.username, id: u.num, node_id: 'MDQ6VXNlcjE=', avatar_url: u.avatar, name: u.name, email: `public-${u.email}`, type: 'User' }),
    // The address comes from the email list: the primary, verified one.
    extra: { '/user/emails': (u) => [
      { email: `old-${u.email}`, primary: false, verified: true, visibility: null },
      { email: u.email, primary: true, verified: true, visibility: 'private' },
    ] },
    expect: (u) => ({ id: String(u.num), name: u.name, username: u.username, email: u.email, avatarURL: u.avatar }),
  },
  {
    name: 'gitlab', display: 'GitLab', pkce: true, scope: 'read_user',
    userPath: '/api/v4/user',
    user: (u) => ({ id: u.num, username: u.username, name: u.name, state: 'active', avatar_url: u.avatar, email: u.email, confirmed_at: '2023-04-05T10:11:12.000Z' }),
    expect: (u) => ({ id: String(u.num), name: u.name, username: u.username, email: u.email, avatarURL: u.avatar }),
  },
  {
    name: 'bitbucket', display: 'Bitbucket', pkce: false, scope: 'account',
    userPath: '/2.0/user',
    user: (u) => ({ uuid: `{${u.id}}`, username: u.username, display_name: u.name, account_status: 'active', type: 'user', links: { avatar: { href: u.avatar } } }),
    extra: { '/2.0/user/emails': (u) => ({ pagelen: 10, values: [
      { email: `other-${u.email}`, is_primary: false, is_confirmed: true, type: 'email' },
      { email: u.email, is_primary: true, is_confirmed: true, type: 'email' },
    ] }) },
    expect: (u) => ({ id: `{${u.id}}`, name: u.name, username: u.username, email: u.email, avatarURL: u.avatar }),
  },
  {
    name: 'gitee', display: 'Gitee', pkce: true, scope: 'user_info emails',
    userPath: '/api/v5/user',
    user: (u) => ({ id: u.num, login: u.username, name: u.name, avatar_url: u.avatar, email: u.email }),
    expect: (u) => ({ id: String(u.num), name: u.name, username: u.username, email: u.email, avatarURL: u.avatar }),
  },
  {
    name: 'gitea', display: 'Gitea/Forgejo', pkce: true, scope: 'read:user user:email',
    userPath: '/api/v1/user',
    user: (u) => ({ id: u.num, login: u.username, full_name: u.name, email: u.email, avatar_url: u.avatar, active: !u.inactive, is_admin: false }),
    extra: { '/api/v1/user/emails': (u) => [{ email: u.email, verified: true, primary: true }] },
    expect: (u) => ({ id: String(u.num), name: u.name, username: u.username, email: u.email, avatarURL: u.avatar }),
  },
  {
    name: 'discord', display: 'Discord', pkce: true, scope: 'identify email',
    userPath: '/api/users/@me',
    user: (u) => ({ id: u.id, username: u.username, global_name: u.name, discriminator: '0', avatar: 'a1b2c3', email: u.email, verified: true, locale: 'en-US' }),
    expect: (u) => ({ id: u.id, name: u.name, username: u.username, email: u.email, avatarURL: `https://cdn.discordapp.com/avatars/${u.id}/a1b2c3.png` }),
  },
  {
    name: 'twitter', display: 'X/Twitter', pkce: true, scope: 'users.read users.email tweet.read',
    userPath: '/2/users/me',
    userQuery: '?user.fields=id,name,username,profile_image_url,confirmed_email',
    user: (u) => ({ data: { id: u.id, name: u.name, username: u.username, profile_image_url: u.avatar, confirmed_email: u.email } }),
    expect: (u) => ({ id: u.id, name: u.name, username: u.username, email: u.email, avatarURL: u.avatar }),
  },
  {
    name: 'kakao', display: 'Kakao', pkce: true, scope: 'account_email profile_nickname profile_image',
    userPath: '/v2/user/me',
    user: (u) => ({ id: u.num, connected_at: '2024-01-02T03:04:05Z', properties: { nickname: u.username, profile_image: u.avatar }, kakao_account: { email: u.email, is_email_valid: true, is_email_verified: true } }),
    expect: (u) => ({ id: String(u.num), name: '', username: u.username, email: u.email, avatarURL: u.avatar }),
  },
  {
    name: 'vk', display: 'ВКонтакте', pkce: false, scope: 'email',
    userPath: '/method/users.get',
    userQuery: '?fields=photo_max,screen_name&v=5.131',
    // VK takes the client credentials in the form only, and its token answer has no
    // token_type but carries the user's email.
    clientAuth: 'body',
    tokenShape: (u, access) => ({ access_token: access, expires_in: expiresIn, user_id: u.num, email: u.email }),
    user: (u) => ({ response: [{ id: u.num, first_name: 'Vera', last_name: 'Kontakt', screen_name: u.username, photo_max: u.avatar }] }),
    expect: (u) => ({ id: String(u.num), name: 'Vera Kontakt', username: u.username, email: u.email, avatarURL: u.avatar, refreshToken: '' }),
  },
  {
    name: 'linear', display: 'Linear', pkce: false, scope: 'read',
    userPath: '/graphql',
    graphql: 'viewer',
    user: (u) => ({ data: { viewer: { id: u.id, displayName: u.username, name: u.name, email: u.email, avatarUrl: u.avatar, active: true } } }),
    expect: (u) => ({ id: u.id, name: u.name, username: u.username, email: u.email, avatarURL: u.avatar }),
  },
  {
    name: 'notion', display: 'Notion', pkce: true, scope: null,
    userPath: '/v1/users/me',
    headers: { 'notion-version': '2022-06-28' },
    user: (u) => ({ object: 'user', id: `bot-${u.id}`, name: 'Integration', type: 'bot', bot: { owner: { type: 'user', user: { object: 'user', id: u.id, name: u.name, avatar_url: u.avatar, type: 'person', person: { email: u.email } } }, workspace_name: 'Team' }, request_id: 'req-1' }),
    expect: (u) => ({ id: u.id, name: u.name, username: '', email: u.email, avatarURL: u.avatar }),
  },
  {
    name: 'monday', display: 'monday.com', pkce: true, scope: 'me:read',
    userPath: '/v2',
    graphql: 'me',
    user: (u) => ({ data: { me: { id: String(u.num), enabled: true, name: u.name, email: u.email, is_verified: true, photo_small: u.avatar } }, account_id: 1 }),
    expect: (u) => ({ id: String(u.num), name: u.name, username: '', email: u.email, avatarURL: u.avatar }),
  },
  {
    name: 'lark', display: 'Lark', pkce: true, scope: null,
    userPath: '/open-apis/authen/v1/user_info',
    user: (u) => ({ code: 0, msg: 'success', data: { union_id: u.id, open_id: `ou_${u.num}`, name: u.name, en_name: u.name, avatar_url: u.avatar, email: u.email } }),
    expect: (u) => ({ id: u.id, name: u.name, username: '', email: '', avatarURL: u.avatar }),
  },
  {
    name: 'box', display: 'Box', pkce: true, scope: 'root_readonly',
    userPath: '/2.0/users/me',
    user: (u) => ({ type: 'user', id: String(u.num), name: u.name, login: u.email, status: 'active', avatar_url: u.avatar, language: 'en' }),
    expect: (u) => ({ id: String(u.num), name: u.name, username: '', email: u.email, avatarURL: u.avatar }),
  },
  {
    name: 'spotify', display: 'Spotify', pkce: true, scope: 'user-read-private',
    userPath: '/v1/me',
    user: (u) => ({ id: u.id, display_name: u.name, country: 'SE', product: 'free', images: [{ url: u.avatar, height: 300, width: 300 }, { url: 'https://img.example/small.png', height: 64, width: 64 }] }),
    expect: (u) => ({ id: u.id, name: u.name, username: '', email: '', avatarURL: u.avatar }),
  },
  {
    name: 'trakt', display: 'Trakt', pkce: true, scope: null,
    userPath: '/users/settings',
    headers: { 'trakt-api-version': '2', 'trakt-api-key': ({ clientId }) => clientId },
    user: (u) => ({ user: { username: u.username, private: false, name: u.name, vip: false, ids: { slug: u.username, uuid: u.id }, images: { avatar: { full: u.avatar } } }, account: { timezone: 'UTC' } }),
    expect: (u) => ({ id: u.id, name: u.name, username: u.username, email: '', avatarURL: u.avatar }),
  },
  {
    name: 'twitch', display: 'Twitch', pkce: true, scope: 'user:read:email',
    userPath: '/helix/users',
    headers: { 'client-id': ({ clientId }) => clientId },
    user: (u) => ({ data: [{ id: String(u.num), login: u.username, display_name: u.name, type: '', broadcaster_type: '', email: u.email, profile_image_url: u.avatar }] }),
    expect: (u) => ({ id: String(u.num), name: u.name, username: u.username, email: u.email, avatarURL: u.avatar }),
  },
  {
    name: 'patreon', display: 'Patreon', pkce: true, scope: 'identity identity[email]',
    userPath: '/api/oauth2/v2/identity',
    userQuery: '?fields%5Buser%5D=full_name,email,vanity,image_url,is_email_verified',
    user: (u) => ({ data: { id: String(u.num), type: 'user', attributes: { full_name: u.name, vanity: u.username, email: u.email, image_url: u.avatar, is_email_verified: true } }, links: { self: 'https://www.patreon.com/api/oauth2/v2/user/1' } }),
    expect: (u) => ({ id: String(u.num), name: u.name, username: u.username, email: u.email, avatarURL: u.avatar }),
  },
  {
    name: 'strava', display: 'Strava', pkce: true, scope: 'profile:read_all',
    userPath: '/api/v3/athlete',
    user: (u) => ({ id: u.num, username: u.username, firstname: 'Stina', lastname: 'Rava', city: 'Umeå', profile: u.avatar, profile_medium: 'https://img.example/m.png' }),
    expect: (u) => ({ id: String(u.num), name: 'Stina Rava', username: u.username, email: '', avatarURL: u.avatar }),
  },
  {
    name: 'wakatime', display: 'WakaTime', pkce: true, scope: 'email',
    userPath: '/api/v1/users/current',
    user: (u) => ({ data: { id: u.id, display_name: u.name, username: u.username, email: u.email, is_email_confirmed: true, photo: u.avatar, photo_public: true, timezone: 'UTC' } }),
    expect: (u) => ({ id: u.id, name: u.name, username: u.username, email: u.email, avatarURL: u.avatar }),
  },
  {
    name: 'livechat', display: 'LiveChat', pkce: true, scope: null,
    userPath: '/v2/accounts/me',
    user: (u) => ({ account_id: u.id, name: u.name, email: u.email, email_verified: true, avatar_url: u.avatar, default_organization_id: 'org-1' }),
    expect: (u) => ({ id: u.id, name: u.name, username: '', email: u.email, avatarURL: u.avatar }),
  },
  {
    name: 'mailcow', display: 'mailcow', pkce: true, scope: 'profile',
    userPath: '/oauth/profile',
    user: (u) => ({ success: true, id: u.id, username: `${u.username}@mail.example`, identifier: `${u.username}@mail.example`, email: u.email, full_name: u.name, displayName: u.name, created: '2024-01-01 00:00:00', modified: null, active: 1 }),
    expect: (u) => ({ id: u.id, name: u.name, username: u.username, email: u.email, avatarURL: '' }),
  },
  {
    name: 'planningcenter', display: 'Planning Center', pkce: true, scope: 'people',
    // PocketBase 0.40.6 looks for `Attributes` (its decoder is case-sensitive), so it refuses
    // every Planning Center user; Warren reads `attributes` as the API sends it.
    pocketbaseRefuses: true,
    userPath: '/people/v2/me',
    user: (u) => ({ data: { type: 'Person', id: String(u.num), attributes: { name: u.name, avatar: u.avatar, status: 'active', first_name: 'Plan', last_name: 'Ning' } } }),
    expect: (u) => ({ id: String(u.num), name: u.name, username: '', email: '', avatarURL: u.avatar }),
  },
  ...['oidc', 'oidc2', 'oidc3'].map((name) => ({
    name, display: 'OIDC', pkce: true, scope: 'openid email profile',
    userPath: '/userinfo',
    user: (u) => ({ sub: u.id, name: u.name, preferred_username: u.username, email: u.email, email_verified: true, picture: u.avatar }),
    expect: (u) => ({ id: u.id, name: u.name, username: u.username, email: u.email, avatarURL: u.avatar }),
  })),
];

/** A fresh person as a provider knows them. */
export function person() {
  const hex = randomBytes(6).toString('hex');
  return {
    id: `u-${hex}`,
    num: 1_000_000 + (parseInt(hex.slice(0, 8), 16) % 1_000_000_000),
    name: `Pat ${hex.slice(0, 4)}`,
    username: `pat_${hex}`,
    email: `pat_${hex}@example.com`,
    avatar: `https://img.example/${hex}.png`,
  };
}

const b64 = (text) => Buffer.from(text, 'base64').toString();

/** Starts the fakes; `clientId`/`clientSecret` are the credentials every provider expects. */
export async function startFakes({ clientId, clientSecret }) {
  const codes = new Map(); // code -> { provider, user, challenge, redirectUri }
  const tokens = new Map(); // access token -> { provider, user }
  const byName = new Map(PROVIDERS.map((p) => [p.name, p]));
  const server = http.createServer(async (req, res) => {
    const url = new URL(req.url, 'http://127.0.0.1');
    const [, name, ...rest] = url.pathname.split('/');
    const path = `/${rest.join('/')}`;
    const provider = byName.get(name);
    let raw = '';
    for await (const chunk of req) raw += chunk;
    const send = (status, body) => {
      res.writeHead(status, { 'Content-Type': 'application/json' });
      res.end(JSON.stringify(body));
    };
    if (!provider) return send(404, { error: 'no such provider' });
    if (req.method === 'POST' && path === '/token') {
      const form = new URLSearchParams(raw);
      let id = form.get('client_id');
      let secret = form.get('client_secret');
      const basic = req.headers.authorization || '';
      if (basic.startsWith('Basic ')) {
        if (provider.clientAuth === 'body') return send(401, { error: 'invalid_client', error_description: 'credentials go in the form' });
        const [u, p] = b64(basic.slice(6)).split(':');
        id = decodeURIComponent(u);
        secret = decodeURIComponent(p);
      }
      if (id !== clientId || secret !== clientSecret) return send(401, { error: 'invalid_client' });
      const grant = codes.get(form.get('code'));
      codes.delete(form.get('code'));
      if (!grant || grant.provider !== name || form.get('grant_type') !== 'authorization_code') return send(400, { error: 'invalid_grant' });
      if (grant.redirectUri !== form.get('redirect_uri')) return send(400, { error: 'invalid_grant', error_description: 'redirect_uri' });
      const verifier = form.get('code_verifier');
      if (provider.pkce) {
        const challenge = createHash('sha256').update(verifier || '').digest('base64url');
        if (challenge !== grant.challenge) return send(400, { error: 'invalid_grant', error_description: 'code_verifier' });
      } else if (verifier) {
        return send(400, { error: 'invalid_request', error_description: 'PKCE is not supported' });
      }
      const access = `at-${randomBytes(12).toString('hex')}`;
      tokens.set(access, { provider: name, user: grant.user });
      const answer = provider.tokenShape
        ? provider.tokenShape(grant.user, access)
        : { access_token: access, token_type: 'Bearer', expires_in: expiresIn, refresh_token: `rt-${access}`, ...(provider.tokenExtra ? provider.tokenExtra(grant.user) : {}) };
      if (provider.tokenForm) {
        res.writeHead(200, { 'Content-Type': 'application/x-www-form-urlencoded; charset=utf-8' });
        return res.end(new URLSearchParams(Object.entries(answer).map(([k, v]) => [k, String(v)])).toString());
      }
      return send(200, answer);
    }
    const bearer = (req.headers.authorization || '').replace(/^Bearer /i, '');
    const grant = tokens.get(bearer);
    if (!grant || grant.provider !== name) return send(401, { error: 'invalid_token' });
    for (const [header, want] of Object.entries(provider.headers || {})) {
      const expected = typeof want === 'function' ? want({ clientId }) : want;
      if (req.headers[header] !== expected) return send(400, { error: `missing header ${header}` });
    }
    if (path === provider.userPath) {
      if (provider.graphql) {
        let query = '';
        try { query = JSON.parse(raw).query || ''; } catch { /* not JSON */ }
        if (req.method !== 'POST' || !query.includes(provider.graphql)) return send(400, { errors: [{ message: 'expected a GraphQL query' }] });
      } else if (req.method !== 'GET') {
        return send(405, { error: 'method' });
      }
      return send(200, provider.user(grant.user));
    }
    const extra = provider.extra?.[path];
    if (extra && req.method === 'GET') return send(200, extra(grant.user));
    return send(404, { error: 'not_found' });
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  const base = `http://127.0.0.1:${server.address().port}`;
  return {
    /** The configuration that points `provider` at its fake. */
    config(provider) {
      return {
        name: provider.name, clientId, clientSecret,
        authURL: `${base}/${provider.name}/authorize`,
        tokenURL: `${base}/${provider.name}/token`,
        userInfoURL: `${base}/${provider.name}${provider.userPath}${provider.userQuery || ''}`,
      };
    },
    /** The browser leg: a code for `user` at `provider`, bound to the challenge and redirect. */
    authorize(provider, user, { codeChallenge, redirectUri }) {
      const code = randomBytes(12).toString('hex');
      codes.set(code, { provider: provider.name, user, challenge: codeChallenge, redirectUri });
      return code;
    },
    close: () => new Promise((resolve) => {
      server.close(resolve);
      server.closeAllConnections();
    }),
  };
}
