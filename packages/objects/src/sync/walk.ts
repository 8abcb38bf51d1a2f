// Reads an OverlayFS upper directory into manifest entries: types (whiteouts are char devices 0/0), modes, owners,
// ns mtimes, hard links, and which entries changed since the previous manifest (by inode, ctime, mtime and size).
import type { BigIntStats } from 'node:fs';
import { lstatSync, readdirSync, readlinkSync } from 'node:fs';
import { join } from 'node:path';
import { MagsError } from '@mags/api';
import { comparePaths, EMPTY_SHA256, type EntryType, type ManifestEntry } from './manifest.js';

export interface WalkResult {
  /** Every entry, sorted by path. Unchanged files carry their previous sha256; changed ones have none yet. */
  entries: ManifestEntry[];
  /** Entries that are new or changed (their extended attributes must be read again). */
  changed: ManifestEntry[];
}

interface Raw {
  path: string;
  st: BigIntStats;
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

export async function walkUpper(upperDir: string, previous: Map<string, ManifestEntry> | undefined): Promise<WalkResult> {
  const raw: Raw[] = [{ path: '', st: lstatSync(upperDir, { bigint: true }) }];
  if (!raw[0]!.st.isDirectory()) throw MagsError.invalid(`${upperDir} is not a directory`);

  // Synchronous calls are ~4x faster than a thread-pool round trip per lstat (60 ms vs 250 ms for 10,000 files);
  // yielding between directories keeps the event loop responsive.
  const dirs: string[] = [''];
  let lastYield = Date.now();
  while (dirs.length > 0) {
    const rel = dirs.pop()!;
    let names: string[];
    try {
      names = readdirSync(rel === '' ? upperDir : join(upperDir, rel));
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') continue; // removed while we walked
      throw e;
    }
    for (const name of names) {
      const path = rel === '' ? name : `${rel}/${name}`;
      let st: BigIntStats;
      try {
        st = lstatSync(join(upperDir, path), { bigint: true });
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
        if (name.includes('\uFFFD')) throw MagsError.unsupported(`cannot sync ${join(upperDir, rel)}: a file name in it is not valid UTF-8`);
        continue;
      }
      raw.push({ path, st });
      if (st.isDirectory()) dirs.push(path);
    }
    if (Date.now() - lastYield > 10) {
      await new Promise((r) => setImmediate(r));
      lastYield = Date.now();
    }
  }
  raw.sort((a, b) => comparePaths(a.path, b.path));

  const entries: ManifestEntry[] = [];
  const changed: ManifestEntry[] = [];
  const firstLink = new Map<string, string>();
  const symlinks: ManifestEntry[] = [];
  for (const { path, st } of raw) {
    const type = typeOf(st);
    if (type === undefined) continue;
    if (type !== 'dir' && st.nlink > 1n) {
      const id = `${st.dev}:${st.ino}`;
      const first = firstLink.get(id);
      if (first !== undefined) {
        entries.push({ path, type: 'hardlink', target: first });
        continue;
      }
      firstLink.set(id, path);
    }
    const e: ManifestEntry = {
      path,
      type,
      mode: Number(st.mode & 0o7777n),
      uid: Number(st.uid),
      gid: Number(st.gid),
      mtimeNs: st.mtimeNs.toString(),
      ino: st.ino.toString(),
      ctimeNs: st.ctimeNs.toString(),
    };
    if (type === 'file') e.size = Number(st.size);
    if (type === 'chardev' || type === 'blockdev') e.rdev = majorMinor(st.rdev);
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
    } else {
      changed.push(e);
      if (type === 'symlink') symlinks.push(e);
      if (type === 'file' && e.size === 0) e.sha256 = EMPTY_SHA256;
    }
    if (same && type === 'symlink' && e.target === undefined) symlinks.push(e);
    entries.push(e);
  }
  const vanished = new Set<ManifestEntry>();
  for (const e of symlinks) {
    try {
      e.target = readlinkSync(join(upperDir, e.path));
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT' && (err as NodeJS.ErrnoException).code !== 'EINVAL') throw err;
      vanished.add(e); // removed (or replaced) since lstat; the next sync sees what is there
    }
  }
  if (vanished.size === 0) return { entries, changed };
  return { entries: entries.filter((e) => !vanished.has(e)), changed: changed.filter((e) => !vanished.has(e)) };
}
