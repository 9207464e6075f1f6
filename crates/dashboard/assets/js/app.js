// The dashboard's shell: hash routes, the signed-in layout, lazily loaded screens.
import { api, auth, collections, invalidateCollections } from './api.js';
import { h, replace } from './dom.js';
import { emptyState, toast } from './ui.js';

/**
 * Routes by their first hash segment: the module under ./screens/ whose default export
 * `(ctx) => Element | Promise<Element>` renders the page. `public` pages need no sign-in.
 */
const ROUTES = {
  login: { module: 'login', public: true, bare: true },
  auth: { module: 'authpages', public: true, bare: true },
  link: { module: 'link', public: true, bare: true },
  collections: { module: 'collections-page', nav: 'Collections' },
  logs: { module: 'logs', nav: 'Logs' },
  settings: { module: 'settings', nav: 'Settings' },
  usage: { module: 'usage', nav: 'Usage' },
};
const HOME = '#/collections';

/** The current route: `segments` (decoded), `query` (URLSearchParams), `name`. */
function currentRoute() {
  const raw = location.hash.replace(/^#\/?/, '');
  const [pathPart, queryPart = ''] = raw.split('?');
  const segments = pathPart.split('/').filter(Boolean).map((s) => {
    try { return decodeURIComponent(s); } catch { return s; }
  });
  return { name: segments[0] || '', segments, query: new URLSearchParams(queryPart) };
}

/** Goes to `hash` (e.g. "#/logs"); renders even when the hash does not change. */
export function navigate(hash) {
  if (location.hash === hash) render();
  else location.hash = hash;
}

/** Rewrites the current route's query without re-rendering (for filters, sort, paging). */
export function replaceQuery(params) {
  const { segments } = currentRoute();
  const text = new URLSearchParams(Object.entries(params).filter(([, v]) => v !== undefined && v !== null && v !== '')).toString();
  history.replaceState(null, '', `#/${segments.map(encodeURIComponent).join('/')}${text ? `?${text}` : ''}`);
}

let settingsCache = null;
/** The tenant's settings (superusers only), cached for the app name in the header. */
function appSettings() {
  if (!settingsCache) settingsCache = api('GET', '/api/settings').catch(() => null);
  return settingsCache;
}

/** Shows the app's name (from its settings) in `el` and the window title. */
function showAppName(el) {
  appSettings().then((s) => {
    const name = s && s.meta && s.meta.appName;
    if (name) { el.textContent = name; document.title = `${name} · Dashboard`; }
  });
}

function layout(active, main) {
  const links = Object.entries(ROUTES).filter(([, r]) => r.nav).map(([name, r]) =>
    h('a', { href: `#/${name}`, class: ['nav-link', name === active && 'active'], 'aria-current': name === active ? 'page' : null, text: r.nav }));
  const appName = h('span', { class: 'brand-name', text: 'Dashboard' });
  showAppName(appName);
  return h('div', { class: 'shell' },
    h('header', { class: 'topbar' },
      h('a', { class: 'brand', href: HOME }, h('img', { src: 'favicon.svg', alt: '', width: 24, height: 24 }), appName),
      h('nav', { class: 'nav', 'aria-label': 'Main' }, links),
      h('div', { class: 'account' },
        h('span', { class: 'muted account-email', text: (auth.record && auth.record.email) || '' }),
        h('button', { type: 'button', class: 'btn btn-ghost', onclick: signOut, text: 'Sign out' }))),
    h('main', { id: 'main', class: 'main', tabindex: '-1' }, main));
}

/**
 * Puts `main` into the shell already shown in `root`, marking `active` in its navigation, so
 * the header (and a focused link or button in it) stays while screens change. False when
 * `root` shows no shell (a bare page, or nothing yet).
 */
function reuseLayout(root, active, main) {
  const shell = root.firstElementChild;
  const slot = shell && shell.classList.contains('shell') && shell.querySelector('main');
  if (!slot) return false;
  for (const link of shell.querySelectorAll('.nav-link')) {
    const current = link.getAttribute('href') === `#/${active}`;
    link.classList.toggle('active', current);
    if (current) link.setAttribute('aria-current', 'page');
    else link.removeAttribute('aria-current');
  }
  const email = shell.querySelector('.account-email');
  if (email) email.textContent = (auth.record && auth.record.email) || '';
  const appName = shell.querySelector('.brand-name');
  if (appName) showAppName(appName);
  replace(slot, main);
  return true;
}

function signOut() {
  auth.clear();
  settingsCache = null;
  invalidateCollections();
  navigate('#/login');
}

let renderToken = 0;
/** Renders the current route into #app. */
export async function render() {
  const token = ++renderToken;
  const root = document.getElementById('app');
  const route = currentRoute();
  const spec = ROUTES[route.name];
  if (!spec) { navigate(auth.isValid() ? HOME : '#/login'); return; }
  if (!spec.public && !auth.isValid()) {
    sessionStorage.setItem('warren_dashboard_return', location.hash);
    navigate('#/login');
    return;
  }
  let shownHash = location.hash;
  const ctx = {
    ...route,
    navigate,
    replaceQuery: (params) => {
      // A screen left behind by a newer navigation (even one whose hashchange has not fired yet)
      // must not write its query over the new route.
      if (token !== renderToken || location.hash !== shownHash) return;
      replaceQuery(params);
      shownHash = location.hash;
    },
    collections,
    invalidateCollections,
    refreshSettings: () => { settingsCache = null; },
    /** Where sign-in returns to. */
    returnTo: () => sessionStorage.getItem('warren_dashboard_return') || HOME,
  };
  root.setAttribute('aria-busy', 'true');
  let content;
  try {
    const module = await import(`./screens/${spec.module}.js`);
    content = await module.default(ctx);
  } catch (e) {
    if (e && e.status === 401) { navigate('#/login'); return; }
    content = emptyState((e && e.message) || 'This page failed to load.');
  }
  if (token !== renderToken) return; // a newer navigation won
  if (spec.bare || !reuseLayout(root, route.name, content)) {
    replace(root, spec.bare ? content : layout(route.name, content));
  }
  root.setAttribute('aria-busy', 'false');
  const heading = root.querySelector('h1');
  if (heading && document.activeElement === document.body) heading.setAttribute('tabindex', '-1');
}

window.addEventListener('hashchange', render);
auth.onChange(() => { if (!auth.token && !ROUTES[currentRoute().name]?.public) navigate('#/login'); });
window.addEventListener('unhandledrejection', (e) => {
  if (e.reason && e.reason.name === 'AbortError') return;
  toast((e.reason && e.reason.message) || 'Something went wrong.', 'error');
});
render();

// The skip link moves focus to the content instead of changing the hash (which is the route).
document.addEventListener('click', (e) => {
  if (!e.target.closest || !e.target.closest('a.skip')) return;
  e.preventDefault();
  const main = document.getElementById('main');
  if (main) main.focus();
});
