// The collection editor's API rules tab: each rule is "superusers only" (null) or a filter.
import { h, uid } from '../dom.js';

const RULES = [['listRule', 'List/Search rule'], ['viewRule', 'View rule'], ['createRule', 'Create rule'],
  ['updateRule', 'Update rule'], ['deleteRule', 'Delete rule']];
const AUTH_RULES = [['authRule', 'Authentication rule', 'Who may sign in, checked after the credentials, e.g. verified = true'],
  ['manageRule', 'Manage rule', 'Who may change other users\u2019 email and password without the old one']];

function ruleField(draft, [key, label, help]) {
  const id = uid('rule');
  let text = draft[key] ?? '';
  const area = h('textarea', { id, class: 'input code', rows: 2, name: key, value: text, disabled: draft[key] === null,
    placeholder: 'Leave empty to grant everyone access', oninput: (e) => { text = e.target.value; draft[key] = text; } });
  const lock = h('input', { type: 'checkbox', checked: draft[key] === null, 'aria-label': `${label}: superusers only`,
    onchange: (e) => { draft[key] = e.target.checked ? null : text; area.disabled = e.target.checked; if (!e.target.checked) area.focus(); } });
  return h('div', { class: 'field ce-rule', dataset: { field: key } },
    h('div', { class: 'ce-rule-head' },
      h('label', { for: id, text: label }),
      h('label', { class: 'ce-lock' }, lock, ' Superusers only')),
    area,
    help && h('small', { class: 'help', text: help }),
    h('small', { class: 'error', dataset: { errorFor: key }, role: 'alert' }));
}

/** The rules tab for `draft` (view collections have only list and view rules). */
export function rulesTab(draft) {
  const rules = draft.type === 'view' ? RULES.slice(0, 2) : RULES;
  const names = (draft.fields || []).map((f) => f.name).join(', ');
  return h('div', { class: 'form' },
    h('p', { class: 'muted', text: 'A rule is a filter a request must match. Locked rules allow superusers only; an empty rule allows everyone.' }),
    names && h('p', { class: 'help' }, 'Fields: ', h('code', { text: names }), '; also @request.auth.*, @request.body.*, @collection.*'),
    rules.map((r) => ruleField(draft, r)),
    draft.type === 'auth' && AUTH_RULES.map((r) => ruleField(draft, r)));
}
