// Forks: a copy of one version's manifest in another workspace's area (`workspaces/<owner>/<name>/base`), so the
// fork keeps its base layer when the source changes, prunes that version or is deleted. gc counts base copies as live.
import { MagsError } from '@mags/api';
import { ObjectExistsError, ObjectNotFoundError } from '../errors.js';
import type { ObjectStore } from '../store.js';
import { baseKey, checkWorkspace, manifestKey, type WorkspaceRef } from './manifest.js';
import { readHead, readManifestObject } from './versions.js';

export interface ForkBaseResult {
  /** Where the base copy is: what the agent materialises as the fork's lower layer. */
  key: string;
  version: number;
  /** NAME@VERSION of the source, for messages. */
  label: string;
  /** sha256 of the manifest bytes (equal to the source version's: hosts share one materialised copy). */
  sha256: string;
}

/**
 * Copies `from`'s manifest at `version` (default: its current version) to `to`'s base key, create-only: 409 conflict
 * if `to` already has a base, 404 not_found if `from` has no such version. The copy is byte for byte.
 */
export async function forkBase(
  store: ObjectStore,
  from: WorkspaceRef,
  version: number | undefined,
  to: WorkspaceRef,
): Promise<ForkBaseResult> {
  checkWorkspace(from);
  checkWorkspace(to);
  const src = `"${from.owner}/${from.name}"`;
  const h = await readHead(store, from);
  if (!h) throw MagsError.notFound(`workspace ${src} has no synced version to fork`);
  const v = version ?? h.head.version;
  const info = h.head.versions.find((x) => x.version === v);
  if (!info)
    throw MagsError.notFound(
      `workspace ${src} has no version ${v} to fork (kept: ${h.head.versions.map((x) => x.version).join(', ')})`,
    );
  // Bases are one layer deep: a fork of a fork would lose the first base's files.
  if (await store.head(baseKey(from))) {
    throw MagsError.unsupported(
      `workspace ${src} is itself made from a base, and bases are not stacked: fork the workspace it was made from instead`,
    );
  }
  let object;
  try {
    object = await readManifestObject(store, manifestKey(from, v));
  } catch (e) {
    if (e instanceof ObjectNotFoundError)
      throw MagsError.notFound(`workspace ${src} version ${v} is gone (deleted meanwhile?)`);
    throw e;
  }
  const key = baseKey(to);
  try {
    await store.put(key, object.bytes, { ifNoneMatch: '*' });
  } catch (e) {
    if (e instanceof ObjectExistsError)
      throw MagsError.conflict(
        `workspace "${to.owner}/${to.name}" already has a base; a workspace's base cannot be replaced`,
      );
    throw e;
  }
  // gc keeps the blobs of kept versions. If the version was still kept after the copy was written, every gc either
  // saw the version or lists the copy (gc-policy.ts); if it was dropped meanwhile, its blobs may be going: undo.
  let still: boolean;
  try {
    still =
      (await readHead(store, from))?.head.versions.some((x) => x.version === v && x.createdAt === info.createdAt) ??
      false;
  } catch (e) {
    await store.delete([key]).catch(() => {});
    throw e;
  }
  if (!still) {
    await store.delete([key]).catch(() => {});
    throw MagsError.conflict(
      `workspace ${src} changed while it was being forked (version ${v} is no longer kept); nothing was changed, try again`,
    );
  }
  return { key, version: v, label: `${from.name}@${v}`, sha256: object.sha256 };
}
