// Shared widgets: toasts, confirm dialogs, side panels, labelled fields with error slots.
import { h, uid } from './dom.js';

/** A short message in the live region (read by screen readers). `kind`: ok | error | info. */
export function toast(message, kind = 'ok') {
  const box = document.getElementById('toasts');
  if (!box) return;
  const item = h('div', { class: ['toast', `toast-${kind}`], role: kind === 'error' ? 'alert' : null, text: message });
  box.append(item);
  setTimeout(() => item.remove(), kind === 'error' ? 8000 : 4000);
}

/** A modal question; resolves true when confirmed. */
export function confirmDialog(message, { confirmText = 'Confirm', danger = false, title = 'Are you sure?' } = {}) {
  return new Promise((resolve) => {
    const titleId = uid('dlg');
    const done = (value) => { dialog.close(); dialog.remove(); resolve(value); };
    const dialog = h('dialog', { class: 'dialog', 'aria-labelledby': titleId },
      h('h2', { id: titleId, text: title }),
      h('p', { text: message }),
      h('div', { class: 'actions' },
        h('button', { type: 'button', class: 'btn', onclick: () => done(false), text: 'Cancel' }),
        h('button', { type: 'button', class: ['btn', danger ? 'btn-danger' : 'btn-primary'], onclick: () => done(true), text: confirmText })));
    dialog.addEventListener('cancel', (e) => { e.preventDefault(); done(false); });
    document.body.append(dialog);
    dialog.showModal();
  });
}

/**
 * A side panel (modal drawer) with a title, a body and a footer of actions. Returns
 * `{ dialog, body, footer, close }`; Escape and the close button call `onClose` first (it may
 * return false to keep the panel open).
 */
export function panel({ title, body, footer, onClose, wide = false }) {
  const titleId = uid('panel');
  const close = () => { dialog.close(); dialog.remove(); };
  const tryClose = async () => { if (!onClose || (await onClose()) !== false) close(); };
  const bodyEl = h('div', { class: 'panel-body' }, body);
  const footerEl = h('div', { class: 'panel-footer' }, footer);
  const dialog = h('dialog', { class: ['panel', wide && 'panel-wide'], 'aria-labelledby': titleId },
    h('header', { class: 'panel-header' },
      h('h2', { id: titleId, text: title }),
      h('button', { type: 'button', class: 'btn btn-icon', 'aria-label': 'Close', onclick: tryClose, text: '✕' })),
    bodyEl, footerEl);
  dialog.addEventListener('cancel', (e) => { e.preventDefault(); tryClose(); });
  document.body.append(dialog);
  dialog.showModal();
  return { dialog, body: bodyEl, footer: footerEl, close };
}

/**
 * A labelled form field: `label`, the control (an element, or attrs for an <input>), an
 * optional `help` text, and an error slot `[data-error-for=name]` that `showErrors` fills.
 */
export function field(label, control, { name, help, inline = false } = {}) {
  const input = control instanceof Node ? control : h('input', { class: 'input', ...control });
  const fieldName = name || input.getAttribute('name') || '';
  if (!input.id) input.id = uid('f');
  const errorId = `${input.id}-error`;
  const helpId = help ? `${input.id}-help` : null;
  input.setAttribute('aria-describedby', [helpId, errorId].filter(Boolean).join(' '));
  return h('div', { class: ['field', inline && 'field-inline'], dataset: { field: fieldName } },
    h('label', { for: input.id, text: label }),
    input,
    help && h('small', { id: helpId, class: 'help', text: help }),
    h('small', { id: errorId, class: 'error', dataset: { errorFor: fieldName }, role: 'alert' }));
}

/** Flattens PocketBase's nested error data into "a.b.0.c" → message. */
export function flattenErrors(data, prefix = '', out = {}) {
  for (const [key, value] of Object.entries(data || {})) {
    const path = prefix ? `${prefix}.${key}` : key;
    if (value && typeof value === 'object' && typeof value.message === 'string') out[path] = value.message;
    else if (value && typeof value === 'object') flattenErrors(value, path, out);
  }
  return out;
}

/**
 * Shows an ApiError's field errors next to the matching `[data-error-for]` slots inside `root`
 * (clearing old ones) and marks their inputs invalid; errors with no slot, and the message,
 * go to a toast. Returns the flattened errors.
 */
export function showErrors(root, err) {
  root.querySelectorAll('[data-error-for]').forEach((slot) => { slot.textContent = ''; });
  root.querySelectorAll('[aria-invalid]').forEach((el) => el.removeAttribute('aria-invalid'));
  const errors = flattenErrors(err && err.data);
  const unplaced = [];
  for (const [path, message] of Object.entries(errors)) {
    const slot = root.querySelector(`[data-error-for="${CSS.escape(path)}"]`);
    if (!slot) { unplaced.push(`${path}: ${message}`); continue; }
    slot.textContent = message;
    const input = slot.parentElement && slot.parentElement.querySelector('input, select, textarea');
    if (input) input.setAttribute('aria-invalid', 'true');
  }
  const message = (err && err.message) || 'Something went wrong.';
  toast(unplaced.length ? `${message} ${unplaced.join('; ')}` : message, 'error');
  return errors;
}

/** Clears every error slot inside `root`. */
export function clearErrors(root) {
  showErrorsQuiet(root);
}
function showErrorsQuiet(root) {
  root.querySelectorAll('[data-error-for]').forEach((slot) => { slot.textContent = ''; });
  root.querySelectorAll('[aria-invalid]').forEach((el) => el.removeAttribute('aria-invalid'));
}

/** Runs `action` with `button` disabled and marked busy; errors are passed to `onError`. */
export async function busy(button, action, onError) {
  button.disabled = true;
  button.setAttribute('aria-busy', 'true');
  try {
    return await action();
  } catch (e) {
    if (onError) onError(e); else toast(e.message || 'Something went wrong.', 'error');
    return undefined;
  } finally {
    button.disabled = false;
    button.removeAttribute('aria-busy');
  }
}

/** A page header: title, optional breadcrumbs before it and actions after it. */
export function pageHeader(title, { crumbs = [], actions = [] } = {}) {
  return h('header', { class: 'page-header' },
    h('div', { class: 'page-title' },
      crumbs.length ? h('nav', { class: 'crumbs', 'aria-label': 'Breadcrumbs' }, crumbs.map((c) => h('span', { text: c }))) : null,
      h('h1', { text: title })),
    h('div', { class: 'actions' }, actions));
}

/** A centered note for empty lists and failures. */
export function emptyState(text, ...extra) {
  return h('div', { class: 'empty' }, h('p', { text }), extra);
}
