// The official PocketBase JS SDK against one tenant of a three-node Warren cluster, one SDK client
// per node (run by tests/suites/cluster, not by the sdk suite): a collection made through one
// node, records created through every node, listed and viewed through every node, and a realtime
// subscriber on every node receiving every node's writes, whichever node owns the tenant.
//
//   CLUSTER_URLS            the tenant's URL on each node, comma-separated
//   PB_SUPERUSER_EMAIL      a superuser of the tenant
//   PB_SUPERUSER_PASSWORD   its password
import assert from 'node:assert/strict';
import { PocketBase, rand, SUPERUSER_EMAIL, SUPERUSER_PASSWORD } from './lib/setup.mjs';

const urls = (process.env.CLUSTER_URLS || '').split(',').filter(Boolean);
assert.equal(urls.length, 3, 'CLUSTER_URLS names three nodes');
const clients = urls.map((url) => {
  const pb = new PocketBase(url);
  pb.autoCancellation(false);
  return pb;
});

// Signed in through the first node; the token works through every node.
await clients[0].collection('_superusers').authWithPassword(SUPERUSER_EMAIL, SUPERUSER_PASSWORD);
for (const pb of clients.slice(1)) pb.authStore.save(clients[0].authStore.token, clients[0].authStore.record);

const name = `cluster_${rand(8)}`;
await clients[1].collections.create({
  name,
  type: 'base',
  listRule: '',
  viewRule: '',
  createRule: '',
  fields: [{ name: 'title', type: 'text' }],
});

const seen = clients.map(() => new Set());
const unsubscribes = [];
for (const [i, pb] of clients.entries()) {
  unsubscribes.push(await pb.collection(name).subscribe('*', (e) => seen[i].add(e.record.id)));
}

const ids = [];
for (const [i, pb] of clients.entries()) {
  const record = await pb.collection(name).create({ title: `through node ${i + 1}` });
  ids.push(record.id);
}

for (const [i, pb] of clients.entries()) {
  const list = await pb.collection(name).getFullList();
  assert.deepEqual(list.map((r) => r.id).sort(), [...ids].sort(), `node ${i + 1} lists every record`);
  for (const id of ids) {
    const record = await pb.collection(name).getOne(id);
    assert.equal(record.id, id);
  }
}

const deadline = Date.now() + 10_000;
while (!seen.every((s) => ids.every((id) => s.has(id)))) {
  assert.ok(Date.now() < deadline, `events within 10 s: ${seen.map((s) => s.size).join(', ')} of ${ids.length}`);
  await new Promise((r) => setTimeout(r, 50));
}
for (const unsubscribe of unsubscribes) await unsubscribe();
console.log(`cluster SDK run: ${ids.length} records through ${clients.length} nodes, every subscriber saw every write`);
