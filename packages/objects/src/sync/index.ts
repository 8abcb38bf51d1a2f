// Workspace sync: content-addressed blobs and packs + versioned manifests of OverlayFS upper directories, head moved by CAS.

export { DEFAULT_KEEP_VERSIONS } from './commit.js';
export { type ForkBaseResult, forkBase } from './fork.js';
export { type GcOptions, type GcResult, gc } from './gc.js';
export { DEFAULT_GC_GRACE_MS } from './gc-policy.js';
export * from './manifest.js';
export { DEFAULT_PACK_THRESHOLD, PACK_TARGET } from './pack.js';
export {
  type RestoreOptions,
  type RestoreRef,
  type RestoreResult,
  type RestoreStats,
  restore,
  restoreManifest,
} from './restore.js';
export { type RollbackOptions, type RollbackResult, rollback } from './rollback.js';
export {
  type ServiceRestoreResult,
  type ServiceSnapshotResult,
  SyncService,
  type SyncServiceOptions,
} from './service.js';
export { type SnapshotOptions, type SnapshotResult, type SnapshotStats, snapshot } from './snapshot.js';
export { MAX_NAME_BYTES, MAX_PATH_BYTES, validateManifest } from './validate.js';
export {
  deleteWorkspace,
  type HeadState,
  listVersions,
  type ManifestObject,
  readHead,
  readManifest,
  readManifestObject,
  type WorkspaceVersion,
} from './versions.js';
export { type IdMap, idInside, idOnHost, NOBODY, SYNC_MAX_PATH_BYTES } from './walk.js';
