// The logs screen.
import { h } from '../dom.js';
import { pageHeader } from '../ui.js';

export default async function logsPage() {
  return h('div', { class: 'page' }, pageHeader('logs'));
}
