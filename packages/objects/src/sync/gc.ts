// Garbage collection: deletes uncommitted manifests, and blobs and packs that no manifest or base copy references,
// once they are older than the grace period, safely against syncs running at the same time (see gc-policy.ts).
import { MagsError } from '@mags/api';
import { ObjectNotFoundError } from '../errors.js';
import { forEachLimit } from '../pool.js';
import type { ObjectStore } from '../store.js';
import { DEFAULT_GC_GRACE_MS } from './gc-policy.js';
import {
  BLOBS_PREFIX,
  decodeManifest,
  PACKS_PREFIX,
  parseBaseKey,
  parseHeadKey,
  parseManifestKey,
  WORKSPACES_PREFIX,
  type WorkspaceRef,
} from './manifest.js';
import { readHead } from './versions.js';

export interface GcOptions {
  /** Must equal the gcGraceMs that syncs use. Default DEFAULT_GC_GRACE_MS. */
  graceMs?: number;
  concurrency?: number;
  /** Stops the run between two store requests (each delete is complete on its own, so stopping loses nothing). */
  signal?: AbortSignal;
}

export interface GcResult {
  manifestsDeleted: number;
  blobsDeleted: number;
  /** Bytes of the blobs and packs deleted. */
  bytesDeleted: number;
  /** Unreferenced blobs kept because they are younger than the grace period (or were rewritten meanwhile). */
  blobsSpared: number;
  blobsReferenced: number;
  packsDeleted: number;
  packsSpared: number;
  packsReferenced: number;
  /** Base copies (forks) found; always live. */
  bases: number;
}

const MARKER = 'gc/started';

export async function gc(store: ObjectStore, opts: GcOptions = {}): Promise<GcResult> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await gcOnce(store, opts);
    } catch (e) {
      if (!(e instanceof ManifestVanished) || attempt >= 3 || opts.signal?.aborted) throw e;
    }
  }
}

/**
 * A manifest listed as live disappeared before gc read it (a sync pruned it). Its blobs may be reused by a newer
 * manifest that gc did not list, so this run cannot tell what is referenced: start over.
 */
class ManifestVanished extends MagsError {
  constructor(key: string) {
    super(409, 'conflict', `gc: manifest ${key} was deleted while gc ran; run gc again`);
  }
}

interface Listed {
  key: string;
  lastModified: Date;
}

async function gcOnce(store: ObjectStore, opts: GcOptions): Promise<GcResult> {
  const grace = opts.graceMs ?? DEFAULT_GC_GRACE_MS;
  const concurrency = opts.concurrency ?? 16;
  const stopIfAborted = (): void => opts.signal?.throwIfAborted();
  stopIfAborted();
  const result: GcResult = {
    manifestsDeleted: 0,
    blobsDeleted: 0,
    bytesDeleted: 0,
    blobsSpared: 0,
    blobsReferenced: 0,
    packsDeleted: 0,
    packsSpared: 0,
    packsReferenced: 0,
    bases: 0,
  };

  // "Now" is the store's clock: the date it gives a marker written just before listing.
  await store.put(MARKER, Buffer.from(new Date().toISOString()));
  const marker = await store.head(MARKER);
  if (!marker) throw new Error(`gc: ${store.description} lost the marker object it just wrote`);
  const cutoff = new Date(marker.lastModified.getTime() - grace);

  const heads: WorkspaceRef[] = [];
  const manifests: (Listed & { ws: WorkspaceRef; version: number })[] = [];
  const bases: Listed[] = [];
  for await (const o of store.list(WORKSPACES_PREFIX)) {
    stopIfAborted();
    const h = parseHeadKey(o.key);
    if (h) heads.push(h);
    const m = parseManifestKey(o.key);
    if (m) manifests.push({ key: o.key, ...m, lastModified: o.lastModified });
    if (parseBaseKey(o.key)) bases.push({ key: o.key, lastModified: o.lastModified });
  }
  result.bases = bases.length;
  const committed = new Set<string>();
  await forEachLimit(heads, concurrency, async (ws) => {
    stopIfAborted();
    const h = await readHead(store, ws);
    for (const v of h?.head.versions ?? []) committed.add(`${ws.owner}/${ws.name}/${v.version}`);
  });

  // Base copies are always live: a fork keeps its base however its source changes.
  const live: string[] = bases.map((b) => b.key);
  await forEachLimit(manifests, concurrency, async (m) => {
    stopIfAborted();
    if (committed.has(`${m.ws.owner}/${m.ws.name}/${m.version}`) || m.lastModified >= cutoff) {
      live.push(m.key);
      return;
    }
    // Left by a crashed or losing sync, or by a deleted workspace.
    if (await store.deleteIfOlder(m.key, cutoff)) result.manifestsDeleted++;
    else live.push(m.key);
  });

  const blobs = new Set<string>();
  const packs = new Set<string>();
  const readRefs = (keys: string[], vanished: 'restart' | 'ignore'): Promise<void> =>
    forEachLimit(keys, Math.min(concurrency, 8), async (key) => {
      stopIfAborted();
      let buf: Buffer;
      try {
        buf = await store.getBuffer(key);
      } catch (e) {
        if (!(e instanceof ObjectNotFoundError)) throw e;
        if (vanished === 'restart') throw new ManifestVanished(key);
        return;
      }
      for (const e of decodeManifest(buf, key).entries) {
        if (e.pack) packs.add(e.pack.sha256);
        else if (e.sha256) blobs.add(e.sha256);
      }
    });
  await readRefs(live, 'restart');

  const blobCandidates: { key: string; size: number }[] = [];
  for await (const o of store.list(BLOBS_PREFIX)) {
    stopIfAborted();
    if (blobs.has(o.key.slice(BLOBS_PREFIX.length))) result.blobsReferenced++;
    else if (o.lastModified >= cutoff) result.blobsSpared++;
    else blobCandidates.push({ key: o.key, size: o.size });
  }
  const packCandidates: { key: string; size: number }[] = [];
  for await (const o of store.list(PACKS_PREFIX)) {
    stopIfAborted();
    if (packs.has(o.key.slice(PACKS_PREFIX.length))) result.packsReferenced++;
    else if (o.lastModified >= cutoff) result.packsSpared++;
    else packCandidates.push({ key: o.key, size: o.size });
  }

  // A fork writes a base copy that may reference old blobs, and checks afterwards that the version it copied is
  // still kept (fork.ts): a copy written after the first listing is found here (gc-policy.ts). Manifests and bases
  // that are new, or were written since gc started, are read too (one deleted meanwhile needs nothing kept: what it
  // referenced is covered by the first listing or by the grace rule).
  const listed = new Set([...manifests.map((m) => m.key), ...bases.map((b) => b.key)]);
  const recent = marker.lastModified.getTime() - 2000; // the store's clock has 1 s resolution
  const late: string[] = [];
  for await (const o of store.list(WORKSPACES_PREFIX)) {
    stopIfAborted();
    if (!parseBaseKey(o.key) && !parseManifestKey(o.key)) continue;
    if (!listed.has(o.key) || o.lastModified.getTime() >= recent) late.push(o.key);
  }
  await readRefs(late, 'ignore');

  const deleteIfUnreferenced = async (
    list: { key: string; size: number }[],
    prefix: string,
    refs: Set<string>,
    kind: 'blobs' | 'packs',
  ): Promise<void> => {
    await forEachLimit(list, concurrency, async (c) => {
      stopIfAborted();
      if (refs.has(c.key.slice(prefix.length))) {
        result[kind === 'blobs' ? 'blobsReferenced' : 'packsReferenced']++;
        return;
      }
      if (await store.deleteIfOlder(c.key, cutoff)) {
        result[kind === 'blobs' ? 'blobsDeleted' : 'packsDeleted']++;
        result.bytesDeleted += c.size;
      } else result[kind === 'blobs' ? 'blobsSpared' : 'packsSpared']++;
    });
  };
  await deleteIfUnreferenced(blobCandidates, BLOBS_PREFIX, blobs, 'blobs');
  await deleteIfUnreferenced(packCandidates, PACKS_PREFIX, packs, 'packs');
  return result;
}
