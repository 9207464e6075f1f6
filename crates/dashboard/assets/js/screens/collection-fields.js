// The collection editor's Fields tab: the field list with each type's options, and the Indexes tab.
import { api } from '../api.js';
import { h } from '../dom.js';
import { field } from '../ui.js';
import { control, option } from './collection-form.js';

/** Field types in the order PocketBase offers them; `password` only on auth collections. */
export const FIELD_TYPES = ['text', 'editor', 'number', 'bool', 'email', 'url', 'date', 'autodate',
  'select', 'file', 'relation', 'json', 'geoPoint', 'password'];
export const TYPE_ICONS = { text: 'T', editor: '¶', number: '#', bool: '◐', email: '@', url: '↗', date: '◷',
  autodate: '◴', select: '≡', file: '▤', relation: '⇄', json: '{}', geoPoint: '⌖', password: '✱' };

const DEFAULTS = {
  text: { min: 0, max: 0, pattern: '', autogeneratePattern: '', primaryKey: false },
  editor: { maxSize: 0, convertURLs: false },
  number: { min: null, max: null, onlyInt: false },
  email: { exceptDomains: [], onlyDomains: [] },
  url: { exceptDomains: [], onlyDomains: [] },
  date: { min: '', max: '' },
  autodate: { onCreate: true, onUpdate: false },
  select: { values: [], maxSelect: 1 },
  file: { maxSelect: 1, maxSize: 0, mimeTypes: [], thumbs: [], protected: false },
  relation: { collectionId: '', cascadeDelete: false, minSelect: 0, maxSelect: 1 },
  json: { maxSize: 0 },
  password: { min: 0, max: 0, pattern: '', cost: 0 },
};
const DOMAINS = [['exceptDomains', 'Except domains', 'list'], ['onlyDomains', 'Only domains', 'list']];
/** Each type's options: [key, label, kind, help]. */
const OPTIONS = {
  text: [['min', 'Min length', 'int'], ['max', 'Max length', 'int'], ['pattern', 'Regex pattern', 'text', 'e.g. ^[a-z0-9]+$'],
    ['autogeneratePattern', 'Autogenerate pattern', 'text', 'A regex to fill empty values with, e.g. [a-z0-9]{15}']],
  editor: [['maxSize', 'Max size (bytes)', 'int'], ['convertURLs', 'Convert URLs to relative', 'bool']],
  number: [['min', 'Min', 'num'], ['max', 'Max', 'num'], ['onlyInt', 'Only integers', 'bool']],
  email: DOMAINS,
  url: DOMAINS,
  date: [['min', 'Min date', 'text', 'YYYY-MM-DD HH:MM:SS.000Z'], ['max', 'Max date', 'text', 'YYYY-MM-DD HH:MM:SS.000Z']],
  autodate: [['onCreate', 'Set on create', 'bool'], ['onUpdate', 'Set on update', 'bool']],
  select: [['values', 'Choices', 'list', 'Comma separated'], ['maxSelect', 'Max select', 'int', '1 for a single choice']],
  file: [['maxSelect', 'Max files', 'int'], ['maxSize', 'Max size (bytes)', 'int', '0 for the default (5 MB)'],
    ['mimeTypes', 'Allowed MIME types', 'list', 'e.g. image/png, image/jpeg (empty: any)'],
    ['thumbs', 'Thumb sizes', 'list', 'e.g. 100x100, 0x300'], ['protected', 'Protected (needs a file token)', 'bool']],
  relation: [['collectionId', 'Related collection', 'collection'], ['minSelect', 'Min select', 'int'],
    ['maxSelect', 'Max select', 'int', '1 for a single relation'], ['cascadeDelete', 'Cascade delete', 'bool']],
  json: [['maxSize', 'Max size (bytes)', 'int']],
  password: [['min', 'Min length', 'int'], ['max', 'Max length', 'int'], ['pattern', 'Regex pattern', 'text'], ['cost', 'Bcrypt cost', 'int']],
};

/** A new field of `type` with PocketBase's defaults and a free name. */
export function newField(type, fields) {
  let n = fields.length;
  while (fields.some((f) => f.name === `field${n}`)) n += 1;
  return { id: '', name: `field${n}`, type, system: false, hidden: false, presentable: false, help: '',
    ...(type === 'autodate' ? {} : { required: false }), ...structuredClone(DEFAULTS[type] || {}) };
}

function fieldOptions(f, i, { collections, disabled }) {
  const path = (key) => `fields.${i}.${key}`;
  const extra = { disabled };
  const items = (OPTIONS[f.type] || []).map(([key, label, kind, help]) => {
    if (kind === 'collection') {
      const choices = [['', 'Choose a collection…'], ...collections.map((c) => [c.id, c.name])];
      return option(label, f, key, 'select', path(key), { choices, ...extra });
    }
    return option(label, f, key, kind, path(key), { help, ...extra });
  });
  const flags = [f.type !== 'autodate' && ['required', 'Nonempty (required)'], ['hidden', 'Hidden'], ['presentable', 'Presentable']]
    .filter(Boolean).map(([key, label]) => option(label, f, key, 'bool', path(key), extra));
  items.push(option('Help text', f, 'help', 'text', path('help'), { ...extra, placeholder: 'Shown under the input in record forms' }));
  return [h('div', { class: 'ce-grid' }, items), h('div', { class: 'ce-flags' }, flags)];
}

function fieldCard(f, i, state) {
  const { draft, redraw, open } = state;
  const fields = draft.fields;
  const locked = !!f.system;
  const body = h('div', { class: 'ce-field-body', hidden: !open.has(f) }, fieldOptions(f, i, { ...state, disabled: locked }));
  const toggle = h('button', { type: 'button', class: 'btn btn-sm btn-ghost', 'aria-expanded': String(open.has(f)), text: 'Options',
    onclick: () => { const shown = body.hidden; body.hidden = !shown; toggle.setAttribute('aria-expanded', String(shown)); if (shown) open.add(f); else open.delete(f); } });
  const card = h('div', { class: ['ce-field', locked && 'ce-locked'], role: 'group', 'aria-label': `Field ${f.name}` });
  const name = control(f, 'name', 'text', { readonly: locked, 'aria-label': 'Field name', class: 'input ce-name',
    onchange: (v) => card.setAttribute('aria-label', `Field ${v}`) });
  const move = (d) => {
    const j = i + d;
    [fields[i], fields[j]] = [fields[j], fields[i]];
    redraw(`[data-move="${d}"][data-index="${j}"]`);
  };
  const btn = (label, text, onclick, attrs) => h('button', { type: 'button', class: 'btn btn-sm btn-icon', 'aria-label': label, title: label, text, onclick, ...attrs });
  card.append(
    h('div', { class: 'ce-field-head' },
      h('span', { class: 'ce-icon', title: f.type, 'aria-hidden': 'true', text: TYPE_ICONS[f.type] || '?' }),
      h('div', { class: 'ce-name-wrap' }, name, h('small', { class: 'error', dataset: { errorFor: `fields.${i}.name` }, role: 'alert' })),
      h('span', { class: 'badge', text: locked ? `${f.type} · system` : f.type }),
      h('div', { class: 'ce-field-actions' },
        btn(`Move ${f.name} up`, '↑', () => move(-1), { disabled: i === 0, dataset: { move: '-1', index: String(i) } }),
        btn(`Move ${f.name} down`, '↓', () => move(1), { disabled: i === fields.length - 1, dataset: { move: '1', index: String(i) } }),
        toggle,
        !locked && btn(`Remove ${f.name}`, '✕', () => { fields.splice(i, 1); redraw('.ce-add select'); }))),
    h('small', { class: 'error', dataset: { errorFor: `fields.${i}` }, role: 'alert' }),
    body);
  return card;
}

/** The Fields tab: `collections` are the choices of a relation's target. */
export function fieldsTab(draft, { collections }) {
  const listEl = h('div', { class: 'ce-fields' });
  const state = { draft, collections, open: new Set(), redraw };
  function redraw(focus) {
    listEl.replaceChildren(...draft.fields.map((f, i) => fieldCard(f, i, state)));
    const target = focus && (listEl.parentElement || listEl).querySelector(focus);
    if (target) (target.disabled ? target.parentElement.querySelector('button:not([disabled])') : target).focus();
  }
  const types = FIELD_TYPES.filter((t) => t !== 'password' || draft.type === 'auth');
  const typeSelect = h('select', { class: 'input', 'aria-label': 'New field type' }, types.map((t) => h('option', { value: t, text: t })));
  const add = () => {
    const f = newField(typeSelect.value, draft.fields);
    draft.fields.push(f);
    state.open.add(f);
    redraw();
    listEl.lastElementChild.querySelector('.ce-name').select();
  };
  redraw();
  return h('div', { class: 'ce-stack' },
    h('small', { class: 'error', dataset: { errorFor: 'fields' }, role: 'alert' }),
    listEl,
    h('div', { class: 'ce-add' }, typeSelect, h('button', { type: 'button', class: 'btn', onclick: add, text: 'Add field' })));
}

const quote = (s) => `\`${s}\``;
/** The columns an index covers, read back from its SQL. */
function indexColumns(sql) {
  const m = /\(([^)]*)\)\s*(WHERE.*)?$/is.exec(sql);
  return m ? m[1].split(',').map((c) => c.trim().replace(/^[`"[]|[`"\]]$/g, '').split(/\s/)[0]) : [];
}

/** A random index name like PocketBase's ("idx_" and letters). */
export function indexName() {
  return `idx_${Math.random().toString(36).slice(2, 12)}`;
}

/** Every index pointed at `table` (collection renames change the table an index is on). */
export function retargetIndexes(indexes, table) {
  return (indexes || []).map((sql) => sql.replace(/\bON\s+(`[^`]*`|"[^"]*"|\[[^\]]*\]|\S+)\s*\(/i, `ON ${quote(table)} (`));
}

/** The Indexes tab: each index as SQL with a remove button, and a form to add one. */
export function indexesTab(draft) {
  const root = h('div', { class: 'ce-stack' });
  const render = () => {
    const names = draft.fields.map((f) => f.name);
    const picks = new Set();
    const unique = h('input', { type: 'checkbox' });
    const rows = draft.indexes.map((sql, i) => h('li', { class: 'ce-index' },
      h('div', {},
        h('code', { text: sql }),
        h('small', { class: 'help', text: `${/\bUNIQUE\b/i.test(sql) ? 'Unique' : 'Index'} on ${indexColumns(sql).join(', ')}` }),
        h('small', { class: 'error', dataset: { errorFor: `indexes.${i}` }, role: 'alert' })),
      h('button', { type: 'button', class: 'btn btn-sm', 'aria-label': `Remove index ${i + 1}`, text: 'Remove',
        onclick: () => { draft.indexes.splice(i, 1); render(); } })));
    const add = () => {
      if (!picks.size) return;
      const cols = names.filter((n) => picks.has(n)).map(quote).join(', ');
      draft.indexes.push(`CREATE ${unique.checked ? 'UNIQUE ' : ''}INDEX ${quote(indexName())} ON ${quote(draft.name || 'table')} (${cols})`);
      render();
    };
    root.replaceChildren(
      h('small', { class: 'error', dataset: { errorFor: 'indexes' }, role: 'alert' }),
      rows.length ? h('ul', { class: 'ce-indexes' }, rows) : h('p', { class: 'muted', text: 'No indexes yet.' }),
      suggested,
      h('fieldset', { class: 'ce-box' },
        h('legend', { text: 'New index' }),
        h('div', { class: 'ce-columns', role: 'group', 'aria-label': 'Columns' }, h('span', { class: 'muted', text: 'Columns:' }), names.map((n) => field(n, h('input', { type: 'checkbox', onchange: (e) => (e.target.checked ? picks.add(n) : picks.delete(n)) }), { inline: true }))),
        field('Unique', unique, { inline: true }),
        h('button', { type: 'button', class: 'btn', onclick: add, text: 'Add index' })));
    showSuggestions(proposals);
  };
  // The index advisor's proposals for this collection's slow lists; "Add index" puts one in
  // the draft, saved with the collection like any other index.
  const suggested = h('div', { class: 'ce-suggested' });
  const showSuggestions = (items) => {
    const open = items.filter((s) => !draft.indexes.some((sql) => indexColumns(sql).join(',') === s.columns.join(',')));
    suggested.replaceChildren(...(open.length ? [h('fieldset', { class: 'ce-box' },
      h('legend', { text: 'Suggested by slow lists' }),
      h('ul', { class: 'ce-indexes' }, open.map((s) => h('li', { class: 'ce-index' },
        h('div', {},
          h('code', { text: s.index }),
          h('small', { class: 'help', text: `${s.count} slow ${s.count === 1 ? 'list' : 'lists'} (up to ${s.maxMs} ms), filtered on ${s.filtered.join(', ') || 'nothing'}, sorted by ${s.sorted.join(', ') || 'nothing'}` })),
        h('button', { type: 'button', class: 'btn btn-sm', 'aria-label': `Add suggested index on ${s.columns.join(', ')}`, text: 'Add index',
          onclick: () => { draft.indexes.push(s.index); render(); } })))))] : []));
  };
  let proposals = [];
  if (draft.id) {
    api('GET', '/api/warren/indexes/suggestions', { query: { collection: draft.id } })
      .then((r) => { proposals = r.items || []; showSuggestions(proposals); })
      .catch(() => {});
  }
  root.refresh = render;
  render();
  return root;
}

/** Points an index's column `from` at `to` (a field was renamed). */
export function renameIndexColumn(indexes, from, to) {
  if (!from || from === to) return indexes;
  const re = new RegExp(`([(,]\\s*)([\`"[]?)${from.replace(/\W/g, '\\$&')}([\`"\\]]?)(?=\\s*(?:ASC|DESC|COLLATE|,|\\)))`, 'gi');
  return indexes.map((sql) => sql.replace(re, (_, pre, q1, q2) => `${pre}${q1}${to}${q2}`));
}
