// Workspace sync: content-addressed blobs + versioned manifests of OverlayFS upper directories, head moved by CAS.
export * from './manifest.js';
export { snapshot, type SnapshotOptions, type SnapshotResult, type SnapshotStats } from './snapshot.js';
export { restore, type RestoreOptions, type RestoreRef, type RestoreResult, type RestoreStats } from './restore.js';
export { listVersions, readHead, readManifest, deleteWorkspace, type HeadState, type WorkspaceVersion } from './versions.js';
export { gc, type GcOptions, type GcResult } from './gc.js';
export { DEFAULT_GC_GRACE_MS } from './gc-policy.js';
