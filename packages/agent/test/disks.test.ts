// The agent's own check when it makes a disk: what it reports, and that a disk which no longer fits is refused
// with the 507 sentence a job's error shows (the server checked earlier, but the host may have filled since).
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, statfsSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, test } from 'node:test';
import { GiB, MagsError, roomForDisks, storageReserveBytes } from '@mags/api';
import { DiskLedger } from '../src/disks.js';

const dir = mkdtempSync(path.join(tmpdir(), 'mags-disks-test-'));
after(() => rmSync(dir, { recursive: true, force: true }));

test('the ledger reports the filesystem, the disks promised, and what they may still grow into', () => {
  let changes = 0;
  const ledger = new DiskLedger(dir, () => changes++);
  const fs = statfsSync(dir);
  const empty = ledger.report();
  assert.equal(empty.totalBytes, fs.blocks * fs.bsize);
  assert.equal(empty.promisedBytes, 0);
  assert.equal(empty.growableBytes, 0);

  const image = path.join(dir, 'a.img');
  ledger.reserve(image, GiB);
  assert.equal(ledger.report().growableBytes, GiB, 'a disk not made yet may take all of its size');
  writeFileSync(image, Buffer.alloc(4 * 1024 * 1024, 1));
  const written = ledger.report();
  assert.equal(written.promisedBytes, GiB);
  assert.ok(written.growableBytes <= GiB - 4 * 1024 * 1024, 'what the disk already takes is no longer growable');
  ledger.release(image);
  assert.equal(ledger.report().promisedBytes, 0);
  assert.equal(changes, 2, 'each change is announced (for the report to the server)');
});

test('a disk that does not fit is refused with 507 and a sentence; a smaller one is made', () => {
  const ledger = new DiskLedger(dir);
  const room = roomForDisks(ledger.report());
  const tooBig = Math.floor(room / GiB) + 2;
  assert.throws(
    () => ledger.reserve(path.join(dir, 'big.img'), tooBig * GiB),
    (err: unknown) =>
      err instanceof MagsError &&
      err.status === 507 &&
      err.code === 'insufficient_storage' &&
      new RegExp(`^a ${tooBig} GB disk does not fit: this host has \\d+ GB free for workspaces`).test(err.message),
  );
  assert.equal(ledger.report().promisedBytes, 0, 'a refused disk is not recorded');
  if (room < 2 * GiB) return; // this host is nearly full itself
  // Promised disks count in full until written: two that together exceed the room can't both be made.
  const half = Math.floor(room / GiB / 2) + 1;
  ledger.reserve(path.join(dir, 'one.img'), half * GiB);
  assert.throws(() => ledger.reserve(path.join(dir, 'two.img'), half * GiB), /does not fit/);
  // Growth is checked as growth: the disk's own promise is already counted.
  ledger.reserve(path.join(dir, 'one.img'), half * GiB);
  assert.ok(storageReserveBytes(ledger.report().totalBytes) >= 5 * GiB, 'the host keeps at least 5 GB');
});
