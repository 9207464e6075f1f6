// Bound inputs for the collection editor: each control reads and writes one key of a draft object.
import { h } from '../dom.js';
import { field } from '../ui.js';

const list = (v) => (Array.isArray(v) ? v.join(', ') : '');
const parse = {
  int: (v) => (v.trim() === '' ? 0 : Math.trunc(Number(v)) || 0),
  num: (v) => (v.trim() === '' ? null : Number(v)),
  list: (v) => v.split(',').map((s) => s.trim()).filter(Boolean),
};

/**
 * A control bound to `obj[key]`. `kind`: text | int | num (empty is null) | bool | list (comma
 * separated) | area | code | select (`attrs.choices`: [value, label] pairs).
 */
export function control(obj, key, kind = 'text', { choices, onchange, ...attrs } = {}) {
  const set = (v) => { obj[key] = v; if (onchange) onchange(v); };
  if (kind === 'bool') return h('input', { type: 'checkbox', checked: !!obj[key], onchange: (e) => set(e.target.checked), ...attrs });
  if (kind === 'select') {
    return h('select', { class: 'input', onchange: (e) => set(e.target.value), ...attrs },
      choices.map(([v, label]) => h('option', { value: v, selected: obj[key] === v, text: label })));
  }
  const area = kind === 'area' || kind === 'code';
  const value = kind === 'list' ? list(obj[key]) : (obj[key] ?? '');
  return h(area ? 'textarea' : 'input', {
    class: ['input', kind === 'code' && 'code'],
    type: area ? null : (kind === 'int' || kind === 'num' ? 'number' : 'text'),
    step: kind === 'num' ? 'any' : null,
    value: String(value),
    oninput: (e) => set(parse[kind] ? parse[kind](e.target.value) : e.target.value),
    ...attrs,
  });
}

/** A labelled bound control whose error slot is `path` (e.g. "fields.2.max", "otp.length"). */
export function option(label, obj, key, kind, path, { help, ...attrs } = {}) {
  const input = control(obj, key, kind, attrs);
  return field(label, input, { name: path, help, inline: kind === 'bool' });
}

/** A titled section of the editor. */
export function section(title, ...children) {
  return h('section', { class: 'ce-section' }, h('h3', { text: title }), children);
}
