// The workspace sync behaviour, run against each object store.
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { mkdir, mkdtemp, readdir, readFile, rm, unlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, it } from 'node:test';
import {
  blobKey,
  deleteWorkspace,
  gc,
  listVersions,
  manifestKey,
  restore,
  snapshot,
  type ObjectStore,
} from '../../src/index.js';
import { CountingStore } from './counting.js';
import { buildFixture, describeTree, mknodWhiteout } from './tree.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function writeBig(path: string, bytes: number): Promise<void> {
  const out = createWriteStream(path);
  let seed = createHash('sha512').update('big').digest();
  for (let left = bytes; left > 0; ) {
    const chunk = Buffer.alloc(Math.min(left, 4 << 20));
    for (let i = 0; i < chunk.length; i += seed.length) {
      seed.copy(chunk, i);
      if (i % 65536 === 0) seed = createHash('sha512').update(seed).digest();
    }
    left -= chunk.length;
    if (!out.write(chunk)) await new Promise((r) => out.once('drain', r));
  }
  await new Promise<void>((res, rej) => {
    out.on('error', rej);
    out.end(() => res());
  });
}

/** Largest RSS seen while fn runs, above the RSS when it started. */
async function peakRssGrowth<T>(fn: () => Promise<T>): Promise<{ result: T; growthMb: number }> {
  const base = process.memoryUsage().rss;
  let peak = base;
  const timer = setInterval(() => (peak = Math.max(peak, process.memoryUsage().rss)), 10);
  try {
    const result = await fn();
    peak = Math.max(peak, process.memoryUsage().rss);
    return { result, growthMb: (peak - base) / 2 ** 20 };
  } finally {
    clearInterval(timer);
  }
}

export function syncSuite(label: string, getStore: () => ObjectStore): void {
  let work: string;
  let n = 0;
  const fresh = async (what: string): Promise<string> => {
    const d = join(work, `${what}-${++n}`);
    await mkdir(d, { recursive: true });
    return d;
  };
  const ws = (name: string) => ({ owner: 'u1', name: `${name}-${randomBytes(3).toString('hex')}` });

  before(async () => {
    work = await mkdtemp(join(tmpdir(), 'mags-sync-'));
  });
  after(async () => {
    await rm(work, { recursive: true, force: true });
  });

  it('a tree with every kind of entry (modes, owners, symlinks, hard links, empty dirs, whiteouts, opaque dirs, xattrs) round-trips exactly', async () => {
    const store = getStore();
    const upper = await fresh('upper');
    await buildFixture(upper);
    const w = ws('fixture');
    const snap = await snapshot(upper, store, { ...w, cacheDir: await fresh('cache') });
    assert.equal(snap.version, 1);
    const target = join(await fresh('restored'), 'upper');
    const res = await restore(store, w, target, { cacheDir: await fresh('cache') });
    assert.equal(res.version, 1);
    const expected = await describeTree(upper);
    assert.deepEqual(await describeTree(target), expected);
    // sanity: the fixture really has what the test claims
    const text = expected.join('\n');
    for (const needle of ['chardev 0 mode=', 'mode=4755', 'mode=2711', 'mode=700', 'mode=1777', 'owner=1234:5678', 'hardlink-of=', 'fifo', 'trusted.overlay.opaque=0x79', 'user.note=0x6b657074', 'symlink -> /nonexistent/target']) {
      assert.ok(text.includes(needle), `fixture lacks ${needle}`);
    }
  });

  it('an incremental sync after changing one file hashes and uploads exactly that one blob', async () => {
    const inner = getStore();
    const store = new CountingStore(inner);
    const upper = await fresh('upper');
    await buildFixture(upper);
    for (let i = 0; i < 50; i++) await writeFile(join(upper, `etc/app/f${i}`), `file ${i}\n`);
    const w = ws('incr');
    const cacheDir = await fresh('cache');
    const s1 = await snapshot(upper, store, { ...w, cacheDir });
    store.reset();
    await writeFile(join(upper, 'etc/app/f7'), 'changed content\n');
    const s2 = await snapshot(upper, store, { ...w, cacheDir, previous: s1.manifest });
    assert.equal(s2.version, 2);
    assert.equal(s2.stats.hashedFiles, 1);
    assert.equal(s2.stats.uploadedBlobs, 1);
    assert.equal(store.count('put', 'blobs/'), 1);
    assert.equal(store.count('put', 'workspaces/'), 1, 'one manifest');
    assert.equal(store.count('cas'), 1, 'one head move');
    const target = join(await fresh('restored'), 'upper');
    await restore(inner, w, target, { cacheDir: await fresh('cache') });
    assert.deepEqual(await describeTree(target), await describeTree(upper));
  });

  it('syncing an unchanged tree, or a freshly restored one, hashes nothing and writes no new version', async () => {
    const inner = getStore();
    const store = new CountingStore(inner);
    const upper = await fresh('upper');
    await buildFixture(upper);
    const w = ws('same');
    const cacheDir = await fresh('cache');
    const s1 = await snapshot(upper, store, { ...w, cacheDir });
    store.reset();
    const s2 = await snapshot(upper, store, { ...w, cacheDir, previous: s1.manifest });
    assert.equal(s2.unchanged, true);
    assert.equal(s2.version, 1);
    assert.equal(s2.stats.hashedFiles, 0);
    assert.equal(store.count('put') + store.count('cas'), 0);
    const target = join(await fresh('restored'), 'upper');
    const r = await restore(store, w, target, { cacheDir: await fresh('cache') });
    store.reset();
    const s3 = await snapshot(target, store, { ...w, cacheDir, previous: r.manifest });
    assert.equal(s3.unchanged, true);
    assert.equal(s3.stats.hashedFiles, 0);
    assert.equal(store.count('put') + store.count('cas'), 0);
  });

  it('a deletion persists: the whiteout of run 2 is in the restored tree, and version 1 still has the file', async () => {
    const store = getStore();
    const upper = await fresh('upper');
    await mkdir(join(upper, 'opt/app'), { recursive: true });
    await writeFile(join(upper, 'opt/app/file'), 'v1');
    await writeFile(join(upper, 'notes'), 'upper-only file');
    const w = ws('delete');
    const cacheDir = await fresh('cache');
    const s1 = await snapshot(upper, store, { ...w, cacheDir });
    // run 2 deletes both: overlay leaves a whiteout for a name that may exist below, and just unlinks the other
    await unlink(join(upper, 'opt/app/file'));
    mknodWhiteout(join(upper, 'opt/app/file'));
    await unlink(join(upper, 'notes'));
    await snapshot(upper, store, { ...w, cacheDir, previous: s1.manifest });
    const t2 = join(await fresh('restored'), 'upper');
    await restore(store, w, t2, { cacheDir: await fresh('cache') });
    const d2 = await describeTree(t2);
    assert.ok(d2.some((l) => l.startsWith('opt/app/file: chardev 0 ')), d2.join('\n'));
    assert.ok(!d2.some((l) => l.startsWith('notes:')));
    assert.deepEqual(d2, await describeTree(upper));
    const t1 = join(await fresh('restored'), 'upper');
    await restore(store, { ...w, version: 1 }, t1, { cacheDir: await fresh('cache') });
    const d1 = await describeTree(t1);
    assert.ok(d1.some((l) => l.startsWith('opt/app/file: file size=2 ')));
    assert.ok(d1.some((l) => l.startsWith('notes: file')));
  });

  it('restore fetches only the blobs its cache lacks, and replaces a corrupted cache entry', async () => {
    const inner = getStore();
    const store = new CountingStore(inner);
    const upper = await fresh('upper');
    for (let i = 0; i < 40; i++) await writeFile(join(upper, `f${i}`), `content ${i % 30}\n`); // 30 distinct blobs
    const w = ws('cache');
    await snapshot(upper, inner, { ...w, cacheDir: await fresh('cache') });
    const cacheDir = await fresh('cache');
    const expected = await describeTree(upper);

    store.reset();
    const r1 = await restore(store, w, join(await fresh('r'), 'u'), { cacheDir });
    assert.equal(store.count('get', 'blobs/'), 30, 'empty cache: every distinct blob once');
    assert.equal(r1.stats.fetchedBlobs, 30);

    store.reset();
    const t2 = join(await fresh('r'), 'u');
    await restore(store, w, t2, { cacheDir });
    assert.equal(store.count('get', 'blobs/'), 0, 'warm cache: no blob fetched');
    assert.deepEqual(await describeTree(t2), expected);

    const cached = (await readdir(join(cacheDir, 'blobs'))).sort();
    for (const sha of cached.slice(0, 3)) await unlink(join(cacheDir, 'blobs', sha));
    const victim = cached[5]!; // same size, different bytes
    const orig = await inner.getBuffer(blobKey(victim));
    await writeFile(join(cacheDir, 'blobs', victim), Buffer.alloc(orig.length, 0x41));
    store.reset();
    const t3 = join(await fresh('r'), 'u');
    await restore(store, w, t3, { cacheDir });
    assert.equal(store.count('get', 'blobs/'), 4, '3 missing + 1 corrupt');
    assert.deepEqual(await describeTree(t3), expected);
  });

  it('two syncs racing on one workspace: exactly one is saved, the other fails with 409 and changes nothing', async () => {
    const store = getStore();
    const w = ws('race');
    const base = await fresh('upper');
    await writeFile(join(base, 'start'), 'v1');
    const cache = await fresh('cache');
    const s1 = await snapshot(base, store, { ...w, cacheDir: cache });
    const a = await fresh('upper');
    const b = await fresh('upper');
    for (let i = 0; i < 30; i++) {
      await writeFile(join(a, `a${i}`), `a ${i}`);
      await writeFile(join(b, `b${i}`), `b ${i}`);
    }
    const results = await Promise.allSettled([
      snapshot(a, store, { ...w, cacheDir: cache, previous: s1.manifest }),
      snapshot(b, store, { ...w, cacheDir: cache, previous: s1.manifest }),
    ]);
    const ok = results.filter((r) => r.status === 'fulfilled');
    const failed = results.filter((r): r is PromiseRejectedResult => r.status === 'rejected');
    assert.equal(ok.length, 1);
    assert.equal(failed.length, 1);
    assert.equal((failed[0]!.reason as { code?: string }).code, 'conflict');
    assert.equal((failed[0]!.reason as { status?: number }).status, 409);
    const winner = results[0]!.status === 'fulfilled' ? a : b;
    const versions = await listVersions(store, w);
    assert.deepEqual(versions.map((v) => v.version), [1, 2]);
    const t = join(await fresh('r'), 'u');
    await restore(store, w, t, { cacheDir: await fresh('cache') });
    assert.deepEqual(await describeTree(t), await describeTree(winner));
  });

  it('versions: each sync adds one, old ones can be restored, and only keepVersions are kept', async () => {
    const store = getStore();
    const w = ws('versions');
    const upper = await fresh('upper');
    const cacheDir = await fresh('cache');
    let prev;
    for (let i = 1; i <= 4; i++) {
      await writeFile(join(upper, 'state'), `state ${i}`);
      prev = (await snapshot(upper, store, { ...w, cacheDir, previous: prev, keepVersions: 3 })).manifest;
    }
    const versions = await listVersions(store, w);
    assert.deepEqual(versions.map((v) => [v.version, v.current]), [[2, false], [3, false], [4, true]]);
    assert.equal(await store.head(manifestKey(w, 1)), undefined, 'pruned manifest deleted');
    const t = join(await fresh('r'), 'u');
    await restore(store, { ...w, version: 2 }, t, { cacheDir });
    assert.equal(await readFile(join(t, 'state'), 'utf8'), 'state 2');
    await assert.rejects(restore(store, { ...w, version: 1 }, join(await fresh('r'), 'u'), { cacheDir }), (e: { code?: string }) => e.code === 'not_found');
  });

  it('deleteWorkspace removes its versions; gc then deletes only blobs nothing references, and spares young ones', async () => {
    const store = getStore();
    const a = ws('gc-a');
    const b = ws('gc-b');
    const ua = await fresh('upper');
    const ub = await fresh('upper');
    const uniqueA = `only in A ${randomBytes(8).toString('hex')}`;
    const shared = `in both ${randomBytes(8).toString('hex')}`;
    await writeFile(join(ua, 'unique'), uniqueA);
    await writeFile(join(ua, 'shared'), shared);
    await writeFile(join(ub, 'shared'), shared);
    const cacheDir = await fresh('cache');
    await snapshot(ua, store, { ...a, cacheDir });
    await snapshot(ub, store, { ...b, cacheDir });
    const sha = (s: string) => createHash('sha256').update(s).digest('hex');
    await deleteWorkspace(store, a);
    assert.deepEqual(await listVersions(store, a), []);
    await assert.rejects(restore(store, a, join(await fresh('r'), 'u'), { cacheDir }), (e: { code?: string }) => e.code === 'not_found');

    const young = await gc(store, { graceMs: 3600_000 });
    assert.equal(young.blobsDeleted, 0, 'nothing older than the grace period');
    assert.ok(await store.head(blobKey(sha(uniqueA))));

    await sleep(1500); // the store's clock has 1 s resolution
    const res = await gc(store, { graceMs: 0 });
    assert.equal(await store.head(blobKey(sha(uniqueA))), undefined, 'unreferenced blob deleted');
    assert.ok(await store.head(blobKey(sha(shared))), 'blob still referenced by B kept');
    assert.ok(res.blobsDeleted >= 1);
    const t = join(await fresh('r'), 'u');
    await restore(store, b, t, { cacheDir: await fresh('cache') });
    assert.deepEqual(await describeTree(t), await describeTree(ub));
  });

  it('a sync reuses an old unreferenced blob only by uploading it again, so a concurrent gc cannot delete it', async () => {
    const store = new CountingStore(getStore());
    const graceMs = 4000; // syncs may reuse blobs written in the last second without re-uploading
    const a = ws('old');
    const ua = await fresh('upper');
    const content = `old content ${randomBytes(8).toString('hex')}`;
    await writeFile(join(ua, 'x'), content);
    await snapshot(ua, store, { ...a, cacheDir: await fresh('cache'), gcGraceMs: graceMs });
    await deleteWorkspace(store, a);
    await sleep(2500);
    const c = ws('new');
    const uc = await fresh('upper');
    await writeFile(join(uc, 'same-content'), content);
    store.reset();
    const s = await snapshot(uc, store, { ...c, cacheDir: await fresh('cache'), gcGraceMs: graceMs });
    assert.equal(s.stats.uploadedBlobs, 1, 'the old blob was uploaded again, renewing its date');
    const res = await gc(store, { graceMs });
    assert.ok(res.blobsSpared + res.blobsReferenced >= 1);
    const t = join(await fresh('r'), 'u');
    await restore(store, c, t, { cacheDir: await fresh('cache') });
    assert.deepEqual(await describeTree(t), await describeTree(uc));
  });

  it('a 200 MB file and 10,000 small files round-trip byte for byte, streaming the big file', async (t) => {
    const store = new CountingStore(getStore());
    const upper = await fresh('upper');
    await writeBig(join(upper, 'big.bin'), 200 * 1024 * 1024);
    for (let d = 0; d < 100; d++) {
      await mkdir(join(upper, `src/d${d}`), { recursive: true });
      await Promise.all(Array.from({ length: 100 }, (_, i) => writeFile(join(upper, `src/d${d}/f${i}.txt`), `dir ${d} file ${i}\n`.repeat(1 + (i % 7)))));
    }
    const w = ws('large');
    const snap = await peakRssGrowth(() => snapshot(upper, store, { ...w, cacheDir: join(work, `large-cache-${label}`) }));
    const target = join(await fresh('r'), 'u');
    const rest = await peakRssGrowth(() => restore(store, w, target, { cacheDir: join(work, `large-cache2-${label}`) }));
    t.diagnostic(
      `${label}: snapshot of 10,001 files / 200.6 MB: ${snap.result.stats.durationMs} ms (+${snap.growthMb.toFixed(0)} MB RSS); ` +
        `cold restore: ${rest.result.stats.durationMs} ms (+${rest.growthMb.toFixed(0)} MB RSS)`,
    );
    assert.equal(snap.result.stats.files, 10_001);
    // The big blob went up and came down as a stream, never as one Buffer, and memory never grew by its size.
    const bigSha = snap.result.manifest.entries.find((e) => e.path === 'big.bin')!.sha256!;
    const bigCalls = store.calls.filter((c) => c.key === blobKey(bigSha) && c.op !== 'head');
    assert.deepEqual(bigCalls.map((c) => [c.op, c.buffered ?? false]), [['put', false], ['get', false]]);
    assert.ok(snap.growthMb < 190, `snapshot grew RSS by ${snap.growthMb.toFixed(0)} MB`);
    assert.ok(rest.growthMb < 190, `restore grew RSS by ${rest.growthMb.toFixed(0)} MB`);
    assert.deepEqual(await describeTree(target), await describeTree(upper));
    // incremental after one change, on the same 10,001 files
    await writeFile(join(upper, 'src/d3/f3.txt'), 'changed');
    const inc = await snapshot(upper, store, { ...w, cacheDir: join(work, `large-cache-${label}`), previous: snap.result.manifest });
    t.diagnostic(`${label}: incremental sync after one change in 10,001 files: ${inc.stats.durationMs} ms`);
    assert.equal(inc.stats.uploadedBlobs, 1);
    await rm(upper, { recursive: true, force: true });
    await rm(target, { recursive: true, force: true });
  });
}
