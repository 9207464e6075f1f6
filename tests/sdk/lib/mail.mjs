// Reads mail captured by the suite's SMTP sink (aiosmtpd's Mailbox handler, a Maildir at
// $MAILDIR). Polls, bounded, for the newest message to one address.
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';

export const MAILDIR = process.env.MAILDIR || '';
export const SMTP_PORT = Number(process.env.SMTP_PORT || 0);

/** Points the target's SMTP settings at the sink. */
export async function useSink(su) {
  await su.settings.update({
    smtp: { enabled: true, host: '127.0.0.1', port: SMTP_PORT, tls: false, username: '', password: '' },
    meta: { appName: 'Warren Tests', appURL: 'http://app.example.com', senderName: 'Tests', senderAddress: 'tests@example.com' },
  });
}

function decodeQuotedPrintable(text) {
  return text
    .replace(/=\r?\n/g, '')
    .replace(/=([0-9A-F]{2})/g, (_, hex) => String.fromCharCode(parseInt(hex, 16)));
}

// Messages may be multipart with per-part encodings: decode quoted-printable over the whole
// text when any part uses it (the links and codes the tests look for are ASCII).
function decodeBody(message) {
  const body = message.split(/\r?\n\r?\n/).slice(1).join('\n\n');
  if (/Content-Transfer-Encoding:\s*quoted-printable/i.test(message)) return decodeQuotedPrintable(body);
  return body;
}

// Maildir names are `<seconds>.M<microseconds>P<pid>Q<counter>.<host>` with unpadded
// microseconds, so they do not sort as text; the sink's per-process counter gives the order.
export function deliveryOrder(name) {
  const match = /Q(\d+)\./.exec(name);
  return match ? Number(match[1]) : Number.MAX_SAFE_INTEGER;
}

/** The decoded body of the first message to `to` seen after `skip` earlier ones; polls ≤ 10 s. */
export async function waitForMail(to, { skip = 0 } = {}) {
  const dir = join(MAILDIR, 'new');
  for (let i = 0; i < 200; i++) {
    let found = [];
    try {
      const names = await readdir(dir);
      for (const name of names) {
        const text = await readFile(join(dir, name), 'utf8');
        const head = text.split(/\r?\n\r?\n/)[0];
        if (new RegExp(`^To:.*${to.replace(/[.+]/g, '\\$&')}`, 'mi').test(head)) found.push({ name, text });
      }
    } catch {
      found = [];
    }
    if (found.length > skip) {
      found.sort((a, b) => deliveryOrder(a.name) - deliveryOrder(b.name));
      return decodeBody(found[skip].text);
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`no mail to ${to} within 10 s`);
}

/** Counts messages to `to` now. */
export async function countMail(to) {
  try {
    const dir = join(MAILDIR, 'new');
    let n = 0;
    for (const name of await readdir(dir)) {
      const head = (await readFile(join(dir, name), 'utf8')).split(/\r?\n\r?\n/)[0];
      if (head.includes(to)) n++;
    }
    return n;
  } catch {
    return 0;
  }
}
