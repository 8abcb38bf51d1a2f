// Committing a new version (snapshot and rollback): the manifest goes in with a create-only put at the next free
// number, then the head moves to it by compare-and-swap from the state read at the start, then pruned manifests go.
import { randomBytes } from 'node:crypto';
import type { MagsError } from '@mags/api';
import { ObjectExistsError } from '../errors.js';
import type { ObjectStore } from '../store.js';
import {
  encodeHead,
  encodeManifest,
  headKey,
  type Manifest,
  manifestKey,
  type WorkspaceHead,
  type WorkspaceRef,
} from './manifest.js';
import type { HeadState } from './versions.js';

export const DEFAULT_KEEP_VERSIONS = 20;

/**
 * Writes `manifest` (its `version` is set here) as the version after `from` and moves the head to it. If the head is
 * no longer exactly `from`, the manifest is deleted again and `lost()` is thrown; nothing else changed.
 */
export async function commitVersion(
  store: ObjectStore,
  ws: WorkspaceRef,
  from: HeadState | undefined,
  manifest: Manifest,
  keepVersions: number | undefined,
  lost: () => MagsError,
): Promise<{ version: number; versions: number }> {
  // A leftover manifest from a crashed sync just bumps the number.
  let version = (from?.head.version ?? 0) + 1;
  for (let attempt = 0; ; attempt++, version++) {
    manifest.version = version;
    try {
      await store.put(manifestKey(ws, version), encodeManifest(manifest), { ifNoneMatch: '*' });
      break;
    } catch (e) {
      if (!(e instanceof ObjectExistsError) || attempt >= 100) throw e;
    }
  }

  const kept = Math.max(1, keepVersions ?? DEFAULT_KEEP_VERSIONS);
  const allVersions = [
    ...(from?.head.versions ?? []),
    { version, createdAt: manifest.createdAt, files: manifest.files, bytes: manifest.bytes },
  ];
  const head: WorkspaceHead = {
    format: 1,
    version,
    createdAt: manifest.createdAt,
    versions: allVersions.slice(-kept),
    writer: randomBytes(8).toString('hex'),
  };
  const cas = await store.casPut(headKey(ws), encodeHead(head), from?.etag ?? null);
  if (!cas.ok) {
    await store.delete([manifestKey(ws, version)]).catch(() => {});
    throw lost();
  }
  const dropped = allVersions
    .slice(0, allVersions.length - head.versions.length)
    .map((v) => manifestKey(ws, v.version));
  if (dropped.length > 0) await store.delete(dropped).catch(() => {}); // leftovers are gc's job
  return { version, versions: head.versions.length };
}
