// Logs: the requests-per-hour chart, the filtered and paged list, one entry in a side panel.
import { api } from '../api.js';
import { formatDate, h, replace } from '../dom.js';
import { busy, emptyState, field, pageHeader, panel } from '../ui.js';

const LEVELS = { '-4': 'Debug', 0: 'Info', 4: 'Warn', 8: 'Error' };
const NO_SUPERUSERS = "data.auth != '_superusers'";
const PER_PAGE = 50;

export default async function logsPage(ctx) {
  const state = { filter: ctx.query.get('filter') || '', level: ctx.query.get('level') || '', superusers: ctx.query.get('superusers') === '1', page: 1 };
  const filterInput = h('input', { class: 'input code', type: 'search', name: 'filter', value: state.filter, placeholder: "e.g. data.status >= 400 && data.url ~ '/api/'" });
  const level = h('select', { class: 'input', name: 'level', 'aria-label': 'Level' },
    h('option', { value: '', text: 'All levels' }),
    Object.entries(LEVELS).map(([v, t]) => h('option', { value: v, selected: v === state.level, text: t })));
  const superusers = h('input', { type: 'checkbox', name: 'superusers', checked: state.superusers });
  const chart = h('div', { class: 'card chart-card' });
  const list = h('div', { class: 'logs-list' });
  const error = h('small', { class: 'error', dataset: { errorFor: 'filter' }, role: 'alert' });
  const refresh = h('button', { type: 'button', class: 'btn', text: 'Refresh' });

  const query = () => [state.filter && `(${state.filter})`, state.level !== '' && `level = ${Number(state.level)}`, !state.superusers && NO_SUPERUSERS]
    .filter(Boolean).join(' && ');
  const load = () => busy(refresh, async () => {
    error.textContent = '';
    ctx.replaceQuery({ filter: state.filter, level: state.level, superusers: state.superusers ? '1' : '' });
    const filter = query();
    const [stats, page] = await Promise.all([
      api('GET', '/api/logs/stats', { query: { filter } }),
      api('GET', '/api/logs', { query: { filter, page: state.page, perPage: PER_PAGE } }),
    ]);
    replace(chart, hourlyChart(stats));
    replace(list, page.items.length ? logsTable(page) : emptyState('No logs match.'), pager(page, (n) => { state.page = n; load(); }));
  }, (err) => { error.textContent = err.message; replace(list, emptyState('The logs could not be loaded.')); });

  const form = h('form', { class: 'toolbar logs-toolbar', role: 'search', onsubmit: (e) => { e.preventDefault(); state.filter = filterInput.value.trim(); state.page = 1; load(); } },
    field('Filter', filterInput), level,
    field('Include superuser requests', superusers, { inline: true }),
    h('button', { type: 'submit', class: 'btn btn-primary', text: 'Search' }));
  level.onchange = () => { state.level = level.value; state.page = 1; load(); };
  superusers.onchange = () => { state.superusers = superusers.checked; state.page = 1; load(); };
  refresh.onclick = load;
  await load();
  return h('div', { class: 'page' }, pageHeader('Logs', { actions: [refresh] }), chart, form, error, list);
}

/** Requests per hour as an SVG bar chart, with the figures as text for everyone. */
function hourlyChart(stats) {
  const HOUR = 3600e3;
  const points = stats.map((s) => ({ t: Date.parse(String(s.date).replace(' ', 'T')), n: s.total })).filter((p) => p.t);
  const end = Math.floor(Date.now() / HOUR) * HOUR;
  const start = Math.min(end - 23 * HOUR, ...points.map((p) => p.t));
  const hours = Math.round((end - start) / HOUR) + 1;
  const total = points.reduce((sum, p) => sum + p.n, 0);
  const max = Math.max(1, ...points.map((p) => p.n));
  const W = 1000; const H = 120; const slot = W / hours;
  const label = (t) => new Date(t).toLocaleString([], { month: 'short', day: 'numeric', hour: '2-digit', minute: '2-digit' });
  const summary = `${total} log entr${total === 1 ? 'y' : 'ies'} since ${label(start)}, at most ${points.length ? max : 0} in one hour.`;
  const svg = h('svg:svg', { class: 'chart', viewBox: `0 0 ${W} ${H}`, preserveAspectRatio: 'none', role: 'img', 'aria-labelledby': 'logs-chart-title logs-chart-desc' },
    h('svg:title', { id: 'logs-chart-title', text: 'Log entries per hour' }),
    h('svg:desc', { id: 'logs-chart-desc', text: summary }),
    h('svg:line', { class: 'axis', x1: 0, x2: W, y1: H - 0.5, y2: H - 0.5 }),
    points.map((p) => {
      const height = Math.max(1, (p.n / max) * (H - 4));
      return h('svg:rect', { class: 'bar', x: ((p.t - start) / HOUR) * slot + slot * 0.1, width: Math.max(1, slot * 0.8), y: H - height, height },
        h('svg:title', { text: `${label(p.t)}: ${p.n}` }));
    }));
  return [h('div', { class: 'chart-head' }, h('h2', { text: 'Log entries per hour' }), h('span', { class: 'muted', text: summary })), svg,
    h('div', { class: 'chart-axis muted', 'aria-hidden': 'true' }, h('span', { text: label(start) }), h('span', { text: label(end) })),
    h('details', { class: 'chart-figures' }, h('summary', { text: 'Show the figures' }),
      h('ul', {}, points.map((p) => h('li', { text: `${label(p.t)}: ${p.n}` }))))];
}

function levelBadge(level) {
  const kind = level >= 8 ? 'badge-danger' : level >= 4 ? 'badge-warn' : level < 0 ? '' : 'badge-primary';
  return h('span', { class: ['badge', kind], text: LEVELS[level] || `Level ${level}` });
}

function logsTable(page) {
  const row = (log) => {
    const d = log.data || {};
    const open = () => showLog(log.id);
    return h('tr', { class: 'clickable', onclick: open },
      h('td', {}, levelBadge(log.level)),
      h('td', { class: 'log-message' }, h('button', { type: 'button', class: 'link-button', text: log.message || '(no message)', onclick: (e) => { e.stopPropagation(); open(); } }),
        d.status ? h('span', { class: 'muted mono', text: ` ${d.status}${d.execTime ? ` · ${Number(d.execTime).toFixed(1)} ms` : ''}` }) : null),
      h('td', { class: 'muted', text: formatDate(log.created) }));
  };
  return h('div', { class: 'table-wrap' }, h('table', { class: 'table' },
    h('thead', {}, h('tr', {}, ['Level', 'Message', 'Date'].map((t) => h('th', { scope: 'col', text: t })))),
    h('tbody', {}, page.items.map(row))));
}

function pager(page, go) {
  if (!page.totalItems) return null;
  return h('nav', { class: 'pager', 'aria-label': 'Pages' },
    h('span', { text: `Page ${page.page} of ${page.totalPages} · ${page.totalItems} entries` }),
    h('div', { class: 'actions' },
      h('button', { type: 'button', class: 'btn btn-sm', disabled: page.page <= 1, onclick: () => go(page.page - 1), text: 'Previous' }),
      h('button', { type: 'button', class: 'btn btn-sm', disabled: page.page >= page.totalPages, onclick: () => go(page.page + 1), text: 'Next' })));
}

/** One entry in a side panel: every column and every data key, objects pretty-printed. */
async function showLog(id) {
  const log = await api('GET', `/api/logs/${encodeURIComponent(id)}`);
  const value = (v) => (v !== null && typeof v === 'object'
    ? h('pre', { class: 'json', text: JSON.stringify(v, null, 2) })
    : h('span', { class: typeof v === 'string' ? '' : 'mono', text: v === '' ? '""' : String(v) }));
  const rows = [['id', log.id], ['created', formatDate(log.created)], ['level', levelBadge(log.level)], ['message', log.message],
    ...Object.keys(log.data || {}).sort().map((k) => [`data.${k}`, value(log.data[k])])];
  panel({
    title: 'Log entry',
    wide: true,
    body: h('dl', { class: 'log-detail' }, rows.map(([k, v]) => [h('dt', { class: 'mono', text: k }), h('dd', {}, v)])),
  });
}
