// Reads an OverlayFS upper directory into manifest entries: types (whiteouts are char devices 0/0), modes, owners,
// ns mtimes, hard links, and which entries changed since the previous manifest (by inode, ctime, mtime and size).
// Runs in the scan worker (scan-worker.ts), with the current directory at the root of a read-only, nosymfollow
// view of the layer: every path here is relative, and none can resolve through a symlink.
import type { BigIntStats } from 'node:fs';
import { lstatSync, readdirSync, readlinkSync } from 'node:fs';
import type { EntryType, ManifestEntry } from './manifest.js';
import { comparePaths, EMPTY_SHA256, SyncFault, showPath } from './paths.js';

/** Owners as seen inside a user namespace: inside id i is host id hostId + i, for i in [0, size). */
export interface IdMap {
  hostId: number;
  size: number;
}

/** The id recorded for a host id outside the namespace's range, and written for an inside id beyond it. */
export const NOBODY = 65534;

/** Host id → id as seen inside (NOBODY if the namespace has no such id). Without a map, ids are unchanged. */
export function idInside(host: number, ids: IdMap | undefined): number {
  if (!ids) return host;
  const i = host - ids.hostId;
  return i >= 0 && i < ids.size ? i : NOBODY;
}

/** Inside id → host id (inside ids beyond the range become the namespace's nobody). */
export function idOnHost(inside: number, ids: IdMap | undefined): number {
  if (!ids) return inside;
  return ids.hostId + (inside >= 0 && inside < ids.size ? inside : NOBODY);
}

/**
 * Longest path (bytes, relative to the layer) a sync accepts. Below PATH_MAX (4095, what a manifest may hold) by
 * enough that a restore can write every path below a host directory whose own path is up to 255 bytes.
 */
export const SYNC_MAX_PATH_BYTES = 3840;

export interface WalkResult {
  /** Every entry, sorted by path. Unchanged files carry their previous sha256; changed ones have none yet. */
  entries: ManifestEntry[];
  /** Entries that are new or changed (their extended attributes must be read again). */
  changed: ManifestEntry[];
  /** Entries exactly as in `previous` (same inode, ctime, mtime, size: nothing about them changed). */
  unchanged: Set<ManifestEntry>;
}

export function majorMinor(rdev: bigint): [number, number] {
  const major = Number(((rdev >> 8n) & 0xfffn) | ((rdev >> 32n) & ~0xfffn));
  const minor = Number((rdev & 0xffn) | ((rdev >> 12n) & ~0xffn));
  return [major, minor];
}

function typeOf(st: BigIntStats): EntryType | undefined {
  if (st.isFile()) return 'file';
  if (st.isDirectory()) return 'dir';
  if (st.isSymbolicLink()) return 'symlink';
  if (st.isCharacterDevice()) return st.rdev === 0n ? 'whiteout' : 'chardev';
  if (st.isBlockDevice()) return 'blockdev';
  if (st.isFIFO()) return 'fifo';
  return undefined; // sockets: nothing to restore
}

/** Errors that mean "this path is no longer what the walk saw": removed, replaced, or now through a symlink. */
export function vanished(e: unknown): boolean {
  const code = (e as NodeJS.ErrnoException).code;
  return code === 'ENOENT' || code === 'ENOTDIR' || code === 'ELOOP';
}

/** One entry as the walk keeps it: only what the manifest needs (a BigIntStats per file costs ~1 KB). */
interface Raw {
  path: string;
  type: EntryType;
  mode: number;
  uid: number;
  gid: number;
  mtimeNs: string;
  ctimeNs: string;
  ino: string;
  /** device:inode of a file with more than one name. */
  linkId?: string;
  size?: number;
}

function rawOf(path: string, st: BigIntStats, ids: IdMap | undefined): Raw | undefined {
  const type = typeOf(st);
  // Device nodes (a sandbox cannot make them: no CAP_MKNOD) are never synced, since no restore would make them.
  if (type === undefined || type === 'chardev' || type === 'blockdev') return undefined;
  const r: Raw = {
    path,
    type,
    mode: Number(st.mode & 0o7777n),
    uid: idInside(Number(st.uid), ids),
    gid: idInside(Number(st.gid), ids),
    mtimeNs: st.mtimeNs.toString(),
    ctimeNs: st.ctimeNs.toString(),
    ino: st.ino.toString(),
  };
  if (type === 'file') {
    r.size = Number(st.size);
    if (st.nlink > 1n) r.linkId = `${st.dev}:${st.ino}`;
  }
  return r;
}

/**
 * Walks the current directory ('.' is the layer). Entries that vanish or change type while it walks are left out
 * (the next sync sees what is there). A path longer than SYNC_MAX_PATH_BYTES refuses the sync with a sentence.
 */
export async function walkLayer(
  previous: Map<string, ManifestEntry> | undefined,
  ids: IdMap | undefined,
): Promise<WalkResult> {
  const rootSt = lstatSync('.', { bigint: true });
  if (!rootSt.isDirectory()) throw new SyncFault(400, 'invalid_request', 'the workspace layer is not a directory');
  const raw: Raw[] = [rawOf('', rootSt, ids)!];

  // Synchronous calls are ~4x faster than a thread-pool round trip per lstat; this runs in the scan worker, so
  // nothing else waits on its event loop.
  const dirs: string[] = [''];
  while (dirs.length > 0) {
    const rel = dirs.pop()!;
    let names: string[];
    try {
      names = readdirSync(rel === '' ? '.' : rel);
    } catch (e) {
      if (vanished(e)) continue; // removed, or replaced by a symlink, while we walked
      throw e;
    }
    for (const name of names) {
      const path = rel === '' ? name : `${rel}/${name}`;
      if (Buffer.byteLength(path) > SYNC_MAX_PATH_BYTES) {
        throw new SyncFault(
          422,
          'unsupported_option',
          `the workspace holds a path longer than ${SYNC_MAX_PATH_BYTES} bytes (${showPath(path)}), which cannot be synced; shorten or remove it and sync again`,
        );
      }
      let st: BigIntStats;
      try {
        st = lstatSync(path, { bigint: true });
      } catch (e) {
        if (!vanished(e)) throw e;
        if (name.includes('\uFFFD'))
          throw new SyncFault(
            422,
            'unsupported_option',
            `a file name in ${showPath(rel || '/')} is not valid UTF-8, which cannot be synced; rename it and sync again`,
          );
        continue;
      }
      const r = rawOf(path, st, ids);
      if (!r) continue;
      raw.push(r);
      if (r.type === 'dir') dirs.push(path);
    }
  }
  raw.sort((a, b) => comparePaths(a.path, b.path));

  const entries: ManifestEntry[] = [];
  const changed: ManifestEntry[] = [];
  const firstLink = new Map<string, string>();
  const symlinks: ManifestEntry[] = [];
  const unchanged = new Set<ManifestEntry>();
  for (const r of raw) {
    const { path, type } = r;
    // Only regular files are stored as hard links (to the first name in path order); other types with several
    // names (overlay shares one inode among its whiteouts) are stored as separate entries.
    if (type === 'file' && r.linkId !== undefined) {
      const first = firstLink.get(r.linkId);
      if (first !== undefined) {
        entries.push({ path, type: 'hardlink', target: first });
        continue;
      }
      firstLink.set(r.linkId, path);
    }
    const e: ManifestEntry = {
      path,
      type,
      mode: r.mode,
      uid: r.uid,
      gid: r.gid,
      mtimeNs: r.mtimeNs,
      ino: r.ino,
      ctimeNs: r.ctimeNs,
    };
    if (type === 'file') e.size = r.size;
    const prev = previous?.get(path);
    const same =
      prev !== undefined &&
      prev.type === type &&
      prev.ino === e.ino &&
      prev.ctimeNs === e.ctimeNs &&
      prev.mtimeNs === e.mtimeNs &&
      prev.size === e.size;
    if (same) {
      // Any content, xattr, mode or owner change moves ctime, so everything derived from the content carries over.
      if (prev.sha256 !== undefined) e.sha256 = prev.sha256;
      if (prev.target !== undefined) e.target = prev.target;
      if (prev.opaque) e.opaque = true;
      if (prev.xattrs) e.xattrs = { ...prev.xattrs };
      if (type !== 'symlink' || prev.target !== undefined) unchanged.add(e);
    } else {
      changed.push(e);
      if (type === 'symlink') symlinks.push(e);
      if (type === 'file' && e.size === 0) e.sha256 = EMPTY_SHA256;
    }
    if (same && type === 'symlink' && e.target === undefined) symlinks.push(e);
    entries.push(e);
  }
  const gone = new Set<ManifestEntry>();
  for (const e of symlinks) {
    try {
      e.target = readlinkSync(e.path);
    } catch (err) {
      if (!vanished(err) && (err as NodeJS.ErrnoException).code !== 'EINVAL') throw err;
      gone.add(e); // removed (or replaced) since lstat; the next sync sees what is there
    }
  }
  if (gone.size === 0) return { entries, changed, unchanged };
  return { entries: entries.filter((e) => !gone.has(e)), changed: changed.filter((e) => !gone.has(e)), unchanged };
}

/**
 * Leaves out files that vanished (or were replaced) before they could be read, the hard links to them, and
 * whatever a manifest could not restore because of that, so the result is always a valid manifest.
 */
export function dropVanished(entries: ManifestEntry[], lost: Set<string>): ManifestEntry[] {
  if (lost.size === 0) return entries;
  return entries.filter((e) => !lost.has(e.path) && !(e.type === 'hardlink' && lost.has(e.target ?? '')));
}
