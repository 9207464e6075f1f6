// The JS SDK over HTTPS: a Warren tenant behind a certificate from an ACME CA. Run by the ACME
// end-to-end tests (crates/warren/tests/e2e/acme.rs), not by the SDK suite:
//   PB_URL=https://<slug>.<domain>:PORT  PB_SUPERUSER_EMAIL  PB_SUPERUSER_PASSWORD
//   NODE_EXTRA_CA_CERTS=<the CA's root>  (every name is reached at 127.0.0.1)
// Prints "ok" after a superuser login, a collection, a record and a realtime event.
import { Agent, setGlobalDispatcher } from 'undici';
import { EventSource } from 'eventsource';
import PocketBase from 'pocketbase';

setGlobalDispatcher(
  new Agent({
    connect: {
      lookup(_hostname, options, callback) {
        if (options && options.all) return callback(null, [{ address: '127.0.0.1', family: 4 }]);
        return callback(null, '127.0.0.1', 4);
      },
    },
  }),
);
globalThis.EventSource = EventSource;

const pb = new PocketBase(process.env.PB_URL);
pb.autoCancellation(false);
const health = await pb.health.check();
if (health.code !== 200) throw new Error(`health: ${JSON.stringify(health)}`);
await pb
  .collection('_superusers')
  .authWithPassword(process.env.PB_SUPERUSER_EMAIL, process.env.PB_SUPERUSER_PASSWORD);
const name = `https_${Date.now()}`;
await pb.collections.create({
  name,
  type: 'base',
  fields: [{ name: 'title', type: 'text' }],
  listRule: '',
  viewRule: '',
  createRule: '',
});
const seen = new Promise((resolve, reject) => {
  const timer = setTimeout(() => reject(new Error('no realtime event over HTTPS')), 10000);
  pb.collection(name)
    .subscribe('*', (event) => {
      clearTimeout(timer);
      resolve(event);
    })
    .catch(reject);
});
await new Promise((r) => setTimeout(r, 300));
const created = await pb.collection(name).create({ title: 'over tls' });
const event = await seen;
if (event.record.id !== created.id) throw new Error('realtime event for another record');
const fetched = await pb.collection(name).getOne(created.id);
if (fetched.title !== 'over tls') throw new Error('record round trip failed');
pb.realtime.unsubscribe();
console.log('ok');
process.exit(0);
