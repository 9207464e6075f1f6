// The collection editor's Query tab for view collections: the SELECT, checked by a dry run.
import { api } from '../api.js';
import { h } from '../dom.js';
import { busy, field } from '../ui.js';
import { control } from './collection-form.js';
import { TYPE_ICONS } from './collection-fields.js';

/** The Query tab; `tab.check()` dry-runs the query and resolves whether it is valid. */
export function viewTab(draft) {
  const result = h('div', { class: 'ce-view-result', 'aria-live': 'polite' });
  const chips = (fields, text) => result.replaceChildren(h('p', { class: 'help', text }),
    h('ul', { class: 'ce-chips', 'aria-label': 'Fields of the view' }, fields.map((f) =>
      h('li', { class: 'badge' }, h('span', { 'aria-hidden': 'true', text: `${TYPE_ICONS[f.type] || '?'} ` }), `${f.name} (${f.type})`))));
  if (draft.fields && draft.fields.length) chips(draft.fields, 'Current fields:');
  const area = control(draft, 'viewQuery', 'code', { name: 'viewQuery', rows: 8, spellcheck: 'false',
    placeholder: 'SELECT id, title, created FROM posts WHERE status = "published"' });
  const slot = () => root.querySelector('[data-error-for="viewQuery"]');
  async function check() {
    slot().textContent = '';
    area.removeAttribute('aria-invalid');
    try {
      const answer = await api('POST', '/api/collections/meta/dry-run-view', { body: { query: draft.viewQuery || '' } });
      const fields = (answer && answer.fields) || [];
      chips(fields, `The query is valid; the view will have ${fields.length} fields:`);
      return true;
    } catch (err) {
      // A server without the dry run still checks the query when the collection is saved.
      if (err.status === 404) { result.replaceChildren(h('p', { class: 'help', text: 'The query is checked when you save.' })); return true; }
      const detail = err.data && (err.data.query || err.data.viewQuery);
      slot().textContent = (detail && detail.message) || err.message;
      area.setAttribute('aria-invalid', 'true');
      result.replaceChildren();
      return false;
    }
  }
  const button = h('button', { type: 'button', class: 'btn', text: 'Check query', onclick: () => busy(button, check) });
  const root = h('div', { class: 'form' },
    field('Select query', area, { name: 'viewQuery', help: 'One SELECT statement; its columns become the fields. Include an id column.' }),
    h('div', { class: 'actions' }, button),
    result);
  root.check = check;
  return root;
}
