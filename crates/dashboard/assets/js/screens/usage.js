// The usage screen: the project's metered usage as bar charts per hour (48 h) and per day (31 days).
import { api } from '../api.js';
import { formatBytes, h, replace } from '../dom.js';
import { pageHeader } from '../ui.js';

const HOUR = 3600e3;
const MEASURES = [
  { key: 'requests', name: 'Requests', fmt: String, sum: true },
  { key: 'bytesOut', name: 'Data out', fmt: formatBytes, sum: true },
  { key: 'storageBytes', name: 'Storage', fmt: formatBytes },
  { key: 'realtimePeak', name: 'Realtime connections (peak)', fmt: String },
];
const PERIODS = {
  hour: { label: 'Per hour · 48 h', count: 48, step: HOUR, key: (d) => `${d.toISOString().slice(0, 13).replace('T', ' ')}:00:00Z`,
    name: (k) => new Date(k.replace(' ', 'T')).toLocaleString([], { month: 'short', day: 'numeric', hour: '2-digit', minute: '2-digit' }) },
  day: { label: 'Per day · 31 days', count: 31, step: 24 * HOUR, key: (d) => d.toISOString().slice(0, 10),
    name: (k) => new Date(`${k}T00:00:00Z`).toLocaleDateString([], { month: 'short', day: 'numeric', timeZone: 'UTC' }) },
};

/** The hourly rows laid on `period`'s slots ending now: counts add up, storage and peaks keep the largest. */
function series(rows, period) {
  const now = Date.now();
  const slots = [];
  const index = new Map();
  for (let i = period.count - 1; i >= 0; i--) {
    const key = period.key(new Date(now - i * period.step));
    index.set(key, slots.length);
    slots.push({ key, requests: 0, bytesOut: 0, storageBytes: 0, realtimePeak: 0 });
  }
  for (const row of rows) {
    const slot = slots[index.get(period === PERIODS.day ? row.hour.slice(0, 10) : row.hour)];
    if (!slot) continue;
    slot.requests += row.requests;
    slot.bytesOut += row.bytesOut;
    slot.storageBytes = Math.max(slot.storageBytes, row.storageBytes);
    slot.realtimePeak = Math.max(slot.realtimePeak, row.realtimePeak);
  }
  let last = 0; // storage is measured only when data changes: carry it over quiet slots
  for (const slot of slots) { if (slot.storageBytes) last = slot.storageBytes; else slot.storageBytes = last; }
  return slots;
}

function chart(measure, slots, period) {
  const values = slots.map((s) => s[measure.key]);
  const peak = Math.max(0, ...values);
  const title = `${measure.name} ${period.label.toLowerCase()}; largest ${measure.fmt(peak)}`;
  const bars = values.map((v, i) => {
    const height = peak && v ? Math.max(1, (v / peak) * 96) : 0;
    return h('svg:rect', { x: i * 10 + 1, y: 100 - height, width: 8, height, class: 'bar' },
      h('svg:title', { text: `${period.name(slots[i].key)}: ${measure.fmt(v)}` }));
  });
  const total = measure.sum ? `Total ${measure.fmt(values.reduce((a, b) => a + b, 0))}` : `Largest ${measure.fmt(peak)}`;
  return h('section', { class: 'card usage-card', 'aria-label': measure.name, dataset: { measure: measure.key } },
    h('div', { class: 'usage-head' }, h('h2', { text: measure.name }), h('span', { class: 'muted', text: total })),
    h('svg:svg', { class: 'chart', viewBox: `0 0 ${slots.length * 10} 100`, preserveAspectRatio: 'none', role: 'img', 'aria-label': title },
      h('svg:title', { text: title }), h('svg:line', { class: 'axis', x1: 0, y1: 100, x2: slots.length * 10, y2: 100 }), bars),
    h('div', { class: 'usage-axis muted', 'aria-hidden': 'true' },
      h('span', { text: period.name(slots[0].key) }), h('span', { text: `up to ${measure.fmt(peak)}` }), h('span', { text: period.name(slots[slots.length - 1].key) })));
}

export default async function usagePage() {
  const from = new Date(Date.now() - 31 * 24 * HOUR).toISOString().slice(0, 19) + 'Z';
  const { items } = await api('GET', '/api/warren/usage', { query: { from } });
  const grid = h('div', { class: 'usage-grid' });
  const buttons = {};
  const show = (name) => {
    const period = PERIODS[name];
    const slots = series(items, period);
    for (const [key, button] of Object.entries(buttons)) button.setAttribute('aria-pressed', String(key === name));
    replace(grid, MEASURES.map((m) => chart(m, slots, period)));
  };
  for (const [name, period] of Object.entries(PERIODS)) {
    buttons[name] = h('button', { type: 'button', class: 'btn btn-sm', onclick: () => show(name), text: period.label });
  }
  show('hour');
  return h('div', { class: 'page' },
    pageHeader('Usage', { actions: [h('div', { class: 'segmented', role: 'group', 'aria-label': 'Period' }, Object.values(buttons))] }),
    h('p', { class: 'muted', text: 'Requests, data sent, storage and realtime connections of this project, as metered by Warren (saved every few seconds).' }),
    grid);
}
