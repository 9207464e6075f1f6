// The link screen.
import { h } from '../dom.js';
import { pageHeader } from '../ui.js';

export default async function linkPage() {
  return h('div', { class: 'page' }, pageHeader('link'));
}
