// Administration resources of the REST API: what the server's owner may ask of the whole server.
import { type Static, Type } from 'typebox';

const count = (description: string) => Type.Integer({ minimum: 0, description });

/** What one garbage collection of the object store found and freed (`POST /api/v1/admin/gc`, `mags server gc`). */
export const GcReport = Type.Object(
  {
    started_at: Type.String({ description: 'When the collection started (ISO-8601)' }),
    duration_ms: count('How long it took'),
    grace_ms: count("Unreferenced objects younger than this were kept (the server's --gc-grace)"),
    manifests_deleted: count('Workspace versions no head keeps (left by deleted workspaces, or by failed syncs)'),
    blobs_deleted: count("Blobs (one file's content each) that no kept version or fork referenced"),
    packs_deleted: count("Packs (many small files' content) that no kept version or fork referenced"),
    bytes_deleted: count('Bytes of the blobs and packs deleted'),
    blobs_spared: count('Unreferenced blobs kept because they are younger than the grace period'),
    packs_spared: count('Unreferenced packs kept because they are younger than the grace period'),
    blobs_referenced: count('Blobs kept because a version or a fork references them'),
    packs_referenced: count('Packs kept because a version or a fork references them'),
    bases: count('Base copies of forks found (always kept, with what they reference)'),
  },
  { $id: 'GcReport' },
);
export type GcReport = Static<typeof GcReport>;
