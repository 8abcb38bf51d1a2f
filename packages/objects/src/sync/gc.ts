// Garbage collection: deletes uncommitted manifests and blobs that no manifest references, once they are older
// than the grace period, safely against syncs running at the same time (the rule is in gc-policy.ts).
import { MagsError } from '@mags/api';
import { ObjectNotFoundError } from '../errors.js';
import { forEachLimit } from '../pool.js';
import type { ObjectStore } from '../store.js';
import { DEFAULT_GC_GRACE_MS } from './gc-policy.js';
import { BLOBS_PREFIX, decodeManifest, parseHeadKey, parseManifestKey, WORKSPACES_PREFIX, type WorkspaceRef } from './manifest.js';
import { readHead } from './versions.js';

export interface GcOptions {
  /** Must equal the gcGraceMs that syncs use. Default DEFAULT_GC_GRACE_MS. */
  graceMs?: number;
  concurrency?: number;
}

export interface GcResult {
  manifestsDeleted: number;
  blobsDeleted: number;
  bytesDeleted: number;
  /** Unreferenced blobs kept because they are younger than the grace period (or were rewritten meanwhile). */
  blobsSpared: number;
  blobsReferenced: number;
}

const MARKER = 'gc/started';

export async function gc(store: ObjectStore, opts: GcOptions = {}): Promise<GcResult> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await gcOnce(store, opts);
    } catch (e) {
      if (!(e instanceof ManifestVanished) || attempt >= 3) throw e;
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

async function gcOnce(store: ObjectStore, opts: GcOptions): Promise<GcResult> {
  const grace = opts.graceMs ?? DEFAULT_GC_GRACE_MS;
  const concurrency = opts.concurrency ?? 16;
  const result: GcResult = { manifestsDeleted: 0, blobsDeleted: 0, bytesDeleted: 0, blobsSpared: 0, blobsReferenced: 0 };

  // "Now" is the store's clock: the date it gives a marker written just before listing.
  await store.put(MARKER, Buffer.from(new Date().toISOString()));
  const marker = await store.head(MARKER);
  if (!marker) throw new Error(`gc: ${store.description} lost the marker object it just wrote`);
  const cutoff = new Date(marker.lastModified.getTime() - grace);

  const heads: WorkspaceRef[] = [];
  const manifests: { key: string; ws: WorkspaceRef; version: number; lastModified: Date }[] = [];
  for await (const o of store.list(WORKSPACES_PREFIX)) {
    const h = parseHeadKey(o.key);
    if (h) heads.push(h);
    const m = parseManifestKey(o.key);
    if (m) manifests.push({ key: o.key, ...m, lastModified: o.lastModified });
  }
  const committed = new Set<string>();
  await forEachLimit(heads, concurrency, async (ws) => {
    const h = await readHead(store, ws);
    for (const v of h?.head.versions ?? []) committed.add(`${ws.owner}/${ws.name}/${v.version}`);
  });

  const live: string[] = [];
  await forEachLimit(manifests, concurrency, async (m) => {
    if (committed.has(`${m.ws.owner}/${m.ws.name}/${m.version}`) || m.lastModified >= cutoff) {
      live.push(m.key);
      return;
    }
    // Left by a crashed or losing sync, or by a deleted workspace.
    if (await store.deleteIfOlder(m.key, cutoff)) result.manifestsDeleted++;
    else live.push(m.key);
  });

  const referenced = new Set<string>();
  await forEachLimit(live, Math.min(concurrency, 8), async (key) => {
    let buf: Buffer;
    try {
      buf = await store.getBuffer(key);
    } catch (e) {
      if (e instanceof ObjectNotFoundError) throw new ManifestVanished(key);
      throw e;
    }
    for (const e of decodeManifest(buf, key).entries) if (e.sha256) referenced.add(e.sha256);
  });

  const candidates: { key: string; size: number }[] = [];
  for await (const o of store.list(BLOBS_PREFIX)) {
    const sha = o.key.slice(BLOBS_PREFIX.length);
    if (referenced.has(sha)) result.blobsReferenced++;
    else if (o.lastModified >= cutoff) result.blobsSpared++;
    else candidates.push({ key: o.key, size: o.size });
  }
  await forEachLimit(candidates, concurrency, async (c) => {
    if (await store.deleteIfOlder(c.key, cutoff)) {
      result.blobsDeleted++;
      result.bytesDeleted += c.size;
    } else result.blobsSpared++;
  });
  return result;
}
