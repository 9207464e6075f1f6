// Compares two answer files of read.mjs: the expected (a real PocketBase) and the actual.
// Exits 1 and prints every difference that is not one of the allowed ones below.
//
//   node import/compare.mjs EXPECTED.json ACTUAL.json EXPECTED_VERSION LABEL
//
// Allowed differences, and why:
// - Tokens, MFA ids and OAuth2 state/PKCE values are random per answer: only their presence is
//   compared.
// - A release older than 0.40 answers `GET /api/collections` in its own shape, while Warren
//   serves 0.40's: against such a release only the collections' ids, names and types are
//   compared; the whole schema is compared with PocketBase 0.40.6 serving the same data.
import { readFileSync } from 'node:fs';

const [expectedPath, actualPath, expectedVersion, label] = process.argv.slice(2);
const expected = JSON.parse(readFileSync(expectedPath, 'utf8'));
const actual = JSON.parse(readFileSync(actualPath, 'utf8'));
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
  if (typeof value === 'string' && key === 'authURL') {
    const url = new URL(value);
    for (const p of ['state', 'code_challenge']) if (url.searchParams.has(p)) url.searchParams.set(p, '<random>');
    return url.toString();
  }
  return value;
}

function shape(check, answer) {
  if (!latest && check === 'superuser old token: collections' && answer.body?.items) {
    return {
      status: answer.status,
      body: answer.body.items.map((c) => ({ id: c.id, name: c.name, type: c.type })),
    };
  }
  return normalise(answer);
}

const diffs = [];
function walk(path, a, b) {
  if (JSON.stringify(a) === JSON.stringify(b)) return;
  if (a && b && typeof a === 'object' && typeof b === 'object' && Array.isArray(a) === Array.isArray(b)) {
    const keys = new Set([...Object.keys(a), ...Object.keys(b)]);
    for (const k of keys) walk(`${path}.${k}`, a[k], b[k]);
    return;
  }
  diffs.push(`${path}: expected ${JSON.stringify(a)?.slice(0, 300)}, got ${JSON.stringify(b)?.slice(0, 300)}`);
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
