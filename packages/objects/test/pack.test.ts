// Packs: how blobs are laid out in pack objects by a snapshot, and how a restore groups the blobs it needs into reads.
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { LocalObjectStore, packKey } from '../src/index.js';
import { PackWriter, planPackReads } from '../src/sync/pack.js';

const sha = (b: Buffer | string) => createHash('sha256').update(b).digest('hex');

describe('PackWriter', () => {
  let dir: string;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'mags-pack-'));
  });
  after(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('fills packs up to the target size, names each by its hash, and every ref points at exactly its blob', async () => {
    const store = new LocalObjectStore(dir);
    const w = new PackWriter(store, 10_000);
    const blobs = Array.from({ length: 25 }, (_, i) => randomBytes(1000 + i));
    for (const b of blobs) await w.add(sha(b), b);
    await w.add(sha(blobs[3]!), blobs[3]!); // added twice, stored once
    await w.flush();
    assert.equal(w.uploadedPacks, 3, '25 KB of blobs in packs of at least 10 KB');
    assert.equal(
      w.uploadedBytes,
      blobs.reduce((n, b) => n + b.length, 0),
    );
    for (const b of blobs) {
      const ref = w.ref(sha(b))!;
      assert.equal(ref.length, b.length);
      const pack = await store.getBuffer(packKey(ref.sha256));
      assert.equal(sha(pack), ref.sha256);
      assert.deepEqual(pack.subarray(ref.offset, ref.offset + ref.length), b);
    }
    assert.equal(w.ref(sha('never added')), undefined);
  });
});

describe('planPackReads', () => {
  const ref = (pack: string, offset: number, length: number) => ({ sha256: pack, offset, length });

  it('reads neighbouring blobs of one pack together, and splits at large gaps, at the size cap and between packs', () => {
    const reads = planPackReads(
      [
        { sha256: 'a', ref: ref('P', 0, 100) },
        { sha256: 'c', ref: ref('P', 150, 100) }, // 50-byte gap: same read
        { sha256: 'b', ref: ref('P', 5000, 100) }, // far away: its own read
        { sha256: 'd', ref: ref('Q', 0, 10) },
      ],
      1000,
      10_000,
    );
    const norm = reads.map((r) => [r.pack, r.start, r.length, r.members.map((m) => m.sha256).join('')]).sort();
    assert.deepEqual(norm, [
      ['P', 0, 250, 'ac'],
      ['P', 5000, 100, 'b'],
      ['Q', 0, 10, 'd'],
    ]);
    const capped = planPackReads(
      Array.from({ length: 10 }, (_, i) => ({ sha256: `x${i}`, ref: ref('P', i * 100, 100) })),
      1000,
      300,
    );
    assert.deepEqual(
      capped.map((r) => r.length),
      [300, 300, 300, 100],
    );
    assert.deepEqual(
      capped.flatMap((r) => r.members.map((m) => m.sha256)).sort(),
      Array.from({ length: 10 }, (_, i) => `x${i}`).sort(),
    );
  });
});
