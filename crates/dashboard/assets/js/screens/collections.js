// Collections: the sidebar list and the editor panel (create, edit, duplicate, truncate, delete).
import { api } from '../api.js';
import { h, uid } from '../dom.js';
import { busy, clearErrors, confirmDialog, panel, showErrors, toast } from '../ui.js';
import { authTab } from './collection-auth.js';
import { control } from './collection-form.js';
import { fieldsTab, indexesTab, indexName, newField, renameIndexColumn, retargetIndexes } from './collection-fields.js';
import { rulesTab } from './collection-rules.js';
import { viewTab } from './collection-view.js';

const TYPE_ICONS = { base: '▦', auth: '◉', view: '◫' };

/** The sidebar: a search box, the collections with their type, system ones in a closed group. */
export function collectionsSidebar(ctx, { list, active, onNew }) {
  const item = (c) => h('li', { dataset: { name: c.name.toLowerCase() } }, h('a', {
    href: `#/collections?collection=${encodeURIComponent(c.name)}`,
    class: ['side-link', 'ce-side-link', active && active.id === c.id && 'active'],
    'aria-current': active && active.id === c.id ? 'page' : null,
    title: `${c.name} (${c.type})`,
  }, h('span', { class: ['ce-type', `ce-type-${c.type}`], 'aria-hidden': 'true', text: TYPE_ICONS[c.type] || '?' }), h('span', { class: 'ce-side-name', text: c.name })));
  const own = list.filter((c) => !c.system);
  const system = list.filter((c) => c.system);
  const ownList = h('ul', { class: 'side-list' }, own.map(item));
  const systemGroup = h('details', { class: 'ce-side-group', open: !!(active && active.system) },
    h('summary', { class: 'side-heading', text: `System (${system.length})` }),
    h('ul', { class: 'side-list' }, system.map(item)));
  const none = h('p', { class: 'muted ce-side-none', hidden: own.length > 0, text: own.length ? 'No match.' : 'No collections yet.' });
  const search = h('input', { class: 'input', type: 'search', placeholder: 'Search collections', 'aria-label': 'Search collections',
    oninput: () => {
      const q = search.value.trim().toLowerCase();
      let shown = 0;
      for (const li of ownList.children) { li.hidden = !li.dataset.name.includes(q); shown += li.hidden ? 0 : 1; }
      for (const li of systemGroup.querySelectorAll('li')) li.hidden = !li.dataset.name.includes(q);
      if (q) systemGroup.open = true;
      none.hidden = shown > 0;
      none.textContent = own.length ? 'No match.' : 'No collections yet.';
    } });
  return h('aside', { class: 'sidebar', 'aria-label': 'Collections' },
    search,
    h('button', { type: 'button', class: 'btn btn-primary btn-block', onclick: onNew, text: 'New collection' }),
    ownList, none, systemGroup);
}

/** A dialog that enables its button only once the collection's name is typed. */
function confirmByName(name) {
  return new Promise((resolve) => {
    const titleId = uid('dlg');
    const input = h('input', { class: 'input', 'aria-label': `Type ${name} to confirm`, autocomplete: 'off',
      oninput: () => { go.disabled = input.value !== name; } });
    const done = (v) => { dialog.close(); dialog.remove(); resolve(v); };
    const go = h('button', { type: 'button', class: 'btn btn-danger', disabled: true, onclick: () => done(true), text: 'Delete' });
    const dialog = h('dialog', { class: 'dialog', 'aria-labelledby': titleId },
      h('h2', { id: titleId, text: `Delete ${name}?` }),
      h('p', { text: 'Every record and file of the collection is deleted too. Type its name to confirm.' }), input,
      h('div', { class: 'actions' }, h('button', { type: 'button', class: 'btn', onclick: () => done(false), text: 'Cancel' }), go));
    dialog.addEventListener('cancel', (e) => { e.preventDefault(); done(false); });
    document.body.append(dialog);
    dialog.showModal();
  });
}

/** A new collection of `type` from the server's scaffold, keeping what `from` already had. */
function fromScaffold(scaffolds, type, from) {
  const d = structuredClone(scaffolds[type] || { type, fields: [], indexes: [] });
  d.fields = d.fields || [];
  d.indexes = d.indexes || [];
  if (type !== 'view') {
    for (const name of ['created', 'updated']) {
      if (!d.fields.some((f) => f.name === name)) d.fields.push({ ...newField('autodate', d.fields), name, onUpdate: name === 'updated', hidden: false });
    }
  }
  if (from) {
    d.name = from.name;
    for (const k of ['listRule', 'viewRule', 'createRule', 'updateRule', 'deleteRule']) if (k in d) d[k] = from[k];
    if (type !== 'view') {
      const extra = from.fields.filter((f) => !f.system && !d.fields.some((x) => x.name === f.name) && (type === 'auth' || f.type !== 'password'));
      d.fields.splice(d.fields.findIndex((f) => f.type === 'autodate'), 0, ...extra);
      d.indexes = from.indexes || [];
    }
  }
  return d;
}

/** A copy of `c` to be saved as a new collection: no ids, a free name, fresh index names. */
function duplicate(c) {
  const d = structuredClone(c);
  d.id = '';
  d.name = `${c.name}_copy`;
  delete d.created; delete d.updated;
  d.system = false;
  d.indexes = retargetIndexes((d.indexes || []).map((sql) => sql.replace(/INDEX\s+(IF\s+NOT\s+EXISTS\s+)?(`[^`]*`|"[^"]*"|\S+)/i, (_, ine) => `INDEX ${ine || ''}\`${indexName()}\``)), d.name);
  return d;
}

/** The request body: the whole draft with its indexes following renamed fields and table. */
function payload(draft, original) {
  const body = structuredClone(draft);
  let indexes = body.indexes || [];
  for (const [f, name] of original) indexes = renameIndexColumn(indexes, name, f.name);
  body.indexes = retargetIndexes(indexes, body.name);
  if (!body.id) delete body.id;
  return body;
}

/** Opens the editor; resolves with the saved collection, 'deleted', or null when closed. */
export async function openCollectionEditor(ctx, collection) {
  const [all, scaffolds] = await Promise.all([ctx.collections(), collection ? null : api('GET', '/api/collections/meta/scaffolds')]);
  return editor(ctx, all, collection ? structuredClone(collection) : fromScaffold(scaffolds, 'base'), { scaffolds });
}

function editor(ctx, all, draft, { scaffolds, title }) {
  return new Promise((resolve) => {
    const isNew = !draft.id;
    let original = new Map(draft.fields.map((f) => [f, f.name]));
    const form = h('form', { class: 'form ce-form', novalidate: true, id: uid('collection-form') });
    const tabList = h('div', { class: 'tabs', role: 'tablist', 'aria-label': 'Collection settings' });
    const panels = h('div', {});
    let tabs = [];
    let active = '';
    const activate = (name, fresh = true) => {
      active = name;
      for (const t of tabs) {
        const on = t.name === name;
        t.button.setAttribute('aria-selected', String(on));
        t.button.tabIndex = on ? 0 : -1;
        if (on && fresh && t.refresh) t.refresh();
        t.panel.hidden = !on;
      }
    };
    const makeTabs = () => {
      const specs = draft.type === 'view'
        ? [['Query', () => viewTab(draft)], ['API rules', () => rulesTab(draft), true]]
        : [['Fields', () => fieldsTab(draft, { collections: all })], ['Indexes', () => indexesTab(draft), true],
          ['API rules', () => rulesTab(draft), true], draft.type === 'auth' && ['Auth options', () => authTab(draft)]];
      tabs = specs.filter(Boolean).map(([name, build, rebuild]) => {
        const id = uid('tab');
        const t = { name, build };
        t.panel = h('div', { class: 'ce-tab', role: 'tabpanel', id: `${id}-panel`, 'aria-labelledby': id }, build());
        if (rebuild) t.refresh = () => t.panel.replaceChildren(build());
        t.button = h('button', { type: 'button', class: 'tab', role: 'tab', id, 'aria-controls': `${id}-panel`, text: name, onclick: () => activate(name) });
        return t;
      });
      tabList.replaceChildren(...tabs.map((t) => t.button));
      panels.replaceChildren(...tabs.map((t) => t.panel));
      activate(tabs[0].name, false);
    };
    tabList.addEventListener('keydown', (e) => {
      const i = tabs.findIndex((t) => t.name === active);
      const j = e.key === 'ArrowRight' ? i + 1 : e.key === 'ArrowLeft' ? i - 1 : -2;
      if (j === -2) return;
      const t = tabs[(j + tabs.length) % tabs.length];
      activate(t.name);
      t.button.focus();
    });
    const typeSelect = control(draft, 'type', 'select', { name: 'type', disabled: !isNew || !scaffolds, choices: [['base', 'Base'], ['auth', 'Auth'], ['view', 'View']],
      onchange: (type) => { draft = fromScaffold(scaffolds, type, draft); original = new Map(); rebind(); makeTabs(); } });
    let nameInput;
    const head = h('div', { class: 'ce-head' });
    const rebind = () => {
      nameInput = control(draft, 'name', 'text', { name: 'name', required: true, autocomplete: 'off', placeholder: 'e.g. posts', readonly: !!draft.system });
      typeSelect.value = draft.type;
      head.replaceChildren(
        h('div', { class: 'field ce-head-name' }, h('label', { for: (nameInput.id = uid('f')), text: 'Name' }), nameInput,
          h('small', { class: 'error', dataset: { errorFor: 'name' }, role: 'alert' })),
        h('div', { class: 'field' }, h('label', { for: (typeSelect.id = uid('f')), text: 'Type' }), typeSelect,
          h('small', { class: 'error', dataset: { errorFor: 'type' }, role: 'alert' })));
    };
    rebind();
    makeTabs();
    form.append(head, tabList, panels);

    const snapshot = JSON.stringify(draft);
    const mayClose = async () => JSON.stringify(draft) === snapshot
      || confirmDialog('Your changes to this collection are not saved yet.', { title: 'Discard changes?', confirmText: 'Discard', danger: true });
    const p = panel({ title: title || (isNew ? 'New collection' : `Edit ${draft.name}`), body: form, wide: true,
      onClose: async () => { if (!(await mayClose())) return false; resolve(null); return true; } });
    const finish = (value) => { p.close(); resolve(value); };
    const save = h('button', { type: 'submit', class: 'btn btn-primary', form: form.id, text: isNew ? 'Create' : 'Save changes' });
    const cancel = h('button', { type: 'button', class: 'btn', text: 'Cancel', onclick: async () => { if (await mayClose()) finish(null); } });
    p.footer.append(isNew ? '' : moreMenu(ctx, draft, all, finish), h('span', { class: 'ce-spacer' }), cancel, save);
    if (isNew) nameInput.focus();

    form.addEventListener('submit', (e) => {
      e.preventDefault();
      busy(save, async () => {
        clearErrors(form);
        const view = tabs.find((t) => t.name === 'Query');
        if (view && !(await view.panel.firstChild.check())) { activate('Query', false); toast('The view query is not valid.', 'error'); return; }
        const removed = [...original.keys()].filter((f) => !draft.fields.includes(f)).map((f) => original.get(f));
        if (removed.length && !(await confirmDialog(`Saving deletes ${removed.join(', ')} and every value stored in ${removed.length > 1 ? 'them' : 'it'}.`,
          { title: 'Delete fields?', confirmText: 'Save and delete', danger: true }))) return;
        const body = payload(draft, original);
        try {
          const saved = isNew ? await api('POST', '/api/collections', { body }) : await api('PATCH', `/api/collections/${encodeURIComponent(draft.id)}`, { body });
          toast(isNew ? `Created ${saved.name}.` : `Saved ${saved.name}.`);
          finish(saved);
        } catch (err) {
          showErrors(form, err);
          revealError(form, tabs, activate);
        }
      });
    });
  });
}

/** Shows the tab, closed section and field options holding the first error. */
function revealError(form, tabs, activate) {
  const slot = [...form.querySelectorAll('[data-error-for]')].find((s) => s.textContent);
  if (!slot) return;
  const t = tabs.find((x) => x.panel.contains(slot));
  if (t) activate(t.name, false);
  for (let el = slot.parentElement; el && el !== form; el = el.parentElement) {
    if (el.tagName === 'DETAILS') el.open = true;
    if (el.hidden) el.hidden = false;
  }
  const input = slot.parentElement.querySelector('input, textarea, select');
  (input || slot).scrollIntoView({ block: 'center' });
}

/** Duplicate, truncate and delete, behind a "More" menu in the footer. */
function moreMenu(ctx, c, all, finish) {
  const menu = h('details', { class: 'ce-menu' });
  const item = (text, onclick, danger) => h('button', { type: 'button', class: ['btn', 'btn-ghost', danger && 'ce-danger'], text, onclick: (e) => { menu.open = false; onclick(e); } });
  const copy = async () => {
    finish(null);
    const result = await editor(ctx, all, duplicate(c), { title: `Copy of ${c.name}` });
    if (result) { ctx.invalidateCollections(); ctx.navigate(`#/collections?collection=${encodeURIComponent(result.name)}`); }
  };
  const truncate = async () => {
    if (!(await confirmDialog(`Delete every record of ${c.name}? The collection and its fields stay.`, { confirmText: 'Truncate', danger: true }))) return;
    try { await api('DELETE', `/api/collections/${encodeURIComponent(c.id)}/truncate`); toast(`Deleted every record of ${c.name}.`); finish(c); } catch (err) { toast(err.message, 'error'); }
  };
  const remove = async () => {
    if (!(await confirmByName(c.name))) return;
    try { await api('DELETE', `/api/collections/${encodeURIComponent(c.id)}`); toast(`Deleted ${c.name}.`); finish('deleted'); } catch (err) { toast(err.message, 'error'); }
  };
  menu.append(h('summary', { class: 'btn', text: 'More…' }),
    h('div', { class: 'ce-menu-list' }, !c.system && item('Duplicate', copy),
      c.type !== 'view' && item('Delete all records', truncate, true), !c.system && item('Delete collection', remove, true)));
  return menu;
}
