// The rule that lets blob garbage collection run while other hosts sync, without a lock between them.
//
// gc deletes a blob only if no manifest it listed references it AND the blob was last written more than GRACE before
// gc started listing, and the delete itself is conditional on that ("delete if unmodified since", atomic in the
// store). A sync reuses a blob it did not upload only if the blob is in the committed head it builds on (gc keeps
// those), or was last written less than GRACE/4 before the sync started; otherwise it uploads it again, which renews
// the blob's date. And a sync that has not written its manifest GRACE/4 after it started gives up.
// So any blob a new manifest references was written less than GRACE/2 before that manifest; a gc that did not see
// the manifest started listing before it was written, and its conditional delete of such a young blob fails.
// Clocks between hosts and the store may differ by up to GRACE/2 without breaking this.
//
// Packs (`packs/<sha256>`, many small blobs in one object) follow the same rule as blobs: a sync references a pack
// only if it uploaded it itself during the sync, or the committed head it builds on references it; gc keeps packs
// that a listed manifest or base copy references and deletes others older than GRACE, conditionally.
//
// A rollback references only what a kept version references, and commits by the same compare-and-swap, so that
// version stays kept until the new manifest is written (gc sees one or the other, as for a sync's committed head).
//
// A fork's base copy (`workspaces/<owner>/<name>/base`) is always live, and may reference old blobs. The fork checks
// after writing it that the version it copied is still kept (else it deletes the copy and fails), so that version's
// manifest existed from before the copy was read until after it was written; gc lists the workspaces a second time
// after listing blobs and packs, and reads every base and manifest that is new or written since it started. A copy
// it misses in that second listing was written after it, hence after the first listing passed the version's key:
// then the version's manifest existed (gc read it, or it vanished and gc starts over), or it was written after gc
// started and the rule above covers its blobs.

/** Two hours: syncs must finish within 30 minutes; blobs unreferenced for two hours may go. */
export const DEFAULT_GC_GRACE_MS = 2 * 3600_000;
