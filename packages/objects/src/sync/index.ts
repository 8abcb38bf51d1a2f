// Workspace sync: content-addressed blobs and packs + versioned manifests of OverlayFS upper directories, head moved by CAS.
export * from './manifest.js';
export { snapshot, type SnapshotOptions, type SnapshotResult, type SnapshotStats } from './snapshot.js';
export { restore, restoreManifest, type RestoreOptions, type RestoreRef, type RestoreResult, type RestoreStats } from './restore.js';
export {
  listVersions,
  readHead,
  readManifest,
  readManifestObject,
  deleteWorkspace,
  type HeadState,
  type ManifestObject,
  type WorkspaceVersion,
} from './versions.js';
export { forkBase, type ForkBaseResult } from './fork.js';
export { rollback, type RollbackOptions, type RollbackResult } from './rollback.js';
export { DEFAULT_KEEP_VERSIONS } from './commit.js';
export { DEFAULT_PACK_THRESHOLD, PACK_TARGET } from './pack.js';
export { gc, type GcOptions, type GcResult } from './gc.js';
export { DEFAULT_GC_GRACE_MS } from './gc-policy.js';
export { validateManifest, MAX_PATH_BYTES, MAX_NAME_BYTES } from './validate.js';
export { type IdMap, NOBODY, SYNC_MAX_PATH_BYTES, idInside, idOnHost } from './walk.js';
export { SyncService, type SyncServiceOptions, type ServiceSnapshotResult, type ServiceRestoreResult } from './service.js';
