// Settings › Backups: the list (create, download, restore, upload, delete) and the backup schedule.
import { api, fileToken } from '../api.js';
import { formatBytes, formatDate, h, replace } from '../dom.js';
import { busy, confirmDialog, emptyState, field, panel, showErrors, toast } from '../ui.js';
import { control, s3Controls, s3Test, section, settingsForm } from './settings-form.js';

const path = (key) => `/api/backups/${encodeURIComponent(key)}`;

export async function backups(ctx) {
  const settings = await api('GET', '/api/settings');
  const list = h('div', { class: 'table-wrap' });
  const error = h('small', { class: 'error', dataset: { errorFor: 'file' }, role: 'alert' });
  const refresh = async () => {
    let items;
    try { items = await api('GET', '/api/backups'); } catch (err) { replace(list, emptyState(err.message)); return false; }
    items.sort((a, b) => String(b.modified).localeCompare(String(a.modified)));
    replace(list, items.length ? table(items, refresh, ctx) : emptyState('No backups yet.'));
    return true;
  };
  const file = h('input', { type: 'file', accept: '.zip,application/zip', class: 'sr-only', 'aria-label': 'Backup zip file', tabindex: '-1' });
  const upload = h('button', { type: 'button', class: 'btn', text: 'Upload backup', onclick: () => file.click() });
  file.onchange = () => file.files[0] && busy(upload, async () => {
    const form = new FormData();
    form.append('file', file.files[0]);
    error.textContent = '';
    await api('POST', '/api/backups/upload', { body: form });
    toast('The backup was uploaded.');
    await refresh();
  }, (err) => showErrors(card, err)).finally(() => { file.value = ''; });
  const create = h('button', { type: 'button', class: 'btn btn-primary', text: 'New backup', onclick: () => createBackup(refresh) });
  const card = section('Backups', h('div', { class: 'actions' }, create, upload, file), error, list);
  await refresh();
  return h('div', { class: 'form' }, card, settingsForm(settings, () => [
    section('Scheduled backups',
      h('div', { class: 'row' },
        control(settings, 'backups.cron', 'Cron expression', { placeholder: '0 0 * * *', help: 'Empty turns scheduled backups off.' }),
        control(settings, 'backups.cronMaxKeep', 'Backups to keep', { kind: 'number' }))),
    section('Backup storage', s3Controls(settings, 'backups.s3')),
  ], { extra: s3Test('backups') }));
}

function table(items, refresh, ctx) {
  const row = (b) => h('tr', {},
    h('td', { class: 'mono', text: b.key }),
    h('td', { text: formatBytes(b.size) }),
    h('td', { text: formatDate(b.modified) }),
    h('td', {}, h('div', { class: 'row-actions' },
      h('button', { type: 'button', class: 'btn btn-sm', 'aria-label': `Download ${b.key}`, text: 'Download', onclick: () => download(b.key) }),
      h('button', { type: 'button', class: 'btn btn-sm', 'aria-label': `Restore ${b.key}`, text: 'Restore', onclick: (e) => restore(e.target, b.key, refresh, ctx) }),
      h('button', { type: 'button', class: 'btn btn-sm btn-ghost', 'aria-label': `Delete ${b.key}`, text: 'Delete', onclick: (e) => remove(e.target, b.key, refresh) }))));
  return h('table', { class: 'table backups-table' },
    h('thead', {}, h('tr', {}, ['Name', 'Size', 'Date', 'Actions'].map((t) => h('th', { scope: 'col', text: t })))),
    h('tbody', {}, items.map(row)));
}

function createBackup(refresh) {
  const name = h('input', { class: 'input', name: 'name', placeholder: 'Leave empty for a generated name', pattern: '[a-z0-9_\\-]+\\.zip' });
  const form = h('form', { class: 'form' }, field('Name', name, { help: 'Lowercase letters, digits, "_" and "-", ending in .zip.' }));
  const save = h('button', { type: 'submit', class: 'btn btn-primary', text: 'Start backup' });
  const p = panel({ title: 'New backup', body: form, footer: save });
  save.setAttribute('form', (form.id = 'backup-form'));
  form.addEventListener('submit', (e) => {
    e.preventDefault();
    busy(save, async () => {
      await api('POST', '/api/backups', { body: name.value ? { name: name.value } : {} });
      p.close();
      toast('The backup was created.');
      await refresh();
    }, (err) => showErrors(form, err));
  });
  name.focus();
}

async function download(key) {
  const token = await fileToken();
  const link = h('a', { href: `${path(key)}?token=${encodeURIComponent(token)}`, download: key, hidden: true });
  document.body.append(link);
  link.click();
  link.remove();
}

async function restore(button, key, refresh, ctx) {
  const ok = await confirmDialog(`Restore the backup "${key}"? Every change made since it was taken is lost.`,
    { confirmText: 'Restore', danger: true, title: 'Restore backup' });
  if (!ok) return;
  await busy(button, async () => {
    await api('POST', `${path(key)}/restore`);
    ctx.invalidateCollections();
    ctx.refreshSettings();
    toast(`Restoring the backup ${key}.`);
    // The restore runs after the answer; the list answers again once the tenant is back.
    for (let i = 0; i < 60 && !(await refresh()); i++) await new Promise((r) => setTimeout(r, 1000));
  });
}

async function remove(button, key, refresh) {
  if (!(await confirmDialog(`Delete the backup "${key}"?`, { confirmText: 'Delete', danger: true }))) return;
  await busy(button, async () => {
    await api('DELETE', path(key));
    toast('The backup was deleted.');
    await refresh();
  });
}
