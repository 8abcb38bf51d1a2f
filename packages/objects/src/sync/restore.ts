// Restore: materialise a workspace version into an empty directory exactly (types, modes, owners, mtimes, symlinks,
// hard links, whiteouts, opaque directories), fetching only the blobs the host's cache lacks and verifying each.
import { createHash } from 'node:crypto';
import {
  chmodSync,
  closeSync,
  constants,
  fchmodSync,
  lchownSync,
  linkSync,
  lstatSync,
  lutimesSync,
  mkdirSync,
  openSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { mkdir, readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { MagsError } from '@mags/api';
import { forEachLimit, forEachYielding } from '../pool.js';
import { run } from '../process.js';
import type { ObjectStore } from '../store.js';
import { BlobCache, CacheCorruptError, SMALL_FILE } from './cache.js';
import { checkWorkspace, EMPTY_SHA256, type Manifest, type ManifestEntry, type PackRef, packKey } from './manifest.js';
import { planPackReads } from './pack.js';
import { validateManifest } from './validate.js';
import { readManifest } from './versions.js';
import { type IdMap, idOnHost } from './walk.js';
import { writeXattrs } from './xattr.js';

export interface RestoreRef {
  owner: string;
  name: string;
  /** Default: the current version. */
  version?: number;
}

export interface RestoreOptions {
  cacheDir: string;
  /** Downloads and file writes in flight. Default 16. */
  concurrency?: number;
  /**
   * The user namespace the tree is for: owners in the manifest are as seen inside, written as hostId + id (ids
   * beyond the range as hostId + 65534). Default: written as they are.
   */
  ids?: IdMap;
}

export interface RestoreStats {
  entries: number;
  files: number;
  bytes: number;
  /** Distinct non-empty blobs the version needs. */
  blobs: number;
  fetchedBlobs: number;
  fetchedBytes: number;
  /** GET requests for content: whole blobs and ranges of packs. */
  fetchRequests: number;
  durationMs: number;
}

export interface RestoreResult {
  version: number;
  /** The manifest with this host's fingerprints of the restored files: pass it as `previous` to the next snapshot. */
  manifest: Manifest;
  stats: RestoreStats;
}

/** Restores a committed version of a workspace (default: the current one). */
export async function restore(
  store: ObjectStore,
  ref: RestoreRef,
  targetDir: string,
  opts: RestoreOptions,
): Promise<RestoreResult> {
  checkWorkspace(ref);
  const manifest = await readManifest(store, ref, ref.version);
  return restoreManifest(store, manifest, targetDir, opts);
}

/** One distinct content and the files that hold it. */
interface Content {
  sha256: string;
  size: number;
  pack?: PackRef;
  dests: string[];
}

/**
 * Restores the tree a manifest describes (one the caller already read: a version, or a fork's base copy). The
 * manifest's blobs and packs must be kept by gc while this runs (a committed version or a base copy is).
 */
export async function restoreManifest(
  store: ObjectStore,
  manifest: Manifest,
  targetDir: string,
  opts: RestoreOptions,
): Promise<RestoreResult> {
  const started = Date.now();
  // The manifest is user content: refuse it whole before anything is written (validate.ts).
  validateManifest(manifest);
  const concurrency = opts.concurrency ?? 16;
  const cache = new BlobCache(opts.cacheDir);
  await cache.init();
  const uidOf = (e: ManifestEntry): number => idOnHost(e.uid ?? 0, opts.ids);
  const gidOf = (e: ManifestEntry): number => idOnHost(e.gid ?? 0, opts.ids);

  await mkdir(targetDir, { recursive: true });
  if ((await readdir(targetDir)).length > 0)
    throw new MagsError(500, 'internal', 'cannot restore a workspace into a directory that is not empty');
  const abs = (p: string): string => (p === '' ? targetDir : join(targetDir, p));

  const stats: RestoreStats = {
    entries: manifest.entries.length,
    files: 0,
    bytes: 0,
    blobs: 0,
    fetchedBlobs: 0,
    fetchedBytes: 0,
    fetchRequests: 0,
    durationMs: 0,
  };
  const byType = (t: ManifestEntry['type']): ManifestEntry[] =>
    manifest.entries.filter((e) => e.type === t && e.path !== '');

  // Directories first, parents before children (entries are in path order); their metadata comes last.
  await forEachYielding(byType('dir'), (e) => mkdirSync(abs(e.path), { mode: 0o700 }));

  // Each distinct content is fetched at most once (or copied out of the cache, verified), then written to every
  // file that holds it.
  const contents = new Map<string, Content>();
  const empty: string[] = [];
  for (const e of byType('file')) {
    stats.files++;
    stats.bytes += e.size ?? 0;
    if (!e.sha256 || e.sha256 === EMPTY_SHA256) {
      empty.push(abs(e.path));
      continue;
    }
    let c = contents.get(e.sha256);
    if (!c) contents.set(e.sha256, (c = { sha256: e.sha256, size: e.size ?? 0, dests: [] }));
    c.pack ??= e.pack;
    c.dests.push(abs(e.path));
  }
  stats.blobs = contents.size;

  const cached: Content[] = [];
  const packed: Content[] = [];
  const unpacked: Content[] = [];
  await forEachYielding(contents.values(), (c) => {
    if (cache.hasSync(c.sha256, c.size)) cached.push(c);
    else if (c.pack) packed.push(c);
    else unpacked.push(c);
  });

  // Small files are written with synchronous calls (in slices that let the event loop run): a thread-pool round
  // trip per open, write and close costs more than the calls themselves.
  const writeAllSync = (c: Content, data: Buffer): void => {
    for (const dest of c.dests) writeFileSync(dest, data, { mode: 0o600, flag: 'wx' });
  };
  const fetched = (c: Content): void => {
    stats.fetchedBlobs++;
    stats.fetchedBytes += c.size;
  };
  /** Content read out of a pack: verified, cached, written. */
  const fromPackSync = (c: Content, data: Buffer): void => {
    if (data.length !== c.size || createHash('sha256').update(data).digest('hex') !== c.sha256) {
      throw new MagsError(
        500,
        'internal',
        `blob ${c.sha256} in pack ${c.pack?.sha256} of ${store.description} is corrupt: its bytes do not hash to it`,
      );
    }
    cache.putSmallSync(c.sha256, data);
    writeAllSync(c, data);
    fetched(c);
  };
  const fetchOne = async (c: Content): Promise<void> => {
    stats.fetchRequests++;
    if (c.pack) return fromPackSync(c, await store.getRange(packKey(c.pack.sha256), c.pack.offset, c.pack.length));
    if (c.size <= SMALL_FILE) {
      writeAllSync(c, await cache.fetchSmall(store, c.sha256, c.size));
    } else {
      await cache.fetch(store, c.sha256, c.size);
      for (const dest of c.dests) await cache.copyOut(c.sha256, dest, false);
    }
    fetched(c);
  };
  /** Large content from the cache, verified on the way; a bad entry is dropped and the content fetched instead. */
  const fromCache = async (c: Content): Promise<void> => {
    try {
      await cache.copyOut(c.sha256, c.dests[0]!, true);
    } catch (e) {
      if (!(e instanceof CacheCorruptError)) throw e;
      return fetchOne(c);
    }
    for (const dest of c.dests.slice(1)) await cache.copyOut(c.sha256, dest, false);
  };
  /** Small content from the cache, verified; bad entries are dropped and fetched afterwards. */
  const fromCacheSmall = async (list: Content[]): Promise<void> => {
    const bad: Content[] = [];
    await forEachYielding(list, (c) => {
      const data = cache.readVerifiedSync(c.sha256, c.size);
      if (data) writeAllSync(c, data);
      else bad.push(c);
    });
    await forEachLimit(bad, concurrency, fetchOne);
  };

  // The largest transfers start first, so the local copies overlap them.
  const reads = planPackReads(packed.map((c) => ({ sha256: c.sha256, ref: c.pack! })));
  const tasks: (() => Promise<void>)[] = [
    ...reads.map((r) => async () => {
      stats.fetchRequests++;
      const buf = await store.getRange(packKey(r.pack), r.start, r.length);
      await forEachYielding(r.members, (m) =>
        fromPackSync(contents.get(m.sha256)!, buf.subarray(m.offset - r.start, m.offset - r.start + m.length)),
      );
    }),
    ...unpacked.sort((a, b) => b.size - a.size).map((c) => () => fetchOne(c)),
    ...cached.filter((c) => c.size > SMALL_FILE).map((c) => () => fromCache(c)),
    () => fromCacheSmall(cached.filter((c) => c.size <= SMALL_FILE)),
    () => forEachYielding(empty, (dest) => writeFileSync(dest, '', { mode: 0o600, flag: 'wx' })),
  ];
  await forEachLimit(tasks, concurrency, (t) => t());

  await forEachYielding(byType('symlink'), (e) => symlinkSync(e.target ?? '', abs(e.path)));

  // Only fifos and whiteouts (char 0/0): validateManifest refuses every other device node.
  const nodes = manifest.entries.filter((e) => e.type === 'whiteout' || e.type === 'fifo');
  await forEachLimit(nodes, 4, async (e) => {
    await run('mknod', ['-m', '0', '--', abs(e.path), ...(e.type === 'whiteout' ? ['c', '0', '0'] : ['p'])], {
      timeoutMs: 30_000,
    });
  });

  await forEachYielding(byType('hardlink'), (e) => linkSync(abs(e.target ?? ''), abs(e.path)));

  // Owner before mode (chown clears setuid/setgid), xattrs after chown (it clears security.capability),
  // mtimes after everything that could touch them, directories deepest first since adding entries moves their mtime.
  const plain = manifest.entries.filter((e) => e.type !== 'dir' && e.type !== 'hardlink');
  await forEachYielding(plain, (e) => {
    const p = abs(e.path);
    lchownSync(p, uidOf(e), gidOf(e));
    if (e.type !== 'symlink') chmodNoFollow(p, e.mode ?? 0o644);
  });
  const dirs = manifest.entries.filter((e) => e.type === 'dir');
  await forEachYielding(dirs, (e) => {
    lchownSync(abs(e.path), uidOf(e), gidOf(e));
    chmodNoFollow(abs(e.path), e.mode ?? 0o755);
  });
  await writeXattrs(
    manifest.entries
      .filter((e) => e.type !== 'hardlink')
      .map((e) => ({ path: abs(e.path), opaque: e.opaque, xattrs: e.xattrs })),
    cache.tmpDir,
  );
  await forEachYielding(plain, (e) => {
    const t = utimeArg(e.mtimeNs);
    lutimesSync(abs(e.path), t, t);
  });
  await forEachYielding([...dirs].reverse(), (e) => {
    const t = utimeArg(e.mtimeNs);
    lutimesSync(abs(e.path), t, t);
  });

  // Record what is on disk now, so the next snapshot of this directory hashes nothing that did not change.
  const entries: ManifestEntry[] = manifest.entries.map((e) => ({ ...e }));
  await forEachYielding(
    entries.filter((e) => e.type !== 'hardlink'),
    (e) => {
      const st = lstatSync(abs(e.path), { bigint: true });
      e.ino = st.ino.toString();
      e.ctimeNs = st.ctimeNs.toString();
      e.mtimeNs = st.mtimeNs.toString();
    },
  );
  stats.durationMs = Date.now() - started;
  return { version: manifest.version, manifest: { ...manifest, entries }, stats };
}

/**
 * chmod that never follows a symlink (Linux has no lchmod): through a descriptor opened O_NOFOLLOW; a whiteout
 * (char 0/0, which can't be opened) only after lstat shows it is one. Restore writes into a directory no sandbox
 * uses, but a bug elsewhere must still not turn this into a chmod of a host file.
 */
function chmodNoFollow(p: string, mode: number): void {
  let fd: number;
  try {
    fd = openSync(p, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK);
  } catch (e) {
    // A device node can't be opened (ENXIO; EACCES on a nodev mount such as a workspace disk): chmod it by name,
    // once lstat shows the name is that device and not a link.
    const code = (e as NodeJS.ErrnoException).code;
    if ((code === 'ENXIO' || code === 'ENODEV' || code === 'EACCES') && lstatSync(p).isCharacterDevice())
      return chmodSync(p, mode);
    throw e;
  }
  try {
    fchmodSync(fd, mode);
  } finally {
    closeSync(fd);
  }
}

/**
 * Node passes times to utimensat as a double of seconds and truncates to the microsecond: aim at the middle of the
 * microsecond so the double's rounding error cannot push it into the previous one.
 */
function utimeArg(mtimeNs: string | undefined): number {
  const us = BigInt(mtimeNs ?? '0') / 1000n;
  return Number(us) / 1e6 + 5e-7;
}
