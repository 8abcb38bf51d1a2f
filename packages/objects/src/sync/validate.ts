// A manifest is user-controlled content (a sandbox chose every name, type and target in it, and a store may be
// written by others): before anything is restored, the whole manifest is checked, so that a restore can only ever
// create the tree it describes inside the target directory and nothing else.
import { MagsError } from '@mags/api';
import type { Manifest, ManifestEntry } from './manifest.js';
import { comparePaths, showPath } from './paths.js';

/** Longest path (bytes) a manifest may hold: PATH_MAX less the terminating NUL. */
export const MAX_PATH_BYTES = 4095;
/** Longest name of one path component (bytes): NAME_MAX. */
export const MAX_NAME_BYTES = 255;
/** Largest file a manifest may declare (bytes): 16 TiB, ext4's limit. */
export const MAX_FILE_BYTES = 2 ** 44;

const RESTORABLE = new Set(['file', 'dir', 'symlink', 'hardlink', 'whiteout', 'fifo']);
const SHA256 = /^[0-9a-f]{64}$/;
const DIGITS = /^\d{1,30}$/;

function refuse(why: string): MagsError {
  return MagsError.unsupported(`this workspace version cannot be restored: ${why}`);
}

function isId(v: unknown): boolean {
  return v === undefined || (typeof v === 'number' && Number.isInteger(v) && v >= 0 && v <= 0xfffffffe);
}

/** Checks one path: relative, `/`-separated, no empty, `.` or `..` component, no NUL, within the length limits. */
export function checkPath(path: string, maxBytes = MAX_PATH_BYTES): string | undefined {
  if (typeof path !== 'string') return 'an entry has no path';
  if (path === '') return undefined; // the directory itself
  if (path.includes('\0')) return `the path ${showPath(path)} contains a NUL byte`;
  if (path.startsWith('/')) return `the path ${showPath(path)} is absolute`;
  if (Buffer.byteLength(path) > maxBytes) return `the path ${showPath(path)} is longer than ${maxBytes} bytes`;
  for (const part of path.split('/')) {
    if (part === '' || part === '.' || part === '..')
      return `the path ${showPath(path)} has an empty, "." or ".." component`;
    if (Buffer.byteLength(part) > MAX_NAME_BYTES)
      return `a name in ${showPath(path)} is longer than ${MAX_NAME_BYTES} bytes`;
  }
  return undefined;
}

function parentOf(path: string): string {
  const i = path.lastIndexOf('/');
  return i < 0 ? '' : path.slice(0, i);
}

/**
 * Refuses (MagsError 422, a sentence without host paths) any manifest a restore could be tricked by: bad paths,
 * entries out of order or repeated, an entry whose parent is not a directory of the same manifest (so nothing is
 * ever written "under" a symlink, file or hard link), device nodes other than whiteouts, hard links to anything but
 * an earlier file, and insane sizes, modes or owners.
 */
export function validateManifest(m: Manifest): void {
  if (!Array.isArray(m.entries)) throw refuse('it has no entry list');
  const dirs = new Set<string>();
  const files = new Set<string>();
  let previous: string | undefined;
  for (const e of m.entries as ManifestEntry[]) {
    if (typeof e !== 'object' || e === null) throw refuse('an entry is not an object');
    const bad = checkPath(e.path);
    if (bad) throw refuse(bad);
    if (previous !== undefined && comparePaths(previous, e.path) >= 0) {
      throw refuse(
        previous === e.path
          ? `the path ${showPath(e.path)} appears twice`
          : `entries are not in path order at ${showPath(e.path)}`,
      );
    }
    previous = e.path;
    if (!RESTORABLE.has(e.type))
      throw refuse(
        `${showPath(e.path)} is a ${String(e.type).slice(0, 20)}, which is not restored (only files, directories, symlinks, hard links, fifos and whiteouts are)`,
      );
    if (e.path === '') {
      if (e.type !== 'dir') throw refuse('its top entry is not a directory');
    } else if (!dirs.has(parentOf(e.path))) {
      throw refuse(`the parent of ${showPath(e.path)} is not a directory of the same version`);
    }
    if (e.mode !== undefined && !(Number.isInteger(e.mode) && e.mode >= 0 && e.mode <= 0o7777))
      throw refuse(`${showPath(e.path)} has an invalid mode`);
    if (!isId(e.uid) || !isId(e.gid)) throw refuse(`${showPath(e.path)} has an invalid owner`);
    if (e.mtimeNs !== undefined && !(typeof e.mtimeNs === 'string' && DIGITS.test(e.mtimeNs)))
      throw refuse(`${showPath(e.path)} has an invalid modification time`);
    if (e.opaque !== undefined && !(e.opaque === true && e.type === 'dir'))
      throw refuse(`${showPath(e.path)} is marked opaque but is not a directory`);
    if (e.xattrs !== undefined) {
      if (typeof e.xattrs !== 'object' || e.xattrs === null || Array.isArray(e.xattrs))
        throw refuse(`${showPath(e.path)} has invalid extended attributes`);
      for (const [name, value] of Object.entries(e.xattrs)) {
        if (
          !/^(user|security|trusted|system)\.[\x21-\x7e]{1,250}$/.test(name) ||
          typeof value !== 'string' ||
          value.length > 90_000
        ) {
          throw refuse(`${showPath(e.path)} has an invalid extended attribute`);
        }
      }
    }
    switch (e.type) {
      case 'dir':
        dirs.add(e.path);
        break;
      case 'file':
        if (e.size !== undefined && !(Number.isSafeInteger(e.size) && e.size >= 0 && e.size <= MAX_FILE_BYTES))
          throw refuse(`${showPath(e.path)} has an invalid size`);
        if (e.sha256 !== undefined && !(typeof e.sha256 === 'string' && SHA256.test(e.sha256)))
          throw refuse(`${showPath(e.path)} has an invalid content hash`);
        if ((e.size ?? 0) > 0 && e.sha256 === undefined)
          throw refuse(`${showPath(e.path)} has content but no content hash`);
        if (e.pack !== undefined) {
          const p = e.pack;
          if (
            typeof p !== 'object' ||
            p === null ||
            !SHA256.test(String(p.sha256)) ||
            !Number.isSafeInteger(p.offset) ||
            p.offset < 0 ||
            p.length !== e.size
          ) {
            throw refuse(`${showPath(e.path)} has an invalid pack reference`);
          }
        }
        files.add(e.path);
        break;
      case 'symlink':
        if (
          typeof e.target !== 'string' ||
          e.target === '' ||
          e.target.includes('\0') ||
          Buffer.byteLength(e.target) > MAX_PATH_BYTES
        ) {
          throw refuse(`the symlink ${showPath(e.path)} has an invalid target`);
        }
        break;
      case 'hardlink':
        if (typeof e.target !== 'string' || !files.has(e.target))
          throw refuse(`the hard link ${showPath(e.path)} does not name an earlier file of the same version`);
        break;
      default:
        break;
    }
  }
  if (m.entries.length > 0 && (m.entries[0] as ManifestEntry).path !== '')
    throw refuse('it has no top directory entry');
}
