// What every dashboard test needs: the servers the suite started, a fresh tenant with a
// superuser, a headless Chromium page, screenshots, and mail from the SMTP sink.
//
// Environment (set by tests/suites/dashboard):
//   WARREN_URL      the platform host, e.g. http://localhost:PORT
//   OPERATOR_TOKEN  the operator token
//   WARREN_BIN      the warren binary; WARREN_DATA the server's data directory
//   MAILDIR         the SMTP sink's Maildir; SMTP_PORT its port
//   ARTIFACTS       where screenshots go
//   CHROMIUM        the browser binary (default /usr/bin/chromium)
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { chromium } from 'playwright-core';
import { launchPersistent } from '../support/chromium.mjs';
import { Agent, setGlobalDispatcher } from 'undici';
import PocketBase from 'pocketbase';

export const WARREN_URL = (process.env.WARREN_URL || 'http://localhost:8090').replace(/\/+$/, '');
export const PORT = new URL(WARREN_URL).port;
export const OPERATOR_TOKEN = process.env.OPERATOR_TOKEN || '';
export const MAILDIR = process.env.MAILDIR || '';
export const SMTP_PORT = Number(process.env.SMTP_PORT || 0);
export const ARTIFACTS = process.env.ARTIFACTS || 'target/artifacts/dashboard';
const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
const BIN = process.env.WARREN_BIN || 'target/debug/warren';
const DATA = process.env.WARREN_DATA || '';

// Node does not resolve *.localhost to loopback; the SDK's fetch goes through this dispatcher.
setGlobalDispatcher(new Agent({
  connect: {
    lookup(hostname, options, callback) {
      const h = hostname.toLowerCase().replace(/\.$/, '');
      if (h === 'localhost' || h.endsWith('.localhost')) {
        if (options && options.all) return callback(null, [{ address: '127.0.0.1', family: 4 }]);
        return callback(null, '127.0.0.1', 4);
      }
      return callback(new Error(`refusing to resolve non-loopback host ${hostname}`));
    },
  },
}));

/** A random lowercase suffix. */
export function suffix(bytes = 4) {
  return randomBytes(bytes).toString('hex');
}

/** The URL a tenant answers on. */
export function tenantUrl(slug) {
  return `http://${slug}.localhost:${PORT}`;
}

/**
 * A new tenant with one superuser: `{ slug, url, email, password, pb }`, `pb` being the JS SDK
 * signed in as that superuser. The tenant's SMTP settings point at the suite's sink.
 */
export async function newTenant(prefix = 'dash') {
  const slug = `${prefix}-${suffix()}`;
  const created = await fetch(`${WARREN_URL}/v1/tenants`, {
    method: 'POST',
    headers: { authorization: `Bearer ${OPERATOR_TOKEN}`, 'content-type': 'application/json' },
    body: JSON.stringify({ slug }),
  });
  assert.equal(created.status, 201, `creating tenant ${slug}: ${await created.text()}`);
  const email = `admin-${suffix()}@example.com`;
  const password = `pw-${suffix(8)}`;
  await promisify(execFile)(BIN, ['superuser', 'upsert', slug, email, password, '--data-dir', DATA]);
  const url = tenantUrl(slug);
  const pb = new PocketBase(url);
  pb.autoCancellation(false);
  await pb.collection('_superusers').authWithPassword(email, password);
  if (SMTP_PORT) {
    await pb.settings.update({
      smtp: { enabled: true, host: '127.0.0.1', port: SMTP_PORT, tls: false, username: '', password: '' },
      meta: { senderName: 'Dashboard tests', senderAddress: 'tests@example.com' },
    });
  }
  return { slug, url, email, password, pb };
}

/**
 * A headless Chromium page (`viewport` defaults to a laptop). Returns `{ page, close, errors }`:
 * `errors` collects uncaught page errors and console errors, which a test should assert empty.
 */
export async function openBrowser(t, { viewport = { width: 1280, height: 800 } } = {}) {
  await mkdir(ARTIFACTS, { recursive: true });
  const profile = await mkdtemp(join(tmpdir(), 'warren-dashboard-chromium-'));
  const context = await launchPersistent(chromium, profile, {
    executablePath: CHROMIUM,
    headless: true,
    viewport,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
  const close = async () => {
    await context.close();
    await rm(profile, { recursive: true, force: true });
  };
  if (t) t.after(close);
  const page = context.pages()[0] || (await context.newPage());
  const errors = [];
  page.on('pageerror', (e) => errors.push(`pageerror: ${e.message}`));
  // Chromium reports every non-2xx fetch as a console error; expected API refusals are not bugs.
  page.on('console', (m) => {
    if (m.type() === 'error' && !m.text().startsWith('Failed to load resource')) errors.push(`console: ${m.text()}`);
  });
  return { context, page, close, errors };
}

/** Saves a full-page screenshot as `$ARTIFACTS/<name>.png`. */
export async function shot(page, name) {
  await page.screenshot({ path: join(ARTIFACTS, `${name}.png`), fullPage: true });
}

/** Signs in to `tenant`'s dashboard with its superuser's password; waits for the collections page. */
export async function signIn(page, tenant) {
  await page.goto(`${tenant.url}/_/#/login`);
  await page.getByLabel('Email').fill(tenant.email);
  await page.getByLabel('Password').fill(tenant.password);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.waitForFunction(() => !location.hash.startsWith('#/login'));
}

function decodeBody(message) {
  const body = message.split(/\r?\n\r?\n/).slice(1).join('\n\n');
  let text = body;
  if (/Content-Transfer-Encoding:\s*quoted-printable/i.test(message)) {
    text = body.replace(/=\r?\n/g, '').replace(/=([0-9A-F]{2})/g, (_, hex) => String.fromCharCode(parseInt(hex, 16)));
  }
  if (/Content-Transfer-Encoding:\s*base64/i.test(message)) {
    const decoded = body.split(/\r?\n/).filter((l) => /^[A-Za-z0-9+/=]+$/.test(l)).join('');
    try { text += `\n${Buffer.from(decoded, 'base64').toString('utf8')}`; } catch { /* keep raw */ }
  }
  return text;
}

function deliveryOrder(name) {
  const match = /Q(\d+)\./.exec(name);
  return match ? Number(match[1]) : Number.MAX_SAFE_INTEGER;
}

/**
 * The first message to `to` whose decoded text matches `pattern` (a RegExp), not in `seen`
 * (a Set of Maildir names it adds to): `{ head, body, match }`. Polls up to 15 s.
 */
export async function waitForMail(to, pattern, seen = new Set()) {
  const dir = join(MAILDIR, 'new');
  for (let i = 0; i < 300; i++) {
    let names = [];
    try { names = (await readdir(dir)).sort((a, b) => deliveryOrder(a) - deliveryOrder(b)); } catch { names = []; }
    for (const name of names) {
      if (seen.has(name)) continue;
      const raw = await readFile(join(dir, name), 'utf8');
      const head = raw.split(/\r?\n\r?\n/)[0];
      if (!head.toLowerCase().includes(to.toLowerCase())) continue;
      const body = decodeBody(raw);
      const match = body.match(pattern);
      if (match) { seen.add(name); return { head, body, match }; }
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`no mail to ${to} matching ${pattern} within 15 s`);
}
