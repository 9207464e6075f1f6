// Superuser sign-in.
import { api, auth } from '../api.js';
import { h } from '../dom.js';
import { field, showErrors } from '../ui.js';

export default async function loginPage(ctx) {
  const email = h('input', { class: 'input', type: 'email', name: 'identity', autocomplete: 'username', required: true });
  const password = h('input', { class: 'input', type: 'password', name: 'password', autocomplete: 'current-password', required: true });
  const submit = h('button', { type: 'submit', class: 'btn btn-primary btn-block', text: 'Sign in' });
  const form = h('form', { class: 'form card auth-card', 'aria-labelledby': 'login-title' },
    h('h1', { id: 'login-title', text: 'Superuser sign-in' }),
    field('Email', email), field('Password', password), submit);
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    submit.disabled = true;
    try {
      const answer = await api('POST', '/api/collections/_superusers/auth-with-password', {
        body: { identity: email.value, password: password.value },
      });
      auth.save(answer.token, answer.record);
      ctx.navigate(ctx.returnTo());
    } catch (err) {
      showErrors(form, err);
    } finally {
      submit.disabled = false;
    }
  });
  return h('div', { class: 'auth-page' }, form);
}
