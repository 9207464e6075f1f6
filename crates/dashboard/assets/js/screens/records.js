// Records of one collection: the grid (filter, sort, paging) and the record form.
import { api } from '../api.js';
import { h } from '../dom.js';
import { pageHeader } from '../ui.js';

export async function recordsView(ctx, collection, { onEditCollection }) {
  const page = await api('GET', `/api/collections/${encodeURIComponent(collection.name)}/records`, { query: { perPage: 30 } });
  return h('div', { class: 'page' },
    pageHeader(collection.name, {
      crumbs: ['Collections'],
      actions: [h('button', { type: 'button', class: 'btn', onclick: onEditCollection, text: 'Edit collection' })],
    }),
    h('ul', {}, page.items.map((r) => h('li', { text: r.id }))));
}
