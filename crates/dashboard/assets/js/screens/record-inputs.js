// Record form inputs: one labelled control per field type, each able to read back its value.
import { fileUrl } from '../api.js';
import { formatDate, h, uid } from '../dom.js';
import { field } from '../ui.js';
import { pickRelations, recordLabel } from './relation-picker.js';

const IMAGE = /\.(png|jpe?g|gif|webp|bmp|svg)$/i;

/** A PocketBase date ("2024-01-02 03:04:05.678Z") as a datetime-local value, in local time. */
export function toLocalInput(value) {
  if (!value) return '';
  const d = new Date(String(value).replace(' ', 'T'));
  if (Number.isNaN(d.getTime())) return '';
  const p = (n, w = 2) => String(n).padStart(w, '0');
  return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())}T${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())}`;
}

/** A datetime-local value as PocketBase's UTC date format ('' stays ''). */
export function fromLocalInput(value) {
  if (!value) return '';
  const d = new Date(value);
  return Number.isNaN(d.getTime()) ? '' : d.toISOString().replace('T', ' ');
}

/** Stored rich text with scripts, frames, event handlers and javascript: links taken out. */
export function cleanHtml(html) {
  const doc = new DOMParser().parseFromString(`<body>${html || ''}</body>`, 'text/html');
  doc.body.querySelectorAll('script,style,iframe,object,embed,link,meta,form').forEach((n) => n.remove());
  doc.body.querySelectorAll('*').forEach((n) => {
    for (const a of [...n.attributes]) {
      if (/^on/i.test(a.name) || (/^(href|src)$/i.test(a.name) && /^\s*javascript:/i.test(a.value))) n.removeAttribute(a.name);
    }
  });
  return doc.body;
}

function editorInput(f, value, id) {
  const area = h('div', { class: 'input editor-area', contenteditable: 'true', role: 'textbox', 'aria-multiline': 'true', id, 'aria-label': f.name });
  area.append(...cleanHtml(value).childNodes);
  const cmd = (name, arg) => { area.focus(); document.execCommand(name, false, arg); };
  const tool = (label, text, run) => h('button', { type: 'button', class: 'btn btn-sm', 'aria-label': label, title: label, text, onclick: run });
  const bar = h('div', { class: 'editor-bar', role: 'toolbar', 'aria-label': `${f.name} formatting` },
    tool('Bold', 'B', () => cmd('bold')), tool('Italic', 'I', () => cmd('italic')),
    tool('Bulleted list', '•', () => cmd('insertUnorderedList')), tool('Numbered list', '1.', () => cmd('insertOrderedList')),
    tool('Link', 'Link', () => { const url = prompt('Link address'); if (url && !/^\s*javascript:/i.test(url)) cmd('createLink', url); }),
    tool('Remove link', 'Unlink', () => cmd('unlink')));
  return { el: h('div', { class: 'editor' }, bar, area), focus: area, read: () => (area.textContent.trim() || area.querySelector('img') ? area.innerHTML : '') };
}

function selectInput(f, value) {
  const values = f.values || [];
  if ((f.maxSelect || 1) <= 1) {
    const sel = h('select', { class: 'input', name: f.name },
      h('option', { value: '', text: '— none —' }),
      values.map((v) => h('option', { value: v, text: v, selected: v === value })));
    return { el: sel, read: () => sel.value };
  }
  const chosen = new Set(Array.isArray(value) ? value : []);
  const boxes = values.map((v) => h('input', { type: 'checkbox', value: v, checked: chosen.has(v) }));
  const el = h('div', { class: 'choices', role: 'group', 'aria-label': f.name },
    boxes.map((b) => h('label', { class: 'choice' }, b, b.value)));
  return { el, read: () => boxes.filter((b) => b.checked).map((b) => b.value) };
}

function jsonInput(f, value) {
  const text = value === null || value === undefined ? '' : JSON.stringify(value, null, 2);
  const area = h('textarea', { class: 'input code', name: f.name, spellcheck: 'false', value: text });
  return {
    el: area,
    read: () => {
      const raw = area.value.trim();
      if (!raw) return null;
      try { return JSON.parse(raw); } catch { throw Object.assign(new Error('Must be valid JSON.'), { field: f.name }); }
    },
  };
}

function geoInput(f, value) {
  const v = value || { lon: 0, lat: 0 };
  const num = (key, label) => h('input', { class: 'input', type: 'number', step: 'any', 'aria-label': `${f.name} ${label}`, placeholder: label, value: String(v[key] ?? 0) });
  const lon = num('lon', 'longitude');
  const lat = num('lat', 'latitude');
  const el = h('div', { class: 'row' },
    h('label', { class: 'geo' }, h('span', { class: 'muted', text: 'Lon' }), lon),
    h('label', { class: 'geo' }, h('span', { class: 'muted', text: 'Lat' }), lat));
  return { el, focus: lon, read: () => ({ lon: Number(lon.value) || 0, lat: Number(lat.value) || 0 }) };
}

/** A file thumbnail (or the file's name when it is no image). */
export function fileThumb(collection, record, name, token) {
  if (!IMAGE.test(name)) return h('span', { class: 'file-chip', title: name, text: name });
  return h('img', { class: 'thumb', alt: name, title: name, loading: 'lazy', src: fileUrl(collection.name, record.id, name, { thumb: '100x100', token }) });
}

function fileInput(ctx, collection, f, record) {
  const multiple = (f.maxSelect || 1) > 1;
  const existing = record ? [].concat(record[f.name] || []) : [];
  const removed = new Set();
  let added = [];
  const list = h('ul', { class: 'files' });
  const picker = h('input', { type: 'file', class: 'input', multiple, 'aria-label': `Upload ${f.name}` });
  const draw = () => {
    list.replaceChildren(...existing.map((name) => {
      const gone = removed.has(name);
      return h('li', { class: ['file-item', gone && 'removed'] },
        fileThumb(collection, record, name, ctx.fileToken), h('span', { class: 'file-name', text: name }),
        h('button', { type: 'button', class: 'btn btn-sm', 'aria-label': `${gone ? 'Keep' : 'Remove'} ${name}`,
          text: gone ? 'Keep' : 'Remove', onclick: () => { if (gone) removed.delete(name); else removed.add(name); draw(); } }));
    }), ...added.map((file) => h('li', { class: 'file-item new' },
      file.type.startsWith('image/') ? h('img', { class: 'thumb', alt: file.name, src: URL.createObjectURL(file) }) : h('span', { class: 'file-chip', text: file.name }),
      h('span', { class: 'file-name', text: `${file.name} (new)` }),
      h('button', { type: 'button', class: 'btn btn-sm', 'aria-label': `Drop ${file.name}`, text: 'Drop', onclick: () => { added = added.filter((x) => x !== file); draw(); } }))));
  };
  picker.addEventListener('change', () => {
    added = multiple ? added.concat([...picker.files]) : [...picker.files].slice(0, 1);
    picker.value = '';
    draw();
  });
  draw();
  return {
    el: h('div', { class: 'file-field' }, list, picker),
    focus: picker,
    files: { multiple, added: () => added, removed: () => [...removed] },
    read: () => existing.filter((n) => !removed.has(n)),
  };
}

function relationInput(ctx, f, record) {
  const target = ctx.all.find((c) => c.id === f.collectionId || c.name === f.collectionId);
  const multiple = (f.maxSelect || 1) > 1;
  let ids = [].concat((record && record[f.name]) || []).filter(Boolean);
  const known = new Map();
  const expanded = record && record.expand && record.expand[f.name];
  [].concat(expanded || []).forEach((r) => known.set(r.id, r));
  const chips = h('ul', { class: 'chips' });
  const draw = () => chips.replaceChildren(...ids.map((id) => h('li', { class: 'chip' },
    h('span', { text: known.has(id) ? recordLabel(target, known.get(id)) : id }),
    h('button', { type: 'button', class: 'chip-x', 'aria-label': `Remove ${id}`, text: '✕', onclick: () => { ids = ids.filter((x) => x !== id); draw(); } }))));
  const choose = h('button', { type: 'button', class: 'btn btn-sm', text: multiple ? 'Choose records' : 'Choose record', 'aria-label': `Choose ${f.name}`,
    onclick: async () => {
      if (!target) return;
      const picked = await pickRelations(target, { multiple, selected: ids, max: f.maxSelect });
      if (!picked) return;
      picked.records.forEach((r) => known.set(r.id, r));
      ids = picked.ids;
      draw();
    } });
  draw();
  return { el: h('div', { class: 'relation-field' }, chips, choose), focus: choose, read: () => (multiple ? ids : ids[0] || '') };
}

/**
 * The control of one field: `{ el, read(), files? }`. `read()` throws an Error with `.field`
 * for input it cannot send (bad JSON).
 */
export function fieldInput(ctx, collection, f, record) {
  const value = record ? record[f.name] : undefined;
  const id = uid('rf');
  const input = (attrs, conv = (v) => v) => {
    const el = h('input', { class: 'input', name: f.name, id, ...attrs });
    return { el, read: () => conv(el.value) };
  };
  switch (f.type) {
    case 'bool': {
      const el = h('input', { type: 'checkbox', name: f.name, id, checked: !!value });
      return { el, inline: true, read: () => el.checked };
    }
    case 'number': return input({ type: 'number', step: f.onlyInt ? '1' : 'any', value: value === undefined || value === null ? '' : String(value) }, (v) => (v === '' ? 0 : Number(v)));
    case 'email': return input({ type: 'email', value: value || '', autocomplete: 'off' });
    case 'url': return input({ type: 'url', value: value || '' });
    case 'date': return input({ type: 'datetime-local', step: '1', value: toLocalInput(value) }, fromLocalInput);
    case 'autodate': return { el: h('input', { class: 'input', id, readonly: true, value: formatDate(value) || '—' }), readonly: true };
    case 'editor': return editorInput(f, value, id);
    case 'select': return selectInput(f, value);
    case 'json': return jsonInput(f, value);
    case 'geoPoint': return geoInput(f, value);
    case 'file': return fileInput(ctx, collection, f, record);
    case 'relation': return relationInput(ctx, f, record);
    default: return input({ type: 'text', value: value === undefined || value === null ? '' : String(value) });
  }
}

/** The labelled row of one field with its error slot (`data-error-for` = the field name). */
export function fieldRow(f, control) {
  const label = `${f.name}${f.required && !f.autogeneratePattern ? ' *' : ''}`;
  const help = f.type === 'date' ? 'Local time' : f.autogeneratePattern && !control.readonly ? 'Leave empty to generate one.' : null;
  if (control.el.matches('input, select, textarea')) return field(label, control.el, { name: f.name, inline: control.inline, help });
  const target = control.focus || control.el;
  if (!target.id) target.id = uid('rf');
  const labelId = uid('lbl');
  if (!target.getAttribute('aria-label')) target.setAttribute('aria-labelledby', labelId);
  return h('div', { class: 'field', dataset: { field: f.name } },
    h('label', { id: labelId, for: target.id, text: label }), control.el,
    h('small', { class: 'error', dataset: { errorFor: f.name }, role: 'alert' }));
}
