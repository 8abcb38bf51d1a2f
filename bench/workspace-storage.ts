// Workspace storage figures of the sync engine (packages/objects), on the local-directory store and on Ceph RGW:
//   cold restore of a 100 MB / 5,000-file workspace on an empty host cache (median of 3; target <= 2 s on RGW),
//   incremental sync after changing one file of a 10,000-file workspace (p50/p99 of 20),
//   and throughput of a first sync of the 100 MB workspace (median of 3).
// RGW is started here (scripts/start-rgw.sh, ports 47680/46989, in a temp dir) and stopped by its script at the end.
// Restores write to a scratch ext4 disk, made and loop-mounted the way the agent makes workspace disks (the cache is
// on it too), so the figures are the engine's and not the root file system's; BENCH_STORAGE_DIR=/some/dir runs there
// instead. Run: node --import tsx bench/workspace-storage.ts   (root: mount, chown)
process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';

import { execFile, execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { promisify } from 'node:util';
import {
  LocalObjectStore,
  type Manifest,
  type ObjectStore,
  openObjectStore,
  restore,
  runCommand,
  snapshot,
} from '../packages/objects/src/index.js';
import { fmt, loadavg, summary } from './stats.js';

const ROOT = path.resolve(import.meta.dirname, '..');
const execFileAsync = promisify(execFile);
const RGW_PORT = 47680;
const RGW_MON_PORT = 46989;
const MB = 1024 * 1024;

export interface StoreFigures {
  store: string;
  /** Cold restores of the 100 MB / 5,000-file workspace, ms. */
  coldRestoreMs: number[];
  coldRestoreMedianMs: number;
  /** First syncs of the 100 MB workspace, MB/s (MiB). */
  firstSyncMBps: number[];
  firstSyncMedianMBps: number;
  /** Incremental syncs after one change in 10,000 files, ms. */
  incrementalMs: number[];
  incrementalP50Ms: number;
  incrementalP99Ms: number;
}

export interface StorageFiguresOptions {
  /** Cold restores and first syncs per store. Default 3. */
  runs?: number;
  /** Incremental syncs per store. Default 20. */
  incrementalRuns?: number;
  /** Skip RGW (only the local store). */
  skipRgw?: boolean;
}

/** The 100 MB / 5,000-file workspace: 4,900 source-like files of 1-8 KB and 100 files of ~0.8 MB, incompressible. */
function writeWorkspace100(dir: string): number {
  rmSync(dir, { recursive: true, force: true });
  let seed = 42;
  const next = () => (seed = (seed * 1103515245 + 12345) & 0x7fffffff) / 0x7fffffff;
  const small = Array.from({ length: 4900 }, () => 1024 + Math.floor(next() * 7 * 1024));
  const smallTotal = small.reduce((a, b) => a + b, 0);
  const large = Math.floor((100 * MB - smallTotal) / 100);
  for (let d = 0; d < 49; d++) mkdirSync(path.join(dir, `src/pkg${d}`), { recursive: true });
  mkdirSync(path.join(dir, 'data'), { recursive: true });
  for (const [i, size] of small.entries())
    writeFileSync(path.join(dir, `src/pkg${i % 49}/file${i}.ts`), randomBytes(size));
  for (let i = 0; i < 100; i++) writeFileSync(path.join(dir, `data/blob${i}.bin`), randomBytes(large));
  return smallTotal + 100 * large;
}

/** 10,000 small files in 100 directories. */
function writeWorkspace10k(dir: string): void {
  rmSync(dir, { recursive: true, force: true });
  for (let d = 0; d < 100; d++) {
    mkdirSync(path.join(dir, `d${d}`), { recursive: true });
    for (let i = 0; i < 100; i++)
      writeFileSync(path.join(dir, `d${d}/f${i}.txt`), `dir ${d} file ${i}\n`.repeat(1 + ((d * 100 + i) % 40)));
  }
}

const median = (xs: number[]): number => summary(xs).p50;

async function measureStore(
  label: string,
  store: ObjectStore,
  work: string,
  opts: Required<Omit<StorageFiguresOptions, 'skipRgw'>>,
): Promise<StoreFigures> {
  const owner = 'bench';
  const tag = randomBytes(3).toString('hex');
  const upper = path.join(work, 'upper');
  const firstSyncMBps: number[] = [];
  let ws = { owner, name: '' };
  for (let i = 0; i < opts.runs; i++) {
    const bytes = writeWorkspace100(upper); // fresh content each time: nothing is in the store yet
    ws = { owner, name: `ws100-${tag}-${i}` };
    const cacheDir = path.join(work, `sync-cache-${i}`);
    const t = performance.now();
    const r = await snapshot(upper, store, { ...ws, cacheDir });
    const ms = performance.now() - t;
    if (r.manifest.files !== 5000) throw new Error(`expected 5,000 files, synced ${r.manifest.files}`);
    firstSyncMBps.push(bytes / MB / (ms / 1000));
    rmSync(cacheDir, { recursive: true, force: true });
  }

  const coldRestoreMs: number[] = [];
  for (let i = 0; i < opts.runs; i++) {
    const target = path.join(work, `restored-${i}`);
    const cacheDir = path.join(work, `restore-cache-${i}`); // empty: every blob comes from the store
    const t = performance.now();
    await restore(store, ws, target, { cacheDir });
    coldRestoreMs.push(performance.now() - t);
    rmSync(target, { recursive: true, force: true });
    rmSync(cacheDir, { recursive: true, force: true });
  }
  rmSync(upper, { recursive: true, force: true });

  const upper10k = path.join(work, 'upper10k');
  writeWorkspace10k(upper10k);
  const ws10k = { owner, name: `ws10k-${tag}` };
  const cacheDir = path.join(work, 'cache10k');
  let previous: Manifest = (await snapshot(upper10k, store, { ...ws10k, cacheDir })).manifest;
  const incrementalMs: number[] = [];
  for (let i = -2; i < opts.incrementalRuns; i++) {
    writeFileSync(
      path.join(upper10k, `d${(i + 50) % 100}/f7.txt`),
      `changed in run ${i} ${randomBytes(4).toString('hex')}\n`,
    );
    const t = performance.now();
    const r = await snapshot(upper10k, store, { ...ws10k, cacheDir, previous });
    const ms = performance.now() - t;
    if (r.stats.hashedFiles !== 1) throw new Error(`incremental sync hashed ${r.stats.hashedFiles} files, not 1`);
    previous = r.manifest;
    if (i >= 0) incrementalMs.push(ms); // the first two warm up
  }
  rmSync(upper10k, { recursive: true, force: true });
  rmSync(cacheDir, { recursive: true, force: true });

  const inc = summary(incrementalMs);
  const figures: StoreFigures = {
    store: label,
    coldRestoreMs,
    coldRestoreMedianMs: median(coldRestoreMs),
    firstSyncMBps,
    firstSyncMedianMBps: median(firstSyncMBps),
    incrementalMs,
    incrementalP50Ms: inc.p50,
    incrementalP99Ms: inc.p99,
  };
  const list = (xs: number[], f: (x: number) => string) => xs.map(f).join(', ');
  console.log(`${label}:`);
  console.log(
    `  cold restore, 100 MB / 5,000 files, empty cache, n=${opts.runs}:  median ${fmt(figures.coldRestoreMedianMs)}   (${list(coldRestoreMs, (x) => x.toFixed(0))} ms)   target <= 2000 ms on RGW`,
  );
  console.log(
    `  incremental sync, 1 of 10,000 files changed, n=${inc.n}:  p50 ${fmt(inc.p50)}   p99 ${fmt(inc.p99)}   (min ${fmt(inc.min)}, max ${fmt(inc.max)})`,
  );
  console.log(
    `  first sync of 100 MB / 5,000 files, n=${opts.runs}:           median ${figures.firstSyncMedianMBps.toFixed(1)} MB/s   (${list(firstSyncMBps, (x) => x.toFixed(1))} MB/s)`,
  );
  return figures;
}

/** A scratch ext4 file system on a loop device, like an agent's workspace disk; unmount() removes it. */
async function scratchDisk(): Promise<{ dir: string; describe: string; unmount: () => Promise<void> }> {
  const given = process.env.BENCH_STORAGE_DIR;
  if (given) {
    const dir = mkdtempSync(path.join(given, 'mags-bench-storage-'));
    return {
      dir,
      describe: `in ${given} (BENCH_STORAGE_DIR)`,
      unmount: async () => rmSync(dir, { recursive: true, force: true }),
    };
  }
  const base = mkdtempSync(path.join(tmpdir(), 'mags-bench-disk-'));
  const img = path.join(base, 'disk.img');
  const dir = path.join(base, 'mnt');
  mkdirSync(dir);
  const cleanup = async (): Promise<void> => {
    await runCommand('umount', [dir], { allowFailure: true });
    rmSync(base, { recursive: true, force: true });
  };
  try {
    await runCommand('truncate', ['-s', '8G', img]);
    await runCommand('mkfs.ext4', [
      '-q',
      '-F',
      '-m',
      '0',
      '-E',
      'lazy_itable_init=1,lazy_journal_init=1,nodiscard',
      img,
    ]);
    await runCommand('mount', ['-o', 'loop,nosuid,nodev,noatime', img, dir]);
  } catch (e) {
    await cleanup();
    throw new Error(
      `could not make a scratch ext4 disk (needs root; or set BENCH_STORAGE_DIR): ${(e as Error).message}`,
    );
  }
  return { dir, describe: 'on a scratch ext4 loop disk (like a workspace disk)', unmount: cleanup };
}

/** Starts a throwaway RGW; stop() stops it by its script. */
async function startRgw(): Promise<{ url: string; stop: () => void }> {
  const dir = mkdtempSync(path.join(tmpdir(), 'mags-bench-rgw-'));
  const env = { ...process.env, MAGS_TEST_RGW_PORT: String(RGW_PORT), MAGS_TEST_RGW_MON_PORT: String(RGW_MON_PORT) };
  let stopped = false;
  // Ctrl-C or a kill must not leave the daemons running.
  const onSignal = (sig: NodeJS.Signals): void => {
    stop();
    process.kill(process.pid, sig);
  };
  const stop = (): void => {
    if (stopped) return;
    stopped = true;
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
    try {
      execFileSync('bash', [path.join(ROOT, 'scripts/stop-rgw.sh'), dir], { stdio: 'ignore' });
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  try {
    const { stdout } = await execFileAsync('bash', [path.join(ROOT, 'scripts/start-rgw.sh'), dir], {
      env,
      timeout: 600_000,
    });
    const endpoint = stdout.trim().split('\n').pop()!;
    return {
      url: `s3://TESTACCESSKEY:TESTSECRETKEY@mags-test/bench-${Date.now()}?endpoint=${encodeURIComponent(endpoint)}`,
      stop,
    };
  } catch (e) {
    stop();
    throw e;
  }
}

/** Prints the storage figures (and returns them), on the local store and, unless skipped, on RGW. */
export async function storageFigures(options: StorageFiguresOptions = {}): Promise<StoreFigures[]> {
  const opts = { runs: options.runs ?? 3, incrementalRuns: options.incrementalRuns ?? 20 };
  console.log('');
  console.log(`workspace storage (packages/objects sync engine); load average at start: ${loadavg()}`);
  const disk = await scratchDisk();
  const out: StoreFigures[] = [];
  let rgw: { url: string; stop: () => void } | undefined;
  try {
    console.log(`restore targets and host caches ${disk.describe}`);
    const localDir = path.join(disk.dir, 'local-store');
    const local = new LocalObjectStore(localDir);
    out.push(await measureStore('local store (embedded)', local, path.join(disk.dir, 'local-work'), opts));
    await local.close();
    rmSync(localDir, { recursive: true, force: true });
    rmSync(path.join(disk.dir, 'local-work'), { recursive: true, force: true });

    if (!options.skipRgw) {
      rgw = await startRgw();
      const s3 = openObjectStore(rgw.url);
      try {
        out.push(await measureStore(`Ceph RGW at 127.0.0.1:${RGW_PORT}`, s3, path.join(disk.dir, 'rgw-work'), opts));
      } finally {
        await s3.close();
      }
    }
  } finally {
    rgw?.stop();
    await disk.unmount();
  }
  console.log(`load average at end: ${loadavg()}`);
  return out;
}

if (process.argv[1] && import.meta.url === pathToFileURL(path.resolve(process.argv[1])).href) {
  await storageFigures({ skipRgw: process.env.BENCH_SKIP_RGW === '1' });
}
