// The behaviour every ObjectStore must have, run against each implementation.
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { Readable } from 'node:stream';
import { it } from 'node:test';
import { ObjectExistsError, ObjectNotFoundError, type ObjectStore } from '../../src/index.js';

async function collect(s: Readable): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const c of s) chunks.push(c as Buffer);
  return Buffer.concat(chunks);
}

async function keys(store: ObjectStore, prefix: string, pageSize?: number, startAfter?: string): Promise<string[]> {
  const out: string[] = [];
  for await (const o of store.list(prefix, { pageSize, startAfter })) out.push(o.key);
  return out;
}

/** A stream of n pseudo-random bytes of unknown length, generated chunk by chunk (never whole in memory). */
function randomStream(n: number, seed: string): { stream: Readable; sha256: Promise<string> } {
  const hash = createHash('sha256');
  let left = n;
  let counter = 0;
  let resolve!: (s: string) => void;
  const sha256 = new Promise<string>((r) => (resolve = r));
  const stream = new Readable({
    read() {
      if (left === 0) {
        resolve(hash.digest('hex'));
        this.push(null);
        return;
      }
      const size = Math.min(left, 1 << 20);
      const chunk = createHash('sha512').update(`${seed}-${counter++}`).digest();
      const buf = Buffer.alloc(size);
      for (let i = 0; i < size; i += chunk.length) chunk.copy(buf, i);
      left -= size;
      hash.update(buf);
      this.push(buf);
    },
  });
  return { stream, sha256 };
}

export function storeContract(getStore: () => ObjectStore): void {
  const p = `contract-${randomBytes(3).toString('hex')}`;

  it('put then get returns the same bytes, as a stream and as a buffer; a rewrite replaces them', async () => {
    const store = getStore();
    const body = randomBytes(100_000);
    await store.put(`${p}/a/b.bin`, body);
    assert.deepEqual(await collect(await store.get(`${p}/a/b.bin`)), body);
    assert.deepEqual(await store.getBuffer(`${p}/a/b.bin`), body);
    await store.put(`${p}/a/b.bin`, Buffer.from('second'));
    assert.equal((await store.getBuffer(`${p}/a/b.bin`)).toString(), 'second');
  });

  it('getRange returns exactly the bytes asked for; a missing key is not_found, a range past the end an error', async () => {
    const store = getStore();
    const body = randomBytes(300_000);
    await store.put(`${p}/ranged`, body);
    for (const [start, length] of [
      [0, 1],
      [0, body.length],
      [12_345, 100_000],
      [body.length - 7, 7],
    ] as const) {
      assert.deepEqual(await store.getRange(`${p}/ranged`, start, length), body.subarray(start, start + length));
    }
    await assert.rejects(store.getRange(`${p}/no-such-key`, 0, 10), ObjectNotFoundError);
    await assert.rejects(
      store.getRange(`${p}/ranged`, body.length - 5, 10),
      (e: { status?: number }) => e.status === 503,
    );
  });

  it('streams of known and unknown length are stored exactly (20 MiB: multipart on S3)', async () => {
    const store = getStore();
    const known = randomStream(3 * 1024 * 1024 + 17, 'known');
    await store.put(`${p}/stream-known`, known.stream, { contentLength: 3 * 1024 * 1024 + 17 });
    const unknown = randomStream(20 * 1024 * 1024 + 5, 'unknown');
    await store.put(`${p}/stream-unknown`, unknown.stream);
    for (const [key, expected, size] of [
      [`${p}/stream-known`, await known.sha256, 3 * 1024 * 1024 + 17],
      [`${p}/stream-unknown`, await unknown.sha256, 20 * 1024 * 1024 + 5],
    ] as const) {
      const h = createHash('sha256');
      let n = 0;
      for await (const c of await store.get(key)) {
        h.update(c as Buffer);
        n += (c as Buffer).length;
      }
      assert.equal(n, size);
      assert.equal(h.digest('hex'), expected);
      assert.equal((await store.head(key))?.size, size);
    }
  });

  it('a missing key: get and getBuffer throw ObjectNotFoundError (not_found), head is undefined', async () => {
    const store = getStore();
    await assert.rejects(
      store.get(`${p}/missing`),
      (e: unknown) => e instanceof ObjectNotFoundError && e.code === 'not_found',
    );
    await assert.rejects(store.getBuffer(`${p}/missing`), ObjectNotFoundError);
    assert.equal(await store.head(`${p}/missing`), undefined);
  });

  it('head gives size, an etag that changes with the content, and a recent lastModified', async () => {
    const store = getStore();
    await store.put(`${p}/h`, Buffer.from('12345'));
    const h1 = await store.head(`${p}/h`);
    assert.equal(h1?.size, 5);
    assert.ok(h1 && Math.abs(h1.lastModified.getTime() - Date.now()) < 120_000);
    await store.put(`${p}/h`, Buffer.from('67890'));
    const h2 = await store.head(`${p}/h`);
    assert.notEqual(h2?.etag, h1?.etag);
  });

  it('put with ifNoneMatch creates once, then throws ObjectExistsError and leaves the object alone', async () => {
    const store = getStore();
    await store.put(`${p}/once`, Buffer.from('first'), { ifNoneMatch: '*' });
    await assert.rejects(store.put(`${p}/once`, Buffer.from('second'), { ifNoneMatch: '*' }), ObjectExistsError);
    assert.equal((await store.getBuffer(`${p}/once`)).toString(), 'first');
  });

  it('list returns exactly the keys under a prefix, in byte order, across pages of 7', async () => {
    const store = getStore();
    const names = Array.from({ length: 25 }, (_, i) => `${p}/list/k${String(i).padStart(2, '0')}`);
    names.push(`${p}/list/sub/deep`, `${p}/list/k-dash`);
    await Promise.all(names.map((k) => store.put(k, Buffer.from(k))));
    await store.put(`${p}/listx`, Buffer.from('not under list/'));
    const expected = [...names].sort((a, b) => Buffer.compare(Buffer.from(a), Buffer.from(b)));
    assert.deepEqual(await keys(store, `${p}/list/`, 7), expected);
    assert.deepEqual(await keys(store, `${p}/list/`, 7, expected[9]), expected.slice(10));
    assert.deepEqual(
      await keys(store, `${p}/list/k1`),
      expected.filter((k) => k.startsWith(`${p}/list/k1`)),
    );
    assert.deepEqual(await keys(store, `${p}/nothing-here/`), []);
    for await (const o of store.list(`${p}/list/sub/`)) assert.equal(o.size, `${p}/list/sub/deep`.length);
  });

  it('delete removes several keys at once and ignores missing ones', async () => {
    const store = getStore();
    await store.put(`${p}/del/1`, Buffer.from('1'));
    await store.put(`${p}/del/2/x`, Buffer.from('2'));
    await store.delete([`${p}/del/1`, `${p}/del/2/x`, `${p}/del/never`]);
    assert.deepEqual(await keys(store, `${p}/del/`), []);
    assert.equal(await store.head(`${p}/del/1`), undefined);
    await store.put(`${p}/del/2/x`, Buffer.from('again')); // a key whose directory was pruned can be written again
    assert.equal((await store.getBuffer(`${p}/del/2/x`)).toString(), 'again');
  });

  it('deleteIfOlder deletes only objects last written before the cutoff', async () => {
    const store = getStore();
    await store.put(`${p}/old`, Buffer.from('x'));
    assert.equal(await store.deleteIfOlder(`${p}/old`, new Date(Date.now() - 3600_000)), false);
    assert.equal((await store.getBuffer(`${p}/old`)).toString(), 'x');
    assert.equal(await store.deleteIfOlder(`${p}/old`, new Date(Date.now() + 3600_000)), true);
    assert.equal(await store.head(`${p}/old`), undefined);
  });

  it('casPut: create-only with null, then only from the current etag; stale etags fail and change nothing', async () => {
    const store = getStore();
    const k = `${p}/cas/ptr`;
    const c1 = await store.casPut(k, Buffer.from('v1'), null);
    assert.ok(c1.ok);
    assert.deepEqual(await store.casPut(k, Buffer.from('v1-again'), null), { ok: false });
    assert.equal(c1.etag, (await store.head(k))?.etag, 'casPut returns the etag head reports');
    const c2 = await store.casPut(k, Buffer.from('v2'), c1.etag);
    assert.ok(c2.ok);
    assert.deepEqual(await store.casPut(k, Buffer.from('v3'), c1.etag), { ok: false });
    assert.equal((await store.getBuffer(k)).toString(), 'v2');
    assert.deepEqual(await store.casPut(`${p}/cas/absent`, Buffer.from('x'), c2.etag), { ok: false });
    assert.equal(await store.head(`${p}/cas/absent`), undefined);
  });

  it('casPut races: of concurrent writers with the same expected etag exactly one wins, every round', async () => {
    const store = getStore();
    const k = `${p}/cas/race`;
    const created = await Promise.all(
      Array.from({ length: 6 }, (_, i) => store.casPut(k, Buffer.from(`init-${i}`), null)),
    );
    assert.equal(created.filter((r) => r.ok).length, 1);
    for (let round = 0; round < 15; round++) {
      const cur = await store.head(k);
      assert.ok(cur);
      const writers = round % 3 === 0 ? 8 : 2;
      const results = await Promise.all(
        Array.from({ length: writers }, (_, i) => store.casPut(k, Buffer.from(`r${round}-w${i}`), cur.etag)),
      );
      const winners = results.flatMap((r, i) => (r.ok ? [i] : []));
      assert.equal(winners.length, 1, `round ${round}: ${winners.length} winners`);
      assert.equal((await store.getBuffer(k)).toString(), `r${round}-w${winners[0]}`);
    }
  });

  it('rejects keys that could escape the store or collide with its own files', async () => {
    const store = getStore();
    for (const bad of ['../x', '/abs', 'a//b', 'a/./b', '', 'a\\b', '.mags-tmp/x']) {
      await assert.rejects(store.put(bad, Buffer.from('x')), /invalid object key/, bad);
    }
  });
}
