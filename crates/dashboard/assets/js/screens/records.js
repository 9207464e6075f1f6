// Records of one collection: the grid (filter, sort, paging, columns, selection) and its panels.
import { api, fileToken } from '../api.js';
import { formatDate, h, replace } from '../dom.js';
import { busy, confirmDialog, emptyState, pageHeader, toast } from '../ui.js';
import { editable, openRecord } from './record-form.js';
import { fileThumb } from './record-inputs.js';
import { recordLabel } from './relation-picker.js';

const PER_PAGE = [10, 20, 50, 100];
const colsKey = (c) => `warren_dashboard_columns_${c.id}`;

function hiddenColumns(collection) {
  try { return new Set(JSON.parse(localStorage.getItem(colsKey(collection)) || '[]')); } catch { return new Set(); }
}

function shorten(text, n = 60) {
  return text.length > n ? `${text.slice(0, n - 1)}…` : text;
}

/** One cell's content for `f` of `record`. */
function cell(view, f, record) {
  const v = record[f.name];
  const none = () => h('span', { class: 'muted', text: '—' });
  switch (f.type) {
    case 'bool': return h('span', { class: ['badge', v ? 'badge-ok' : ''], text: v ? 'true' : 'false' });
    case 'date': case 'autodate': return v ? h('span', { title: v, text: formatDate(v) }) : none();
    case 'json': return v === null || v === undefined ? none() : h('code', { text: shorten(JSON.stringify(v)) });
    case 'editor': { const text = new DOMParser().parseFromString(v || '', 'text/html').body.textContent.trim(); return text ? shorten(text) : none(); }
    case 'select': { const list = [].concat(v || []).filter(Boolean); return list.length ? list.map((s) => h('span', { class: 'badge badge-primary', text: s })) : none(); }
    case 'geoPoint': return v ? h('code', { text: `${v.lon}, ${v.lat}` }) : none();
    case 'file': {
      const names = [].concat(v || []).filter(Boolean);
      return names.length ? h('span', { class: 'thumbs' }, names.slice(0, 3).map((n) => fileThumb(view.collection, record, n, f.protected ? view.token : '')), names.length > 3 && `+${names.length - 3}`) : none();
    }
    case 'relation': {
      const ids = [].concat(v || []).filter(Boolean);
      if (!ids.length) return none();
      const target = view.all.find((c) => c.id === f.collectionId);
      const byId = new Map([].concat((record.expand && record.expand[f.name]) || []).map((r) => [r.id, r]));
      return ids.slice(0, 3).map((id) => h('span', { class: 'badge', text: shorten(byId.has(id) ? recordLabel(target, byId.get(id)) : id, 30) }));
    }
    default: return v === '' || v === null || v === undefined ? none() : shorten(String(v));
  }
}

function header(view, f) {
  const s = view.state.sort;
  const dir = s === f.name ? 'ascending' : s === `-${f.name}` ? 'descending' : 'none';
  const next = dir === 'ascending' ? `-${f.name}` : f.name;
  return h('th', { scope: 'col', 'aria-sort': dir, title: f.type },
    h('button', { type: 'button', class: 'sort', onclick: () => view.update({ sort: next, page: 1 }) },
      f.name, h('span', { class: 'sort-mark', 'aria-hidden': 'true', text: dir === 'ascending' ? '▲' : dir === 'descending' ? '▼' : '' })));
}

function table(view, items) {
  const cols = view.fields.filter((f) => !view.hidden.has(f.name));
  const all = h('input', { type: 'checkbox', 'aria-label': 'Select all on this page',
    checked: items.length > 0 && items.every((r) => view.selected.has(r.id)),
    indeterminate: items.some((r) => view.selected.has(r.id)) && !items.every((r) => view.selected.has(r.id)),
    onchange: (e) => { items.forEach((r) => (e.target.checked ? view.selected.add(r.id) : view.selected.delete(r.id))); view.draw(); } });
  const row = (r) => h('tr', { class: 'clickable', tabindex: '0', dataset: { id: r.id }, 'aria-label': `Record ${r.id}`,
    onclick: (e) => { if (!e.target.closest('.select-cell')) view.open(r); },
    onkeydown: (e) => { if (e.key === 'Enter' && e.target === e.currentTarget) { e.preventDefault(); view.open(r); } } },
  h('td', { class: 'select-cell' }, h('input', { type: 'checkbox', 'aria-label': `Select ${r.id}`, checked: view.selected.has(r.id),
    onchange: (e) => { if (e.target.checked) view.selected.add(r.id); else view.selected.delete(r.id); view.drawBulk(); } })),
  cols.map((f) => h('td', { dataset: { col: f.name } }, cell(view, f, r))));
  return h('div', { class: 'table-wrap' }, h('table', { class: 'table records-table' },
    h('thead', {}, h('tr', {}, h('th', { class: 'select-cell', scope: 'col' }, all), cols.map((f) => header(view, f)))),
    h('tbody', {}, items.map(row))));
}

function pager(view, page) {
  const { perPage } = view.state;
  const from = page.totalItems ? (page.page - 1) * perPage + 1 : 0;
  const to = Math.min(page.page * perPage, page.totalItems);
  const per = h('select', { class: 'input input-sm', 'aria-label': 'Records per page', onchange: (e) => view.update({ perPage: Number(e.target.value), page: 1 }) },
    PER_PAGE.map((n) => h('option', { value: String(n), text: `${n} per page`, selected: n === perPage })));
  const go = (p) => h('button', { type: 'button', class: 'btn btn-sm', disabled: p < 1 || p > page.totalPages, onclick: () => view.update({ page: p }) });
  const prev = go(page.page - 1); prev.textContent = 'Previous';
  const next = go(page.page + 1); next.textContent = 'Next';
  return h('nav', { class: 'pager', 'aria-label': 'Pages' },
    h('span', { class: 'pager-total', text: `${from}–${to} of ${page.totalItems}` }),
    h('div', { class: 'actions' }, per, prev, h('span', { text: `Page ${page.page} of ${Math.max(page.totalPages, 1)}` }), next));
}

function columnsMenu(view) {
  return h('details', { class: 'menu' },
    h('summary', { class: 'btn', text: 'Columns' }),
    h('fieldset', { class: 'menu-body' }, h('legend', { text: 'Shown columns' }),
      view.fields.map((f) => h('label', { class: 'choice' },
        h('input', { type: 'checkbox', checked: !view.hidden.has(f.name), onchange: (e) => {
          if (e.target.checked) view.hidden.delete(f.name); else view.hidden.add(f.name);
          localStorage.setItem(colsKey(view.collection), JSON.stringify([...view.hidden]));
          view.draw();
        } }), f.name))));
}

/** The records screen of `collection`; `onEditCollection` opens the collection's editor. */
export async function recordsView(ctx, collection, { onEditCollection }) {
  const all = await ctx.collections();
  const q = ctx.query;
  const view = {
    collection, all,
    fields: collection.fields.filter(editable),
    hidden: hiddenColumns(collection),
    selected: new Set(),
    state: {
      filter: q.get('filter') || '',
      sort: q.get('sort') || (collection.fields.some((f) => f.name === 'created') ? '-created' : ''),
      page: Math.max(1, Number(q.get('page')) || 1),
      perPage: PER_PAGE.includes(Number(q.get('perPage'))) ? Number(q.get('perPage')) : 20,
    },
    page: null,
    token: '',
  };
  const expand = view.fields.filter((f) => f.type === 'relation').map((f) => f.name).join(',');
  const filterInput = h('input', { class: 'input mono', type: 'search', name: 'filter', value: view.state.filter, 'aria-label': 'Filter',
    placeholder: 'Filter, e.g. title ~ "abc" && created > "2024-01-01"', spellcheck: 'false' });
  const filterError = h('small', { class: 'error', role: 'alert', dataset: { errorFor: 'filter' } });
  const body = h('div', { class: 'records-body', 'aria-live': 'polite' });
  const bulk = h('div', { class: 'bulk', hidden: true });

  view.update = (change) => { Object.assign(view.state, change); view.load(); };
  view.open = async (record) => {
    if (await openRecord({ all, fileToken: view.token }, collection, record)) view.load();
  };
  view.drawBulk = () => {
    const n = view.selected.size;
    bulk.hidden = !n;
    bulk.replaceChildren(h('span', { text: `${n} selected` }),
      h('button', { type: 'button', class: 'btn btn-sm', text: 'Clear', onclick: () => { view.selected.clear(); view.draw(); } }),
      h('button', { type: 'button', class: 'btn btn-sm btn-danger', text: `Delete selected (${n})`, onclick: (e) => deleteSelected(view, e.currentTarget) }));
  };
  view.draw = () => {
    const page = view.page;
    // `replace` skips the `false` of a page without a pager (the DOM's own replaceChildren
    // would show it as text).
    replace(body, !page ? '' : page.items.length ? table(view, page.items)
      : emptyState(view.state.filter ? 'No records match this filter.' : 'No records yet.'), page && page.totalItems > 0 && pager(view, page));
    view.drawBulk();
  };
  view.load = async () => {
    const { filter, sort, page, perPage } = view.state;
    ctx.replaceQuery({ collection: collection.name, filter, sort, page: page > 1 ? page : '', perPage: perPage !== 20 ? perPage : '' });
    body.setAttribute('aria-busy', 'true');
    try {
      if (!view.token && collection.fields.some((f) => f.type === 'file' && f.protected)) view.token = await fileToken().catch(() => '');
      view.page = await api('GET', `/api/collections/${encodeURIComponent(collection.name)}/records`, { query: { filter, sort, page, perPage, expand } });
      filterError.textContent = '';
      filterInput.removeAttribute('aria-invalid');
      if (view.page.items.length === 0 && page > 1 && view.page.totalPages) { view.update({ page: view.page.totalPages }); return; }
    } catch (e) {
      if (e.status !== 400) throw e;
      filterError.textContent = `The filter or sort was refused: ${e.message}`;
      filterInput.setAttribute('aria-invalid', 'true');
      view.page = { items: [], page: 1, totalItems: 0, totalPages: 0 };
    }
    body.removeAttribute('aria-busy');
    view.draw();
  };
  const filterForm = h('form', { class: 'toolbar', role: 'search', onsubmit: (e) => { e.preventDefault(); view.update({ filter: filterInput.value.trim(), page: 1 }); } },
    filterInput, h('button', { type: 'submit', class: 'btn', text: 'Apply' }),
    h('button', { type: 'button', class: 'btn btn-ghost', text: 'Clear', onclick: () => { filterInput.value = ''; view.update({ filter: '', page: 1 }); } }),
    columnsMenu(view));
  await view.load();
  return h('div', { class: 'page records' },
    pageHeader(collection.name, {
      crumbs: ['Collections', collection.type],
      actions: [
        h('button', { type: 'button', class: 'btn', onclick: onEditCollection, text: 'Edit collection' }),
        collection.type !== 'view' && h('button', { type: 'button', class: 'btn btn-primary', text: 'New record', onclick: () => view.open(null) }),
      ],
    }),
    h('div', {}, filterForm, filterError), bulk, body);
}

async function deleteSelected(view, button) {
  const ids = [...view.selected];
  if (!(await confirmDialog(`Delete ${ids.length} record${ids.length === 1 ? '' : 's'}? This cannot be undone.`, { danger: true, confirmText: 'Delete' }))) return;
  await busy(button, async () => {
    const base = `/api/collections/${encodeURIComponent(view.collection.name)}/records/`;
    const results = await Promise.allSettled(ids.map((id) => api('DELETE', base + encodeURIComponent(id))));
    const failed = results.filter((r) => r.status === 'rejected');
    ids.forEach((id, i) => { if (results[i].status === 'fulfilled') view.selected.delete(id); });
    if (failed.length) toast(`${failed.length} could not be deleted: ${failed[0].reason.message}`, 'error');
    else toast(`Deleted ${ids.length} record${ids.length === 1 ? '' : 's'}.`);
  });
  await view.load();
}
