// A real PocketBase app moving in: the same JS SDK session against the PocketBase that ran the
// app (fixture/: pb_hooks, pb_migrations, pb_public) and against the Warren tenant that
// imported its folder. `seed` signs a user up and writes through the app's hooks; `check`
// reads and writes through the SDK, the app's own routes and its public folder, and writes
// what it saw to ANSWERS (ids and times replaced, so two servers' answers compare equal).
//
//   PB_URL=… STATE=state.json PHASE=seed node app/app.mjs
//   PB_URL=… STATE=state.json PHASE=check ANSWERS=out.json node app/app.mjs
//   PB_URL=… STATE=state.json PHASE=refused node app/app.mjs      (after a refused deploy)
//   PB_URL=… STATE=state.json PHASE=upgrade ANSWERS=out.json node app/app.mjs
//   node app/app.mjs compare a.json b.json
import { readFileSync, writeFileSync } from 'node:fs';
import assert from 'node:assert/strict';
import { PocketBase, PB_URL } from '../lib/setup.mjs';

const EMAIL = 'alice@example.com';
const PASSWORD = 'alice-password-123';

if (process.argv[2] === 'compare') {
  const [a, b] = process.argv.slice(3).map((f) => JSON.parse(readFileSync(f, 'utf8')));
  assert.deepEqual(b, a, 'Warren answered the app differently from PocketBase');
  console.log(`app: ${Object.keys(a).length} answers equal`);
  process.exit(0);
}

const pb = new PocketBase(PB_URL);
pb.autoCancellation(false);

/** The outcome of a call as {status, body}, errors included. */
async function outcome(call) {
  try {
    return { status: 200, body: await call() };
  } catch (e) {
    if (e?.status === undefined) throw e;
    return { status: e.status, body: e.response };
  }
}

/** Replaces what differs between two servers by nature (ids, times, tokens). */
function stable(value, ids) {
  if (Array.isArray(value)) return value.map((v) => stable(v, ids));
  if (value && typeof value === 'object') {
    const out = {};
    for (const key of Object.keys(value).sort()) {
      const v = value[key];
      if (key === 'created' || key === 'updated') out[key] = v ? '<time>' : v;
      else if (key === 'token') out[key] = v ? '<token>' : v;
      else if (typeof v === 'string' && ids.has(v)) out[key] = ids.get(v);
      else out[key] = stable(v, ids);
    }
    return out;
  }
  if (typeof value === 'string' && ids.has(value)) return ids.get(value);
  return value;
}

if (process.env.PHASE === 'seed') {
  const user = await pb.collection('users').create({ email: EMAIL, password: PASSWORD, passwordConfirm: PASSWORD });
  await pb.collection('users').authWithPassword(EMAIL, PASSWORD);
  const milk = await pb.collection('todos').create({ title: '  buy milk  ', owner: user.id });
  const read = await pb.collection('todos').create({ title: 'read a book', owner: user.id });
  writeFileSync(process.env.STATE, JSON.stringify({ user: user.id, todos: [milk.id, read.id] }));
  console.log('app: seeded');
  process.exit(0);
}

const state = JSON.parse(readFileSync(process.env.STATE, 'utf8'));
const ids = new Map([[state.user, '<alice>'], [state.todos[0], '<milk>'], [state.todos[1], '<book>']]);
const answers = {};
const note = (name, value) => { answers[name] = stable(value, ids); };

// After a deploy whose migrations failed: none of them left anything behind.
if (process.env.PHASE === 'refused') {
  await pb.collection('users').authWithPassword(EMAIL, PASSWORD);
  const todos = await pb.collection('todos').getFullList();
  assert.ok(todos.length > 0, 'alice has todos');
  for (const todo of todos) {
    assert.ok(!('priority' in todo) && !('half_done' in todo), `a refused migration left a field: ${JSON.stringify(todo)}`);
  }
  console.log('app: the refused release left nothing');
  process.exit(0);
}

// The second release: its migration added a priority and set it on the done todos.
if (process.env.PHASE === 'upgrade') {
  await pb.collection('users').authWithPassword(EMAIL, PASSWORD);
  const list = async () => outcome(() => pb.collection('todos').getFullList({ sort: 'title', fields: 'title,done,priority' }));
  note('todos after the upgrade', await list());
  note('priority out of range', await outcome(() => pb.collection('todos').create({ title: 'x', owner: state.user, priority: 9 })));
  note('stats after the upgrade', await outcome(() => pb.send('/api/todo-stats', {})));
  writeFileSync(process.env.ANSWERS, JSON.stringify(answers, null, 2));
  console.log(`app: ${Object.keys(answers).length} answers`);
  process.exit(0);
}

// ---- check ----

// The public folder and the migrated, seeded collection.
for (const path of ['/', '/style.css', '/app.js']) {
  const res = await fetch(PB_URL + path);
  note(`GET ${path}`, { status: res.status, type: res.headers.get('content-type'), body: await res.text() });
}
note('notices (guest)', await outcome(() => pb.collection('notices').getFullList({ fields: 'text' })));

// The user signs in with the password PocketBase stored.
note('todos (guest)', await outcome(() => pb.collection('todos').getFullList({ fields: 'title' })));
const auth = await pb.collection('users').authWithPassword(EMAIL, PASSWORD);
note('auth', { email: auth.record.email, verified: auth.record.verified, id: auth.record.id });
note('todos (alice)', await outcome(() => pb.collection('todos').getFullList({ sort: 'title', fields: 'id,title,done,owner' })));
note('view milk', await outcome(() => pb.collection('todos').getOne(state.todos[0], { fields: 'id,title,done' })));

// The app's hooks and routes keep working on the imported data.
const created = await outcome(() => pb.collection('todos').create({ title: '  water plants ', owner: state.user }));
if (created.status === 200) ids.set(created.body.id, '<plants>');
note('create through the hook', created);
note('create refused by the hook', await outcome(() => pb.collection('todos').create({ title: 'forbidden fruit', owner: state.user })));
note('route: done', await outcome(() => pb.send(`/api/todos/${state.todos[0]}/done`, { method: 'POST' })));
note('route: stats', await outcome(() => pb.send('/api/todo-stats', {})));
pb.authStore.clear();
note('route: stats (guest)', await outcome(() => pb.send('/api/todo-stats', {})));

writeFileSync(process.env.ANSWERS, JSON.stringify(answers, null, 2));
console.log(`app: ${Object.keys(answers).length} answers`);
