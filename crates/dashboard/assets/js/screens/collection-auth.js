// The collection editor's auth options tab: password, OAuth2, OTP, MFA, tokens and mail templates.
import { api } from '../api.js';
import { h } from '../dom.js';
import { option, section } from './collection-form.js';

let catalog = null;
/** The OAuth2 providers PocketBase knows (name, displayName), fetched once. */
function providerCatalog() {
  if (!catalog) catalog = api('GET', '/api/collections/meta/oauth2-providers').catch(() => { catalog = null; return []; });
  return catalog;
}

function providerBox(oauth2, i, redraw) {
  const p = oauth2.providers[i];
  const path = (k) => `oauth2.providers.${i}.${k}`;
  const text = (label, key, attrs) => option(label, p, key, 'text', path(key), attrs);
  const legend = h('legend', { text: p.displayName || p.name });
  providerCatalog().then((all) => { legend.textContent = p.displayName || (all.find((c) => c.name === p.name) || {}).displayName || p.name; });
  return h('fieldset', { class: 'ce-box' },
    legend,
    h('div', { class: 'ce-grid' },
      text('Client ID', 'clientId'), text('Client secret', 'clientSecret', { type: 'password', autocomplete: 'off', placeholder: p.clientSecret === undefined ? 'Unchanged' : '' }),
      text('Auth URL', 'authURL', { placeholder: 'Provider default' }), text('Token URL', 'tokenURL', { placeholder: 'Provider default' }),
      text('User info URL', 'userInfoURL', { placeholder: 'Provider default' }), text('Display name', 'displayName')),
    h('small', { class: 'error', dataset: { errorFor: `oauth2.providers.${i}` }, role: 'alert' }),
    h('button', { type: 'button', class: 'btn btn-sm', text: `Remove ${p.name}`, onclick: () => { oauth2.providers.splice(i, 1); redraw(); } }));
}

function oauth2Section(draft) {
  const o = draft.oauth2;
  o.providers = o.providers || [];
  o.mappedFields = o.mappedFields || {};
  const list = h('div', { class: 'form' });
  const picker = h('select', { class: 'input', 'aria-label': 'OAuth2 provider to add' });
  const redraw = () => {
    list.replaceChildren(...o.providers.map((_, i) => providerBox(o, i, redraw)));
    providerCatalog().then((all) => picker.replaceChildren(...all.filter((c) => !o.providers.some((p) => p.name === c.name))
      .map((c) => h('option', { value: c.name, text: c.displayName || c.name }))));
  };
  const add = async () => {
    const c = (await providerCatalog()).find((x) => x.name === picker.value);
    if (!c) return;
    o.providers.push({ name: c.name, displayName: '', clientId: '', clientSecret: '', authURL: '', tokenURL: '', userInfoURL: '' });
    redraw();
  };
  redraw();
  const mapped = (label, key) => option(label, o.mappedFields, key, 'text', `oauth2.mappedFields.${key}`, { placeholder: 'Not mapped' });
  return section('OAuth2',
    option('Enable OAuth2 sign-in', o, 'enabled', 'bool', 'oauth2.enabled'),
    list,
    h('div', { class: 'ce-add' }, picker, h('button', { type: 'button', class: 'btn', text: 'Add provider', onclick: add })),
    h('details', {}, h('summary', { text: 'Fields filled from the provider' }),
      h('div', { class: 'ce-grid' }, mapped('Name', 'name'), mapped('Username', 'username'), mapped('Avatar URL', 'avatarURL'), mapped('ID', 'id'))));
}

function template(label, obj, path) {
  return h('details', { class: 'ce-template' }, h('summary', { text: label }),
    option('Subject', obj, 'subject', 'text', `${path}.subject`),
    option('Body (HTML)', obj, 'body', 'code', `${path}.body`, { rows: 8, help: 'Placeholders: {APP_NAME}, {APP_URL}, {TOKEN}, {OTP}, {RECORD:field}' }));
}

const TOKENS = [['authToken', 'Auth token'], ['verificationToken', 'Verification token'], ['passwordResetToken', 'Password reset token'],
  ['emailChangeToken', 'Email change token'], ['fileToken', 'Protected file token']];

/** The auth options tab of an auth collection. */
export function authTab(draft) {
  const d = draft;
  for (const k of ['passwordAuth', 'oauth2', 'otp', 'mfa', 'authAlert', 'verificationTemplate', 'resetPasswordTemplate',
    'confirmEmailChangeTemplate', ...TOKENS.map(([t]) => t)]) d[k] = d[k] || {};
  d.otp.emailTemplate = d.otp.emailTemplate || {};
  d.authAlert.emailTemplate = d.authAlert.emailTemplate || {};
  return h('div', { class: 'form' },
    section('Password',
      option('Enable identity/password sign-in', d.passwordAuth, 'enabled', 'bool', 'passwordAuth.enabled'),
      option('Identity fields', d.passwordAuth, 'identityFields', 'list', 'passwordAuth.identityFields', { help: 'Comma separated unique fields, e.g. email, username' })),
    oauth2Section(d),
    section('One-time password (OTP)',
      option('Enable OTP sign-in', d.otp, 'enabled', 'bool', 'otp.enabled'),
      h('div', { class: 'ce-grid' },
        option('Duration (seconds)', d.otp, 'duration', 'int', 'otp.duration'),
        option('Password length', d.otp, 'length', 'int', 'otp.length'))),
    section('Multi-factor authentication (MFA)',
      option('Enable MFA', d.mfa, 'enabled', 'bool', 'mfa.enabled', { help: 'Requires two different sign-in methods.' }),
      option('Duration (seconds)', d.mfa, 'duration', 'int', 'mfa.duration'),
      option('MFA rule', d.mfa, 'rule', 'code', 'mfa.rule', { rows: 2, help: 'Empty: MFA for every user; otherwise only those matching.' })),
    section('Token durations (seconds)',
      h('div', { class: 'ce-grid' }, TOKENS.map(([k, label]) => option(label, d[k], 'duration', 'int', `${k}.duration`)))),
    section('Mail templates',
      option('Send a login alert on a new device', d.authAlert, 'enabled', 'bool', 'authAlert.enabled'),
      template('Verification mail', d.verificationTemplate, 'verificationTemplate'),
      template('Password reset mail', d.resetPasswordTemplate, 'resetPasswordTemplate'),
      template('Confirm email change mail', d.confirmEmailChangeTemplate, 'confirmEmailChangeTemplate'),
      template('One-time password mail', d.otp.emailTemplate, 'otp.emailTemplate'),
      template('Login alert mail', d.authAlert.emailTemplate, 'authAlert.emailTemplate')));
}
