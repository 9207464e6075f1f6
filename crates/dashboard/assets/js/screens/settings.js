// The settings screen.
import { h } from '../dom.js';
import { pageHeader } from '../ui.js';

export default async function settingsPage() {
  return h('div', { class: 'page' }, pageHeader('settings'));
}
