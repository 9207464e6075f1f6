// Settings: the sub-navigation and the application, mail, storage and rate-limit pages (backups,
// crons and collection import/export load their own modules).
import { api } from '../api.js';
import { h, replace } from '../dom.js';
import { busy, field, pageHeader, panel, showErrors, toast } from '../ui.js';
import { collect, control, s3Controls, s3Test, section, settingsForm } from './settings-form.js';

const PAGES = {
  application: 'Application',
  mail: 'Mail',
  storage: 'File storage',
  backups: 'Backups',
  crons: 'Crons',
  'rate-limits': 'Rate limits',
  export: 'Export collections',
  import: 'Import collections',
};
const LEVELS = [[-4, 'Debug'], [0, 'Info'], [4, 'Warn'], [8, 'Error']];

export default async function settingsPage(ctx) {
  const name = PAGES[ctx.segments[1]] ? ctx.segments[1] : 'application';
  const nav = h('nav', { class: 'sidebar settings-nav', 'aria-label': 'Settings' }, h('ul', { class: 'side-list' },
    Object.entries(PAGES).map(([key, title]) => h('li', {}, h('a', {
      href: `#/settings/${key}`, class: ['side-link', key === name && 'active'], 'aria-current': key === name ? 'page' : null, text: title,
    })))));
  let body;
  if (['backups', 'crons', 'export', 'import'].includes(name)) {
    const files = { backups: './settings-backups.js', crons: './settings-crons.js' };
    const module = await import(files[name] || './settings-sync.js');
    body = await module[name](ctx);
  } else {
    body = BUILDERS[name](ctx, await api('GET', '/api/settings'));
  }
  // On a phone the sub-navigation scrolls sideways: keep the current page's link in sight.
  setTimeout(() => nav.querySelector('.active').scrollIntoView({ block: 'nearest', inline: 'center' }));
  return h('div', { class: 'split' }, nav,
    h('div', { class: 'page split-main' }, pageHeader(PAGES[name], { crumbs: ['Settings'] }), body));
}

const BUILDERS = {
  application: (ctx, s) => settingsForm(s, () => [
    section('Application',
      control(s, 'meta.appName', 'Application name'),
      control(s, 'meta.appURL', 'Application URL', { type: 'url' }),
      control(s, 'meta.hideControls', 'Hide collection create and edit controls', { kind: 'bool' })),
    section('Superuser IPs',
      control(s, 'superuserIPs', 'Allowed IPs or ranges', { kind: 'list', help: 'Comma separated; empty allows every address.', placeholder: '10.0.0.0/8, 192.168.1.4' })),
    section('Trusted proxy',
      control(s, 'trustedProxy.headers', 'Client IP headers', { kind: 'list', placeholder: 'X-Forwarded-For, CF-Connecting-IP' }),
      control(s, 'trustedProxy.useLeftmostIP', 'Use the leftmost IP of the header', { kind: 'bool' })),
    section('Batch API',
      control(s, 'batch.enabled', 'Enable the batch API', { kind: 'bool' }),
      h('div', { class: 'row' },
        control(s, 'batch.maxRequests', 'Max requests per batch', { kind: 'number' }),
        control(s, 'batch.timeout', 'Timeout (seconds)', { kind: 'number' }),
        control(s, 'batch.maxBodySize', 'Max body size (bytes)', { kind: 'number', help: '0 means the default.' }))),
    section('Logs',
      h('div', { class: 'row' },
        control(s, 'logs.maxDays', 'Keep logs for (days)', { kind: 'number', help: '0 turns request logging off.' }),
        control(s, 'logs.minLevel', 'Minimum level', { kind: 'select', options: LEVELS })),
      control(s, 'logs.logIP', 'Log the client IP', { kind: 'bool' }),
      control(s, 'logs.logAuthId', 'Log the auth record id', { kind: 'bool' })),
  ], { onSaved: () => { ctx.refreshSettings(); ctx.navigate(location.hash); } }),

  mail: (ctx, s) => settingsForm(s, () => [
    section('Sender',
      h('div', { class: 'row' },
        control(s, 'meta.senderName', 'Sender name'),
        control(s, 'meta.senderAddress', 'Sender address', { type: 'email' }))),
    section('SMTP server',
      control(s, 'smtp.enabled', 'Send mail through an SMTP server', { kind: 'bool' }),
      h('div', { class: 'row' },
        control(s, 'smtp.host', 'Host'),
        control(s, 'smtp.port', 'Port', { kind: 'number' })),
      h('div', { class: 'row' },
        control(s, 'smtp.username', 'Username'),
        control(s, 'smtp.password', 'Password', { kind: 'secret' })),
      h('div', { class: 'row' },
        control(s, 'smtp.tls', 'TLS', { kind: 'select', options: [['false', 'Auto (StartTLS)'], ['true', 'Always']] }),
        control(s, 'smtp.authMethod', 'Auth method', { kind: 'select', options: [['PLAIN', 'PLAIN (default)'], ['LOGIN', 'LOGIN']] }),
        control(s, 'smtp.localName', 'EHLO/HELO domain', { placeholder: 'localhost' }))),
  ], { extra: [h('button', { type: 'button', class: 'btn', onclick: testEmail, text: 'Send test email' })], adjust: tlsFlag }),

  storage: (ctx, s) => settingsForm(s, () => [
    section('S3 storage',
      h('p', { class: 'muted', text: 'Uploaded files are kept on the local disk unless S3-compatible storage is enabled.' }),
      s3Controls(s, 's3')),
  ], { extra: s3Test('storage') }),

  'rate-limits': (ctx, s) => settingsForm(s, () => [
    section('Rate limits',
      control(s, 'rateLimits.enabled', 'Enable rate limiting', { kind: 'bool' }),
      rulesEditor((s.rateLimits && s.rateLimits.rules) || [])),
  ], { adjust: (body) => { body.rateLimits.rules = (body.rateLimits.rules || []).filter(Boolean); } }),
};

function tlsFlag(body) {
  if (body.smtp) body.smtp.tls = body.smtp.tls === 'true';
}

const AUDIENCES = [['', 'All'], ['@guest', 'Guests only'], ['@auth', 'Authenticated only']];

/** The rule rows: label, max requests, duration, audience; add and remove re-number them. */
function rulesEditor(initial) {
  const rows = h('div', { class: 'rules' });
  const draw = (rules) => replace(rows, rules.length ? rules.map((rule, i) => {
    const p = `rateLimits.rules.${i}`;
    const wrap = { rateLimits: { rules: rules } };
    return h('fieldset', { class: 'rule-row' },
      h('legend', { class: 'sr-only', text: `Rule ${i + 1}` }),
      control(wrap, `${p}.label`, 'Label', { placeholder: '/api/ or *:create' }),
      control(wrap, `${p}.maxRequests`, 'Max requests', { kind: 'number' }),
      control(wrap, `${p}.duration`, 'Interval (seconds)', { kind: 'number' }),
      control(wrap, `${p}.audience`, 'Audience', { kind: 'select', options: AUDIENCES }),
      h('button', { type: 'button', class: 'btn btn-icon', 'aria-label': `Remove rule ${i + 1}`, text: '✕',
        onclick: () => draw(current().filter((_, j) => j !== i)) }));
  }) : h('p', { class: 'muted', text: 'No rules.' }));
  const current = () => (collect(rows).rateLimits || {}).rules || [];
  draw(initial);
  return [rows, h('div', {}, h('button', { type: 'button', class: 'btn btn-sm', text: 'Add rule',
    onclick: () => draw([...current(), { label: '', maxRequests: 300, duration: 10, audience: '' }]) }))];
}

/** The test-mail panel: a recipient and a template. */
function testEmail() {
  const email = h('input', { class: 'input', type: 'email', name: 'email', required: true });
  const template = h('select', { class: 'input', name: 'template' },
    [['verification', 'Verification'], ['password-reset', 'Password reset'], ['email-change', 'Confirm email change'],
      ['otp', 'One-time password'], ['login-alert', 'Login alert']].map(([v, t]) => h('option', { value: v, text: t })));
  const form = h('form', { class: 'form' }, field('Template', template), field('To email address', email));
  const send = h('button', { type: 'submit', class: 'btn btn-primary', text: 'Send' });
  const p = panel({ title: 'Send a test email', body: form, footer: send });
  send.setAttribute('form', (form.id = 'test-email-form'));
  form.addEventListener('submit', (e) => {
    e.preventDefault();
    busy(send, async () => {
      await api('POST', '/api/settings/test/email', { body: { email: email.value, template: template.value } });
      toast('The test email was sent.');
      p.close();
    }, (err) => showErrors(form, err));
  });
  email.focus();
}
