// The sync service: snapshots and restores in a child process, manifests exchanged as files, errors passed on with
// their status and code, and the caller's memory flat however many files a workspace has.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, it } from 'node:test';
import { SyncService } from '../src/index.js';
import { describeTree } from './helpers/tree.js';

let work: string;
let service: SyncService;
before(async () => {
  work = await mkdtemp(join(tmpdir(), 'mags-sync-service-'));
  service = new SyncService({ objects: join(work, 'store'), idleMs: 2000 });
});
after(async () => {
  service.close();
  await rm(work, { recursive: true, force: true });
});

it('a snapshot and a restore run in the service; the manifest file makes the next sync hash nothing; errors keep their status', async () => {
  const upper = join(work, 'upper');
  await mkdir(join(upper, 'd'), { recursive: true });
  for (let i = 0; i < 50; i++)
    await writeFile(join(upper, 'd', `f${i}`), `file ${i} ${randomBytes(4).toString('hex')}`);
  const ws = { owner: 'u1', name: 'svc' };
  const previousFile = join(work, 'previous.manifest');
  const s1 = await service.snapshot(
    upper,
    { ...ws, cacheDir: join(work, 'cache'), expectVersion: null },
    { previousFile, manifestOut: previousFile },
  );
  assert.equal(s1.version, 1);
  assert.equal(s1.files, 50);
  assert.ok(existsSync(previousFile));
  const s2 = await service.snapshot(
    upper,
    { ...ws, cacheDir: join(work, 'cache'), expectVersion: 1 },
    { previousFile, manifestOut: previousFile },
  );
  assert.equal(s2.unchanged, true);
  assert.equal(s2.stats.hashedFiles, 0, 'the previous manifest came from the file');

  const target = join(work, 'restored');
  const restoredManifest = join(work, 'restored.manifest');
  const r = await service.restore(ws, target, { cacheDir: join(work, 'cache2') }, restoredManifest);
  assert.equal(r.version, 1);
  assert.equal(r.files, 50);
  assert.deepEqual(await describeTree(target), await describeTree(upper));

  await assert.rejects(
    service.snapshot(
      upper,
      { ...ws, cacheDir: join(work, 'cache'), expectVersion: 7 },
      { previousFile, manifestOut: previousFile },
    ),
    (e: { status?: number; code?: string; message?: string }) =>
      e.status === 409 &&
      e.code === 'conflict' &&
      /is at version 1 but this copy was made from version 7/.test(e.message ?? ''),
  );
  await assert.rejects(
    service.restoreKey('workspaces/u1/svc/manifests/0000000009', join(work, 'nowhere'), {
      cacheDir: join(work, 'cache'),
    }),
    (e: { status?: number }) => e.status === 404,
  );
});
