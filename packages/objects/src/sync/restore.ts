// Restore: materialise a workspace version into an empty directory exactly (types, modes, owners, mtimes, symlinks,
// hard links, whiteouts, opaque directories), fetching only the blobs the host's cache lacks and verifying each.
import { chmod, lchown, link, lstat, lutimes, mkdir, readdir, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { MagsError } from '@mags/api';
import { forEachLimit } from '../pool.js';
import { run } from '../process.js';
import type { ObjectStore } from '../store.js';
import { BlobCache, CacheCorruptError, SMALL_FILE } from './cache.js';
import { checkWorkspace, EMPTY_SHA256, type Manifest, type ManifestEntry } from './manifest.js';
import { readManifest } from './versions.js';
import { writeXattrs } from './xattr.js';

export interface RestoreRef {
  owner: string;
  name: string;
  /** Default: the current version. */
  version?: number;
}

export interface RestoreOptions {
  cacheDir: string;
  /** Blob downloads and file writes in flight. Default 16. */
  concurrency?: number;
}

export interface RestoreStats {
  entries: number;
  files: number;
  bytes: number;
  /** Distinct non-empty blobs the version needs. */
  blobs: number;
  fetchedBlobs: number;
  fetchedBytes: number;
  durationMs: number;
}

export interface RestoreResult {
  version: number;
  /** The manifest with this host's fingerprints of the restored files: pass it as `previous` to the next snapshot. */
  manifest: Manifest;
  stats: RestoreStats;
}

export async function restore(store: ObjectStore, ref: RestoreRef, targetDir: string, opts: RestoreOptions): Promise<RestoreResult> {
  const started = Date.now();
  checkWorkspace(ref);
  const concurrency = opts.concurrency ?? 16;
  const manifest = await readManifest(store, ref, ref.version);
  const cache = new BlobCache(opts.cacheDir);
  await cache.init();

  await mkdir(targetDir, { recursive: true });
  if ((await readdir(targetDir)).length > 0) throw MagsError.invalid(`cannot restore into ${targetDir}: it is not empty`);
  const abs = (p: string): string => (p === '' ? targetDir : join(targetDir, p));

  const stats: RestoreStats = { entries: manifest.entries.length, files: 0, bytes: 0, blobs: 0, fetchedBlobs: 0, fetchedBytes: 0, durationMs: 0 };
  const byType = (t: ManifestEntry['type']): ManifestEntry[] => manifest.entries.filter((e) => e.type === t && e.path !== '');

  // Each distinct blob is handled by the first file that needs it (fetched if the cache lacks it, verified either
  // way); the other files with the same content wait for that, then copy the verified cache entry.
  const firstUse = new Map<string, Promise<void>>();
  const materialise = async (sha: string, size: number, dest: string): Promise<void> => {
    const pending = firstUse.get(sha);
    if (pending) {
      await pending;
      await cache.copyOut(sha, dest, false);
      return;
    }
    let done!: () => void;
    let failed!: (e: unknown) => void;
    const p = new Promise<void>((res, rej) => ((done = res), (failed = rej)));
    p.catch(() => {});
    firstUse.set(sha, p);
    try {
      if (await cache.has(sha, size)) {
        try {
          await cache.copyOut(sha, dest, true);
          return done();
        } catch (e) {
          if (!(e instanceof CacheCorruptError)) throw e;
        }
      }
      if (size <= SMALL_FILE) {
        const data = await cache.fetchSmall(store, sha, size);
        await writeFile(dest, data, { mode: 0o600, flag: 'wx' });
      } else {
        await cache.fetch(store, sha, size);
        await cache.copyOut(sha, dest, false);
      }
      stats.fetchedBlobs++;
      stats.fetchedBytes += size;
      done();
    } catch (e) {
      failed(e);
      throw e;
    }
  };

  // Directories first, parents before children (entries are in path order); their metadata comes last.
  for (const e of byType('dir')) await mkdir(abs(e.path), { mode: 0o700 });

  const files = byType('file');
  stats.blobs = new Set(files.filter((e) => e.sha256 !== EMPTY_SHA256).map((e) => e.sha256)).size;
  await forEachLimit(files, concurrency, async (e) => {
    const dest = abs(e.path);
    stats.files++;
    stats.bytes += e.size ?? 0;
    if (!e.sha256 || e.sha256 === EMPTY_SHA256) {
      await writeFile(dest, '', { mode: 0o600, flag: 'wx' });
      return;
    }
    await materialise(e.sha256, e.size ?? 0, dest);
  });

  await forEachLimit(byType('symlink'), concurrency, async (e) => symlink(e.target ?? '', abs(e.path)));

  const nodes = manifest.entries.filter((e) => ['whiteout', 'fifo', 'chardev', 'blockdev'].includes(e.type));
  await forEachLimit(nodes, 4, async (e) => {
    const args =
      e.type === 'whiteout' ? ['c', '0', '0'] : e.type === 'fifo' ? ['p'] : [e.type === 'chardev' ? 'c' : 'b', String(e.rdev?.[0] ?? 0), String(e.rdev?.[1] ?? 0)];
    await run('mknod', ['-m', '0', '--', abs(e.path), ...args], { timeoutMs: 30_000 });
  });

  for (const e of byType('hardlink')) await link(abs(e.target ?? ''), abs(e.path));

  // Owner before mode (chown clears setuid/setgid), xattrs after chown (it clears security.capability),
  // mtimes after everything that could touch them, directories deepest first since adding entries moves their mtime.
  const plain = manifest.entries.filter((e) => e.type !== 'dir' && e.type !== 'hardlink');
  await forEachLimit(plain, 32, async (e) => {
    const p = abs(e.path);
    await lchown(p, e.uid ?? 0, e.gid ?? 0);
    if (e.type !== 'symlink') await chmod(p, e.mode ?? 0o644);
  });
  const dirs = manifest.entries.filter((e) => e.type === 'dir');
  for (const e of dirs) {
    await lchown(abs(e.path), e.uid ?? 0, e.gid ?? 0);
    await chmod(abs(e.path), e.mode ?? 0o755);
  }
  await writeXattrs(
    manifest.entries.filter((e) => e.type !== 'hardlink').map((e) => ({ path: abs(e.path), opaque: e.opaque, xattrs: e.xattrs })),
    cache.tmpDir,
  );
  await forEachLimit(plain, 32, async (e) => {
    const t = utimeArg(e.mtimeNs);
    await lutimes(abs(e.path), t, t);
  });
  for (const e of [...dirs].reverse()) {
    const t = utimeArg(e.mtimeNs);
    await lutimes(abs(e.path), t, t);
  }

  // Record what is on disk now, so the next snapshot of this directory hashes nothing that did not change.
  const entries: ManifestEntry[] = manifest.entries.map((e) => ({ ...e }));
  await forEachLimit(
    entries.filter((e) => e.type !== 'hardlink'),
    32,
    async (e) => {
      const st = await lstat(abs(e.path), { bigint: true });
      e.ino = st.ino.toString();
      e.ctimeNs = st.ctimeNs.toString();
      e.mtimeNs = st.mtimeNs.toString();
    },
  );
  stats.durationMs = Date.now() - started;
  return { version: manifest.version, manifest: { ...manifest, entries }, stats };
}

/**
 * Node passes times to utimensat as a double of seconds and truncates to the microsecond: aim at the middle of the
 * microsecond so the double's rounding error cannot push it into the previous one.
 */
function utimeArg(mtimeNs: string | undefined): number {
  const us = BigInt(mtimeNs ?? '0') / 1000n;
  return Number(us) / 1e6 + 5e-7;
}
