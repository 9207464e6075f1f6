// Settings › Crons: the tenant's cron jobs (PocketBase's own and those its code registers),
// each with its schedule and a button that runs it now.
import { api } from '../api.js';
import { h, replace } from '../dom.js';
import { busy, emptyState, toast } from '../ui.js';
import { section } from './settings-form.js';

export async function crons() {
  const list = h('div', { class: 'table-wrap', 'aria-live': 'polite' });
  const refresh = async () => {
    let jobs;
    try { jobs = await api('GET', '/api/crons'); } catch (err) { replace(list, emptyState(err.message)); return; }
    replace(list, jobs.length ? table(jobs) : emptyState('No cron jobs.'));
  };
  const reload = h('button', { type: 'button', class: 'btn', text: 'Refresh', onclick: (e) => busy(e.target, refresh) });
  await refresh();
  return h('div', { class: 'form' }, section('Cron jobs',
    h('p', { class: 'muted', text: 'Jobs run on the server at the times their expression gives (UTC). "Run" starts one now in the background.' }),
    h('div', { class: 'actions' }, reload),
    list));
}

function table(jobs) {
  const row = (job) => h('tr', {},
    h('td', { class: 'mono', text: job.id }),
    h('td', { class: 'mono', text: job.expression }),
    h('td', {}, h('button', {
      type: 'button', class: 'btn btn-sm', text: 'Run', 'aria-label': `Run ${job.id}`,
      onclick: (e) => busy(e.target, async () => {
        await api('POST', `/api/crons/${encodeURIComponent(job.id)}`);
        toast(`The job ${job.id} was started.`);
      }),
    })));
  return h('table', { class: 'table crons-table', 'aria-label': 'Cron jobs' },
    h('thead', {}, h('tr', {}, ['Job', 'Expression', 'Actions'].map((t) => h('th', { scope: 'col', text: t })))),
    h('tbody', {}, jobs.map(row)));
}
