// The console's one-time link: trades the code in #/link/CODE for a superuser session.
import { api, auth } from '../api.js';
import { h } from '../dom.js';

export default async function linkPage(ctx) {
  const code = ctx.segments[1] || '';
  // The code is used up now: keep it out of the history and the address bar.
  history.replaceState(null, '', '#/link');
  try {
    const answer = await api('POST', '/api/warren/dashboard-link', { body: { code } });
    auth.save(answer.token, answer.record);
    ctx.navigate('#/collections');
    return h('div', { class: 'auth-page' }, h('p', { class: 'muted', role: 'status', text: 'Signing you in…' }));
  } catch (err) {
    return h('div', { class: 'auth-page' },
      h('div', { class: 'card auth-card', role: 'alert' },
        h('h1', { text: 'This link did not sign you in' }),
        h('p', { class: 'muted', text: err.message || 'The link could not be used.' }),
        h('div', { class: 'actions' },
          h('a', { class: 'btn btn-primary', href: '#/login', text: 'Sign in with a password' }))));
  }
}
