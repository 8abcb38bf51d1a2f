// The SDK's workspace and file types (camelCase) and their one mapping from the REST wire format (snake_case) in @mags/api.
import type {
  FileInfo as WireFileInfo,
  FileList as WireFileList,
  GcReport as WireGcReport,
  SyncResult as WireSyncResult,
  WorkspaceInfo as WireWorkspaceInfo,
  WorkspaceList as WireWorkspaceList,
  WorkspaceRestored as WireWorkspaceRestored,
  WorkspaceVersions as WireWorkspaceVersions,
  WorkspaceMode,
} from '@mags/api';

export type { WorkspaceMode };

/** A workspace as `listWorkspaces`, `getWorkspace`, `createWorkspace` and `resize` report it. Times are ISO-8601 strings. */
export interface Workspace {
  name: string;
  /** The same as name (the hosted service's key for it). */
  workspaceId: string;
  /** `local` (on one host, deleted after 10 minutes unused) or `persistent` (synced to the object store). */
  mode: WorkspaceMode;
  /** Size of the workspace disk in GB; writing past it gives the script ENOSPC. */
  diskGb: number;
  /** Bytes of files in the workspace (its own layer), as last measured. */
  sizeBytes: number;
  /** Files in the workspace, as last measured. */
  files: number;
  /** Synced versions kept (0 for local workspaces). */
  versions: number;
  /** The version a new sandbox starts from; null before the first sync. */
  currentVersion: number | null;
  /** The base it was created on, as NAME@VERSION. */
  base: string | null;
  /** Request id of the unfinished job using it. */
  inUseBy: string | null;
  createdAt: string;
  lastUsedAt: string | null;
  /** Local workspaces: when the host copy is deleted unless used again. */
  expiresAt: string | null;
}

export interface WorkspaceListResult {
  workspaces: Workspace[];
}

/** Options of `createWorkspace` (and `mags new`). */
export interface CreateWorkspaceOptions {
  /** Sync the workspace to the object store; its files persist indefinitely. */
  persistent?: boolean;
  /** Fork this persistent workspace (its current version). */
  base?: string;
  /** Disk size in GB (server default 2). */
  diskGb?: number;
}

export interface DeleteWorkspaceOptions {
  /** Delete even while an unfinished job uses it (that job is stopped). */
  force?: boolean;
}

export interface DeleteResult {
  success: boolean;
  name: string;
}

export interface WorkspaceVersion {
  version: number;
  createdAt: string;
  files: number;
  bytes: number;
  /** Whether this is the version a new sandbox starts from. */
  current: boolean;
}

export interface WorkspaceVersionsResult {
  name: string;
  versions: WorkspaceVersion[];
}

export interface RestoreResult {
  success: boolean;
  name: string;
  /** The new current version (a copy of `restoredFrom`). */
  version: number;
  restoredFrom: number;
}

export interface SyncResult {
  success: boolean;
  /** The workspace synced. */
  name: string;
  /** The current version after the sync; null if the workspace has never been synced (local, or empty). */
  version: number | null;
  /** False when nothing had changed since the last sync (no version was written). */
  changed: boolean;
}

/** What one garbage collection of the server's object store freed (`gc()`, `mags server gc`). */
export interface GcReport {
  startedAt: string;
  durationMs: number;
  /** Unreferenced objects younger than this were kept (the server's --gc-grace). */
  graceMs: number;
  /** Versions no workspace keeps (of deleted workspaces, or left by failed syncs). */
  manifestsDeleted: number;
  /** File contents stored one per object, and packs of many small ones, that nothing referenced. */
  blobsDeleted: number;
  packsDeleted: number;
  bytesDeleted: number;
  /** Unreferenced, but younger than the grace period: kept for now. */
  blobsSpared: number;
  packsSpared: number;
  /** In use by a kept version or a fork. */
  blobsReferenced: number;
  packsReferenced: number;
  /** Base copies of forks (always kept). */
  bases: number;
}

/** An uploaded file; pass `fileId` in `fileIds` to place it at /uploads/<name> before a script starts. */
export interface UploadedFile {
  fileId: string;
  /** The basename it appears as under /uploads/. */
  name: string;
  size: number;
  sha256: string;
  createdAt: string;
}

export interface FileListResult {
  files: UploadedFile[];
}

export interface UploadProgress {
  /** Bytes sent so far. */
  sent: number;
  /** Bytes of the whole file. */
  total: number;
}

export interface UploadOptions {
  /** The name under /uploads/ (default: the file's basename). */
  name?: string;
  /** Called as the file is sent (about every 64 KB), and once with `sent === total` when all of it is sent. */
  onProgress?: (progress: UploadProgress) => void;
  /** Cancels the upload. */
  signal?: AbortSignal;
}

export function fromWireWorkspace(w: WireWorkspaceInfo): Workspace {
  return {
    name: w.name,
    workspaceId: w.workspace_id,
    mode: w.mode,
    diskGb: w.disk_gb,
    sizeBytes: w.size_bytes,
    files: w.files,
    versions: w.versions,
    currentVersion: w.current_version ?? null,
    base: w.base ?? null,
    inUseBy: w.in_use_by ?? null,
    createdAt: w.created_at,
    lastUsedAt: w.last_used_at ?? null,
    expiresAt: w.expires_at ?? null,
  };
}

export function fromWireWorkspaceList(l: WireWorkspaceList): WorkspaceListResult {
  return { workspaces: l.workspaces.map(fromWireWorkspace) };
}

export function fromWireVersions(v: WireWorkspaceVersions): WorkspaceVersionsResult {
  return {
    name: v.name,
    versions: v.versions.map((x) => ({
      version: x.version,
      createdAt: x.created_at,
      files: x.files,
      bytes: x.bytes,
      current: x.current,
    })),
  };
}

export function fromWireRestored(r: WireWorkspaceRestored): RestoreResult {
  return { success: r.success, name: r.name, version: r.version, restoredFrom: r.restored_from };
}

export function fromWireSync(s: WireSyncResult): SyncResult {
  return { success: s.success, name: s.name, version: s.version ?? null, changed: s.changed };
}

export function fromWireGc(r: WireGcReport): GcReport {
  return {
    startedAt: r.started_at,
    durationMs: r.duration_ms,
    graceMs: r.grace_ms,
    manifestsDeleted: r.manifests_deleted,
    blobsDeleted: r.blobs_deleted,
    packsDeleted: r.packs_deleted,
    bytesDeleted: r.bytes_deleted,
    blobsSpared: r.blobs_spared,
    packsSpared: r.packs_spared,
    blobsReferenced: r.blobs_referenced,
    packsReferenced: r.packs_referenced,
    bases: r.bases,
  };
}

export function fromWireFile(f: WireFileInfo): UploadedFile {
  return { fileId: f.file_id, name: f.name, size: f.size, sha256: f.sha256, createdAt: f.created_at };
}

export function fromWireFileList(l: WireFileList): FileListResult {
  return { files: l.files.map(fromWireFile) };
}
