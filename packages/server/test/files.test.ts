// Uploaded files as a client sees them: the raw body streamed to the object store with its sha256, listed and
// deleted by their owner only, refused when too big or not a raw body, nothing kept when a client gives up
// half-way, and handed to the agent as /uploads/<name> when a job names them.
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import http from 'node:http';
import { after, before, describe, test } from 'node:test';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import type { FileInfo } from '@mags/api';
import { errorBody, startTestServer, type TestServer, waitFor } from './helpers.js';

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
const sha256 = (b: Buffer | string) => createHash('sha256').update(b).digest('hex');

/** A full garbage collection, so that memory measurements count what is held, not garbage not yet collected. */
function collectGarbage(): void {
  setFlagsFromString('--expose-gc');
  (runInNewContext('gc') as () => void)();
}

async function storedKeys(t: TestServer, prefix = 'files/'): Promise<string[]> {
  const keys: string[] = [];
  for await (const o of t.server.objects.list(prefix)) keys.push(o.key);
  return keys;
}

function upload(t: TestServer, name: string, payload: Buffer | string, headers: Record<string, string> = {}) {
  return t.server.app.inject({
    method: 'POST',
    url: `/api/v1/mags-files?name=${encodeURIComponent(name)}`,
    payload,
    headers: { ...t.auth, 'content-type': 'application/octet-stream', ...headers },
  });
}

/** A raw HTTP POST of `total` bytes made of repeats of one chunk (so the client itself holds almost nothing). */
function postStream(
  url: string,
  token: string,
  opts: { total: number; chunk: Buffer; contentLength?: number; abortAfter?: number; name?: string },
): Promise<{ status: number; body: string } | 'aborted'> {
  return new Promise((resolve, reject) => {
    const headers: Record<string, string> = {
      authorization: `Bearer ${token}`,
      'content-type': 'application/octet-stream',
    };
    if (opts.contentLength !== undefined) headers['content-length'] = String(opts.contentLength);
    const req = http.request(`${url}/api/v1/mags-files?name=${opts.name ?? 'big.bin'}`, { method: 'POST', headers });
    let sent = 0;
    let aborted = false;
    req.on('response', (res) => {
      const parts: Buffer[] = [];
      res.on('data', (d: Buffer) => parts.push(d));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(parts).toString() }));
    });
    req.on('error', (err) => (aborted ? resolve('aborted') : reject(err)));
    const pump = () => {
      while (sent < opts.total) {
        if (opts.abortAfter !== undefined && sent >= opts.abortAfter) {
          aborted = true;
          req.destroy();
          setImmediate(() => resolve('aborted'));
          return;
        }
        const piece = opts.chunk.subarray(0, Math.min(opts.chunk.length, opts.total - sent));
        sent += piece.length;
        if (!req.write(piece)) {
          req.once('drain', pump);
          return;
        }
      }
      req.end();
    };
    pump();
  });
}

describe('uploaded files', () => {
  let t: TestServer;
  let url: string;
  before(async () => {
    t = await startTestServer({ config: { maxUploadBytes: 64 * 1024 * 1024 } });
    url = await t.server.listen();
  });
  after(async () => {
    const errors = t?.errors() ?? [];
    await t?.close();
    assert.deepEqual(errors, [], 'no request failed inside the server (a 500 is a bug)');
  });

  test('an upload answers 201 with its id, name, size and sha256; the bytes are in the store', async () => {
    const content = Buffer.from('name,value\na,1\nb,2\n');
    const res = await upload(t, 'data.csv', content);
    assert.equal(res.statusCode, 201, res.body);
    const f = res.json() as FileInfo;
    assert.deepEqual(Object.keys(f).sort(), ['created_at', 'file_id', 'name', 'sha256', 'size']);
    assert.match(f.file_id, UUID);
    assert.equal(f.name, 'data.csv');
    assert.equal(f.size, content.length);
    assert.equal(f.sha256, sha256(content));
    const owner = (await t.server.app.inject({ method: 'GET', url: '/api/v1/status', headers: t.auth })).json().user.id;
    const stored = await t.server.objects.getBuffer(`files/${owner}/${f.file_id}`);
    assert.deepEqual(stored, content);

    const empty = await upload(t, 'empty', Buffer.alloc(0));
    assert.equal(empty.statusCode, 201, empty.body);
    assert.equal(empty.json().size, 0);
    assert.equal(empty.json().sha256, sha256(''));
  });

  test('files are listed newest first and deleted (bytes too); a second delete is 404', async () => {
    const f = (await upload(t, 'gone.txt', 'bye')).json() as FileInfo;
    const list = (await t.server.app.inject({ method: 'GET', url: '/api/v1/mags-files', headers: t.auth })).json();
    assert.equal(list.files[0].file_id, f.file_id);
    const keysBefore = await storedKeys(t);
    const del = await t.server.app.inject({
      method: 'DELETE',
      url: `/api/v1/mags-files/${f.file_id}`,
      headers: t.auth,
    });
    assert.equal(del.statusCode, 204);
    assert.equal(del.body, '');
    const keysAfter = await storedKeys(t);
    assert.equal(keysAfter.length, keysBefore.length - 1);
    assert.ok(!keysAfter.some((k) => k.endsWith(f.file_id)));
    const listAfter = (await t.server.app.inject({ method: 'GET', url: '/api/v1/mags-files', headers: t.auth })).json();
    assert.ok(!listAfter.files.some((x: FileInfo) => x.file_id === f.file_id));
    errorBody(
      await t.server.app.inject({ method: 'DELETE', url: `/api/v1/mags-files/${f.file_id}`, headers: t.auth }),
      404,
      'not_found',
    );
  });

  test('a name that cannot be /uploads/<name>, or none, is 400; a body that is not raw bytes is 415', async () => {
    for (const name of ['a/b', '..', '.', 'x'.repeat(256)]) {
      const err = errorBody(await upload(t, name, 'x'), 400, 'invalid_request');
      assert.match(err.error, /^name: /);
    }
    errorBody(
      await t.server.app.inject({
        method: 'POST',
        url: '/api/v1/mags-files',
        payload: 'x',
        headers: { ...t.auth, 'content-type': 'application/octet-stream' },
      }),
      400,
      'invalid_request',
    );
    for (const type of ['application/json', 'text/plain', 'multipart/form-data; boundary=x']) {
      const err = errorBody(await upload(t, 'x', '{"a":1}', { 'content-type': type }), 415, 'unsupported_media_type');
      assert.match(err.error, /application\/octet-stream/);
    }
    const none = await t.server.app.inject({
      method: 'POST',
      url: '/api/v1/mags-files?name=x',
      payload: 'abc',
      headers: { ...t.auth },
    });
    assert.ok([400, 415].includes(none.statusCode), none.body);
    // Elsewhere raw bytes are still not accepted.
    errorBody(
      await t.server.app.inject({
        method: 'POST',
        url: '/api/v1/mags-jobs',
        payload: 'x',
        headers: { ...t.auth, 'content-type': 'application/octet-stream' },
      }),
      415,
      'unsupported_media_type',
    );
  });

  test('a name with a control or text-direction character is refused with 422 and a sentence, and nothing is kept', async () => {
    const before = (await t.server.app.inject({ method: 'GET', url: '/api/v1/mags-files', headers: t.auth })).json()
      .files.length;
    const names = [
      'evil\r\nname.txt',
      'a\nb',
      'tab\there',
      'bell\x07',
      'esc\x1b[31mred',
      'del\x7f',
      'c1\x9b31m',
      'invoice\u202egnp.exe',
      'iso\u2066late',
      'pop\u2069',
    ];
    for (const name of names) {
      const err = errorBody(await upload(t, name, 'x'), 422, 'invalid_name');
      assert.match(
        err.error,
        /^name: the file name contains a control or text-direction character \(U\+[0-9A-F]{4} at position \d+\); rename the file$/,
      );
    }
    const after = (await t.server.app.inject({ method: 'GET', url: '/api/v1/mags-files', headers: t.auth })).json()
      .files.length;
    assert.equal(after, before, 'nothing was stored');
    assert.equal((await storedKeys(t)).length, before);
    // Other Unicode stays welcome.
    assert.equal((await upload(t, 'données – 数据 ✓.csv', 'x')).statusCode, 201);
  });

  test('a 50 MB body is streamed (memory does not grow by its size) and hashed correctly', async () => {
    const chunk = Buffer.alloc(256 * 1024);
    for (let i = 0; i < chunk.length; i++) chunk[i] = (i * 31 + 7) & 0xff;
    const total = 50 * 1024 * 1024;
    const expected = createHash('sha256');
    for (let sent = 0; sent < total; sent += chunk.length)
      expected.update(chunk.subarray(0, Math.min(chunk.length, total - sent)));

    collectGarbage();
    const baseline = process.memoryUsage.rss();
    let peak = baseline;
    // Collected before each sample: a server holding the body would keep it alive; garbage is not the question.
    const sampler = setInterval(() => {
      collectGarbage();
      peak = Math.max(peak, process.memoryUsage.rss());
    }, 20);
    const res = await postStream(url, t.token, { total, chunk, contentLength: total });
    clearInterval(sampler);
    assert.notEqual(res, 'aborted');
    const { status, body } = res as { status: number; body: string };
    assert.equal(status, 201, body);
    const f = JSON.parse(body) as FileInfo;
    assert.equal(f.size, total);
    assert.equal(f.sha256, expected.digest('hex'));
    const growth = peak - baseline;
    assert.ok(
      growth < total / 2,
      `memory grew by ${Math.round(growth / 1024 / 1024)} MB while receiving ${total / 1024 / 1024} MB`,
    );

    // Without Content-Length (chunked) it streams too.
    const chunked = await postStream(url, t.token, { total: 3 * 1024 * 1024 + 5, chunk });
    assert.equal((chunked as { status: number }).status, 201);
    assert.equal(JSON.parse((chunked as { body: string }).body).size, 3 * 1024 * 1024 + 5);
  });

  test('a client that gives up half-way leaves nothing behind', async () => {
    const filesBefore = (
      await t.server.store.files.list(
        (await t.server.app.inject({ method: 'GET', url: '/api/v1/status', headers: t.auth })).json().user.id,
      )
    ).length;
    const keysBefore = await storedKeys(t);
    const chunk = Buffer.alloc(64 * 1024, 1);
    const res = await postStream(url, t.token, {
      total: 20 * 1024 * 1024,
      chunk,
      contentLength: 20 * 1024 * 1024,
      abortAfter: 2 * 1024 * 1024,
    });
    assert.equal(res, 'aborted');
    const owner = (await t.server.app.inject({ method: 'GET', url: '/api/v1/status', headers: t.auth })).json().user.id;
    // The server notices the broken connection on its own time.
    await waitFor(async () => {
      const tmp = await storedTemp(t);
      return tmp === 0;
    }, 'the partial upload to be removed');
    assert.equal((await t.server.store.files.list(owner)).length, filesBefore);
    assert.deepEqual(await storedKeys(t), keysBefore);
  });

  describe('over the limit', () => {
    let small: TestServer;
    let smallUrl: string;
    before(async () => {
      small = await startTestServer({ config: { maxUploadBytes: 1000 } });
      smallUrl = await small.server.listen();
    });
    after(async () => small?.close());

    test('a Content-Length over the limit is 413 at once; a chunked body that grows past it is 413; nothing is kept', async () => {
      const err = errorBody(await upload(small, 'big', Buffer.alloc(1001)), 413, 'payload_too_large');
      assert.match(err.error, /larger than the 1000 bytes upload limit/);
      const chunk = Buffer.alloc(300, 2);
      const res = await postStream(smallUrl, small.token, { total: 5000, chunk });
      assert.notEqual(res, 'aborted');
      assert.equal((res as { status: number }).status, 413, (res as { body: string }).body);
      assert.equal(JSON.parse((res as { body: string }).body).code, 'payload_too_large');
      const ok = await upload(small, 'fits', Buffer.alloc(1000));
      assert.equal(ok.statusCode, 201);
      const owner = (
        await small.server.app.inject({ method: 'GET', url: '/api/v1/status', headers: small.auth })
      ).json().user.id;
      assert.deepEqual(
        (await small.server.store.files.list(owner)).map((f) => f.name),
        ['fits'],
      );
      assert.equal((await storedKeys(small)).length, 1);
      assert.deepEqual(small.errors(), []);
    });
  });

  describe('on a job', () => {
    test('file_ids put each file at /uploads/<name>; a repeated name is 400; an unknown id is 404', async () => {
      const a = (await upload(t, 'script.py', 'print(1)')).json() as FileInfo;
      const b = (await upload(t, 'data.csv', 'x,y')).json() as FileInfo;
      const b2 = (await upload(t, 'data.csv', 'other')).json() as FileInfo;
      const owner = (await t.server.app.inject({ method: 'GET', url: '/api/v1/status', headers: t.auth })).json().user
        .id;
      const res = await t.server.app.inject({
        method: 'POST',
        url: '/api/v1/mags-jobs',
        headers: t.auth,
        payload: { script: 'echo', file_ids: [a.file_id, b.file_id] },
      });
      assert.equal(res.statusCode, 202, res.body);
      const id = res.json().request_id;
      await t.agent!.until(() => t.agent!.starts.some((s) => s.jobId === id));
      assert.deepEqual(t.agent!.starts.find((s) => s.jobId === id)?.uploads, [
        { key: `files/${owner}/${a.file_id}`, name: 'script.py', size: 8 },
        { key: `files/${owner}/${b.file_id}`, name: 'data.csv', size: 3 },
      ]);
      const clash = errorBody(
        await t.server.app.inject({
          method: 'POST',
          url: '/api/v1/mags-jobs',
          headers: t.auth,
          payload: { script: 'echo', file_ids: [b.file_id, b2.file_id] },
        }),
        400,
        'invalid_request',
      );
      assert.match(clash.error, /both named "data\.csv"/);
      const unknown = errorBody(
        await t.server.app.inject({
          method: 'POST',
          url: '/api/v1/mags-jobs',
          headers: t.auth,
          payload: { script: 'echo', file_ids: [a.file_id, 'nope'] },
        }),
        404,
        'not_found',
      );
      assert.match(unknown.error, /file "nope" not found/);
    });

    test("another user can neither list, delete nor use the caller's files", async () => {
      const mine = (await upload(t, 'private.key', 'secret')).json() as FileInfo;
      const mallory = await t.server.store.users.create('mallory');
      const auth = { authorization: `Bearer ${await t.server.auth.createToken(mallory.id, 'test')}` };
      assert.deepEqual(
        (await t.server.app.inject({ method: 'GET', url: '/api/v1/mags-files', headers: auth })).json(),
        { files: [] },
      );
      errorBody(
        await t.server.app.inject({ method: 'DELETE', url: `/api/v1/mags-files/${mine.file_id}`, headers: auth }),
        404,
        'not_found',
      );
      const use = errorBody(
        await t.server.app.inject({
          method: 'POST',
          url: '/api/v1/mags-jobs',
          headers: auth,
          payload: { script: 'cat /uploads/private.key', file_ids: [mine.file_id] },
        }),
        404,
        'not_found',
      );
      assert.equal(use.error, `file "${mine.file_id}" not found; upload it first (mags run -f PATH does)`);
      const list = (await t.server.app.inject({ method: 'GET', url: '/api/v1/mags-files', headers: t.auth })).json();
      assert.ok(
        list.files.some((f: FileInfo) => f.file_id === mine.file_id),
        'the owner still has it',
      );
    });
  });
});

/** Temporary files of the local object store (an upload in progress or abandoned). */
async function storedTemp(t: TestServer): Promise<number> {
  const { readdir } = await import('node:fs/promises');
  const { fileURLToPath } = await import('node:url');
  try {
    return (await readdir(`${fileURLToPath(t.server.config.objects)}/.mags-tmp`)).length;
  } catch {
    return 0;
  }
}
