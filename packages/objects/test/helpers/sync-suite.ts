// The workspace sync behaviour, run against each object store.
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { mkdir, mkdtemp, readdir, readFile, rm, unlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, it } from 'node:test';
import {
  baseKey,
  blobKey,
  deleteWorkspace,
  forkBase,
  gc,
  listVersions,
  manifestKey,
  type ObjectStore,
  packKey,
  readManifest,
  readManifestObject,
  restore,
  restoreManifest,
  rollback,
  snapshot,
} from '../../src/index.js';
import { CountingStore } from './counting.js';
import { buildFixture, describeTree, freshDirs, mknodWhiteout, uniqueWorkspace } from './tree.js';

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
    if (!out.write(chunk)) await new Promise<void>((r) => out.once('drain', () => r()));
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
  const fresh = freshDirs(() => work);
  const ws = uniqueWorkspace;

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
    for (const needle of [
      'chardev 0 mode=',
      'mode=4755',
      'mode=2711',
      'mode=700',
      'mode=1777',
      'owner=1234:5678',
      'hardlink-of=',
      'fifo',
      'trusted.overlay.opaque=0x79',
      'user.note=0x6b657074',
      'symlink -> /nonexistent/target',
    ]) {
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
    assert.equal(store.count('put', 'blobs/') + store.count('put', 'packs/'), 1, 'one object with the new content');
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
    assert.ok(
      d2.some((l) => l.startsWith('opt/app/file: chardev 0 ')),
      d2.join('\n'),
    );
    assert.ok(!d2.some((l) => l.startsWith('notes:')));
    assert.deepEqual(d2, await describeTree(upper));
    const t1 = join(await fresh('restored'), 'upper');
    await restore(store, { ...w, version: 1 }, t1, { cacheDir: await fresh('cache') });
    const d1 = await describeTree(t1);
    assert.ok(d1.some((l) => l.startsWith('opt/app/file: file size=2 ')));
    assert.ok(d1.some((l) => l.startsWith('notes: file')));
  });

  for (const packed of [true, false]) {
    it(`restore fetches only the blobs its cache lacks, and replaces a corrupted cache entry (${packed ? 'packed' : 'format 1, one object per blob'})`, async () => {
      const inner = getStore();
      const store = new CountingStore(inner);
      const upper = await fresh('upper');
      for (let i = 0; i < 40; i++) await writeFile(join(upper, `f${i}`), `content ${i % 30}\n`); // 30 distinct blobs
      const w = ws('cache');
      const snap = await snapshot(upper, inner, {
        ...w,
        cacheDir: await fresh('cache'),
        packThreshold: packed ? undefined : 0,
      });
      assert.equal(snap.manifest.format, packed ? 2 : 1);
      const cacheDir = await fresh('cache');
      const expected = await describeTree(upper);
      const fetches = () => store.count('get', 'blobs/') + store.count('get', 'packs/');

      store.reset();
      const r1 = await restore(store, w, join(await fresh('r'), 'u'), { cacheDir });
      assert.equal(r1.stats.fetchedBlobs, 30, 'empty cache: every distinct blob once');
      assert.equal(fetches(), packed ? 1 : 30, packed ? 'one read of the one pack' : 'one GET per blob');
      assert.equal(r1.stats.fetchRequests, fetches());

      store.reset();
      const t2 = join(await fresh('r'), 'u');
      await restore(store, w, t2, { cacheDir });
      assert.equal(fetches(), 0, 'warm cache: no blob fetched');
      assert.deepEqual(await describeTree(t2), expected);

      const cached = (await readdir(join(cacheDir, 'blobs'))).sort();
      for (const sha of cached.slice(0, 3)) await unlink(join(cacheDir, 'blobs', sha));
      const victim = cached[5]!; // same size, different bytes
      const size = (await readFile(join(cacheDir, 'blobs', victim))).length;
      await writeFile(join(cacheDir, 'blobs', victim), Buffer.alloc(size, 0x41));
      store.reset();
      const t3 = join(await fresh('r'), 'u');
      const r3 = await restore(store, w, t3, { cacheDir });
      assert.equal(r3.stats.fetchedBlobs, 4, '3 missing + 1 corrupt');
      assert.equal(
        fetches(),
        packed ? 2 : 4,
        packed ? 'one ranged read for the missing ones, one for the corrupt one' : 'one GET each',
      );
      assert.deepEqual(await describeTree(t3), expected);
    });
  }

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
    assert.deepEqual(
      versions.map((v) => v.version),
      [1, 2],
    );
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
    assert.deepEqual(
      versions.map((v) => [v.version, v.current]),
      [
        [2, false],
        [3, false],
        [4, true],
      ],
    );
    assert.equal(await store.head(manifestKey(w, 1)), undefined, 'pruned manifest deleted');
    const t = join(await fresh('r'), 'u');
    await restore(store, { ...w, version: 2 }, t, { cacheDir });
    assert.equal(await readFile(join(t, 'state'), 'utf8'), 'state 2');
    await assert.rejects(
      restore(store, { ...w, version: 1 }, join(await fresh('r'), 'u'), { cacheDir }),
      (e: { code?: string }) => e.code === 'not_found',
    );
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
    // One object per blob (the pack variant of this is 'gc keeps packs that…').
    await snapshot(ua, store, { ...a, cacheDir, packThreshold: 0 });
    await snapshot(ub, store, { ...b, cacheDir, packThreshold: 0 });
    const sha = (s: string) => createHash('sha256').update(s).digest('hex');
    await deleteWorkspace(store, a);
    assert.deepEqual(await listVersions(store, a), []);
    await assert.rejects(
      restore(store, a, join(await fresh('r'), 'u'), { cacheDir }),
      (e: { code?: string }) => e.code === 'not_found',
    );

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

  it('a sync reuses an old unreferenced blob only by uploading it again, so a concurrent gc cannot delete it (unpacked blobs)', async () => {
    const store = new CountingStore(getStore());
    // Syncs may reuse blobs written in the last grace/4 (3 s) without re-uploading, and must finish within grace/4: a
    // loaded machine needs that second.
    const graceMs = 12_000;
    const a = ws('old');
    const ua = await fresh('upper');
    const content = `old content ${randomBytes(8).toString('hex')}`;
    await writeFile(join(ua, 'x'), content);
    await snapshot(ua, store, { ...a, cacheDir: await fresh('cache'), gcGraceMs: graceMs, packThreshold: 0 });
    await deleteWorkspace(store, a);
    await sleep(4500); // past the 3 s reuse window, with the store's 1 s clock resolution
    const c = ws('new');
    const uc = await fresh('upper');
    await writeFile(join(uc, 'same-content'), content);
    store.reset();
    const s = await snapshot(uc, store, { ...c, cacheDir: await fresh('cache'), gcGraceMs: graceMs, packThreshold: 0 });
    assert.equal(s.stats.uploadedBlobs, 1, 'the old blob was uploaded again, renewing its date');
    const res = await gc(store, { graceMs });
    assert.ok(res.blobsSpared + res.blobsReferenced >= 1);
    const t = join(await fresh('r'), 'u');
    await restore(store, c, t, { cacheDir: await fresh('cache') });
    assert.deepEqual(await describeTree(t), await describeTree(uc));
  });

  it('expectVersion: a copy made from an old version is refused with 409 and writes nothing; from the current one it syncs', async () => {
    const inner = getStore();
    const store = new CountingStore(inner);
    const w = ws('expect');
    const cacheDir = await fresh('cache');
    const hostA = await fresh('upper');
    await writeFile(join(hostA, 'state'), 'a1');
    const a1 = await snapshot(hostA, store, { ...w, cacheDir, expectVersion: null });
    assert.equal(a1.version, 1);
    // Another host restores version 1 and syncs version 2.
    const hostB = join(await fresh('r'), 'u');
    const rb = await restore(store, w, hostB, { cacheDir: await fresh('cache') });
    await writeFile(join(hostB, 'state'), 'b2');
    assert.equal(
      (await snapshot(hostB, store, { ...w, cacheDir, previous: rb.manifest, expectVersion: 1 })).version,
      2,
    );

    // Host A's copy is still version 1 plus its own change: refused, nothing written.
    await writeFile(join(hostA, 'state'), 'a2');
    await writeFile(join(hostA, 'more'), `new ${randomBytes(4).toString('hex')}`);
    store.reset();
    await assert.rejects(
      snapshot(hostA, store, { ...w, cacheDir, previous: a1.manifest, expectVersion: 1 }),
      (e: { status?: number; code?: string; message?: string }) => {
        assert.equal(e.status, 409);
        assert.equal(e.code, 'conflict');
        assert.match(
          e.message ?? '',
          new RegExp(
            `workspace "u1/${w.name}" is at version 2 but this copy was made from version 1; its changes were not synced`,
          ),
        );
        return true;
      },
    );
    assert.equal(store.count('put') + store.count('cas') + store.count('delete'), 0, 'nothing written');
    assert.deepEqual(
      (await listVersions(store, w)).map((v) => [v.version, v.current]),
      [
        [1, false],
        [2, true],
      ],
    );
    assert.equal(await store.head(manifestKey(w, 3)), undefined);
    await assert.rejects(
      snapshot(hostA, store, { ...w, cacheDir, expectVersion: null }),
      /is at version 2 but this copy was made before its first sync/,
    );

    // A copy of the current version syncs.
    const hostC = join(await fresh('r'), 'u');
    const rc = await restore(store, w, hostC, { cacheDir });
    await writeFile(join(hostC, 'state'), 'c3');
    const c3 = await snapshot(hostC, store, { ...w, cacheDir, previous: rc.manifest, expectVersion: 2 });
    assert.equal(c3.version, 3);
    assert.equal(
      (await snapshot(hostC, store, { ...w, cacheDir, previous: c3.manifest, expectVersion: 3 })).unchanged,
      true,
    );

    await deleteWorkspace(store, w);
    await assert.rejects(
      snapshot(hostC, store, { ...w, cacheDir, previous: c3.manifest, expectVersion: 3 }),
      /has no synced version but this copy was made from version 3/,
    );
  });

  it('expectVersion: the head matching at the start is not enough, the compare-and-swap must win too', async () => {
    const inner = getStore();
    const store = new CountingStore(inner);
    const w = ws('expect-race');
    const cacheDir = await fresh('cache');
    const upper = await fresh('upper');
    await writeFile(join(upper, 'f'), 'v1');
    const s1 = await snapshot(upper, inner, { ...w, cacheDir });
    const other = await fresh('upper');
    await writeFile(join(other, 'f'), 'other host');
    // Someone else commits version 2 while this sync is between its head read and its compare-and-swap.
    store.beforeNextCas = async () => {
      await snapshot(other, inner, { ...w, cacheDir: await fresh('cache'), expectVersion: 1 });
    };
    await writeFile(join(upper, 'f'), 'mine');
    await assert.rejects(
      snapshot(upper, store, { ...w, cacheDir, previous: s1.manifest, expectVersion: 1 }),
      (e: { status?: number; code?: string }) => e.status === 409 && e.code === 'conflict',
    );
    // The losing sync had taken number 2 for its manifest (create-only), so the winner became 3; 2 was removed.
    assert.deepEqual(
      (await listVersions(inner, w)).map((v) => v.version),
      [1, 3],
    );
    assert.equal(await inner.head(manifestKey(w, 2)), undefined, 'the losing manifest was removed');
    const t = join(await fresh('r'), 'u');
    await restore(inner, w, t, { cacheDir: await fresh('cache') });
    assert.equal(await readFile(join(t, 'f'), 'utf8'), 'other host');
  });

  it('readManifestObject gives the stored bytes and their sha256; restoreManifest restores from a manifest in hand', async () => {
    const store = getStore();
    const upper = await fresh('upper');
    await buildFixture(upper);
    const w = ws('object');
    await snapshot(upper, store, { ...w, cacheDir: await fresh('cache') });
    const obj = await readManifestObject(store, manifestKey(w, 1));
    assert.deepEqual(obj.bytes, await store.getBuffer(manifestKey(w, 1)));
    assert.equal(obj.sha256, createHash('sha256').update(obj.bytes).digest('hex'));
    assert.deepEqual(obj.manifest, await readManifest(store, w, 1));
    const target = join(await fresh('r'), 'u');
    const r = await restoreManifest(store, obj.manifest, target, { cacheDir: await fresh('cache') });
    assert.equal(r.version, 1);
    assert.deepEqual(await describeTree(target), await describeTree(upper));
    await assert.rejects(
      readManifestObject(store, manifestKey(w, 2)),
      (e: { status?: number; code?: string }) => e.status === 404 && e.code === 'not_found',
    );
  });

  it('forkBase copies a version byte for byte to the fork; the copy restores, cannot be replaced, and outlives its source through gc', async () => {
    const store = getStore();
    const src = ws('fork-src');
    const to = ws('fork-to');
    const upper = await fresh('upper');
    const small = `small, only in the source ${randomBytes(8).toString('hex')}`; // packed
    const large = randomBytes(200_000); // a blob of its own
    await writeFile(join(upper, 'small'), small);
    await writeFile(join(upper, 'large'), large);
    const cacheDir = await fresh('cache');
    const s1 = await snapshot(upper, store, { ...src, cacheDir });
    const v1Tree = await describeTree(upper);
    await writeFile(join(upper, 'later'), 'version 2');
    await snapshot(upper, store, { ...src, cacheDir, previous: s1.manifest });

    const f = await forkBase(store, src, 1, to);
    assert.equal(f.key, baseKey(to));
    assert.equal(f.key, `workspaces/${to.owner}/${to.name}/base`);
    assert.equal(f.version, 1);
    assert.equal(f.label, `${src.name}@1`);
    assert.deepEqual(await store.getBuffer(f.key), await store.getBuffer(manifestKey(src, 1)), 'byte for byte');
    assert.equal(f.sha256, (await readManifestObject(store, manifestKey(src, 1))).sha256);
    const headFork = ws('fork-head');
    const head = await forkBase(store, src, undefined, headFork);
    assert.equal(head.version, 2);
    assert.equal(head.label, `${src.name}@2`);

    await assert.rejects(
      forkBase(store, src, 2, to),
      (e: { status?: number; code?: string; message?: string }) =>
        e.status === 409 && e.code === 'conflict' && /already has a base/.test(e.message ?? ''),
    );
    assert.equal(f.sha256, (await readManifestObject(store, f.key)).sha256, 'the first base stays');
    await assert.rejects(
      forkBase(store, src, 7, ws('x')),
      (e: { status?: number; message?: string }) =>
        e.status === 404 && /has no version 7 to fork/.test(e.message ?? ''),
    );
    await assert.rejects(
      forkBase(store, ws('never-synced'), undefined, ws('x')),
      (e: { status?: number; message?: string }) =>
        e.status === 404 && /has no synced version to fork/.test(e.message ?? ''),
    );

    // The fork has no versions of its own yet; once it does, it still cannot be a base (bases are one layer deep).
    const toUpper = await fresh('upper');
    await writeFile(join(toUpper, 'own'), "the fork's own change");
    await snapshot(toUpper, store, { ...to, cacheDir });
    await assert.rejects(forkBase(store, to, undefined, ws('x')), (e: { status?: number }) => e.status === 422);

    // The source goes away entirely; gc must keep what the base copy references (a pack and a blob).
    const largeSha = createHash('sha256').update(large).digest('hex');
    const smallPack = s1.manifest.entries.find((e) => e.path === 'small')!.pack!;
    assert.ok(smallPack, 'the small file was packed');
    await deleteWorkspace(store, src);
    await deleteWorkspace(store, headFork);
    await sleep(1500); // the store's clock has 1 s resolution
    const res = await gc(store, { graceMs: 0 });
    assert.ok(res.bases >= 1);
    assert.ok(await store.head(packKey(smallPack.sha256)), 'pack referenced only by the base copy survives gc');
    assert.ok(await store.head(blobKey(largeSha)), 'blob referenced only by the base copy survives gc');
    const t = join(await fresh('r'), 'u');
    await restoreManifest(store, (await readManifestObject(store, f.key)).manifest, t, {
      cacheDir: await fresh('cache'),
    });
    assert.deepEqual(await describeTree(t), v1Tree);

    // Deleting the fork deletes its base copy (the whole prefix); then gc may take the content.
    const del = await deleteWorkspace(store, to);
    assert.equal(del.deletedBase, true);
    assert.equal(del.deletedManifests, 1);
    const left: string[] = [];
    for await (const o of store.list(`workspaces/${to.owner}/${to.name}/`)) left.push(o.key);
    assert.deepEqual(left, []);
    await sleep(1500);
    await gc(store, { graceMs: 0 });
    assert.equal(await store.head(blobKey(largeSha)), undefined);
    assert.equal(await store.head(packKey(smallPack.sha256)), undefined);
  });

  it('rollback makes a new version with the old content, parented on the head, and prunes like a sync', async () => {
    const store = getStore();
    const w = ws('rollback');
    const upper = await fresh('upper');
    const cacheDir = await fresh('cache');
    let prev;
    const trees: string[][] = [];
    for (let i = 1; i <= 3; i++) {
      await writeFile(join(upper, 'state'), `state ${i}`);
      if (i === 2) await writeFile(join(upper, 'added-in-2'), 'x');
      prev = (await snapshot(upper, store, { ...w, cacheDir, previous: prev })).manifest;
      trees.push(await describeTree(upper));
    }
    const r = await rollback(store, w, 1);
    assert.deepEqual(r, { version: 4, restoredFrom: 1 });
    assert.deepEqual(
      (await listVersions(store, w)).map((v) => [v.version, v.current]),
      [
        [1, false],
        [2, false],
        [3, false],
        [4, true],
      ],
    );
    const m1 = await readManifest(store, w, 1);
    const m4 = await readManifest(store, w, 4);
    assert.equal(m4.parent, 3);
    assert.equal(m4.version, 4);
    assert.deepEqual(m4.entries, m1.entries);
    assert.ok(m4.createdAt >= m1.createdAt);
    const t = join(await fresh('r'), 'u');
    await restore(store, w, t, { cacheDir: await fresh('cache') });
    assert.deepEqual(await describeTree(t), trees[0]);

    // keepVersions applies: rolling back to 2 keeping 3 drops versions 1 and 2; version 5 still restores.
    assert.deepEqual(await rollback(store, w, 2, { keepVersions: 3 }), { version: 5, restoredFrom: 2 });
    assert.deepEqual(
      (await listVersions(store, w)).map((v) => v.version),
      [3, 4, 5],
    );
    assert.equal(await store.head(manifestKey(w, 2)), undefined);
    const t5 = join(await fresh('r'), 'u');
    await restore(store, w, t5, { cacheDir: await fresh('cache') });
    assert.deepEqual(await describeTree(t5), trees[1]);

    await assert.rejects(
      rollback(store, w, 1),
      (e: { status?: number; code?: string; message?: string }) =>
        e.status === 404 &&
        e.code === 'not_found' &&
        /no version 1 to roll back to \(kept: 3, 4, 5\)/.test(e.message ?? ''),
    );
    await assert.rejects(rollback(store, ws('never'), 1), (e: { status?: number }) => e.status === 404);

    // A host copy of version 5 cannot sync over a rollback made meanwhile.
    await rollback(store, w, 3);
    await writeFile(join(t5, 'state'), 'edited on an old copy');
    await assert.rejects(
      snapshot(t5, store, { ...w, cacheDir, expectVersion: 5 }),
      /is at version 6 but this copy was made from version 5/,
    );
  });

  it('rollback that loses the race to a sync fails with 409 and leaves the head and the versions as the sync left them', async () => {
    const inner = getStore();
    const store = new CountingStore(inner);
    const w = ws('rollback-race');
    const upper = await fresh('upper');
    const cacheDir = await fresh('cache');
    await writeFile(join(upper, 'f'), 'one');
    const s1 = await snapshot(upper, inner, { ...w, cacheDir });
    await writeFile(join(upper, 'f'), 'two');
    const s2 = await snapshot(upper, inner, { ...w, cacheDir, previous: s1.manifest });
    store.beforeNextCas = async () => {
      await writeFile(join(upper, 'f'), 'three');
      await snapshot(upper, inner, { ...w, cacheDir, previous: s2.manifest });
    };
    await assert.rejects(
      rollback(store, w, 1),
      (e: { status?: number; code?: string }) => e.status === 409 && e.code === 'conflict',
    );
    // The rollback had taken number 3 for its manifest, so the sync became 4; the rollback's manifest was removed.
    assert.deepEqual(
      (await listVersions(inner, w)).map((v) => [v.version, v.current]),
      [
        [1, false],
        [2, false],
        [4, true],
      ],
    );
    assert.equal(await inner.head(manifestKey(w, 3)), undefined, 'the rollback left no manifest behind');
    const t = join(await fresh('r'), 'u');
    await restore(inner, w, t, { cacheDir: await fresh('cache') });
    assert.equal(await readFile(join(t, 'f'), 'utf8'), 'three');
  });

  it('packs: small files go into a few pack objects, restore reads them with a few requests, and every blob is still verified', async () => {
    const inner = getStore();
    const store = new CountingStore(inner);
    const upper = await fresh('upper');
    await mkdir(join(upper, 'src'));
    for (let i = 0; i < 300; i++) await writeFile(join(upper, `src/f${i}`), randomBytes(1000 + (i % 50) * 100));
    await writeFile(join(upper, 'src/dup-a'), 'same small content');
    await writeFile(join(upper, 'src/dup-b'), 'same small content');
    await writeFile(join(upper, 'large'), randomBytes(100_000));
    const w = ws('packs');
    const s = await snapshot(upper, store, { ...w, cacheDir: await fresh('cache') });
    assert.equal(s.manifest.format, 2);
    assert.equal(s.stats.uploadedPacks, 1);
    assert.equal(s.stats.uploadedBlobs, 302);
    assert.equal(store.count('put', 'packs/'), 1);
    assert.equal(store.count('put', 'blobs/'), 1, 'only the file above the threshold has an object of its own');
    const a = s.manifest.entries.find((e) => e.path === 'src/dup-a')!;
    assert.deepEqual(
      a.pack,
      s.manifest.entries.find((e) => e.path === 'src/dup-b')!.pack,
      'equal content is packed once',
    );

    store.reset();
    const t = join(await fresh('r'), 'u');
    const r = await restore(store, w, t, { cacheDir: await fresh('cache') });
    assert.equal(r.stats.fetchedBlobs, 302);
    assert.equal(store.count('get', 'packs/'), 1);
    assert.equal(store.count('get', 'blobs/'), 1);
    assert.deepEqual(await describeTree(t), await describeTree(upper));

    // One changed small file: a new pack with just it; the rest keep pointing at the first pack.
    await writeFile(join(upper, 'src/f7'), 'changed');
    store.reset();
    const s2 = await snapshot(upper, store, { ...w, cacheDir: await fresh('cache'), previous: s.manifest });
    assert.equal(s2.stats.uploadedBlobs, 1);
    assert.equal(store.count('put', 'packs/'), 1);
    const packsOf = (m: typeof s.manifest) => new Set(m.entries.filter((e) => e.pack).map((e) => e.pack!.sha256));
    assert.equal(packsOf(s2.manifest).size, 2);

    // A pack whose bytes were altered in the store fails the restore instead of writing wrong content.
    const pack = a.pack!.sha256;
    const bytes = await inner.getBuffer(packKey(pack));
    bytes[a.pack!.offset] ^= 0xff;
    await inner.put(packKey(pack), bytes);
    await assert.rejects(
      restore(inner, w, join(await fresh('r'), 'u'), { cacheDir: await fresh('cache') }),
      (e: { status?: number; message?: string }) => e.status === 500 && /corrupt/.test(e.message ?? ''),
    );
  });

  it('packs: a format 1 version (no packs) restores, and a packing sync on top of it keeps its blobs where they are', async () => {
    const store = getStore();
    const upper = await fresh('upper');
    for (let i = 0; i < 20; i++) await writeFile(join(upper, `f${i}`), `old ${i}`);
    const w = ws('compat');
    const cacheDir = await fresh('cache');
    const s1 = await snapshot(upper, store, { ...w, cacheDir, packThreshold: 0 });
    assert.equal(s1.manifest.format, 1);
    assert.ok(s1.manifest.entries.every((e) => e.pack === undefined));
    await writeFile(join(upper, 'new'), 'packed now');
    const s2 = await snapshot(upper, store, { ...w, cacheDir, previous: s1.manifest });
    assert.equal(s2.manifest.format, 2);
    assert.equal(s2.stats.uploadedBlobs, 1);
    assert.deepEqual(
      s2.manifest.entries.filter((e) => e.pack).map((e) => e.path),
      ['new'],
    );
    for (const v of [1, 2]) {
      const t = join(await fresh('r'), 'u');
      await restore(store, { ...w, version: v }, t, { cacheDir: await fresh('cache') });
      if (v === 2) assert.deepEqual(await describeTree(t), await describeTree(upper));
      else assert.equal((await readdir(t)).length, 20);
    }
  });

  it('a sync whose previous manifest is not the head (stale) stores again the content the head lacks, from its cache or the files', async () => {
    const store = getStore();
    const w = ws('stale');
    const a = await fresh('upper');
    for (let i = 0; i < 10; i++) await writeFile(join(a, `f${i}`), `a's file ${i} ${randomBytes(4).toString('hex')}`);
    const cacheA = await fresh('cache');
    const a1 = await snapshot(a, store, { ...w, cacheDir: cacheA });
    // Another host replaces everything in version 2 (so version 1's packs are referenced by version 1 only).
    const b = await fresh('upper');
    await writeFile(join(b, 'other'), 'b');
    await snapshot(b, store, { ...w, cacheDir: await fresh('cache') });
    // Host A syncs again from its version 1 manifest (no expectVersion): its unchanged files are not in the head.
    await writeFile(join(a, 'f0'), 'changed on a');
    await unlink(join(cacheA, 'blobs', a1.manifest.entries.find((e) => e.path === 'f1')!.sha256!)); // one from the file
    const a3 = await snapshot(a, store, { ...w, cacheDir: cacheA, previous: a1.manifest });
    assert.equal(a3.version, 3);
    assert.equal(a3.stats.uploadedBlobs, 10);
    assert.equal(a3.stats.hashedFiles, 2, 'the changed file and the one missing from the cache');
    const firstPacks = new Set(a1.manifest.entries.filter((e) => e.pack).map((e) => e.pack!.sha256));
    assert.ok(
      a3.manifest.entries.filter((e) => e.pack).every((e) => !firstPacks.has(e.pack!.sha256)),
      'no reference to packs the head does not keep',
    );
    const t = join(await fresh('r'), 'u');
    await restore(store, w, t, { cacheDir: await fresh('cache') });
    assert.deepEqual(await describeTree(t), await describeTree(a));
  });

  it('gc keeps packs that any kept version references and deletes packs nothing references', async () => {
    const store = getStore();
    const w = ws('gc-packs');
    const upper = await fresh('upper');
    const cacheDir = await fresh('cache');
    await writeFile(join(upper, 'keep'), `kept across versions ${randomBytes(8).toString('hex')}`);
    await writeFile(join(upper, 'drop'), `dropped in version 2 ${randomBytes(8).toString('hex')}`);
    const s1 = await snapshot(upper, store, { ...w, cacheDir, keepVersions: 1 });
    const p1 = s1.manifest.entries.find((e) => e.path === 'keep')!.pack!.sha256;
    await unlink(join(upper, 'drop'));
    await writeFile(join(upper, 'other'), `version 2 ${randomBytes(8).toString('hex')}`);
    const s2 = await snapshot(upper, store, { ...w, cacheDir, keepVersions: 1, previous: s1.manifest });
    const p2 = s2.manifest.entries.find((e) => e.path === 'other')!.pack!.sha256;
    assert.equal(
      s2.manifest.entries.find((e) => e.path === 'keep')!.pack!.sha256,
      p1,
      'unchanged file still in the first pack',
    );
    assert.deepEqual(
      (await listVersions(store, w)).map((v) => v.version),
      [2],
    );
    // An unreferenced pack, as a crashed sync would leave it.
    const orphan = randomBytes(5000);
    const orphanSha = createHash('sha256').update(orphan).digest('hex');
    await store.put(packKey(orphanSha), orphan);
    await sleep(1500);
    const young = await gc(store, { graceMs: 3600_000 });
    assert.equal(young.packsDeleted, 0);
    const res = await gc(store, { graceMs: 0 });
    assert.ok(res.packsDeleted >= 1);
    assert.equal(await store.head(packKey(orphanSha)), undefined);
    assert.ok(await store.head(packKey(p1)), 'pack still referenced by version 2 kept');
    assert.ok(await store.head(packKey(p2)));
    const t = join(await fresh('r'), 'u');
    await restore(store, w, t, { cacheDir: await fresh('cache') });
    assert.deepEqual(await describeTree(t), await describeTree(upper));
  });

  it('a 200 MB file and 10,000 small files round-trip byte for byte, streaming the big file', async (t) => {
    const store = new CountingStore(getStore());
    const upper = await fresh('upper');
    await writeBig(join(upper, 'big.bin'), 200 * 1024 * 1024);
    for (let d = 0; d < 100; d++) {
      await mkdir(join(upper, `src/d${d}`), { recursive: true });
      await Promise.all(
        Array.from({ length: 100 }, (_, i) =>
          writeFile(join(upper, `src/d${d}/f${i}.txt`), `dir ${d} file ${i}\n`.repeat(1 + (i % 7))),
        ),
      );
    }
    const w = ws('large');
    const snap = await peakRssGrowth(() =>
      snapshot(upper, store, { ...w, cacheDir: join(work, `large-cache-${label}`) }),
    );
    const target = join(await fresh('r'), 'u');
    const rest = await peakRssGrowth(() =>
      restore(store, w, target, { cacheDir: join(work, `large-cache2-${label}`) }),
    );
    t.diagnostic(
      `${label}: snapshot of 10,001 files / 200.6 MB: ${snap.result.stats.durationMs} ms (+${snap.growthMb.toFixed(0)} MB RSS); ` +
        `cold restore: ${rest.result.stats.durationMs} ms (+${rest.growthMb.toFixed(0)} MB RSS)`,
    );
    assert.equal(snap.result.stats.files, 10_001);
    // The big blob went up and came down as a stream, never as one Buffer, and memory never grew by its size.
    const bigSha = snap.result.manifest.entries.find((e) => e.path === 'big.bin')!.sha256!;
    const bigCalls = store.calls.filter((c) => c.key === blobKey(bigSha) && c.op !== 'head');
    assert.deepEqual(
      bigCalls.map((c) => [c.op, c.buffered ?? false]),
      [
        ['put', false],
        ['get', false],
      ],
    );
    assert.ok(snap.growthMb < 190, `snapshot grew RSS by ${snap.growthMb.toFixed(0)} MB`);
    assert.ok(rest.growthMb < 190, `restore grew RSS by ${rest.growthMb.toFixed(0)} MB`);
    assert.deepEqual(await describeTree(target), await describeTree(upper));
    // incremental after one change, on the same 10,001 files
    await writeFile(join(upper, 'src/d3/f3.txt'), 'changed');
    const inc = await snapshot(upper, store, {
      ...w,
      cacheDir: join(work, `large-cache-${label}`),
      previous: snap.result.manifest,
    });
    t.diagnostic(`${label}: incremental sync after one change in 10,001 files: ${inc.stats.durationMs} ms`);
    assert.equal(inc.stats.uploadedBlobs, 1);
    await rm(upper, { recursive: true, force: true });
    await rm(target, { recursive: true, force: true });
  });
}
