// The workspace and file resources of the REST API (snake_case wire format), shared by the server, SDK and CLI.
import { type Static, Type } from 'typebox';
import { NAME_PATTERN } from './jobs.js';

const Nullable = <T extends Parameters<typeof Type.Union>[0][number]>(t: T) => Type.Union([t, Type.Null()]);

/** Largest workspace disk a user may ask for, in GB. */
export const MAX_DISK_GB = 1024;

export const WorkspaceMode = Type.Union([Type.Literal('local'), Type.Literal('persistent')]);
export type WorkspaceMode = 'local' | 'persistent';

export const WorkspaceInfo = Type.Object(
  {
    name: Type.String(),
    workspace_id: Type.String({ description: "The same as name (the hosted service's clients read this key)" }),
    mode: WorkspaceMode,
    disk_gb: Type.Integer({ description: 'Size of the workspace disk; writing past it gives ENOSPC' }),
    size_bytes: Type.Integer({ description: 'Bytes of files in the workspace (its own layer), as last measured' }),
    files: Type.Integer({ description: 'Files in the workspace, as last measured' }),
    versions: Type.Integer({ description: 'Synced versions kept (persistent workspaces; 0 for local ones)' }),
    current_version: Nullable(
      Type.Integer({ description: 'The version a new sandbox starts from; null before the first sync' }),
    ),
    base: Nullable(Type.String({ description: 'The base it was created on, as NAME@VERSION' })),
    in_use_by: Nullable(Type.String({ description: 'Request id of the unfinished job using it' })),
    created_at: Type.String(),
    last_used_at: Nullable(Type.String()),
    /** Local workspaces: when the host copy is deleted unless used again. */
    expires_at: Nullable(Type.String()),
  },
  { $id: 'WorkspaceInfo' },
);
export type WorkspaceInfo = Static<typeof WorkspaceInfo>;

export const WorkspaceList = Type.Object({ workspaces: Type.Array(WorkspaceInfo) });
export type WorkspaceList = Static<typeof WorkspaceList>;

export const WorkspaceCreate = Type.Object(
  {
    name: Type.String({ pattern: NAME_PATTERN }),
    persistent: Type.Optional(Type.Boolean({ default: false })),
    base: Type.Optional(
      Type.String({ pattern: NAME_PATTERN, description: 'Fork this persistent workspace (its current version)' }),
    ),
    disk_gb: Type.Optional(Type.Integer({ minimum: 1, maximum: MAX_DISK_GB, default: 2 })),
  },
  { additionalProperties: false, $id: 'WorkspaceCreate' },
);
export type WorkspaceCreate = Static<typeof WorkspaceCreate>;

export const WorkspaceVersionInfo = Type.Object({
  version: Type.Integer(),
  created_at: Type.String(),
  files: Type.Integer(),
  bytes: Type.Integer(),
  current: Type.Boolean(),
});
export const WorkspaceVersions = Type.Object({ name: Type.String(), versions: Type.Array(WorkspaceVersionInfo) });
export type WorkspaceVersions = Static<typeof WorkspaceVersions>;

export const WorkspaceRestore = Type.Object(
  {
    version: Type.Integer({
      minimum: 1,
      description: 'The version to roll back to; the rollback becomes a new version',
    }),
  },
  { additionalProperties: false },
);
export const WorkspaceRestored = Type.Object({
  success: Type.Boolean(),
  name: Type.String(),
  /** The new current version (a copy of restored_from). */
  version: Type.Integer(),
  restored_from: Type.Integer(),
});
export type WorkspaceRestored = Static<typeof WorkspaceRestored>;

export const WorkspaceResize = Type.Object(
  { disk_gb: Type.Integer({ minimum: 1, maximum: MAX_DISK_GB }) },
  { additionalProperties: false },
);

export const SyncResult = Type.Object({
  success: Type.Boolean(),
  name: Type.String(),
  /** The current version after the sync; null if the workspace has never been synced (local, or empty). */
  version: Nullable(Type.Integer()),
  /** False when nothing had changed since the last sync (no version was written). */
  changed: Type.Boolean(),
});
export type SyncResult = Static<typeof SyncResult>;

export const DeleteResult = Type.Object({ success: Type.Boolean(), name: Type.String() });

export const FileInfo = Type.Object(
  {
    file_id: Type.String(),
    name: Type.String({ description: 'The basename it appears as under /uploads/' }),
    size: Type.Integer(),
    sha256: Type.String(),
    created_at: Type.String(),
  },
  { $id: 'FileInfo' },
);
export type FileInfo = Static<typeof FileInfo>;
export const FileList = Type.Object({ files: Type.Array(FileInfo) });
export type FileList = Static<typeof FileList>;

/**
 * Characters that are not text to show: C0 and C1 controls (CR, LF, TAB, ESC, …), DEL, and the Unicode marks that
 * reorder or break displayed text (bidi embeddings, overrides and isolates U+202A–202E and U+2066–2069, LRM, RLM,
 * ALM, line and paragraph separators). A name holding one can forge what a listing shows.
 */
// eslint-disable-next-line no-control-regex
export const UNPRINTABLE = /[\u0000-\u001f\u007f-\u009f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069]/;

/** A sentence naming the first unprintable character in `name`, or undefined when there is none. */
export function unprintableIn(name: string): string | undefined {
  const m = UNPRINTABLE.exec(name);
  if (!m) return undefined;
  const code = `U+${m[0].charCodeAt(0).toString(16).toUpperCase().padStart(4, '0')}`;
  return `the file name contains a control or text-direction character (${code} at position ${m.index + 1}); rename the file`;
}

/** A basename that is safe as /uploads/<name>: no slash, not "." or "..", no NUL or other control, at most 255 bytes. */
export function checkUploadName(name: string): string | undefined {
  if (name.length === 0) return 'the file name is empty';
  if (name.includes('/') || name.includes('\0')) return 'the file name must be a basename (no "/" or NUL)';
  if (name === '.' || name === '..') return `"${name}" is not a file name`;
  if (Buffer.byteLength(name) > 255) return 'the file name is longer than 255 bytes';
  return unprintableIn(name);
}
