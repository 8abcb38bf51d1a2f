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

/** Two hours: syncs must finish within 30 minutes; blobs unreferenced for two hours may go. */
export const DEFAULT_GC_GRACE_MS = 2 * 3600_000;
