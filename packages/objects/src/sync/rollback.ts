// Rollback: a kept version becomes the current one again as a NEW version (same entries, parent = the current head),
// so history only grows and a host copy made from the old head sees that the head moved.
import { MagsError } from '@mags/api';
import { ObjectNotFoundError } from '../errors.js';
import type { ObjectStore } from '../store.js';
import { commitVersion } from './commit.js';
import { checkWorkspace, type Manifest, manifestKey, type WorkspaceRef } from './manifest.js';
import { readHead, readManifestObject } from './versions.js';

export interface RollbackOptions {
  /** Committed versions to keep, as for snapshot. Default 20. */
  keepVersions?: number;
}

export interface RollbackResult {
  /** The new version, now current. */
  version: number;
  /** The version whose content it has. */
  restoredFrom: number;
}

/**
 * Commits a new version with the content of kept `version`, like a snapshot (create-only manifest, then a
 * compare-and-swap of the head). 404 not_found if the version is not kept; 409 conflict if a sync moved the head
 * meanwhile (nothing changed then). It references only blobs and packs of a kept version, which gc keeps.
 */
export async function rollback(
  store: ObjectStore,
  ws: WorkspaceRef,
  version: number,
  opts: RollbackOptions = {},
): Promise<RollbackResult> {
  checkWorkspace(ws);
  const id = `"${ws.owner}/${ws.name}"`;
  const h = await readHead(store, ws);
  if (!h) throw MagsError.notFound(`workspace ${id} has no synced version`);
  if (!h.head.versions.some((x) => x.version === version)) {
    throw MagsError.notFound(
      `workspace ${id} has no version ${version} to roll back to (kept: ${h.head.versions.map((x) => x.version).join(', ')})`,
    );
  }
  let source: Manifest;
  try {
    source = (await readManifestObject(store, manifestKey(ws, version))).manifest;
  } catch (e) {
    if (e instanceof ObjectNotFoundError)
      throw MagsError.notFound(`workspace ${id} version ${version} is gone (deleted meanwhile?)`);
    throw e;
  }
  const manifest: Manifest = {
    ...source,
    owner: ws.owner,
    name: ws.name,
    version: 0,
    parent: h.head.version,
    createdAt: new Date().toISOString(),
  };
  const { version: v } = await commitVersion(store, ws, h, manifest, opts.keepVersions, () =>
    MagsError.conflict(
      `workspace ${id} was synced while it was being rolled back (its head is no longer version ${h.head.version}); nothing was changed, try again`,
    ),
  );
  return { version: v, restoredFrom: version };
}
