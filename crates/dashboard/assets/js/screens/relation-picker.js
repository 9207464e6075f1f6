// The relation picker: a panel searching the target collection, choosing one or many records.
import { api } from '../api.js';
import { debounce, h } from '../dom.js';
import { emptyState, panel } from '../ui.js';

const FALLBACK = ['name', 'title', 'label', 'username', 'email', 'slug'];

/** What a record shows in place of its id: its presentable fields, else a name-like field, else the id. */
export function recordLabel(collection, record) {
  if (!record) return '';
  const fields = (collection && collection.fields) || [];
  const show = (v) => (v === null || v === undefined || v === '' ? '' : Array.isArray(v) ? v.join(', ') : typeof v === 'object' ? JSON.stringify(v) : String(v));
  let parts = fields.filter((f) => f.presentable).map((f) => show(record[f.name])).filter(Boolean);
  if (!parts.length) parts = FALLBACK.filter((n) => fields.some((f) => f.name === n)).map((n) => show(record[n])).filter(Boolean).slice(0, 1);
  return parts.length ? parts.join(' · ') : record.id;
}

/** A filter matching `text` in the id and the text-like fields of `collection`. */
function searchFilter(collection, text) {
  if (!text) return '';
  const quoted = JSON.stringify(text);
  const names = ['id', ...(collection.fields || []).filter((f) => ['text', 'email', 'url', 'editor', 'select'].includes(f.type) && !f.hidden && f.name !== 'id').map((f) => f.name)];
  return names.map((n) => `${n} ~ ${quoted}`).join(' || ');
}

/**
 * Opens the picker over `collection`; resolves with `{ ids, records }` (the chosen ids in order
 * and the records seen for them) or null when cancelled.
 */
export function pickRelations(collection, { multiple, selected = [], max = 0 }) {
  return new Promise((resolve) => {
    let chosen = [...selected];
    const seen = new Map();
    const search = h('input', { class: 'input', type: 'search', 'aria-label': `Search ${collection.name}`, placeholder: `Search ${collection.name}…` });
    const list = h('ul', { class: 'pick-list', role: multiple ? 'group' : 'radiogroup', 'aria-label': `Records of ${collection.name}` });
    const count = h('span', { class: 'muted' });
    const toggle = (id, on) => {
      if (!multiple) chosen = on ? [id] : [];
      else if (on && !chosen.includes(id)) chosen = max && chosen.length >= max ? [...chosen.slice(1), id] : [...chosen, id];
      else if (!on) chosen = chosen.filter((x) => x !== id);
      count.textContent = `${chosen.length} selected`;
      list.querySelectorAll('input').forEach((i) => { i.checked = chosen.includes(i.value); });
    };
    const more = h('button', { type: 'button', class: 'btn btn-sm', text: 'Load more', hidden: true, onclick: () => load(next) });
    let next = 1;
    let latest = 0;
    const load = async (pageNo = 1) => {
      const ticket = ++latest;
      try {
        const page = await api('GET', `/api/collections/${encodeURIComponent(collection.name)}/records`, {
          query: { page: pageNo, perPage: 50, filter: searchFilter(collection, search.value.trim()), skipTotal: 1 },
        });
        if (ticket !== latest) return; // a newer search answered first
        page.items.forEach((r) => seen.set(r.id, r));
        next = pageNo + 1;
        more.hidden = page.items.length < 50;
        if (pageNo === 1) list.replaceChildren();
        list.append(...(page.items.length || pageNo > 1 ? page.items.map((r) => h('li', {},
          h('label', { class: 'pick-item' },
            h('input', { type: multiple ? 'checkbox' : 'radio', name: 'pick', value: r.id, checked: chosen.includes(r.id), onchange: (e) => toggle(r.id, e.target.checked) }),
            h('span', { class: 'pick-label', text: recordLabel(collection, r) }),
            h('code', { class: 'muted', text: r.id })))) : [h('li', {}, emptyState('No records found.'))]));
      } catch (e) {
        list.replaceChildren(h('li', {}, emptyState(e.message)));
      }
    };
    search.addEventListener('input', debounce(() => load(1), 250));
    const done = (value) => { p.close(); resolve(value); };
    const p = panel({
      title: `Choose from ${collection.name}`,
      body: h('div', { class: 'form' }, search, list, more),
      footer: [count,
        h('button', { type: 'button', class: 'btn', text: 'Cancel', onclick: () => done(null) }),
        h('button', { type: 'button', class: 'btn btn-primary', text: 'Select', onclick: () => done({ ids: chosen, records: chosen.map((id) => seen.get(id)).filter(Boolean) }) })],
      onClose: () => resolve(null),
    });
    p.dialog.classList.add('picker');
    count.textContent = `${chosen.length} selected`;
    load();
    search.focus();
  });
}
