// The pages the tenant's mails and the OAuth2 redirect link to: verification, password reset,
// email change, and the end of an OAuth2 sign-in.
import { ApiError } from '../api.js';
import { h, replace } from '../dom.js';
import { field, flattenErrors } from '../ui.js';

/** The token's claims, or {} when it is not a readable JWT. */
function claims(token) {
  try {
    const part = token.split('.')[1].replace(/-/g, '+').replace(/_/g, '/');
    return JSON.parse(decodeURIComponent(escape(atob(part)))) || {};
  } catch {
    return {};
  }
}

/** A POST to a public route without the superuser's token (these pages act for the link's owner). */
async function post(path, body) {
  let response;
  try {
    response = await fetch(path, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify(body) });
  } catch {
    throw new ApiError(0, { message: 'The server could not be reached.' });
  }
  if (response.ok) return;
  let json = null;
  try { json = await response.json(); } catch { json = null; }
  throw new ApiError(response.status, json);
}

const card = (title, ...children) => h('main', { id: 'main', class: 'auth-page', tabindex: '-1' },
  h('section', { class: 'card auth-card', 'aria-labelledby': 'auth-title' }, h('h1', { id: 'auth-title', text: title }), ...children));
const note = (kind, ...text) => h('p', { class: ['notice', `notice-${kind}`], role: kind === 'error' ? 'alert' : 'status' }, ...text);
const BAD_LINK = 'This link is invalid or has expired. Ask for a new one from the app.';

/** Explains a refused token or shows its field errors next to the inputs. */
function refusal(form, err) {
  const errors = flattenErrors(err.data);
  if (errors.token) return note('error', BAD_LINK);
  for (const [path, message] of Object.entries(errors)) {
    const slot = form.querySelector(`[data-error-for="${CSS.escape(path)}"]`);
    if (slot) slot.textContent = message;
  }
  return note('error', err.message || 'Something went wrong.');
}

function verification(token, c) {
  const status = note('info', 'Verifying your email address…');
  const box = h('div', { 'aria-live': 'polite' }, status);
  post(`/api/collections/${encodeURIComponent(c.collectionId)}/confirm-verification`, { token })
    .then(() => replace(box, note('ok', 'Your email address ', h('strong', { text: c.email }), ' is verified. You can close this page.')))
    .catch(() => {
      const resend = h('button', { type: 'button', class: 'btn btn-block', text: 'Send a new verification link' });
      resend.onclick = () => post(`/api/collections/${encodeURIComponent(c.collectionId)}/request-verification`, { email: c.email })
        .then(() => replace(box, note('ok', 'Check your inbox for a new verification link.')))
        .catch((err) => replace(box, note('error', err.message)));
      replace(box, note('error', 'This verification link is invalid or has expired.'), resend);
    });
  return card('Email verification', box);
}

/** A form that posts `build()` to the collection's `route`, then shows `success`. */
function confirmForm(c, route, intro, inputs, button, build, success) {
  const problem = h('div', { 'aria-live': 'polite' });
  const submit = h('button', { type: 'submit', class: 'btn btn-primary btn-block', text: button });
  const form = h('form', { class: 'form' }, h('p', {}, ...intro), inputs, problem, submit);
  const box = h('div', {}, form);
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    submit.disabled = true;
    form.querySelectorAll('[data-error-for]').forEach((slot) => { slot.textContent = ''; });
    replace(problem);
    try {
      await post(`/api/collections/${encodeURIComponent(c.collectionId)}/${route}`, build());
      replace(box, note('ok', success));
    } catch (err) {
      replace(problem, refusal(form, err));
    } finally {
      submit.disabled = false;
    }
  });
  return box;
}

const secret = (name, autocomplete) => h('input', { class: 'input', type: 'password', name, autocomplete, required: true });

function passwordReset(token, c) {
  const password = secret('password', 'new-password');
  const confirm = secret('passwordConfirm', 'new-password');
  return card('Reset your password', confirmForm(c, 'confirm-password-reset',
    ['Choose a new password for ', h('strong', { text: c.email }), '.'],
    [field('New password', password), field('Confirm new password', confirm)], 'Set new password',
    () => ({ token: c.token, password: password.value, passwordConfirm: confirm.value }),
    'Your password was changed. You can now sign in with the new password.'));
}

function emailChange(token, c) {
  const password = secret('password', 'current-password');
  return card('Confirm your new email', confirmForm(c, 'confirm-email-change',
    ['Enter your password to change your email address to ', h('strong', { text: c.newEmail }), '.'],
    [field('Password', password)], 'Confirm new email',
    () => ({ token: c.token, password: password.value }),
    'Your email address was changed. Sign in with the new address from now on.'));
}

function oauth2(ok) {
  try { window.close(); } catch { /* a tab the page did not open stays open */ }
  return ok
    ? card('Signed in', note('ok', 'You are signed in. You can close this window and go back to the app.'))
    : card('Sign-in failed', note('error', 'The sign-in did not complete. Close this window and try again from the app.'));
}

const PAGES = {
  'confirm-verification': [verification, 'email'],
  'confirm-password-reset': [passwordReset, 'email'],
  'confirm-email-change': [emailChange, 'newEmail'],
};

export default async function authPage(ctx) {
  const [, kind, token = ''] = ctx.segments;
  if (kind === 'oauth2-redirect-success') return oauth2(true);
  if (kind === 'oauth2-redirect-failure') return oauth2(false);
  const page = PAGES[kind];
  if (!page) return card('Page not found', note('error', 'This link does not lead anywhere.'));
  const c = { ...claims(token), token };
  if (!c.collectionId || !c[page[1]]) return card('Invalid link', note('error', BAD_LINK));
  if (c.exp && c.exp * 1000 < Date.now()) return card('Expired link', note('error', 'This link has expired. Ask for a new one from the app.'));
  return page[0](token, c);
}
