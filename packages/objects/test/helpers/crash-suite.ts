// Crash safety: a child process syncing a workspace is killed with SIGKILL at random points; every time, restoring
// the workspace gives exactly the previous version or the new one, compared by a digest of the whole tree.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdir, mkdtemp, rm, unlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { after, before, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { listVersions, type ObjectStore, restore } from '../../src/index.js';
import { mknodWhiteout, treeDigest } from './tree.js';

const child = join(dirname(fileURLToPath(import.meta.url)), '../fixtures/snapshot-once.ts');

/** Deterministic state i of an upper directory: 30 of 150 small files change, a 3 MB file changes, entries come and go. */
async function applyState(upper: string, i: number): Promise<void> {
  await mkdir(join(upper, 'small'), { recursive: true });
  for (let k = 0; k < 150; k++) {
    if (i === 1 || k % 5 === i % 5)
      await writeFile(join(upper, 'small', `f${k}`), `file ${k} state ${i}\n`.repeat(1 + (k % 9)));
  }
  const big = Buffer.alloc(3 * 1024 * 1024);
  const seed = createHash('sha512').update(`big ${i}`).digest();
  for (let o = 0; o < big.length; o += seed.length) seed.copy(big, o);
  await writeFile(join(upper, 'big'), big);
  await unlink(join(upper, `extra-${i - 1}`)).catch(() => {});
  await writeFile(join(upper, `extra-${i}`), `extra ${i}`);
  if (i % 3 === 0) mknodWhiteout(join(upper, `deleted-${i}`));
}

function runChild(args: string[], killAfterMs: number | undefined): Promise<{ killed: boolean; snapshotMs?: number }> {
  return new Promise((resolve, reject) => {
    const p = spawn(process.execPath, ['--import', 'tsx', child, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    let killed = false;
    let timer: NodeJS.Timeout | undefined;
    p.stdout.on('data', (b: Buffer) => {
      out += b.toString();
      if (killAfterMs !== undefined && timer === undefined && out.includes('ready')) {
        timer = setTimeout(() => {
          if (p.exitCode === null) {
            killed = p.kill('SIGKILL');
          }
        }, killAfterMs);
      }
    });
    p.stderr.on('data', (b: Buffer) => (err += b.toString()));
    p.on('error', reject);
    p.on('close', (code, signal) => {
      if (timer) clearTimeout(timer);
      if (signal === 'SIGKILL' && killed) return resolve({ killed: true });
      if (code !== 0) return reject(new Error(`snapshot child failed (${code ?? signal}): ${err.slice(-2000)}`));
      resolve({ killed: false, snapshotMs: Number(/done \d+ (\d+)/.exec(out)?.[1]) });
    });
  });
}

export function crashSuite(label: string, getStore: () => ObjectStore, getUrl: () => string, iterations = 50): void {
  let work: string;
  before(async () => {
    work = await mkdtemp(join(tmpdir(), 'mags-crash-'));
  });
  after(async () => {
    await rm(work, { recursive: true, force: true });
  });

  it(`kill -9 during ${iterations} syncs: every restore is exactly the old or the new version (${label})`, async (t) => {
    const store = getStore();
    const owner = 'crash';
    const name = `ws-${Date.now()}`;
    const upper = join(work, 'upper');
    const cacheDir = join(work, 'cache');
    await mkdir(upper, { recursive: true });
    const args = [getUrl(), upper, cacheDir, owner, name];

    // Calibrate: a few uninterrupted syncs tell how long one takes, so kills spread over the whole sync.
    const durations: number[] = [];
    let state = 0;
    for (let i = 0; i < 3; i++) {
      await applyState(upper, ++state);
      durations.push((await runChild(args, undefined)).snapshotMs ?? 100);
    }
    let committed = await treeDigest(upper);
    let window = Math.max(50, Math.max(...durations.slice(1)) * 2); // the first one uploads everything

    let oldCount = 0;
    let newCount = 0;
    for (let iter = 0; iter < iterations; iter++) {
      await applyState(upper, ++state);
      const expectedNew = await treeDigest(upper);
      const delay = Math.floor(Math.random() * window);
      const run = await runChild(args, delay);
      // Child start-up time varies: keep the window wide enough that kills also land after the head moved.
      if (!run.killed && run.snapshotMs !== undefined) window = Math.max(window, run.snapshotMs * 2);
      const target = join(work, `restored-${iter}`);
      await restore(store, { owner, name }, target, { cacheDir: join(work, `restore-cache-${iter % 2}`) });
      const got = await treeDigest(target);
      await rm(target, { recursive: true, force: true });
      if (got === expectedNew) newCount++;
      else if (got === committed) oldCount++;
      else
        assert.fail(
          `iteration ${iter} (kill after ${delay} ms): the restored tree is neither the old nor the new version`,
        );
      committed = got;
      // Machine load moves the sync's duration around: widen or narrow the window so kills land on both sides.
      if (iter >= 4 && newCount === 0) window *= 1.5;
      if (iter >= 4 && oldCount === 0) window /= 1.5;
    }
    t.diagnostic(
      `${label}: ${iterations} kills within ${Math.round(window)} ms of the sync start: ${oldCount} left the old version, ${newCount} the new`,
    );
    assert.ok(oldCount > 0 && newCount > 0, `kills landed on one side only: old ${oldCount}, new ${newCount}`);
    // The leftovers of killed syncs (orphan manifests, temp files) do not get in the way of the next sync.
    await applyState(upper, ++state);
    await runChild(args, undefined);
    const versions = await listVersions(store, { owner, name });
    const target = join(work, 'final');
    await restore(store, { owner, name }, target, { cacheDir: join(work, 'final-cache') });
    assert.equal(await treeDigest(target), await treeDigest(upper));
    assert.ok(versions.at(-1)!.current);
  });
}
