// The authpages screen.
import { h } from '../dom.js';
import { pageHeader } from '../ui.js';

export default async function authpagesPage() {
  return h('div', { class: 'page' }, pageHeader('authpages'));
}
