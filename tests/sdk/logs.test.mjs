// Request logs through the SDK: pb.logs.getList / getOne / getStats. Both PocketBase and Warren
// write logs in the background, so every check polls (boundedly) until the entry shows up.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  superuserClient, guestClient, expectError, raw, rand, DATE_RE, ID_RE,
} from './lib/setup.mjs';

/**
 * Polls `su.logs.getList` with `filter` until at least `min` items match (at most ~20 s). Both
 * the count and the page must show them: PocketBase counts and reads the page in two queries run
 * side by side, so a batch of logs written between them gives a count of 1 and no items.
 */
async function waitForLogs(su, filter, min = 1) {
  const deadline = Date.now() + 20000;
  for (;;) {
    const page = await su.logs.getList(1, 50, { filter, sort: '-created' });
    if (page.totalItems >= min && page.items.length >= Math.min(min, 50)) return page;
    if (Date.now() > deadline) assert.fail(`no logs matching ${filter} after 20 s`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

test('a request shows up in the logs with PocketBase fields', async () => {
  const su = await superuserClient();
  const marker = rand(12);
  const res = await raw('GET', `/api/health?marker=${marker}`, {
    headers: { 'User-Agent': `sdk-logs/${marker}`, Referer: 'http://example.test/' },
  });
  assert.equal(res.status, 200);

  // Exact URLs: the logs queries below carry the marker in their own URLs and are logged too.
  const url = `/api/health?marker=${marker}`;
  const page = await waitForLogs(su, `data.url = "${url}"`);
  assert.equal(page.page, 1);
  assert.equal(page.perPage, 50);
  assert.equal(page.totalItems, 1);
  assert.equal(page.totalPages, 1);
  const log = page.items[0];
  assert.deepEqual(Object.keys(log).sort(), ['created', 'data', 'id', 'level', 'message']);
  assert.match(log.id, ID_RE);
  assert.match(log.created, DATE_RE);
  assert.equal(log.level, 0);
  assert.equal(log.message, `GET /api/health?marker=${marker}`);
  assert.equal(log.data.type, 'request');
  assert.equal(log.data.method, 'GET');
  assert.equal(log.data.status, 200);
  assert.equal(log.data.url, `/api/health?marker=${marker}`);
  assert.equal(log.data.userAgent, `sdk-logs/${marker}`);
  assert.equal(log.data.referer, 'http://example.test/');
  assert.equal(log.data.auth, '');
  assert.equal(log.data.remoteIP, '127.0.0.1');
  assert.equal(typeof log.data.execTime, 'number');

  const one = await su.logs.getOne(log.id);
  assert.deepEqual(one, log);

  const stats = await su.logs.getStats({ filter: `data.url = "${url}"` });
  assert.equal(stats.length, 1);
  assert.match(stats[0].date, /^\d{4}-\d{2}-\d{2} \d{2}:00:00\.000Z$/);
  assert.equal(stats[0].total, 1);
});

test('failed and authenticated requests are logged as such', async () => {
  const su = await superuserClient();
  const marker = rand(12);
  const res = await raw('GET', `/api/collections/missing_${marker}/records`);
  assert.equal(res.status, 404);
  await su.health.check({ query: { byadmin: marker } });

  const failed = await waitForLogs(su, `data.url = "/api/collections/missing_${marker}/records"`);
  const log = failed.items[0];
  assert.equal(log.level, 8);
  assert.equal(log.data.status, 404);
  assert.equal(log.data.error, 'Missing collection context.');

  const mine = await waitForLogs(su, `data.url = "/api/health?byadmin=${marker}"`);
  assert.equal(mine.items[0].data.auth, '_superusers');

  // Filters on level and JSON paths combine; sort by a JSON path works.
  const errors = await su.logs.getList(1, 5, {
    filter: `level >= 8 && data.status = 404 && data.url ~ "${marker}"`,
    sort: '-data.status,created',
  });
  assert.equal(errors.totalItems, 1);
  assert.equal(errors.items[0].id, log.id);
});

test('logs are for superusers only and unknown ids are 404', async () => {
  const su = await superuserClient();
  await expectError(guestClient().logs.getList(1, 1), 401);
  await expectError(guestClient().logs.getStats(), 401);
  const err = await expectError(su.logs.getOne(`nope${rand(11)}`), 404);
  assert.equal(err.response.message, "The requested resource wasn't found.");
  const bad = await expectError(su.logs.getStats({ filter: 'bad((' }), 400);
  assert.equal(bad.response.message, 'Invalid filter format.');
  await expectError(su.logs.getList(1, 1, { filter: 'unknown_field = 1' }), 400);
});
