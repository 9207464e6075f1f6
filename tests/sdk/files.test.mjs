// File fields through the SDK: FormData uploads, several files, `+`/`-` modifiers, file URLs
// with thumbs, ranges, protected files behind a file token, validation and delete clean-up.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import zlib from 'node:zlib';
import {
  superuserClient, guestClient, createUser, uniqueName, dropCollections, expectError, raw,
} from './lib/setup.mjs';

let su;
let guest;
let docs; // public files, thumbs 10x10 and 0x8
let vault; // protected files, viewRule: signed-in users
const names = [];

const crcTable = Array.from({ length: 256 }, (_, n) => {
  let c = n;
  for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
  return c >>> 0;
});
function crc32(buf) {
  let c = 0xffffffff;
  for (const b of buf) c = crcTable[(c ^ b) & 0xff] ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}
function chunk(type, data) {
  const len = Buffer.alloc(4);
  len.writeUInt32BE(data.length);
  const td = Buffer.concat([Buffer.from(type, 'ascii'), data]);
  const crc = Buffer.alloc(4);
  crc.writeUInt32BE(crc32(td));
  return Buffer.concat([len, td, crc]);
}
/** A valid RGB PNG of w×h. */
function png(w, h) {
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(w, 0);
  ihdr.writeUInt32BE(h, 4);
  ihdr[8] = 8; // bit depth
  ihdr[9] = 2; // RGB
  const rows = [];
  for (let y = 0; y < h; y++) {
    const row = Buffer.alloc(1 + w * 3);
    for (let x = 0; x < w; x++) row.set([x % 256, y % 256, 99], 1 + x * 3);
    rows.push(row);
  }
  return Buffer.concat([
    Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
    chunk('IHDR', ihdr),
    chunk('IDAT', zlib.deflateSync(Buffer.concat(rows))),
    chunk('IEND', Buffer.alloc(0)),
  ]);
}
function pngSize(buf) {
  assert.equal(buf.subarray(1, 4).toString('ascii'), 'PNG');
  return [buf.readUInt32BE(16), buf.readUInt32BE(20)];
}
const STORED = /^[a-z0-9_]+_[a-z0-9]{10}\.[A-Za-z0-9]+$/;

async function get(url, headers = {}) {
  const res = await fetch(url, { headers });
  return { status: res.status, headers: res.headers, body: Buffer.from(await res.arrayBuffer()) };
}

before(async () => {
  su = await superuserClient();
  guest = guestClient();
  const open = { listRule: '', viewRule: '', createRule: '', updateRule: '', deleteRule: '' };
  docs = await su.collections.create({
    name: uniqueName('docs'),
    type: 'base',
    ...open,
    fields: [
      { name: 'title', type: 'text' },
      { name: 'files', type: 'file', maxSelect: 5, maxSize: 1 << 20, thumbs: ['10x10', '0x8'] },
      { name: 'small', type: 'file', maxSelect: 1, maxSize: 10 },
      { name: 'image', type: 'file', maxSelect: 1, mimeTypes: ['image/png'] },
    ],
  });
  names.push(docs.name);
  vault = await su.collections.create({
    name: uniqueName('vault'),
    type: 'base',
    ...open,
    viewRule: "@request.auth.id != ''",
    fields: [{ name: 'secret', type: 'file', maxSelect: 1, protected: true }],
  });
  names.push(vault.name);
});

after(async () => {
  await dropCollections(su, ...names);
});

test('FormData uploads several files with PocketBase stored names and download headers', async () => {
  const form = new FormData();
  form.append('title', 'two files');
  form.append('files', new Blob(['hello file']), 'Hello World.txt');
  form.append('files', new Blob([png(40, 20)]), 'pic.png');
  const rec = await guest.collection(docs.name).create(form);
  assert.equal(rec.title, 'two files');
  assert.equal(rec.files.length, 2);
  assert.match(rec.files[0], /^hello_world_[a-z0-9]{10}\.txt$/);
  assert.match(rec.files[1], STORED);
  assert.equal(rec.small, '');

  const url = guest.files.getURL(rec, rec.files[0]);
  const res = await get(url);
  assert.equal(res.status, 200);
  assert.equal(res.body.toString(), 'hello file');
  assert.equal(res.headers.get('content-type'), 'text/plain; charset=utf-8');
  assert.equal(res.headers.get('content-disposition'), `attachment; filename="${rec.files[0]}"`);
  assert.equal(res.headers.get('cache-control'), 'max-age=2592000, stale-while-revalidate=86400');
  assert.equal(res.headers.get('accept-ranges'), 'bytes');
  assert.equal(
    res.headers.get('content-security-policy'),
    "default-src 'none'; media-src 'self'; style-src 'unsafe-inline'; sandbox",
  );
  assert.equal(res.headers.get('x-frame-options'), null);
  assert.ok(res.headers.get('last-modified'));

  const image = await get(guest.files.getURL(rec, rec.files[1]));
  assert.equal(image.headers.get('content-type'), 'image/png');
  assert.equal(image.headers.get('content-disposition'), `inline; filename="${rec.files[1]}"`);
  const forced = await get(guest.files.getURL(rec, rec.files[1], { download: true }));
  assert.equal(forced.headers.get('content-disposition'), `attachment; filename="${rec.files[1]}"`);

  const part = await get(url, { Range: 'bytes=1-3' });
  assert.equal(part.status, 206);
  assert.equal(part.body.toString(), 'ell');
  assert.equal(part.headers.get('content-range'), 'bytes 1-3/10');
  const outside = await get(url, { Range: 'bytes=50-60' });
  assert.equal(outside.status, 416);
});

test('plain keys replace, `+` appends, `+name` prepends and `-` removes files', async () => {
  const rec = await guest.collection(docs.name).create({
    files: [new File(['a'], 'a.txt'), new File(['b'], 'b.txt')],
  });
  assert.equal(rec.files.length, 2);
  const [a, b] = rec.files;

  const appended = await guest.collection(docs.name).update(rec.id, {
    'files+': new File(['c'], 'c.txt'),
  });
  assert.equal(appended.files.length, 3);
  assert.deepEqual(appended.files.slice(0, 2), [a, b]);
  const c = appended.files[2];

  const prepended = await guest.collection(docs.name).update(rec.id, {
    '+files': new File(['d'], 'd.txt'),
  });
  assert.equal(prepended.files.length, 4);
  assert.deepEqual(prepended.files.slice(1), [a, b, c]);

  const removed = await guest.collection(docs.name).update(rec.id, { 'files-': [a, c] });
  assert.deepEqual(removed.files, [prepended.files[0], b]);
  assert.equal((await get(guest.files.getURL(removed, a))).status, 404);
  assert.equal((await get(guest.files.getURL(removed, b))).status, 200);

  // An unknown name is refused; the kept list stays.
  await expectError(
    guest.collection(docs.name).update(rec.id, { files: [b, 'nope.txt'] }),
    400,
    { files: 'validation_invalid_file' },
  );
  const cleared = await guest.collection(docs.name).update(rec.id, { files: [] });
  assert.deepEqual(cleared.files, []);
  assert.equal((await get(guest.files.getURL(removed, b))).status, 404);
});

test('file URLs with listed thumbs resize; unlisted sizes serve the original', async () => {
  const rec = await guest.collection(docs.name).create({ files: new File([png(40, 20)], 'wide.png') });
  const name = rec.files[0];
  const thumb = await get(guest.files.getURL(rec, name, { thumb: '10x10' }));
  assert.equal(thumb.status, 200);
  assert.deepEqual(pngSize(thumb.body), [10, 10]);
  assert.equal(thumb.headers.get('content-disposition'), `inline; filename="10x10_${name}"`);
  // Served again from storage, same bytes.
  const again = await get(guest.files.getURL(rec, name, { thumb: '10x10' }));
  assert.deepEqual(again.body, thumb.body);
  const scaled = await get(guest.files.getURL(rec, name, { thumb: '0x8' }));
  assert.deepEqual(pngSize(scaled.body), [16, 8]);
  const preset = await get(guest.files.getURL(rec, name, { thumb: '100x100' }));
  assert.deepEqual(pngSize(preset.body), [100, 100]);
  const unlisted = await get(guest.files.getURL(rec, name, { thumb: '20x20' }));
  assert.deepEqual(pngSize(unlisted.body), [40, 20]);
  const garbage = await get(guest.files.getURL(rec, name, { thumb: 'abc' }));
  assert.deepEqual(pngSize(garbage.body), [40, 20]);
});

test('uploads are checked against maxSize, mimeTypes and maxSelect', async () => {
  const big = await expectError(
    guest.collection(docs.name).create({ small: new File(['x'.repeat(11)], 'big.txt') }),
    400,
    { small: 'validation_file_size_limit' },
  );
  assert.equal(big.response.message, 'Failed to create record.');
  assert.deepEqual(big.response.data.small.params, { file: 'big.txt', maxSize: 10 });
  await expectError(
    guest.collection(docs.name).create({ image: new File(['not a png'], 'fake.png') }),
    400,
    { image: 'validation_invalid_mime_type' },
  );
  const six = Array.from({ length: 6 }, (_, i) => new File([`f${i}`], `f${i}.txt`));
  await expectError(
    guest.collection(docs.name).create({ files: six }),
    400,
    { files: 'validation_too_many_files' },
  );
});

test('protected files need a file token whose record passes the view rule', async () => {
  const rec = await su.collection(vault.name).create({ secret: new File(['top secret'], 'plan.txt') });
  const url = guest.files.getURL(rec, rec.secret);
  assert.equal((await get(url)).status, 404);

  const user = await createUser();
  // The Authorization header is not enough for protected files.
  assert.equal((await get(url, { Authorization: user.pb.authStore.token })).status, 404);
  const token = await user.pb.files.getToken();
  assert.equal(typeof token, 'string');
  const allowed = await get(user.pb.files.getURL(rec, rec.secret, { token }));
  assert.equal(allowed.status, 200);
  assert.equal(allowed.body.toString(), 'top secret');
  // An auth token is not a file token.
  const wrongKind = await get(user.pb.files.getURL(rec, rec.secret, { token: user.pb.authStore.token }));
  assert.equal(wrongKind.status, 404);
  const suToken = await su.files.getToken();
  assert.equal((await get(su.files.getURL(rec, rec.secret, { token: suToken }))).status, 200);

  const noAuth = await raw('POST', '/api/files/token');
  assert.equal(noAuth.status, 401);
});

test('deleting a record removes its files', async () => {
  const rec = await guest.collection(docs.name).create({ files: new File(['bye'], 'bye.txt') });
  const url = guest.files.getURL(rec, rec.files[0]);
  assert.equal((await get(url)).status, 200);
  await guest.collection(docs.name).delete(rec.id);
  const gone = await get(url);
  assert.equal(gone.status, 404);
  assert.deepEqual(JSON.parse(gone.body.toString()), {
    data: {},
    message: "The requested resource wasn't found.",
    status: 404,
  });
});
