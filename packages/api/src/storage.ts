// Disk admission, one rule for the server (at submit, create, resize) and the agent (when it makes a disk).
// Sandbox layers and workspace disks are sparse files: each takes host space only as it fills, so what the disks
// a host holds may still grow into counts as taken, and a host keeps a reserve for itself.
import { type Static, Type } from 'typebox';
import { MagsError } from './errors.js';

export const GiB = 1024 ** 3;

const Bytes = Type.Integer({ minimum: 0, maximum: Number.MAX_SAFE_INTEGER });

/** What an agent reports about the filesystem holding its sandbox layers and workspace disks (agent protocol). */
export const HostStorage = Type.Object(
  {
    /** Size of that filesystem. */
    totalBytes: Bytes,
    /** Free on it now (what an unprivileged user may still use, as `df` shows it). */
    freeBytes: Bytes,
    /** Sum of the sizes of the disks the agent holds (workspace disks and ephemeral sandbox layers). */
    promisedBytes: Bytes,
    /** What those disks may still grow into: their sizes minus what they already take on the host. */
    growableBytes: Bytes,
  },
  { additionalProperties: false },
);
export type HostStorage = Static<typeof HostStorage>;

/** Kept free for the host itself: max(5 GiB, 5 % of the filesystem). */
export function storageReserveBytes(totalBytes: number): number {
  return Math.max(5 * GiB, Math.floor(totalBytes * 0.05));
}

/** Bytes a new disk (or a disk's growth) may still take: free, minus the reserve, minus what held disks may grow into. */
export function roomForDisks(s: HostStorage): number {
  return Math.max(0, s.freeBytes - storageReserveBytes(s.totalBytes) - s.growableBytes);
}

/**
 * 507 `insufficient_storage`, as a sentence: "a 500 GB disk does not fit: this server has 62 GB free for workspaces".
 * `what` is the disk asked for ("a 500 GB disk", "growing the disk by 20 GB"), `where` the place ("this server").
 */
export function diskDoesNotFit(what: string, roomBytes: number, where: string): MagsError {
  return new MagsError(
    507,
    'insufficient_storage',
    `${what} does not fit: ${where} has ${Math.floor(roomBytes / GiB)} GB free for workspaces and sandbox disks (ask for less with --disk, or free space on the host)`,
  );
}
