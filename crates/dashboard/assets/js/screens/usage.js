// The usage screen.
import { h } from '../dom.js';
import { pageHeader } from '../ui.js';

export default async function usagePage() {
  return h('div', { class: 'page' }, pageHeader('usage'));
}
