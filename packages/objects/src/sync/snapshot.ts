// Snapshot: walk an upper directory, hash what changed, upload blobs the store lacks, write a new manifest, then
// move the head to it by compare-and-swap. The head moves last and atomically, so a crash leaves the old version.
import { createReadStream } from 'node:fs';
import { MagsError } from '@mags/api';
import { forEachLimit } from '../pool.js';
import type { ObjectStore } from '../store.js';
import { BlobCache, type Ingested } from './cache.js';
import { commitVersion } from './commit.js';
import { DEFAULT_GC_GRACE_MS } from './gc-policy.js';
import {
  blobKey,
  checkWorkspace,
  EMPTY_SHA256,
  type Manifest,
  type ManifestEntry,
  type PackRef,
  type WorkspaceRef,
} from './manifest.js';
import { DEFAULT_PACK_THRESHOLD, PackWriter } from './pack.js';
import { scanLayer } from './scan.js';
import { validateManifest } from './validate.js';
import { readHead, readManifest } from './versions.js';
import type { IdMap } from './walk.js';

export interface SnapshotOptions {
  owner: string;
  name: string;
  /** The manifest of the last snapshot or restore of this directory: files whose inode, ctime, mtime and size match it are not hashed again. */
  previous?: Manifest;
  /** The host's content cache (blobs by hash); restores on this host then fetch nothing. */
  cacheDir: string;
  /** Blob hashes and uploads in flight. Default 16. */
  concurrency?: number;
  /** Committed versions to keep; older manifests are deleted after the head moves. Default 20. */
  keepVersions?: number;
  /** Must equal the grace period gc() uses (see gc-policy.ts). */
  gcGraceMs?: number;
  /**
   * The version the directory was restored from or last synced as (null: it was made before the workspace's first
   * sync). If given, the sync is refused (MagsError 409 conflict, nothing written) unless the head is at exactly
   * that version, so a copy of an old version never overwrites newer ones.
   */
  expectVersion?: number | null;
  /** New blobs up to this many bytes go into pack objects instead of one object each; 0: never. Default 64 KiB. */
  packThreshold?: number;
  /**
   * The user namespace the layer was written from: owners are recorded as seen inside (host id - hostId; host ids
   * outside the range as 65534), so manifests are portable. Default: host ids as they are.
   */
  ids?: IdMap;
}

export interface SnapshotStats {
  entries: number;
  files: number;
  bytes: number;
  hashedFiles: number;
  hashedBytes: number;
  /** New blobs stored, in blobs/ or in packs. */
  uploadedBlobs: number;
  uploadedBytes: number;
  /** Pack objects written (each holding many small blobs). */
  uploadedPacks: number;
  /** Blob existence checks sent to the store. */
  checkedBlobs: number;
  /** Files that vanished or were replaced between the walk and their read: left out of this version. */
  vanishedFiles: number;
  durationMs: number;
}

export interface SnapshotResult {
  version: number;
  /** Nothing changed since the head: no version was written and `version` is the head's. */
  unchanged: boolean;
  /** With this host's fingerprints: pass it as `previous` next time. */
  manifest: Manifest;
  stats: SnapshotStats;
  /** Versions the workspace keeps after this sync. */
  versions: number;
}

/** Blobs this process uploaded or saw in a store, with when (ms): skips a HEAD per blob. */
const knownBlobs = new WeakMap<ObjectStore, Map<string, number>>();

export async function snapshot(upperDir: string, store: ObjectStore, opts: SnapshotOptions): Promise<SnapshotResult> {
  const started = Date.now();
  const ws = { owner: opts.owner, name: opts.name };
  checkWorkspace(ws);
  const grace = opts.gcGraceMs ?? DEFAULT_GC_GRACE_MS;
  // See gc-policy.ts: a blob not uploaded by us is reused only if it was written recently, and we must commit soon.
  const freshAfter = started - grace / 4;
  const deadline = started + grace / 4;
  const concurrency = opts.concurrency ?? 16;
  const cache = new BlobCache(opts.cacheDir);
  await cache.init();
  let known = knownBlobs.get(store);
  if (!known) knownBlobs.set(store, (known = new Map()));

  const headState = await readHead(store, ws);
  const fromVersion = headState?.head.version ?? null;
  if (opts.expectVersion !== undefined && opts.expectVersion !== fromVersion)
    throw changedElsewhere(ws, fromVersion, opts.expectVersion);
  let previous =
    opts.previous && opts.previous.owner === ws.owner && opts.previous.name === ws.name ? opts.previous : undefined;
  if (!previous && headState) previous = await readManifest(store, ws, headState.head.version);
  // Blobs of the committed head are safe to reuse: gc keeps every blob a kept version references.
  const committed = headState && previous && previous.version === headState.head.version ? previous : undefined;
  // Where each of its blobs is: a pack, or null for blobs/<sha>.
  const committedBlobs = new Map<string, PackRef | null>();
  for (const e of committed?.entries ?? []) if (e.sha256) committedBlobs.set(e.sha256, e.pack ?? null);
  const packThreshold = opts.packThreshold ?? DEFAULT_PACK_THRESHOLD;
  const packer = packThreshold > 0 ? new PackWriter(store) : undefined;

  // The walk, xattrs and hashing run in the scan worker, through a nosymfollow view of the layer (scan-worker.ts).
  const scan = await scanLayer(
    { upperDir, cacheDir: opts.cacheDir, ids: opts.ids, concurrency, inlineBytes: packThreshold, view: true },
    previous?.entries,
    (sha) => committedBlobs.has(sha),
  );
  const { entries } = scan;

  const stats: SnapshotStats = {
    entries: entries.length,
    files: 0,
    bytes: 0,
    hashedFiles: 0,
    hashedBytes: 0,
    uploadedBlobs: 0,
    uploadedBytes: 0,
    uploadedPacks: 0,
    checkedBlobs: 0,
    vanishedFiles: scan.stats.vanishedFiles,
    durationMs: 0,
  };

  const inflight = new Map<string, Promise<void>>();
  /** Makes sure blobs/<sha> is in the store; `source` gives the bytes if an upload is needed. */
  const ensureBlob = (sha: string, size: number, source: Ingested | undefined): Promise<void> => {
    if (sha === EMPTY_SHA256 || committedBlobs.has(sha)) return Promise.resolve();
    let p = inflight.get(sha);
    if (!p) {
      p = (async () => {
        if ((known.get(sha) ?? 0) > freshAfter) return;
        stats.checkedBlobs++;
        const h = await store.head(blobKey(sha));
        if (h && h.size === size && h.lastModified.getTime() > freshAfter) {
          known.set(sha, h.lastModified.getTime());
          return;
        }
        // Missing, or old enough that gc may be deleting it right now: (re)upload, which also renews its date.
        if (source?.buffer) await store.put(blobKey(sha), source.buffer);
        else await store.put(blobKey(sha), createReadStream(cache.path(sha)), { contentLength: size });
        stats.uploadedBlobs++;
        stats.uploadedBytes += size;
        known.set(sha, Date.now());
      })();
      inflight.set(sha, p);
    }
    return p;
  };

  /** Stores new content: small blobs go into a pack, others to blobs/<sha> (if the store lacks them). */
  const storeContent = async (sha: string, size: number, source: Ingested | undefined): Promise<void> => {
    if (sha === EMPTY_SHA256 || committedBlobs.has(sha)) return;
    if (packer && size <= packThreshold && source?.buffer) {
      await packer.add(sha, source.buffer);
      return;
    }
    await ensureBlob(sha, size, source);
  };

  const files = entries.filter((e) => e.type === 'file');
  stats.hashedFiles = scan.stats.hashedFiles;
  stats.hashedBytes = scan.stats.hashedBytes;
  await forEachLimit(files, concurrency, async (e) => {
    const sha = e.sha256!;
    if (committedBlobs.has(sha) || sha === EMPTY_SHA256) return;
    // Content the head lacks: the worker hashed it into the cache just now (small ones arrive inline), or checked
    // that the cache has it. The file itself is never read here: only the worker may open the layer.
    const size = e.size ?? 0;
    if (packer && size <= packThreshold) {
      const buffer = scan.inline.get(sha) ?? (await cache.readVerified(sha, size));
      if (!buffer) throw cacheLost();
      return storeContent(sha, size, { sha256: sha, size, buffer });
    }
    if (!(await cache.has(sha, size))) throw cacheLost();
    await ensureBlob(sha, size, undefined);
  });
  scan.inline.clear();
  if (packer) {
    await packer.flush();
    stats.uploadedPacks = packer.uploadedPacks;
  }
  let packed = false;
  const counted = new Set<string>();
  for (const e of files) {
    stats.files++;
    stats.bytes += e.size ?? 0;
    const sha = e.sha256!;
    const where = committedBlobs.has(sha) ? committedBlobs.get(sha) : packer?.ref(sha);
    if (where) {
      e.pack = where;
      packed = true;
      if (!committedBlobs.has(sha) && !counted.has(sha)) {
        counted.add(sha);
        stats.uploadedBlobs++;
        stats.uploadedBytes += where.length;
      }
    }
  }

  const manifest: Manifest = {
    format: packed ? 2 : 1,
    owner: ws.owner,
    name: ws.name,
    version: 0,
    parent: fromVersion,
    createdAt: new Date().toISOString(),
    entries,
    files: stats.files,
    bytes: stats.bytes,
  };

  // What the walk produced must be what a restore accepts (it always should be): never commit a version that can't
  // be restored.
  try {
    validateManifest(manifest);
  } catch (e) {
    throw new MagsError(
      500,
      'internal',
      `this sync was not saved: ${(e as Error).message.replace(/^this workspace version cannot be restored: /, '')}`,
    );
  }

  if (committed && samePortable(committed.entries, entries)) {
    stats.durationMs = Date.now() - started;
    return {
      version: committed.version,
      unchanged: true,
      manifest: { ...committed, entries },
      stats,
      versions: headState!.head.versions.length,
    };
  }
  if (Date.now() > deadline) {
    throw new MagsError(
      503,
      'timeout',
      `sync of ${ws.owner}/${ws.name} took longer than ${grace / 4 >= 60_000 ? `${Math.round(grace / 4 / 60_000)} min` : `${Math.round(grace / 4000)} s`}; nothing was changed, sync again (it resumes from the cache)`,
    );
  }

  const { version, versions } = await commitVersion(store, ws, headState, manifest, opts.keepVersions, () =>
    MagsError.conflict(
      `workspace "${ws.owner}/${ws.name}" was synced by someone else while this sync ran (its head is no longer version ${fromVersion ?? 'none'}); this sync was not saved`,
    ),
  );

  stats.durationMs = Date.now() - started;
  return { version, unchanged: false, manifest, stats, versions };
}

function cacheLost(): MagsError {
  return new MagsError(
    503,
    'unavailable',
    'the host cache lost content while the sync ran; nothing was changed, sync again',
  );
}

function changedElsewhere(ws: WorkspaceRef, at: number | null, expected: number | null): MagsError {
  const now =
    at === null
      ? `workspace "${ws.owner}/${ws.name}" has no synced version`
      : `workspace "${ws.owner}/${ws.name}" is at version ${at}`;
  const copy =
    expected === null ? 'this copy was made before its first sync' : `this copy was made from version ${expected}`;
  return MagsError.conflict(`${now} but ${copy}; its changes were not synced`);
}

/** Whether two entry lists describe the same tree (ignoring this host's inode/ctime fingerprints). */
function samePortable(a: ManifestEntry[], b: ManifestEntry[]): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (!equalValues(a[i], b[i], true)) return false;
  return true;
}

/** Deep equality of JSON-like values; a key holding undefined counts as absent. `entry`: skip ino and ctimeNs. */
function equalValues(x: unknown, y: unknown, entry = false): boolean {
  if (x === y) return true;
  if (typeof x !== 'object' || typeof y !== 'object' || x === null || y === null) return false;
  if (Array.isArray(x) !== Array.isArray(y)) return false;
  const ox = x as Record<string, unknown>;
  const oy = y as Record<string, unknown>;
  const keys = (o: Record<string, unknown>): string[] =>
    Object.keys(o).filter((k) => o[k] !== undefined && !(entry && (k === 'ino' || k === 'ctimeNs')));
  const kx = keys(ox);
  if (kx.length !== keys(oy).length) return false;
  for (const k of kx) if (!equalValues(ox[k], oy[k])) return false;
  return true;
}
