// What a workspace version is: the manifest (every entry of an OverlayFS upper directory), the head pointer that
// names the current version, and where both live in the object store.
import { gunzipSync, gzipSync } from 'node:zlib';
import { MagsError } from '@mags/api';

export type EntryType = 'file' | 'dir' | 'symlink' | 'hardlink' | 'whiteout' | 'fifo' | 'chardev' | 'blockdev';

export interface ManifestEntry {
  /** Relative to the upper directory, `/`-separated; '' is the upper directory itself. */
  path: string;
  type: EntryType;
  /** Permission bits including setuid, setgid and sticky (st_mode & 0o7777). Not on hardlink entries. */
  mode?: number;
  uid?: number;
  gid?: number;
  /** Modification time in nanoseconds since the epoch, as a decimal string. Restored to the microsecond. */
  mtimeNs?: string;
  /** file: byte length. */
  size?: number;
  /** file: sha256 of the content (hex); the blob is `blobs/<sha256>`, or a slice of a pack if `pack` is set. */
  sha256?: string;
  /** file (small, format 2): where the content is instead of `blobs/<sha256>`. */
  pack?: PackRef;
  /** symlink: the link's target. hardlink: the path of the entry it is another name for (a file, earlier in order). */
  target?: string;
  /** chardev/blockdev: [major, minor]. A whiteout is a chardev 0/0 and has its own type. */
  rdev?: [number, number];
  /** dir: OverlayFS opaque directory (xattr trusted.overlay.opaque=y): hides the lower layers' contents. */
  opaque?: true;
  /** Extended attributes other than overlay's own (e.g. security.capability), values base64. */
  xattrs?: Record<string, string>;
  /**
   * This host's fingerprint of the entry as last seen on disk (inode, ctime): with size and mtime it tells the next
   * snapshot the file is unchanged, so it is not hashed again. Meaningless on another host (it just won't match).
   */
  ino?: string;
  ctimeNs?: string;
}

/** A blob stored as bytes [offset, offset + length) of the pack object `packs/<sha256>`. */
export interface PackRef {
  sha256: string;
  offset: number;
  length: number;
}

export interface Manifest {
  /** 1: every file's content is in `blobs/`. 2: some entries carry `pack` (readers that don't know packs refuse it). */
  format: 1 | 2;
  owner: string;
  name: string;
  version: number;
  /** The version this one was made from (the head when the snapshot started), or null for the first. */
  parent: number | null;
  createdAt: string;
  /** Sorted by path in byte order, so a directory precedes its contents. */
  entries: ManifestEntry[];
  files: number;
  bytes: number;
}

export interface VersionInfo {
  version: number;
  createdAt: string;
  files: number;
  bytes: number;
}

/** The pointer object that the compare-and-swap moves. Its content is unique per write (the version grows). */
export interface WorkspaceHead {
  format: 1;
  version: number;
  createdAt: string;
  /** Committed versions still kept, oldest first; the last is `version`. */
  versions: VersionInfo[];
  /** Random per write: two writers never produce the same bytes, so "the head holds my bytes" means "I won". */
  writer: string;
}

export interface WorkspaceRef {
  owner: string;
  name: string;
}

const SEGMENT = /^[A-Za-z0-9_][A-Za-z0-9._-]{0,127}$/;

export function checkWorkspace(ws: WorkspaceRef): void {
  if (!SEGMENT.test(ws.owner))
    throw MagsError.invalid(`invalid workspace owner "${ws.owner}": use letters, digits, ".", "_" and "-"`);
  if (!SEGMENT.test(ws.name))
    throw MagsError.invalid(`invalid workspace name "${ws.name}": use letters, digits, ".", "_" and "-"`);
}

export const BLOBS_PREFIX = 'blobs/';
export const PACKS_PREFIX = 'packs/';
export const WORKSPACES_PREFIX = 'workspaces/';
export { comparePaths, EMPTY_SHA256 } from './paths.js';

export function blobKey(sha256: string): string {
  return BLOBS_PREFIX + sha256;
}

/** Many small blobs concatenated; the manifest entries say which bytes are which blob. */
export function packKey(sha256: string): string {
  return PACKS_PREFIX + sha256;
}

export function workspacePrefix(ws: WorkspaceRef): string {
  checkWorkspace(ws);
  return `${WORKSPACES_PREFIX}${ws.owner}/${ws.name}/`;
}

export function headKey(ws: WorkspaceRef): string {
  return `${workspacePrefix(ws)}head`;
}

/** A copy of another workspace's manifest that this workspace is layered on (its fork base). */
export function baseKey(ws: WorkspaceRef): string {
  return `${workspacePrefix(ws)}base`;
}

/** Zero-padded so that listing returns versions in order. */
export function manifestKey(ws: WorkspaceRef, version: number): string {
  return `${workspacePrefix(ws)}manifests/${String(version).padStart(10, '0')}`;
}

/** Parses `workspaces/<owner>/<name>/manifests/<version>`; undefined for any other key. */
export function parseManifestKey(key: string): { ws: WorkspaceRef; version: number } | undefined {
  const m = /^workspaces\/([^/]+)\/([^/]+)\/manifests\/(\d{10})$/.exec(key);
  return m ? { ws: { owner: m[1]!, name: m[2]! }, version: Number(m[3]) } : undefined;
}

export function parseHeadKey(key: string): WorkspaceRef | undefined {
  const m = /^workspaces\/([^/]+)\/([^/]+)\/head$/.exec(key);
  return m ? { owner: m[1]!, name: m[2]! } : undefined;
}

export function parseBaseKey(key: string): WorkspaceRef | undefined {
  const m = /^workspaces\/([^/]+)\/([^/]+)\/base$/.exec(key);
  return m ? { owner: m[1]!, name: m[2]! } : undefined;
}

/** Manifests are gzip'd JSON: 10,000 entries are ~2 MB of JSON and ~10x less compressed. */
export function encodeManifest(m: Manifest): Buffer {
  return gzipSync(JSON.stringify(m), { level: 1 });
}

export function decodeManifest(buf: Buffer, where: string): Manifest {
  let m: Manifest;
  try {
    m = JSON.parse(gunzipSync(buf).toString('utf8')) as Manifest;
  } catch (e) {
    throw new MagsError(500, 'internal', `manifest ${where} is corrupt: ${(e as Error).message}`);
  }
  if ((m?.format !== 1 && m?.format !== 2) || !Array.isArray(m.entries))
    throw new MagsError(500, 'internal', `manifest ${where} has an unknown format`);
  return m;
}

export function encodeHead(h: WorkspaceHead): Buffer {
  return Buffer.from(JSON.stringify(h));
}

export function decodeHead(buf: Buffer, where: string): WorkspaceHead {
  let h: WorkspaceHead;
  try {
    h = JSON.parse(buf.toString('utf8')) as WorkspaceHead;
  } catch (e) {
    throw new MagsError(500, 'internal', `workspace head ${where} is corrupt: ${(e as Error).message}`);
  }
  if (h?.format !== 1 || typeof h.version !== 'number' || !Array.isArray(h.versions)) {
    throw new MagsError(500, 'internal', `workspace head ${where} has an unknown format`);
  }
  return h;
}
