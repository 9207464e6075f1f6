// Compares two answer files of read.mjs: the expected (a real PocketBase) and the actual.
// Exits 1 and prints every difference that is not one of the allowed ones below.
//
//   node import/compare.mjs EXPECTED.json ACTUAL.json EXPECTED_VERSION LABEL [SOURCE.json]
//
// SOURCE is given when EXPECTED is PocketBase 0.40.6 serving data an older release wrote (the
// answers of that release).
//
// Allowed differences, and why:
// - Tokens, MFA ids and OAuth2 state/PKCE values are random per answer: only their presence is
//   compared.
// - Thumbnails are compared by status and content type: Warren's PNG encoder writes other
//   bytes than Go's for the same pixels.
// - Warren answers every release's data as PocketBase 0.40 does, so against an older release:
//   `GET /api/collections` is compared by the collections' ids, names, types, rules, indexes
//   and field ids, names and types (the whole schema, options included, is compared with
//   PocketBase 0.40.6 serving the same data); auth-methods' `logo` (an SVG that releases
//   after 0.33 added) is left out, its legacy `authProviders` is `[]` where older releases
//   wrote `null` for none, and Google's authorization URL is the `/o/oauth2/v2/auth` one that
//   0.25 moved to.
// - Upgrading older data, PocketBase 0.40.6 re-saves collections (its data migrations) and
//   stamps their `updated` with the moment it ran: where it did (its `updated` differs from
//   SOURCE's), Warren's import must have re-stamped the same collection too, at its own moment.
// - Provider logos: Warren does not ship PocketBase's provider SVGs yet, so `logo` is compared
//   for presence only.
import { readFileSync } from 'node:fs';

const [expectedPath, actualPath, expectedVersion, label, sourcePath] = process.argv.slice(2);
const expected = JSON.parse(readFileSync(expectedPath, 'utf8'));
const actual = JSON.parse(readFileSync(actualPath, 'utf8'));
const source = sourcePath ? JSON.parse(readFileSync(sourcePath, 'utf8')) : null;
const latest = expectedVersion === '0.40.6';

const RANDOM_KEYS = new Set(['token', 'mfaId', 'state', 'codeVerifier', 'codeChallenge']);

function normalise(value, key) {
  if (Array.isArray(value)) return value.map((v) => normalise(v));
  if (value && typeof value === 'object') {
    const out = {};
    for (const k of Object.keys(value).sort()) out[k] = normalise(value[k], k);
    return out;
  }
  if (typeof value === 'string' && RANDOM_KEYS.has(key)) return value ? '<random>' : '';
  if (key === 'logo' && typeof value === 'string') return '<logo>';
  if (typeof value === 'string' && value && (key === 'authURL' || key === 'authUrl')) {
    const url = new URL(value.replace('/o/oauth2/auth?', latest ? '/o/oauth2/auth?' : '/o/oauth2/v2/auth?'));
    for (const p of ['state', 'code_challenge']) if (url.searchParams.has(p)) url.searchParams.set(p, '<random>');
    return url.toString();
  }
  return value;
}

function shape(check, answer) {
  if (check === 'download thumb' && answer.body) {
    answer = { ...answer, body: { ...answer.body, sha256: undefined } };
  }
  if (!latest && check.startsWith('auth methods') && answer.body) {
    const body = structuredClone(answer.body);
    body.authProviders ??= [];
    for (const p of [...body.authProviders, ...(body.oauth2?.providers || [])]) delete p.logo;
    answer = { ...answer, body };
  }
  if (!latest && check === 'superuser old token: collections' && answer.body?.items) {
    return {
      status: answer.status,
      body: answer.body.items.map((c) => ({
        id: c.id,
        name: c.name,
        type: c.type,
        rules: [c.listRule, c.viewRule, c.createRule, c.updateRule, c.deleteRule],
        fields: c.fields.map((f) => `${f.id} ${f.name} ${f.type}`),
        indexes: c.indexes,
      })),
    };
  }
  return normalise(answer);
}

const diffs = [];

// Collections PocketBase 0.40.6 re-stamped while upgrading: Warren must have re-stamped them too.
const COLLECTIONS = 'superuser old token: collections';
if (source && expected[COLLECTIONS]?.body?.items && actual[COLLECTIONS]?.body?.items) {
  const before = new Map(source[COLLECTIONS].body.items.map((c) => [c.id, c.updated]));
  const mine = new Map(actual[COLLECTIONS].body.items.map((c) => [c.id, c]));
  for (const c of expected[COLLECTIONS].body.items) {
    const other = mine.get(c.id);
    if (!other || c.updated === before.get(c.id)) continue;
    if (other.updated === before.get(c.id)) {
      diffs.push(`${COLLECTIONS}: ${c.name} was upgraded by PocketBase ${expectedVersion} but not by the import`);
    }
    c.updated = other.updated = '<upgraded>';
  }
}
function walk(path, a, b) {
  if (JSON.stringify(a) === JSON.stringify(b)) return;
  if (a && b && typeof a === 'object' && typeof b === 'object' && Array.isArray(a) === Array.isArray(b)) {
    const keys = new Set([...Object.keys(a), ...Object.keys(b)]);
    for (const k of keys) walk(`${path}.${k}`, a[k], b[k]);
    return;
  }
  diffs.push(`${path}: expected ${JSON.stringify(a)?.slice(0, 300)}, got ${JSON.stringify(b)?.slice(0, 300)}`);
}

// The checks that show data, credentials and state came across: they must succeed on the
// oracle too, or agreeing would prove nothing.
const MUST_SUCCEED = [
  'superuser old token: collections',
  'user old token: auth-refresh',
  'list posts',
  'expand author',
  'filter multi select',
  'filter through relation',
  'view collection',
  'download cover',
  'download doc',
  'protected with token',
  'password sign-in',
  'external auths of alice',
  'mfa: otp step with the old mfaId',
];
for (const check of MUST_SUCCEED) {
  const answer = expected[check];
  const items = answer?.body?.items;
  if (answer?.status !== 200 || (Array.isArray(items) && items.length === 0)) {
    diffs.push(`${check}: the oracle answered ${answer?.status} ${JSON.stringify(answer?.body)?.slice(0, 200)}`);
  }
}

for (const check of Object.keys(expected)) {
  if (!(check in actual)) {
    diffs.push(`${check}: missing`);
    continue;
  }
  walk(check, shape(check, expected[check]), shape(check, actual[check]));
}

if (diffs.length) {
  console.error(`[import] ${label}: ${diffs.length} differences`);
  for (const d of diffs.slice(0, 60)) console.error(`  ${d}`);
  process.exit(1);
}
console.error(`[import] ${label}: ${Object.keys(expected).length} checks agree`);
