// Settings › Export and Import collections: the schema as JSON, out and back in.
import { api } from '../api.js';
import { h } from '../dom.js';
import { busy, clearErrors, confirmDialog, field, showErrors, toast } from '../ui.js';
import { section } from './settings-form.js';

async function allCollections() {
  return (await api('GET', '/api/collections', { query: { perPage: 500, sort: 'created' } })).items;
}

export async function exportPage() {
  const json = JSON.stringify(await allCollections(), null, 2);
  const text = h('textarea', { class: 'input code export-json', readonly: true, rows: 18, wrap: 'off', spellcheck: 'false', value: json });
  const copy = h('button', { type: 'button', class: 'btn', text: 'Copy', onclick: async () => {
    try { await navigator.clipboard.writeText(json); } catch { text.select(); document.execCommand('copy'); }
    toast('Copied to the clipboard.');
  } });
  const download = h('button', { type: 'button', class: 'btn btn-primary', text: 'Download JSON', onclick: () => {
    const url = URL.createObjectURL(new Blob([json], { type: 'application/json' }));
    const link = h('a', { href: url, download: 'collections.json', hidden: true });
    document.body.append(link);
    link.click();
    link.remove();
    setTimeout(() => URL.revokeObjectURL(url), 1000);
  } });
  return section('Collections schema',
    h('p', { class: 'muted', text: 'Every collection with its fields, indexes and rules, ready to import into another backend.' }),
    field('Collections JSON', text), h('div', { class: 'actions' }, copy, download));
}

export async function importPage(ctx) {
  const text = h('textarea', { class: 'input code', name: 'collections', rows: 16, spellcheck: 'false', placeholder: '[ { "name": "posts", "type": "base", "fields": [ … ] } ]' });
  const file = h('input', { type: 'file', class: 'input', accept: '.json,application/json', onchange: async () => {
    if (file.files[0]) text.value = await file.files[0].text();
  } });
  const missing = h('input', { type: 'checkbox', name: 'deleteMissing' });
  const submit = h('button', { type: 'submit', class: 'btn btn-primary', text: 'Review and import' });
  const form = h('form', { class: 'form', novalidate: true },
    field('Load from a JSON file', file),
    field('Or paste the collections JSON', text),
    field('Delete the collections (and their records) that are not in the import', missing, { inline: true }),
    h('div', { class: 'actions' }, submit));
  form.addEventListener('submit', (e) => {
    e.preventDefault();
    busy(submit, async () => {
      clearErrors(form);
      let collections;
      try { collections = JSON.parse(text.value); } catch { collections = null; }
      if (!Array.isArray(collections)) {
        throw Object.assign(new Error('The JSON is not a list of collections.'), { data: { collections: { message: 'Paste a JSON array of collections.' } } });
      }
      const known = new Set(collections.flatMap((c) => [c.id, c.name]));
      const dropped = missing.checked ? (await allCollections()).filter((c) => !c.system && !known.has(c.id) && !known.has(c.name)) : [];
      const note = dropped.length ? ` These collections and their records are deleted: ${dropped.map((c) => c.name).join(', ')}.` : '';
      if (!(await confirmDialog(`Import ${collections.length} collection(s)?${note}`, { confirmText: 'Import', danger: !!dropped.length }))) return;
      await api('PUT', '/api/collections/import', { body: { collections, deleteMissing: missing.checked } });
      ctx.invalidateCollections();
      toast('The collections were imported.');
    }, (err) => showErrors(form, err));
  });
  return section('Import collections',
    h('p', { class: 'muted', text: 'Collections with a known id or name are updated, new ones are created.' }), form);
}

export { exportPage as export, importPage as import };
