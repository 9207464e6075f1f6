// The collections page: the sidebar of collections beside the selected collection's records.
import { h } from '../dom.js';
import { emptyState } from '../ui.js';
import { collectionsSidebar, openCollectionEditor } from './collections.js';
import { recordsView } from './records.js';

export default async function collectionsPage(ctx) {
  const list = await ctx.collections();
  const wanted = ctx.query.get('collection');
  const collection = list.find((c) => c.name === wanted || c.id === wanted)
    || (!wanted && (list.find((c) => !c.system) || list[0])) || null;
  const edit = async (target) => {
    const result = await openCollectionEditor(ctx, target);
    if (!result) return;
    ctx.invalidateCollections();
    const name = result === 'deleted' ? '' : result.name;
    ctx.navigate(name ? `#/collections?collection=${encodeURIComponent(name)}` : '#/collections');
  };
  const main = collection
    ? recordsView(ctx, collection, { onEditCollection: () => edit(collection) })
    : emptyState(wanted ? `There is no collection "${wanted}".` : 'No collections yet.',
      h('button', { type: 'button', class: 'btn btn-primary', onclick: () => edit(null), text: 'New collection' }));
  return h('div', { class: 'split' },
    collectionsSidebar(ctx, { list, active: collection, onNew: () => edit(null) }),
    h('section', { class: 'split-main', 'aria-label': collection ? `Records of ${collection.name}` : 'Records' }, await main));
}
