// Packs: small blobs concatenated into one object (`packs/<sha256 of the pack>`), so a restore fetches a few large
// objects (or ranges of them) instead of thousands of tiny ones. A manifest entry names its pack, offset and length;
// the blob's own sha256 still verifies the bytes it gets.
import { createHash } from 'node:crypto';
import type { ObjectStore } from '../store.js';
import { type PackRef, packKey } from './manifest.js';

/** Blobs up to this size are packed by default (larger ones are few, and cheap to fetch one by one). */
export const DEFAULT_PACK_THRESHOLD = 64 * 1024;
/** A pack is sealed and uploaded once it holds this much. */
export const PACK_TARGET = 4 * 1024 * 1024;

interface Member {
  sha256: string;
  data: Buffer;
  offset: number;
}

/**
 * Collects the small blobs of one snapshot into packs. add() returns at once, except for the call that fills a pack,
 * which uploads it (so uploads are bounded by the caller's concurrency); flush() uploads the rest.
 */
export class PackWriter {
  uploadedPacks = 0;
  uploadedBytes = 0;
  private open: Member[] = [];
  private openSize = 0;
  private readonly pending = new Map<string, { offset: number; length: number; pack?: string }>();

  constructor(
    private readonly store: ObjectStore,
    private readonly target = PACK_TARGET,
  ) {}

  /** Adds a blob whose hash the caller has verified; a blob already added is not added again. */
  async add(sha256: string, data: Buffer): Promise<void> {
    if (this.pending.has(sha256)) return;
    this.pending.set(sha256, { offset: this.openSize, length: data.length });
    this.open.push({ sha256, data, offset: this.openSize });
    this.openSize += data.length;
    if (this.openSize >= this.target) await this.seal();
  }

  /** Uploads the last, partly filled pack. */
  async flush(): Promise<void> {
    if (this.open.length > 0) await this.seal();
  }

  /** Where a blob went, once its pack is uploaded. */
  ref(sha256: string): PackRef | undefined {
    const p = this.pending.get(sha256);
    return p?.pack === undefined ? undefined : { sha256: p.pack, offset: p.offset, length: p.length };
  }

  private async seal(): Promise<void> {
    const members = this.open;
    this.open = [];
    this.openSize = 0;
    const body = Buffer.concat(members.map((m) => m.data));
    const sha = createHash('sha256').update(body).digest('hex');
    // A plain put: it also renews the date of an identical pack that gc might be about to delete (gc-policy.ts).
    await this.store.put(packKey(sha), body);
    this.uploadedPacks++;
    this.uploadedBytes += body.length;
    for (const m of members) this.pending.get(m.sha256)!.pack = sha;
  }
}

export interface PackRead {
  /** The pack's sha256. */
  pack: string;
  start: number;
  length: number;
  /** The blobs in this range, with their offsets in the pack. */
  members: { sha256: string; offset: number; length: number }[];
}

/**
 * Groups the blobs wanted from packs into ranged reads: blobs of one pack that lie closer than `gap` bytes are read
 * together (fetching the bytes between costs less than another request), up to `maxRead` bytes per read.
 */
export function planPackReads(
  wanted: Iterable<{ sha256: string; ref: PackRef }>,
  gap = 256 * 1024,
  maxRead = PACK_TARGET,
): PackRead[] {
  const byPack = new Map<string, { sha256: string; offset: number; length: number }[]>();
  for (const w of wanted) {
    let list = byPack.get(w.ref.sha256);
    if (!list) byPack.set(w.ref.sha256, (list = []));
    list.push({ sha256: w.sha256, offset: w.ref.offset, length: w.ref.length });
  }
  const reads: PackRead[] = [];
  for (const [pack, list] of byPack) {
    list.sort((a, b) => a.offset - b.offset);
    let cur: PackRead | undefined;
    for (const m of list) {
      const end = m.offset + m.length;
      if (cur && m.offset - (cur.start + cur.length) <= gap && end - cur.start <= maxRead) {
        cur.length = Math.max(cur.length, end - cur.start);
        cur.members.push(m);
        continue;
      }
      cur = { pack, start: m.offset, length: m.length, members: [m] };
      reads.push(cur);
    }
  }
  // Largest first, so the long transfers overlap the many short ones.
  return reads.sort((a, b) => b.length - a.length);
}
