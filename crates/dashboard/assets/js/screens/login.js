// Superuser sign-in: password, a one-time code by mail, and the second factor of MFA.
import { api, auth } from '../api.js';
import { h, replace } from '../dom.js';
import { clearErrors, field, flattenErrors } from '../ui.js';

const BASE = '/api/collections/_superusers';
const FALLBACK = { password: { enabled: true, identityFields: ['email'] }, otp: { enabled: false }, mfa: { enabled: false } };

/** The sign-in card; its body switches between the password, code request and code forms. */
export default async function loginPage(ctx) {
  let methods = FALLBACK;
  try { methods = await api('GET', `${BASE}/auth-methods`); } catch { /* offer the password form */ }
  const otpOn = !!(methods.otp && methods.otp.enabled);
  const passwordOn = !!(methods.password && methods.password.enabled);
  const fields = (methods.password && methods.password.identityFields) || ['email'];
  const s = { mfaId: '', otpId: '', email: '', first: '' };
  const step = h('p', { class: 'muted step', 'aria-live': 'polite' });
  const body = h('div', {});
  const show = (form, note) => {
    step.textContent = note || '';
    replace(body, form);
    const input = form.querySelector('input:not([type=hidden])');
    if (input) input.focus();
  };
  const done = (answer) => {
    const to = ctx.returnTo();
    sessionStorage.removeItem('warren_dashboard_return');
    auth.save(answer.token, answer.record);
    ctx.navigate(to);
  };
  /** A 401 carrying `mfaId` means the first factor passed and a second is due. */
  const secondFactor = async (err, first) => {
    if (!(err.status === 401 && err.response && err.response.mfaId)) return false;
    s.mfaId = err.response.mfaId;
    s.first = first;
    if (first === 'otp' && passwordOn) show(passwordForm(), 'Second step: confirm with your password.');
    else if (first === 'password' && otpOn) {
      if (s.email) await requestCode(null);
      else show(requestForm(), 'Second step: get a one-time code by email.');
    } else show(h('p', { class: 'form-error', role: 'alert', text: 'This account needs a second factor the dashboard does not offer.' }));
    return true;
  };

  function passwordForm() {
    const emailOnly = fields.length === 1 && fields[0] === 'email';
    const label = fields.map((f) => f[0].toUpperCase() + f.slice(1)).join(' or ');
    const identity = h('input', { class: 'input', type: emailOnly ? 'email' : 'text', name: 'identity', autocomplete: 'username', required: true, value: s.email });
    const password = h('input', { class: 'input', type: 'password', name: 'password', autocomplete: 'current-password', required: true });
    const form = h('form', { class: 'form' },
      s.mfaId ? null : field(label, identity),
      field('Password', password),
      errorLine(),
      h('button', { type: 'submit', class: 'btn btn-primary btn-block', text: 'Sign in' }),
      otpOn && !s.mfaId && h('button', { type: 'button', class: 'btn btn-ghost btn-block', text: 'Email me a one-time code instead', onclick: () => show(requestForm()) }),
      !s.mfaId && h('button', { type: 'button', class: 'btn btn-ghost btn-block', text: 'Forgot password?', onclick: () => show(resetForm()) }));
    submitWith(form, async () => {
      if (!s.mfaId && /^[^@\s]+@[^@\s]+$/.test(identity.value)) s.email = identity.value;
      const sent = { identity: s.mfaId ? s.email || identity.value : identity.value, password: password.value };
      if (s.mfaId) sent.mfaId = s.mfaId;
      try {
        done(await api('POST', `${BASE}/auth-with-password`, { body: sent }));
      } catch (err) {
        if (!(await secondFactor(err, 'password'))) throw err;
      }
    });
    return form;
  }

  function resetForm() {
    const email = h('input', { class: 'input', type: 'email', name: 'email', autocomplete: 'username', required: true, value: s.email });
    const form = h('form', { class: 'form' },
      h('p', { text: 'Enter your email address and we will send you a link to choose a new password.' }),
      field('Email', email),
      errorLine(),
      h('button', { type: 'submit', class: 'btn btn-primary btn-block', text: 'Send reset link' }),
      h('button', { type: 'button', class: 'btn btn-ghost btn-block', text: 'Back to sign-in', onclick: () => show(passwordForm()) }));
    submitWith(form, async () => {
      s.email = email.value;
      await api('POST', `${BASE}/request-password-reset`, { body: { email: s.email } });
      show(h('div', { class: 'form' },
        h('p', { class: 'notice notice-ok', role: 'status' }, 'If ', h('strong', { text: s.email }), ' belongs to a superuser, a link to reset the password is on its way.'),
        h('button', { type: 'button', class: 'btn btn-block', text: 'Back to sign-in', onclick: () => show(passwordForm()) })));
    });
    return form;
  }

  function requestForm() {
    const email = h('input', { class: 'input', type: 'email', name: 'email', autocomplete: 'username', required: true, value: s.email });
    const form = h('form', { class: 'form' },
      field('Email', email),
      errorLine(),
      h('button', { type: 'submit', class: 'btn btn-primary btn-block', text: 'Send code' }),
      passwordOn && !s.mfaId && h('button', { type: 'button', class: 'btn btn-ghost btn-block', text: 'Use my password instead', onclick: () => show(passwordForm()) }));
    submitWith(form, () => requestCode(email.value));
    return form;
  }

  async function requestCode(address) {
    if (address) s.email = address;
    const answer = await api('POST', `${BASE}/request-otp`, { body: { email: s.email } });
    s.otpId = answer.otpId;
    show(codeForm(), s.mfaId ? 'Second step: enter the code we emailed you.' : '');
  }

  function codeForm() {
    const code = h('input', { class: 'input', type: 'text', name: 'password', inputmode: 'numeric', autocomplete: 'one-time-code', required: true });
    const form = h('form', { class: 'form' },
      h('p', {}, 'We sent a one-time code to ', h('strong', { text: s.email }), '. Enter it below.'),
      field('One-time code', code, { name: 'password' }),
      h('small', { class: 'error', dataset: { errorFor: 'otpId' } }),
      errorLine(),
      h('button', { type: 'submit', class: 'btn btn-primary btn-block', text: 'Sign in' }),
      h('button', { type: 'button', class: 'btn btn-ghost btn-block', text: 'Send another code', onclick: () => show(requestForm()) }));
    submitWith(form, async () => {
      const sent = { otpId: s.otpId, password: code.value.trim() };
      if (s.mfaId) sent.mfaId = s.mfaId;
      try {
        done(await api('POST', `${BASE}/auth-with-otp`, { body: sent }));
      } catch (err) {
        if (!(await secondFactor(err, 'otp'))) throw err;
      }
    });
    return form;
  }

  const first = passwordOn ? passwordForm() : otpOn ? requestForm()
    : h('p', { class: 'form-error', role: 'alert', text: 'No sign-in method is enabled for superusers.' });
  replace(body, first);
  const card = h('section', { class: 'card auth-card', 'aria-labelledby': 'login-title' },
    h('h1', { id: 'login-title', text: 'Superuser sign-in' }), step, body);
  return h('main', { id: 'main', class: 'auth-page', tabindex: '-1' }, card);
}

/** The line under a form that states why the server refused it. */
function errorLine() {
  return h('p', { class: 'form-error', role: 'alert' });
}

/** Submits `form` through `action` with its button busy; refusals fill the inline slots. */
function submitWith(form, action) {
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    const button = form.querySelector('button[type=submit]');
    button.disabled = true;
    clearErrors(form);
    const line = form.querySelector('.form-error');
    line.textContent = '';
    try {
      await action();
    } catch (err) {
      for (const [path, message] of Object.entries(flattenErrors(err.data))) {
        const slot = form.querySelector(`[data-error-for="${CSS.escape(path)}"]`);
        if (slot) slot.textContent = message;
        const input = form.querySelector(`[name="${CSS.escape(path)}"]`);
        if (input) input.setAttribute('aria-invalid', 'true');
      }
      line.textContent = err.message || 'Something went wrong.';
    } finally {
      button.disabled = false;
    }
  });
}
