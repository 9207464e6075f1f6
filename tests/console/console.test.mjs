// The console in a real browser: headless Chromium signs up, reads the verification mail from
// the SMTP sink, follows its link, logs out and in, creates a project and sets its superuser;
// the official PocketBase JS SDK then reaches that project's API by its hostname. A password
// reset by mail and the project's deletion close the run. Every console page is screenshotted.
// A custom domain is added on the project page, checked before and after its TXT record exists
// in DNS (pebble-challtestsrv), reached by its name, and removed.
//
// Environment (set by tests/suites/console):
//   CONSOLE_URL   the platform host, e.g. http://localhost:PORT
//   MAILDIR       the SMTP sink's Maildir
//   ARTIFACTS     where screenshots go
//   CHROMIUM      the browser binary (default /usr/bin/chromium)
//   DNS_MANAGEMENT  pebble-challtestsrv's management URL (Warren's DNS resolver)
//   OPERATOR_TOKEN  the operator token (takes a backup for the project page's backup status)
//   OUTBOX_URL    a second Warren started with no mail flags (mail kept in its outbox)
//   OUTBOX_TOKEN  that server's operator token
//
// On the second server the verification mail is found in the outbox page on the platform host
// (signed in with the operator token), its link opened, and a project created. On the first,
// which has a relay, the outbox answers 404.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { mkdir, mkdtemp, readdir, readFile, rm, stat, symlink, writeFile } from 'node:fs/promises';
import { execFileSync } from 'node:child_process';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import http from 'node:http';
import { chromium } from 'playwright-core';
import { launchPersistent } from '../support/chromium.mjs';
import { Agent, setGlobalDispatcher } from 'undici';
import PocketBase from 'pocketbase';
import { deliveryOrder } from '../sdk/lib/mail.mjs';

const CONSOLE_URL = (process.env.CONSOLE_URL || 'http://localhost:8090').replace(/\/+$/, '');
const MAILDIR = process.env.MAILDIR || '';
const ARTIFACTS = process.env.ARTIFACTS || 'target/artifacts/console';
const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
const PORT = new URL(CONSOLE_URL).port;
const DNS_MANAGEMENT = (process.env.DNS_MANAGEMENT || '').replace(/\/+$/, '');
const OUTBOX_URL = (process.env.OUTBOX_URL || '').replace(/\/+$/, '');
const OUTBOX_TOKEN = process.env.OUTBOX_TOKEN || '';

/** A plain HTTP request to 127.0.0.1 with an explicit Host header: status and body. */
function request(method, port, path, host, body) {
  return new Promise((resolve, reject) => {
    const req = http.request(
      { host: '127.0.0.1', port, path, method, headers: { host, 'content-type': 'application/json' } },
      (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (chunk) => (text += chunk));
        res.on('end', () => resolve({ status: res.statusCode, body: text }));
      },
    );
    req.on('error', reject);
    req.end(body);
  });
}

// Node does not resolve *.localhost to loopback; the SDK's fetch goes through this dispatcher.
setGlobalDispatcher(
  new Agent({
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
  }),
);

function decode(message) {
  const [head, ...rest] = message.split(/\r?\n\r?\n/);
  let body = rest.join('\n\n');
  if (/Content-Transfer-Encoding:\s*base64/i.test(head)) {
    body = Buffer.from(body.replace(/\s+/g, ''), 'base64').toString('utf8');
  } else if (/Content-Transfer-Encoding:\s*quoted-printable/i.test(head)) {
    body = body
      .replace(/=\r?\n/g, '')
      .replace(/=([0-9A-F]{2})/g, (_, hex) => String.fromCharCode(parseInt(hex, 16)));
  }
  return { head, body };
}

/** The first link matching `pattern` in a message to `to` that was not seen before; ≤ 15 s. */
async function mailedLink(to, pattern, seen) {
  const dir = join(MAILDIR, 'new');
  for (let i = 0; i < 300; i++) {
    let names = [];
    try {
      names = (await readdir(dir)).sort((a, b) => deliveryOrder(a) - deliveryOrder(b));
    } catch {
      names = [];
    }
    for (const name of names) {
      if (seen.has(name)) continue;
      const { head, body } = decode(await readFile(join(dir, name), 'utf8'));
      if (!new RegExp(`^To:.*${to.replace(/[.+]/g, '\\$&')}`, 'mi').test(head)) continue;
      const match = body.match(pattern);
      if (match) {
        seen.add(name);
        return match[0];
      }
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`no mail to ${to} with ${pattern} within 15 s`);
}

test('a developer signs up, verifies by mail, creates a project and reaches it with the SDK', async (t) => {
  await mkdir(ARTIFACTS, { recursive: true });
  // A fresh profile directory per run (Playwright takes it as the persistent context's dir).
  const profile = await mkdtemp(join(tmpdir(), 'warren-console-chromium-'));
  const context = await launchPersistent(chromium, profile, {
    executablePath: CHROMIUM,
    headless: true,
    viewport: { width: 1100, height: 800 },
    args: [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
    ],
  });
  t.after(async () => {
    await context.close();
    await rm(profile, { recursive: true, force: true });
  });
  const page = context.pages()[0] || (await context.newPage());
  const shot = (name) => page.screenshot({ path: join(ARTIFACTS, `${name}.png`), fullPage: true });
  const seen = new Set();
  const suffix = randomBytes(4).toString('hex');
  const email = `dev-${suffix}@example.com`;
  const password = `console-pass-${suffix}`;
  const slug = `app-${suffix}`;

  // Home → sign up.
  await page.goto(`${CONSOLE_URL}/`);
  await shot('01-home');
  await page.click('text=Create an account');
  assert.match(page.url(), /\/signup$/);
  await page.fill('input[name=email]', email);
  await page.fill('input[name=password]', password);
  await shot('02-signup');
  await page.click('button[type=submit]');
  await page.waitForURL(/\/projects$/);
  assert.ok(await page.isVisible('text=Confirm your email'));
  assert.ok(await page.isDisabled('#create button[type=submit]'));
  await shot('03-projects-unverified');

  // The session cookie is HttpOnly and SameSite, and scripts cannot read it.
  const cookies = await context.cookies();
  const session = cookies.find((c) => c.name === 'warren_session');
  assert.ok(session, 'a session cookie');
  assert.equal(session.httpOnly, true);
  assert.equal(session.sameSite, 'Lax');
  assert.equal(await page.evaluate(() => document.cookie.includes('warren_session')), false);

  // The verification mail's link.
  const verify = await mailedLink(email, /https?:\/\/[^\s"<>]+\/verify\?token=[A-Za-z0-9]+/, seen);
  assert.ok(verify.startsWith(CONSOLE_URL), `${verify} points at the console`);
  await page.goto(verify);
  assert.ok(await page.isVisible('text=is verified'));
  await shot('04-verified');
  // The link works once.
  await page.goto(verify);
  assert.ok(await page.isVisible('text=invalid or has expired'));

  // Log out, log in again.
  await page.goto(`${CONSOLE_URL}/projects`);
  await page.click('text=Log out');
  await page.waitForURL(`${CONSOLE_URL}/`);
  await page.goto(`${CONSOLE_URL}/login`);
  await page.fill('input[name=email]', email);
  await page.fill('input[name=password]', 'not-the-password');
  await page.click('button[type=submit]');
  assert.ok(await page.isVisible('text=Wrong email or password.'));
  await page.fill('input[name=password]', password);
  await shot('05-login');
  await page.click('button[type=submit]');
  await page.waitForURL(/\/projects$/);

  // Create the project: it is live when the page answers.
  await page.fill('input[name=slug]', slug);
  await shot('06-projects-new');
  await page.click('#create button[type=submit]');
  await page.waitForURL(/\/projects\/[a-z0-9]{15}\?created=1$/);
  const projectUrl = `http://${slug}.localhost:${PORT}`;
  assert.ok(await page.isVisible(`text=${slug} is live at ${projectUrl}`));
  assert.equal(await page.textContent('#project-url'), projectUrl);
  await shot('07-project-created');
  const projectPage = page.url().split('?')[0];

  // The browser reaches the project by its hostname.
  const tab = await context.newPage();
  const health = await tab.goto(`${projectUrl}/api/health`);
  assert.equal(health.status(), 200);
  assert.match(await tab.textContent('body'), /API is healthy/);
  await tab.close();

  // Its first superuser; the password is not shown back.
  const suEmail = `admin-${suffix}@example.com`;
  const suPassword = `su-pass-${suffix}-123`;
  await page.fill('#superuser input[name=email]', suEmail);
  await page.fill('#superuser input[name=password]', suPassword);
  await page.click('#superuser button[type=submit]');
  assert.ok(await page.isVisible(`text=Superuser ${suEmail} saved`));
  assert.equal((await page.content()).includes(suPassword), false);
  await shot('08-superuser-set');

  // The official JS SDK reaches the project's API by hostname and works with it.
  const pb = new PocketBase(projectUrl);
  pb.autoCancellation(false);
  const auth = await pb.collection('_superusers').authWithPassword(suEmail, suPassword);
  assert.equal(auth.record.email, suEmail);
  const name = `notes_${suffix}`;
  await pb.collections.create({ name, type: 'base', fields: [{ name: 'title', type: 'text' }] });
  const note = await pb.collection(name).create({ title: 'hello from the console suite' });
  assert.equal((await pb.collection(name).getOne(note.id)).title, 'hello from the console suite');

  // "Open dashboard" opens the project's dashboard signed in as the developer; the page charts
  // the project's usage.
  await openDashboard(context, page, shot, { projectPage, email, projectUrl });
  await usageCharts(page, shot, projectPage);

  // A custom domain: the page shows the TXT record to create; a check before the record exists
  // keeps it pending, a check after verifies it, and the name then reaches the project.
  assert.ok(DNS_MANAGEMENT, 'DNS_MANAGEMENT is set by tests/suites/console');
  const domain = `app-${suffix}.example.test`;
  await page.goto(projectPage);
  await page.fill('#add-domain input[name=domain]', domain);
  await page.click('#add-domain button[type=submit]');
  assert.ok(await page.isVisible(`text=Added ${domain}`));
  const row = () => page.locator(`.domain[data-domain="${domain}"]`);
  assert.equal(await row().locator('.txt-name').textContent(), `_warren.${domain}`);
  const token = (await row().locator('.txt-value').textContent()).trim();
  assert.ok(token.length >= 32, `a verification token: ${token}`);
  assert.equal(await row().locator('.badge').textContent(), 'pending');
  await shot('08a-domain-added');
  await row().locator('form.check button').click();
  assert.ok(await page.isVisible(`text=${domain} is not verified yet`));
  assert.equal(await row().locator('.badge').textContent(), 'pending');
  const mgmt = new URL(DNS_MANAGEMENT);
  const set = await request(
    'POST',
    mgmt.port,
    '/set-txt',
    mgmt.host,
    JSON.stringify({ host: `_warren.${domain}.`, value: token }),
  );
  assert.equal(set.status, 200, set.body);
  await row().locator('form.check button').click();
  assert.ok(await page.isVisible(`text=${domain} is verified and reaches ${slug}.`));
  assert.equal(await row().locator('.badge').textContent(), 'verified');
  assert.ok(await row().locator('.certificate >> text=Not issued yet').isVisible());
  await shot('08b-domain-verified');
  const viaDomain = await request('GET', PORT, '/api/health', `${domain}:${PORT}`);
  assert.equal(viaDomain.status, 200, viaDomain.body);
  await row().locator('form.remove button').click();
  assert.ok(await page.isVisible(`text=Removed ${domain}`));
  assert.ok(await page.isVisible('#domains >> text=No custom domains yet.'));
  await shot('08c-domain-removed');
  const removed = await request('GET', PORT, '/api/health', `${domain}:${PORT}`);
  assert.equal(removed.status, 404, removed.body);

  // Backups: none yet, then the operator takes one and the page shows its success.
  await page.goto(projectPage);
  assert.equal((await page.textContent('#backup-success')).trim(), 'never');
  const made = await fetch(`${CONSOLE_URL}/v1/tenants/${slug}/backups`, {
    method: 'POST',
    headers: { authorization: `Bearer ${process.env.OPERATOR_TOKEN || 'console-suite-token'}` },
  });
  assert.equal(made.status, 201, await made.text());
  await page.goto(projectPage);
  assert.match(await page.textContent('#backup-success'), /^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}/);
  assert.equal(await page.textContent('#backup-latest .badge'), 'ok');
  assert.equal((await page.textContent('#backup-failure')).trim(), 'none');
  assert.equal((await page.content()).includes('/backups'), false, 'the target stays hidden');
  await shot('08d-backups');

  // With a relay there is no outbox: the page and the operator route answer 404.
  const noPage = await request('GET', PORT, '/outbox', `localhost:${PORT}`);
  assert.equal(noPage.status, 404, noPage.body);
  const noRoute = await fetch(`${CONSOLE_URL}/v1/outbox`, {
    headers: { authorization: `Bearer ${process.env.OPERATOR_TOKEN || 'console-suite-token'}` },
  });
  assert.equal(noRoute.status, 404, await noRoute.text());
  await importAndExport(page, shot, { projectPage, suffix, name, noteId: note.id, suEmail, suPassword });
  await deployCode(page, shot, { projectPage, projectUrl });

  // The project list shows it live.
  await page.goto(`${CONSOLE_URL}/projects`);
  assert.ok(await page.isVisible(`table.projects >> text=${slug}`));
  assert.ok(await page.isVisible('table.projects >> text=live'));
  await shot('09-projects-list');

  // Password reset by mail: sign out, ask for a link, follow it, choose a new password.
  await page.click('text=Log out');
  await page.goto(`${CONSOLE_URL}/reset`);
  await page.fill('input[name=email]', email);
  await shot('10-reset-request');
  await page.click('button[type=submit]');
  assert.ok(await page.isVisible('text=If an account with that email exists'));
  const reset = await mailedLink(email, /https?:\/\/[^\s"<>]+\/reset\/confirm\?token=[A-Za-z0-9]+/, seen);
  await page.goto(reset);
  const newPassword = `${password}-new`;
  await page.fill('input[name=password]', newPassword);
  await shot('11-reset-confirm');
  await page.click('button[type=submit]');
  assert.ok(await page.isVisible('text=Your password was changed'));
  await page.goto(`${CONSOLE_URL}/login`);
  await page.fill('input[name=email]', email);
  await page.fill('input[name=password]', newPassword);
  await page.click('button[type=submit]');
  await page.waitForURL(/\/projects$/);

  // Delete the project, typing its name; its hostname stops answering.
  await page.goto(projectPage);
  await page.fill('#delete input[name=confirm]', 'wrong-name');
  await page.click('#delete button[type=submit]');
  assert.ok(await page.isVisible('text=exactly to delete the project'));
  await page.fill('#delete input[name=confirm]', slug);
  await shot('12-project-delete');
  await page.click('#delete button[type=submit]');
  await page.waitForURL(/\/projects$/);
  assert.ok(await page.isVisible('text=No projects yet.'));
  await shot('13-projects-empty');
  const gone = await fetch(`${projectUrl}/api/health`);
  assert.equal(gone.status, 404);
});

/**
 * Presses "Open dashboard" on the project page: a new tab lands on the project's dashboard,
 * signed in as the developer's email (a superuser made for it), with no JS error; its usage
 * screen draws charts per hour and per day; a link that is not valid says so.
 */
async function openDashboard(context, page, shot, { projectPage, email, projectUrl }) {
  const errors = [];
  const onError = (e) => errors.push(String(e.error ? e.error() : e));
  context.on('weberror', onError);
  await page.goto(projectPage);
  await shot('07a-open-dashboard');
  const [tab] = await Promise.all([
    context.waitForEvent('page'),
    page.click('#open-dashboard button[type=submit]'),
  ]);
  const tabShot = (name) => tab.screenshot({ path: join(ARTIFACTS, `${name}.png`), fullPage: true });
  await tab.waitForURL(`${projectUrl}/_/#/collections`);
  await tab.waitForSelector('.account-email');
  assert.equal(await tab.textContent('.account-email'), email);
  assert.equal(tab.url().includes('/link/'), false, 'the code left the address bar');
  await tabShot('07b-dashboard-signed-in');

  await tab.click('a.nav-link:has-text("Usage")');
  await tab.waitForSelector('.usage-card svg.chart');
  assert.equal(await tab.locator('.usage-card').count(), 4);
  assert.equal(await tab.locator('.usage-card').first().locator('svg rect').count(), 48);
  assert.match(await tab.locator('.usage-card svg.chart').first().getAttribute('aria-label'), /^Requests per hour/);
  await tabShot('07c-dashboard-usage-hours');
  await tab.click('button:has-text("Per day")');
  assert.equal(await tab.locator('.usage-card').first().locator('svg rect').count(), 31);
  await tabShot('07d-dashboard-usage-days');
  await tab.setViewportSize({ width: 390, height: 844 });
  await tabShot('07e-dashboard-usage-phone');

  await tab.goto(`${projectUrl}/_/#/link/not-a-valid-code`);
  await tab.waitForSelector('text=This link did not sign you in');
  assert.ok(await tab.isVisible('text=invalid, used or expired'));
  await tabShot('07f-dashboard-link-refused');
  await tab.close();
  context.off('weberror', onError);
  assert.deepEqual(errors, [], 'the dashboard raised no JS errors');
}

/** The project page charts the usage per hour and per day once the metering has saved it. */
async function usageCharts(page, shot, projectPage) {
  const summary = page.locator('#chart-requests > .hint');
  for (let i = 0; i < 100; i++) {
    await page.goto(projectPage);
    if (!(await summary.textContent()).startsWith('Total 0 ')) break;
    await new Promise((r) => setTimeout(r, 100));
  }
  assert.match(await summary.textContent(), /^Total [1-9]\d* in the last 31 days$/);
  assert.equal(await page.locator('#usage-charts svg[role=img]').count(), 8);
  assert.equal(await page.locator('#chart-requests svg').first().locator('rect').count(), 48);
  assert.match(await page.locator('#chart-requests svg').first().getAttribute('aria-label'), /^Requests per hour, last 48 hours; largest [1-9]/);
  await page.click('#usage-days summary');
  assert.ok(await page.isVisible('#usage-days tbody tr'));
  await shot('07g-usage-charts');
  await page.setViewportSize({ width: 390, height: 844 });
  await shot('07h-usage-charts-phone');
  await page.evaluate(() => window.scrollTo(0, 0));
  await page.screenshot({ path: join(ARTIFACTS, '07i-project-phone-top.png') });
  await page.locator('#chart-storage').scrollIntoViewIfNeeded();
  await page.screenshot({ path: join(ARTIFACTS, '07j-usage-charts-phone-view.png') });
  await page.setViewportSize({ width: 1100, height: 800 });
}

/** Chromium with a fresh profile, closed (and the profile removed) after test `t`. */
async function browser(t) {
  const profile = await mkdtemp(join(tmpdir(), 'warren-console-chromium-'));
  const context = await launchPersistent(chromium, profile, {
    executablePath: CHROMIUM,
    headless: true,
    viewport: { width: 1100, height: 800 },
    args: [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
    ],
  });
  t.after(async () => {
    await context.close();
    await rm(profile, { recursive: true, force: true });
  });
  return context;
}

test('without a relay, the verification mail is read in the outbox and its link verifies', async (t) => {
  assert.ok(OUTBOX_URL && OUTBOX_TOKEN, 'OUTBOX_URL and OUTBOX_TOKEN are set by tests/suites/console');
  await mkdir(ARTIFACTS, { recursive: true });
  const context = await browser(t);
  const page = context.pages()[0] || (await context.newPage());
  const shot = (name) => page.screenshot({ path: join(ARTIFACTS, `${name}.png`), fullPage: true });
  const suffix = randomBytes(4).toString('hex');
  const email = `newcomer-${suffix}@example.com`;
  const slug = `first-${suffix}`;

  await page.goto(`${OUTBOX_URL}/signup`);
  await page.fill('input[name=email]', email);
  await page.fill('input[name=password]', `outbox-pass-${suffix}`);
  await page.click('button[type=submit]');
  await page.waitForURL(/\/projects$/);
  assert.ok(await page.isDisabled('#create button[type=submit]'));

  // The outbox asks for the operator token first; a wrong one is refused.
  await page.goto(`${OUTBOX_URL}/outbox`);
  assert.ok(await page.isVisible('#outbox-login'));
  assert.equal(await page.locator('#outbox').count(), 0, 'no mail shown before the token');
  await shot('outbox-01-sign-in');
  await page.fill('input[name=token]', 'not-the-token');
  await page.click('#outbox-login button[type=submit]');
  assert.ok(await page.isVisible('text=That is not the operator token.'));
  await page.fill('input[name=token]', OUTBOX_TOKEN);
  await page.click('#outbox-login button[type=submit]');
  await page.waitForURL(`${OUTBOX_URL}/outbox`);
  const cookie = (await context.cookies()).find((c) => c.name === 'warren_operator');
  assert.ok(cookie, 'an outbox cookie');
  assert.equal(cookie.httpOnly, true);
  assert.equal(cookie.sameSite, 'Strict');
  assert.equal(cookie.value.includes(OUTBOX_TOKEN), false);

  // The mail is listed (it is sent in the background: reload until it is there, ≤ 15 s).
  const row = page.locator('#outbox tbody tr', { hasText: email });
  for (let i = 0; i < 150 && (await row.count()) === 0; i++) {
    await new Promise((r) => setTimeout(r, 100));
    await page.reload();
  }
  assert.equal(await row.count(), 1, 'the verification mail is in the outbox');
  assert.equal((await row.locator('.badge').textContent()).trim(), 'console');
  await shot('outbox-02-list');

  // Its page shows the link; following it verifies the account.
  await row.locator('a[href^="/outbox/"]').click();
  await page.waitForURL(/\/outbox\/\d{13}-[0-9a-f]{8}$/);
  assert.ok(await page.isVisible('text=Verify your email for Warren'));
  const link = page.locator('#links a');
  const href = await link.getAttribute('href');
  assert.match(href, new RegExp(`^${OUTBOX_URL}/verify\\?token=[A-Za-z0-9]+$`));
  await shot('outbox-03-message');
  await link.click();
  await page.waitForURL(/\/verify\?token=/);
  assert.ok(await page.isVisible('text=is verified'));

  // A verified account creates a project.
  await page.goto(`${OUTBOX_URL}/projects`);
  await page.fill('input[name=slug]', slug);
  await page.click('#create button[type=submit]');
  await page.waitForURL(/\/projects\/[a-z0-9]{15}\?created=1$/);
  const port = new URL(OUTBOX_URL).port;
  assert.ok(await page.isVisible(`text=${slug} is live at http://${slug}.localhost:${port}`));
  await shot('outbox-04-project-created');

  // The operator API lists the same mail.
  const listed = await fetch(`${OUTBOX_URL}/v1/outbox`, {
    headers: { authorization: `Bearer ${OUTBOX_TOKEN}` },
  });
  assert.equal(listed.status, 200);
  const items = (await listed.json()).items.filter((m) => m.to === email);
  assert.equal(items.length, 1);
  assert.equal(items[0].label, 'console');
  assert.equal(items[0].links[0], href);
  const anonymous = await fetch(`${OUTBOX_URL}/v1/outbox`);
  assert.equal(anonymous.status, 401);
});
// The project page's Code section: a tar.gz of pb_public/ and pb_hooks/ (made with the system
// tar, as a developer would) is deployed, listed with its files, served at the project's URL,
// and a tar.gz with a link in it is refused with the old site still served.
async function deployCode(page, shot, { projectPage, projectUrl }) {
  const work = await mkdtemp(join(tmpdir(), 'warren-console-code-'));
  try {
    await page.goto(projectPage);
    assert.ok(await page.isVisible('#code-empty'));
    await mkdir(join(work, 'pb_public/css'), { recursive: true });
    await mkdir(join(work, 'pb_hooks'), { recursive: true });
    await writeFile(join(work, 'pb_public/index.html'),
      '<!doctype html><link rel="stylesheet" href="/css/site.css"><h1 id="site">Hello from pb_public</h1>');
    await writeFile(join(work, 'pb_public/css/site.css'), 'h1 { color: #2a6; font-family: sans-serif }');
    await writeFile(join(work, 'pb_hooks/main.pb.js'), '// hooks\n');
    const archive = join(work, 'code.tar.gz');
    execFileSync('tar', ['-czf', archive, '-C', work, 'pb_public', 'pb_hooks']);
    await page.setInputFiles('#code input[type=file]', archive);
    await page.click('#code button[type=submit]');
    assert.ok(await page.isVisible('text=Deployed pb_hooks (1 files), pb_public (2 files)'));
    assert.ok(await page.isVisible('#code-folders >> text=pb_public'));
    await page.locator('#code').scrollIntoViewIfNeeded();
    await shot('08j-code-deployed');

    const served = await fetch(`${projectUrl}/`);
    assert.equal(served.status, 200);
    assert.match(await served.text(), /Hello from pb_public/);
    const site = await page.context().newPage();
    await site.goto(`${projectUrl}/`);
    assert.equal(await site.textContent('#site'), 'Hello from pb_public');
    await site.screenshot({ path: join(ARTIFACTS, '08k-code-site.png') });
    await site.close();

    const [download] = await Promise.all([
      page.waitForEvent('download'),
      page.click('#code-download button[type=submit]'),
    ]);
    assert.match(download.suggestedFilename(), /-code\.tar\.gz$/);

    await symlink('/etc/passwd', join(work, 'pb_public/passwd'));
    const hostile = join(work, 'hostile.tar.gz');
    execFileSync('tar', ['-czf', hostile, '-C', work, 'pb_public']);
    await page.setInputFiles('#code input[type=file]', hostile);
    await page.click('#code button[type=submit]');
    assert.ok(await page.isVisible('text=The archive was refused and nothing changed'));
    await shot('08l-code-refused');
    assert.match(await (await fetch(`${projectUrl}/`)).text(), /Hello from pb_public/);
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}

// Import and export on the project page: the first project is downloaded as a zip through
// its Export button, a second, empty project imports that zip through "Import from
// PocketBase" (a damaged file is refused first), its progress page reloads until done, and
// the SDK reads the imported record there. The second project is deleted again at the end.
async function importAndExport(page, shot, { projectPage, suffix, name, noteId, suEmail, suPassword }) {
  const work = await mkdtemp(join(tmpdir(), 'warren-console-zip-'));
  try {
    await page.goto(projectPage);
    assert.ok(await page.isVisible('#export >> text=Download export'));
    await shot('08e-export');
    const [download] = await Promise.all([
      page.waitForEvent('download'),
      page.click('#export button[type=submit]'),
    ]);
    assert.match(download.suggestedFilename(), /-pb_data\.zip$/);
    const zip = join(work, 'export.zip');
    await download.saveAs(zip);
    const head = (await readFile(zip)).subarray(0, 2).toString('latin1');
    assert.equal(head, 'PK', 'the download is a zip');

    // A second project, empty, takes the zip.
    const slug = `imp-${suffix}`;
    await page.goto(`${CONSOLE_URL}/projects`);
    await page.fill('input[name=slug]', slug);
    await page.click('#create button[type=submit]');
    await page.waitForURL(/\/projects\/[a-z0-9]{15}\?created=1$/);
    const importPage = page.url().split('?')[0];

    // Something that is not a zip is refused on the page, and nothing changes.
    const junk = join(work, 'junk.zip');
    await writeFile(junk, 'this is not a zip archive');
    await page.setInputFiles('#import input[type=file]', junk);
    await page.click('#import button[type=submit]');
    assert.ok(await page.isVisible('text=not a readable zip archive'));
    await shot('08f-import-refused');

    await page.setInputFiles('#import input[type=file]', zip);
    await shot('08g-import-chosen');
    await page.click('#import button[type=submit]');
    await page.waitForURL(/\/projects\/[a-z0-9]{15}\/import$/);
    await shot('08h-import-progress');
    // The page reloads itself every second while the import runs.
    await page.waitForSelector('#import-status:text-is("done")', { timeout: 30000 });
    assert.ok(await page.isVisible('text=Imported'));
    await shot('08i-import-done');

    // The imported project serves the record, and its superuser signs in with the old password.
    const pb = new PocketBase(`http://${slug}.localhost:${PORT}`);
    pb.autoCancellation(false);
    await pb.collection('_superusers').authWithPassword(suEmail, suPassword);
    assert.equal((await pb.collection(name).getOne(noteId)).title, 'hello from the console suite');
    assert.ok((await stat(zip)).size > 0);

    // Now it holds data: a second import is refused.
    await page.goto(importPage);
    assert.ok(await page.isVisible('#import-latest'));
    await page.setInputFiles('#import input[type=file]', zip);
    await page.click('#import button[type=submit]');
    assert.ok(await page.isVisible('text=The project is not empty'));

    await page.fill('#delete input[name=confirm]', slug);
    await page.click('#delete button[type=submit]');
    await page.waitForURL(/\/projects$/);
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}
