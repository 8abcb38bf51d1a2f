// A workspace's versions in the store: reading the head, listing and reading versions, deleting a workspace.
import { createHash } from 'node:crypto';
import { MagsError } from '@mags/api';
import { ObjectNotFoundError } from '../errors.js';
import type { ObjectStore } from '../store.js';
import {
  baseKey,
  decodeHead,
  decodeManifest,
  headKey,
  type Manifest,
  manifestKey,
  type VersionInfo,
  type WorkspaceHead,
  type WorkspaceRef,
  workspacePrefix,
} from './manifest.js';

export interface HeadState {
  head: WorkspaceHead;
  /** What casPut must be given to move the head from here. */
  etag: string;
}

/** The head and its etag, read consistently (the etag belongs to exactly the bytes parsed), or undefined. */
export async function readHead(store: ObjectStore, ws: WorkspaceRef): Promise<HeadState | undefined> {
  const key = headKey(ws);
  // head then get is not atomic: retry until the etag before and after the read agree.
  for (let attempt = 0; attempt < 10; attempt++) {
    const before = await store.head(key);
    if (!before) return undefined;
    let buf: Buffer;
    try {
      buf = await store.getBuffer(key);
    } catch (e) {
      if (e instanceof ObjectNotFoundError) continue;
      throw e;
    }
    const after = await store.head(key);
    if (after && after.etag === before.etag)
      return { head: decodeHead(buf, `${store.description}/${key}`), etag: before.etag };
  }
  throw MagsError.conflict(`workspace ${ws.owner}/${ws.name} is changing too fast to read its head; try again`);
}

export interface WorkspaceVersion extends VersionInfo {
  current: boolean;
}

/** Committed versions still kept, oldest first; empty if the workspace was never synced. */
export async function listVersions(store: ObjectStore, ws: WorkspaceRef): Promise<WorkspaceVersion[]> {
  const h = await readHead(store, ws);
  if (!h) return [];
  return h.head.versions.map((v) => ({ ...v, current: v.version === h.head.version }));
}

/** The manifest of a committed version (default: the current one). Throws not_found for unknown versions. */
export async function readManifest(store: ObjectStore, ws: WorkspaceRef, version?: number): Promise<Manifest> {
  const h = await readHead(store, ws);
  if (!h) throw MagsError.notFound(`workspace "${ws.owner}/${ws.name}" has no synced version`);
  const v = version ?? h.head.version;
  if (!h.head.versions.some((x) => x.version === v)) {
    throw MagsError.notFound(
      `workspace "${ws.owner}/${ws.name}" has no version ${v} (kept: ${h.head.versions.map((x) => x.version).join(', ')})`,
    );
  }
  const key = manifestKey(ws, v);
  let buf: Buffer;
  try {
    buf = await store.getBuffer(key);
  } catch (e) {
    if (e instanceof ObjectNotFoundError)
      throw MagsError.notFound(`workspace "${ws.owner}/${ws.name}" version ${v} is gone (deleted meanwhile?)`);
    throw e;
  }
  return decodeManifest(buf, `${store.description}/${key}`);
}

export interface ManifestObject {
  manifest: Manifest;
  /** The object's bytes as stored (gzip'd JSON). */
  bytes: Buffer;
  /** sha256 of `bytes`, hex: the same for every copy of one manifest (a version and a fork's base copy of it). */
  sha256: string;
}

/** Reads any object in manifest format (a version's manifest, a base copy). Throws ObjectNotFoundError (404). */
export async function readManifestObject(store: ObjectStore, key: string): Promise<ManifestObject> {
  const bytes = await store.getBuffer(key);
  return {
    manifest: decodeManifest(bytes, `${store.description}/${key}`),
    bytes,
    sha256: createHash('sha256').update(bytes).digest('hex'),
  };
}

/**
 * Deletes everything under the workspace's prefix: head, manifests and base copy. The head goes first, so nobody
 * restores a half-deleted workspace and a concurrent sync's compare-and-swap fails. Blobs and packs are left to
 * gc(), since other workspaces may share them.
 */
export async function deleteWorkspace(
  store: ObjectStore,
  ws: WorkspaceRef,
): Promise<{ deletedManifests: number; deletedBase: boolean }> {
  const prefix = workspacePrefix(ws);
  await store.delete([headKey(ws)]);
  const keys: string[] = [];
  for await (const o of store.list(prefix)) keys.push(o.key);
  await store.delete(keys);
  return {
    deletedManifests: keys.filter((k) => k.startsWith(`${prefix}manifests/`)).length,
    deletedBase: keys.includes(baseKey(ws)),
  };
}
