// The record panel: a form for every field, create / update (changed fields only) / delete, auth actions.
import { api } from '../api.js';
import { formatDate, h } from '../dom.js';
import { busy, clearErrors, confirmDialog, field, panel, showErrors, toast } from '../ui.js';
import { fieldInput, fieldRow } from './record-inputs.js';

const path = (c, rest = '') => `/api/collections/${encodeURIComponent(c.name)}/${rest}`;

/** Whether the form shows `f` (password hashes and token keys never). */
export function editable(f) {
  return f.type !== 'password' && !(f.system && f.hidden);
}

function passwordRows(isNew) {
  const pw = h('input', { class: 'input', type: 'password', name: 'password', autocomplete: 'new-password' });
  const confirm = h('input', { class: 'input', type: 'password', name: 'passwordConfirm', autocomplete: 'new-password' });
  const rows = h('div', { class: 'row', hidden: !isNew }, field('Password', pw), field('Password confirm', confirm));
  const toggle = !isNew && h('input', { type: 'checkbox', onchange: (e) => { rows.hidden = !e.target.checked; } });
  return {
    el: h('div', { class: 'form-section' }, toggle && field('Set a new password', toggle, { inline: true }), rows),
    read: () => (rows.hidden ? {} : { password: pw.value, passwordConfirm: confirm.value }),
  };
}

/** Opens a dialog that issues an impersonation token for `record` (superusers only). */
export function impersonate(collection, record) {
  const duration = h('input', { class: 'input', type: 'number', min: '0', step: '1', name: 'duration', value: '0' });
  const output = h('div', { class: 'form', hidden: true });
  const go = h('button', { type: 'submit', class: 'btn btn-primary', text: 'Generate token' });
  const close = () => { dialog.close(); dialog.remove(); };
  const form = h('form', { class: 'form', novalidate: true },
    h('h2', { text: `Impersonate ${record.email || record.id}` }),
    h('p', { class: 'muted', text: 'A non-refreshable auth token for this record, as if it had signed in.' }),
    field('Token duration (seconds)', duration, { help: '0 uses the collection\u2019s auth token duration.' }),
    output,
    h('div', { class: 'actions' }, h('button', { type: 'button', class: 'btn', text: 'Close', onclick: close }), go));
  const dialog = h('dialog', { class: 'dialog', 'aria-label': 'Impersonate' }, form);
  form.addEventListener('submit', (e) => {
    e.preventDefault();
    busy(go, async () => {
      const answer = await api('POST', path(collection, `impersonate/${encodeURIComponent(record.id)}`), { body: { duration: Number(duration.value) || 0 } });
      const token = h('textarea', { class: 'input code', readonly: true, 'aria-label': 'Token', value: answer.token });
      const copy = h('button', { type: 'button', class: 'btn', text: 'Copy', onclick: async () => {
        try { await navigator.clipboard.writeText(answer.token); toast('Token copied.'); } catch { token.select(); toast('Press Ctrl+C to copy.', 'info'); }
      } });
      output.replaceChildren(token, h('div', { class: 'actions' }, copy));
      output.hidden = false;
    }, (err) => showErrors(form, err));
  });
  dialog.addEventListener('cancel', (e) => { e.preventDefault(); close(); });
  document.body.append(dialog);
  dialog.showModal();
}

function authActions(collection, record) {
  const send = (label, route) => h('button', { type: 'button', class: 'btn btn-sm', text: label, onclick: (e) => busy(e.currentTarget, async () => {
    await api('POST', path(collection, route), { body: { email: record.email } });
    toast(`Sent to ${record.email}.`);
  }) });
  return h('div', { class: 'form-section auth-actions' },
    h('span', { class: ['badge', record.verified ? 'badge-ok' : 'badge-danger'], text: record.verified ? 'Verified' : 'Not verified' }),
    !record.verified && send('Send verification email', 'request-verification'),
    send('Send password reset email', 'request-password-reset'),
    h('button', { type: 'button', class: 'btn btn-sm', text: 'Impersonate', onclick: () => impersonate(collection, record) }));
}

/** What changed in the form: `{ body, files: [[key, File]] }`; throws with `.field` on bad input. */
function collect(controls, isNew) {
  const body = {};
  const files = [];
  for (const { f, control, initial } of controls) {
    if (control.readonly) continue;
    if (control.files) {
      const added = control.files.added();
      const removed = control.files.removed();
      added.forEach((file) => files.push([isNew || !control.files.multiple ? f.name : `${f.name}+`, file]));
      if (removed.length && (control.files.multiple || !added.length)) body[`${f.name}-`] = removed;
      continue;
    }
    const value = control.read();
    if (JSON.stringify(value) !== initial) body[f.name] = value;
  }
  return { body, files };
}

/**
 * Opens the panel of `record` (null: a new record) of `collection`. `ctx`: `{ all, fileToken }`.
 * Resolves with 'saved', 'deleted' or null (closed).
 */
export function openRecord(ctx, collection, record) {
  return new Promise((resolve) => {
    const isNew = !record;
    const controls = collection.fields.filter((f) => editable(f) && !(isNew && f.type === 'autodate')).map((f) => {
      const control = f.name === 'id' && !isNew
        ? { el: h('div', { class: 'id-row' }, h('input', { class: 'input mono', readonly: true, value: record.id, 'aria-label': 'id' }),
          h('button', { type: 'button', class: 'btn', text: 'Copy', 'aria-label': 'Copy id', onclick: () => navigator.clipboard.writeText(record.id).then(() => toast('Id copied.'), () => {}) })), readonly: true }
        : fieldInput(ctx, collection, f, record);
      let initial = '';
      try { initial = control.read ? JSON.stringify(control.read()) : ''; } catch { initial = ''; }
      return { f, control, initial };
    });
    const auth = collection.type === 'auth' ? passwordRows(isNew) : null;
    const formId = `record-form-${Date.now()}`;
    const form = h('form', { class: 'form record-form', novalidate: true, id: formId },
      controls.map(({ f, control }) => fieldRow(f, control)),
      auth && auth.el,
      !isNew && (record.created || record.updated) && h('p', { class: 'muted', text: `Created ${formatDate(record.created) || '—'} · updated ${formatDate(record.updated) || '—'}` }));
    const save = h('button', { type: 'submit', class: 'btn btn-primary', form: formId, text: isNew ? 'Create' : 'Save changes' });
    const done = (value) => { p.close(); resolve(value); };
    const readOnly = collection.type === 'view';
    const remove = !isNew && !readOnly && h('button', { type: 'button', class: 'btn btn-danger', text: 'Delete', onclick: async () => {
      if (!(await confirmDialog(`Delete record ${record.id}? This cannot be undone.`, { danger: true, confirmText: 'Delete' }))) return;
      await busy(remove, async () => {
        await api('DELETE', path(collection, `records/${encodeURIComponent(record.id)}`));
        toast('Record deleted.');
        done('deleted');
      });
    } });
    const dirty = () => {
      try {
        const change = collect(controls, isNew);
        return change.files.length > 0 || Object.keys(change.body).length > 0 || Object.values(auth ? auth.read() : {}).some(Boolean);
      } catch { return true; }
    };
    const mayLeave = async () => readOnly || !dirty()
      || confirmDialog('The changes made in this record will be lost.', { title: 'Discard changes?', confirmText: 'Discard', danger: true });
    const p = panel({
      title: isNew ? `New ${collection.name} record` : `${readOnly ? 'View' : 'Edit'} ${collection.name} record`,
      body: [!isNew && collection.type === 'auth' && authActions(collection, record), form],
      footer: [remove, h('span', { class: 'spacer' }), h('button', { type: 'button', class: 'btn', text: readOnly ? 'Close' : 'Cancel', onclick: async () => { if (await mayLeave()) done(null); } }), !readOnly && save],
      onClose: async () => { if (!(await mayLeave())) return false; resolve(null); return true; },
      wide: true,
    });
    form.addEventListener('submit', (e) => {
      e.preventDefault();
      clearErrors(form);
      let change;
      try {
        change = collect(controls, isNew);
      } catch (err) {
        showErrors(form, { message: 'Some fields are invalid.', data: { [err.field]: { message: err.message } } });
        return;
      }
      Object.assign(change.body, auth ? auth.read() : {});
      if (!isNew && !change.files.length && !Object.keys(change.body).length) { toast('Nothing changed.', 'info'); done(null); return; }
      let body = change.body;
      if (change.files.length) {
        body = new FormData();
        body.append('@jsonPayload', JSON.stringify(change.body));
        change.files.forEach(([key, file]) => body.append(key, file));
      }
      busy(save, async () => {
        await api(isNew ? 'POST' : 'PATCH', path(collection, isNew ? 'records' : `records/${encodeURIComponent(record.id)}`), { body });
        toast(isNew ? 'Record created.' : 'Record saved.');
        done('saved');
      }, (err) => showErrors(form, err));
    });
  });
}
