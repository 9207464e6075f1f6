// Collections: the sidebar list and the editor panel (create, edit, delete).
import { api } from '../api.js';
import { h } from '../dom.js';
import { field, panel, showErrors } from '../ui.js';

/** The sidebar: every collection, system ones apart; `onNew` opens the editor for a new one. */
export function collectionsSidebar(ctx, { list, active, onNew }) {
  const item = (c) => h('li', {}, h('a', {
    href: `#/collections?collection=${encodeURIComponent(c.name)}`,
    class: ['side-link', active && active.id === c.id && 'active'],
    'aria-current': active && active.id === c.id ? 'page' : null,
    text: c.name,
  }));
  return h('aside', { class: 'sidebar', 'aria-label': 'Collections' },
    h('button', { type: 'button', class: 'btn btn-primary btn-block', onclick: onNew, text: 'New collection' }),
    h('ul', { class: 'side-list' }, list.filter((c) => !c.system).map(item)),
    h('h2', { class: 'side-heading', text: 'System' }),
    h('ul', { class: 'side-list' }, list.filter((c) => c.system).map(item)));
}

/** Opens the editor; resolves with the saved collection, 'deleted', or null when closed. */
export function openCollectionEditor(ctx, collection) {
  return new Promise((resolve) => {
    const name = h('input', { class: 'input', name: 'name', value: collection ? collection.name : '', required: true });
    const form = h('form', { class: 'form' }, field('Name', name));
    const save = h('button', { type: 'submit', class: 'btn btn-primary', text: 'Save' });
    const p = panel({ title: collection ? `Edit ${collection.name}` : 'New collection', body: form, footer: save, onClose: () => resolve(null) });
    save.setAttribute('form', (form.id = 'collection-form'));
    form.addEventListener('submit', async (e) => {
      e.preventDefault();
      try {
        const body = { name: name.value, type: collection ? collection.type : 'base' };
        const saved = collection
          ? await api('PATCH', `/api/collections/${collection.id}`, { body })
          : await api('POST', '/api/collections', { body });
        p.close();
        resolve(saved);
      } catch (err) {
        showErrors(form, err);
      }
    });
  });
}
