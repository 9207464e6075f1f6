// The official PocketBase JS SDK against one tenant of a three-node Warren cluster, one SDK client
// per node (run by tests/suites/cluster, not by the sdk suite): a collection made through one
// node, records created through every node, listed and viewed through every node, and a realtime
// subscriber on every node receiving every node's writes, whichever node owns the tenant. Then
// the operator moves the tenant to the second node and back to the first while the subscribers
// stay subscribed and a reader lists through every node: after each move every subscriber was
// disconnected and the SDK connected and subscribed again by itself (a new client id), writes
// through every node reach every subscriber again, and every record written so far is listed
// through every node. No SDK call may fail except with the 503 "moving" envelope, retried a
// bounded number of times and counted.
//
//   CLUSTER_URLS            the tenant's URL on each node (nodes n1, n2, n3), comma-separated;
//                           the tenant's slug is the first label of the host
//   CLUSTER_PLATFORM_URLS   the platform's URL on each node, in the same order
//   WARREN_OPERATOR_TOKEN   the operator API's token
//   PB_SUPERUSER_EMAIL      a superuser of the tenant
//   PB_SUPERUSER_PASSWORD   its password
import assert from 'node:assert/strict';
import { performance } from 'node:perf_hooks';
import {
  assertEnvelope,
  ClientResponseError,
  PocketBase,
  rand,
  SUPERUSER_EMAIL,
  SUPERUSER_PASSWORD,
} from './lib/setup.mjs';

const urls = (process.env.CLUSTER_URLS || '').split(',').filter(Boolean);
assert.equal(urls.length, 3, 'CLUSTER_URLS names three nodes');
const platforms = (process.env.CLUSTER_PLATFORM_URLS || '').split(',').filter(Boolean);
assert.equal(platforms.length, 3, 'CLUSTER_PLATFORM_URLS names three nodes');
const operatorToken = process.env.WARREN_OPERATOR_TOKEN || '';
assert.ok(operatorToken, 'WARREN_OPERATOR_TOKEN is set');
const slug = new URL(urls[0]).hostname.split('.')[0];
const nodeIds = urls.map((_, i) => `n${i + 1}`);

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const clients = urls.map((url) => {
  const pb = new PocketBase(url);
  pb.autoCancellation(false);
  return pb;
});

// Every SDK call goes through `sdk`: a 503 "moving" envelope is retried (every 50 ms, at most
// MOVING_RETRIES times) and counted; any other failure fails the run.
const MOVING_RETRIES = 200;
let refused = 0;
async function sdk(what, call) {
  for (let attempt = 0; ; attempt++) {
    try {
      return await call();
    } catch (err) {
      const moving =
        err instanceof ClientResponseError &&
        err.status === 503 &&
        /moving/i.test(err.response?.message ?? '');
      if (!moving) throw new Error(`${what} failed: ${err} ${JSON.stringify(err?.response ?? {})}`);
      assertEnvelope(err.response, 503);
      assert.ok(attempt < MOVING_RETRIES, `${what}: still "moving" after ${attempt} retries`);
      refused++;
      await sleep(50);
    }
  }
}

// Signed in through the first node; the token works through every node.
await sdk('sign-in', () =>
  clients[0].collection('_superusers').authWithPassword(SUPERUSER_EMAIL, SUPERUSER_PASSWORD),
);
for (const pb of clients.slice(1)) pb.authStore.save(clients[0].authStore.token, clients[0].authStore.record);

const name = `cluster_${rand(8)}`;
await sdk('creating the collection', () =>
  clients[1].collections.create({
    name,
    type: 'base',
    listRule: '',
    viewRule: '',
    createRule: '',
    fields: [{ name: 'title', type: 'text' }],
  }),
);

// Per subscriber: the ids of the records it got an event for, the time of each event, and how
// often the SDK reported its stream lost.
const seen = clients.map(() => new Set());
const eventTimes = clients.map(() => []);
const disconnects = clients.map(() => 0);
const unsubscribes = [];
for (const [i, pb] of clients.entries()) {
  const unsubscribe = await sdk(`subscribing through node ${i + 1}`, () =>
    pb.collection(name).subscribe('*', (e) => {
      seen[i].add(e.record.id);
      eventTimes[i].push(performance.now());
    }),
  );
  unsubscribes.push(unsubscribe);
  pb.realtime.onDisconnect = () => {
    disconnects[i]++;
  };
}

/** Creates one record through node `i`; its id. */
async function write(i, title) {
  const record = await sdk(`a create through node ${i + 1}`, () => clients[i].collection(name).create({ title }));
  return record.id;
}

/** Waits (at most `ms`) until every subscriber has an event for every id in `ids`. */
async function everySubscriberSees(ids, ms) {
  const deadline = performance.now() + ms;
  while (!seen.every((s) => ids.every((id) => s.has(id)))) {
    if (performance.now() > deadline) return false;
    await sleep(20);
  }
  return true;
}

/** Every record in `ids` is listed, and viewed, through every node. */
async function listedEverywhere(ids, what) {
  for (const [i, pb] of clients.entries()) {
    const list = await sdk(`listing through node ${i + 1}`, () => pb.collection(name).getFullList());
    const listed = new Set(list.map((r) => r.id));
    const missing = ids.filter((id) => !listed.has(id));
    assert.deepEqual(missing, [], `${what}: node ${i + 1} lists every record`);
    assert.equal(list.length, ids.length, `${what}: node ${i + 1} lists nothing else`);
  }
}

const ids = [];
for (const i of clients.keys()) ids.push(await write(i, `through node ${i + 1}`));
await listedEverywhere(ids, 'before any move');
for (const [i, pb] of clients.entries()) {
  for (const id of ids) {
    const record = await sdk(`a view through node ${i + 1}`, () => pb.collection(name).getOne(id));
    assert.equal(record.id, id);
  }
}
assert.ok(
  await everySubscriberSees(ids, 10_000),
  `events within 10 s: ${seen.map((s) => s.size).join(', ')} of ${ids.length}`,
);
console.log(`cluster SDK run: ${ids.length} records through ${clients.length} nodes, every subscriber saw every write`);

// A move needs the snapshot starting the tenant's WAL chain in the backup target.
async function operator(method, path, body) {
  const res = await fetch(`${platforms[2]}${path}`, {
    method,
    headers: { authorization: `Bearer ${operatorToken}`, 'content-type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await res.text();
  let parsed;
  try {
    parsed = JSON.parse(text);
  } catch {
    parsed = text;
  }
  return { status: res.status, body: parsed };
}
{
  const deadline = performance.now() + 30_000;
  for (;;) {
    const { status, body } = await operator('GET', `/v1/tenants/${slug}/backups`);
    if (status === 200 && Array.isArray(body.items) && body.items.length > 0) break;
    assert.ok(performance.now() < deadline, `the first snapshot within 30 s: ${status} ${JSON.stringify(body)}`);
    await sleep(100);
  }
}

/**
 * Moves the tenant to node `to` through the third node's operator API while a reader lists
 * through every node in turn; then writes through every node, round after round, until one
 * round reaches every subscriber; checks that every subscriber's SDK connected again.
 */
async function moveTo(to) {
  const clientIds = clients.map((pb) => pb.realtime.clientId);
  const disconnectsBefore = [...disconnects];
  const refusedBefore = refused;
  let reading = true;
  let reads = 0;
  const reader = (async () => {
    for (let k = 0; reading; k++) {
      const i = k % clients.length;
      await sdk(`a list through node ${i + 1} during the move`, () => clients[i].collection(name).getList(1, 5));
      reads++;
      await sleep(20);
    }
  })();
  await sleep(200);

  const begun = performance.now();
  const { status, body } = await operator('POST', `/v1/tenants/${slug}/move`, { node: to });
  const callMs = performance.now() - begun;
  assert.equal(status, 200, JSON.stringify(body));
  assert.equal(body.node, to, JSON.stringify(body));

  // A writer through node 1, 2, 3 in turn, one create every 30 ms, until a whole round (three
  // creates in a row, one through each node) has reached every subscriber.
  let writing = true;
  let firstAckMs;
  const written = [];
  const writer = (async () => {
    for (let k = 0; writing; k++) {
      const i = k % clients.length;
      const id = await write(i, `to ${to}, write ${k}, through node ${i + 1}`);
      firstAckMs ??= performance.now() - begun;
      written.push(id);
      ids.push(id);
      await sleep(30);
    }
  })();
  const seenByAll = (id) => seen.every((s) => s.has(id));
  let reachedMs;
  let rounds;
  while (reachedMs === undefined) {
    const whole = Math.floor(written.length / clients.length);
    for (let r = 0; r < whole; r++) {
      if (written.slice(r * clients.length, (r + 1) * clients.length).every(seenByAll)) {
        reachedMs = performance.now() - begun;
        rounds = r + 1;
        break;
      }
    }
    assert.ok(
      reachedMs !== undefined || performance.now() - begun < 30_000,
      `within 30 s of the move to ${to}, a round of writes reaches every subscriber: ` +
        `${seen.map((s) => written.filter((id) => s.has(id)).length).join(', ')} of ${written.length}`,
    );
    await sleep(20);
  }
  writing = false;
  await writer;
  reading = false;
  await reader;

  const firsts = eventTimes.map((times) => times.find((t) => t > begun) - begun);
  const reconnected = clients.map((pb, i) => pb.realtime.clientId !== clientIds[i]);
  assert.deepEqual(reconnected, [true, true, true], `every subscriber connected again after the move to ${to}`);
  assert.ok(
    disconnects.every((d, i) => d > disconnectsBefore[i]),
    `every subscriber's stream was closed by the move to ${to}: ${disconnects.join(', ')}`,
  );
  await listedEverywhere(ids, `after the move to ${to}`);
  const ms = (t) => `${t.toFixed(0)} ms`;
  console.log(
    `move to ${to}: operator call ${ms(callMs)}; first write acknowledged ${ms(firstAckMs)} after the call, ` +
      `the first event ${ms(Math.min(...firsts))} ` +
      `(per subscriber ${firsts.map(ms).join(', ')}); a round of writes through every node seen by every ` +
      `subscriber ${ms(reachedMs)} after the call (round ${rounds} of the writes; ${written.length} writes); ` +
      `${refused - refusedBefore} calls answered 503 "moving" and retried; ${reads} reads during the move; ` +
      `${ids.length} records listed through every node`,
  );
}

await moveTo(nodeIds[1]);
await moveTo(nodeIds[0]);

console.log(
  `cluster SDK moves: ${nodeIds[0]} -> ${nodeIds[1]} -> ${nodeIds[0]}, every subscriber resubscribed by itself ` +
    `(streams lost per subscriber: ${disconnects.join(', ')}), ${refused} "moving" answers retried, no other failure`,
);
for (const unsubscribe of unsubscribes) await sdk('unsubscribing', () => unsubscribe());
