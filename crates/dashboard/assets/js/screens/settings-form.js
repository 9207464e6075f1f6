// Settings forms: controls bound to dotted settings paths, collected into a PATCH body.
import { api } from '../api.js';
import { h } from '../dom.js';
import { busy, clearErrors, field, showErrors, toast } from '../ui.js';

/** The value at a dotted `path` of `obj`. */
export function pick(obj, path) {
  return path.split('.').reduce((node, key) => (node == null ? undefined : node[key]), obj);
}

/** Sets `value` at a dotted `path` of `obj`, making arrays for numeric keys. */
export function put(obj, path, value) {
  const keys = path.split('.');
  let node = obj;
  keys.slice(0, -1).forEach((key, i) => {
    if (node[key] == null) node[key] = /^\d+$/.test(keys[i + 1]) ? [] : {};
    node = node[key];
  });
  node[keys[keys.length - 1]] = value;
}

/**
 * A labelled control bound to `path` of `settings`. `kind`: text (default), number, bool,
 * list (comma separated), secret (sent only when typed), select (`options`: [value, label]).
 */
export function control(settings, path, label, { kind = 'text', options, help, type, placeholder } = {}) {
  const value = pick(settings, path);
  const attrs = { class: 'input', name: path, dataset: { kind }, placeholder };
  if (kind === 'bool') {
    return field(label, h('input', { type: 'checkbox', name: path, dataset: { kind }, checked: !!value }), { inline: true, help });
  }
  if (kind === 'select') {
    if (typeof options[0][0] === 'number') attrs.dataset.numeric = '1';
    return field(label, h('select', attrs, options.map(([v, text]) =>
      h('option', { value: String(v), selected: String(v) === String(value ?? ''), text }))), { help });
  }
  if (kind === 'secret') {
    return field(label, h('input', { ...attrs, type: 'password', autocomplete: 'new-password', placeholder: placeholder || 'Unchanged' }), { help });
  }
  const shown = kind === 'list' ? (value || []).join(', ') : value ?? '';
  return field(label, h('input', { ...attrs, type: type || (kind === 'number' ? 'number' : 'text'), value: String(shown) }), { help });
}

/** The PATCH body of every bound control inside `root`. */
export function collect(root) {
  const body = {};
  root.querySelectorAll('[data-kind]').forEach((el) => {
    const { kind } = el.dataset;
    let value = el.value;
    if (kind === 'bool') value = el.checked;
    else if (kind === 'number') value = value === '' ? 0 : Number(value);
    else if (kind === 'list') value = value.split(',').map((s) => s.trim()).filter(Boolean);
    else if (kind === 'secret' && !value) return;
    else if (kind === 'select' && /^-?\d+$/.test(value) && el.dataset.numeric) value = Number(value);
    put(body, el.name, value);
  });
  return body;
}

/** A titled card grouping controls. */
export function section(title, ...children) {
  return h('section', { class: 'card form settings-card' }, h('h2', { text: title }), children);
}

/**
 * A settings form: `build(settings)` returns its sections; Save PATCHes what they hold and
 * shows the server's errors inline. `extra` sits beside Save; `adjust(body)` may amend the body;
 * `onSaved(settings)` runs after.
 */
export function settingsForm(settings, build, { extra = [], onSaved, adjust } = {}) {
  const save = h('button', { type: 'submit', class: 'btn btn-primary', text: 'Save changes' });
  const form = h('form', { class: 'form settings-form', novalidate: true }, build(settings),
    h('div', { class: 'actions form-actions' }, extra, save));
  form.addEventListener('submit', (e) => {
    e.preventDefault();
    busy(save, async () => {
      clearErrors(form);
      const body = collect(form);
      if (adjust) adjust(body);
      const saved = await api('PATCH', '/api/settings', { body });
      form.querySelectorAll('[data-kind="secret"]').forEach((el) => { el.value = ''; });
      toast('Settings saved.');
      if (onSaved) onSaved(saved);
    }, (err) => showErrors(form, err));
  });
  return form;
}

/** The S3 controls under `prefix` ("s3" or "backups.s3"). */
export function s3Controls(s, prefix) {
  return [
    control(s, `${prefix}.enabled`, 'Use S3 storage', { kind: 'bool' }),
    h('div', { class: 'row' },
      control(s, `${prefix}.endpoint`, 'Endpoint', { placeholder: 'https://s3.example.com' }),
      control(s, `${prefix}.bucket`, 'Bucket')),
    h('div', { class: 'row' },
      control(s, `${prefix}.region`, 'Region'),
      control(s, `${prefix}.accessKey`, 'Access key')),
    control(s, `${prefix}.secret`, 'Secret', { kind: 'secret' }),
    control(s, `${prefix}.forcePathStyle`, 'Force path-style addressing', { kind: 'bool' }),
  ];
}

/** "Test connection" for the saved S3 settings of `filesystem` (storage | backups), with its answer. */
export function s3Test(filesystem) {
  const result = h('p', { class: 'test-result', role: 'status' });
  const button = h('button', { type: 'button', class: 'btn', text: 'Test connection' });
  button.onclick = () => busy(button, async () => {
    result.textContent = '';
    await api('POST', '/api/settings/test/s3', { body: { filesystem } });
    result.className = 'test-result ok';
    result.textContent = 'The S3 connection works.';
  }, (err) => {
    result.className = 'test-result error';
    result.textContent = err.message;
    toast(err.message, 'error');
  });
  return [result, button];
}
