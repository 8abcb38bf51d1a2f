// The disks this agent has promised (ephemeral sandbox layers and workspace disks, all sparse files on one host
// filesystem) and the admission of new ones: a disk is made only if it fits in the free space, minus the host's
// reserve, minus what the disks already promised may still grow into. Check and record happen in one synchronous
// step, so two disks made at once cannot both take the last room.
import { randomBytes } from 'node:crypto';
import { existsSync, statfsSync, statSync } from 'node:fs';
import path from 'node:path';
import { diskDoesNotFit, GiB, type HostStorage, roomForDisks } from '@mags/api';
import type { Logger } from 'pino';
import type { AgentConfig } from './config.js';
import { sh, shq } from './process.js';

export class DiskLedger {
  /** Disk image path → its size in bytes. */
  private readonly disks = new Map<string, number>();

  constructor(
    /** A directory on the filesystem holding the disks (workspace disks and sandbox layers share it). */
    private readonly dir: string,
    private readonly onChange: () => void = () => {},
  ) {}

  /**
   * Records a disk of `bytes` at `file` (not made yet, or about to grow) if it fits; throws 507
   * `insufficient_storage` with a sentence otherwise. `what` names it for that sentence ("a 2 GB disk").
   */
  reserve(file: string, bytes: number, what = `a ${Math.round(bytes / GiB)} GB disk`): void {
    const growth = bytes - (this.disks.get(file) ?? 0);
    if (growth > 0) {
      const room = roomForDisks(this.report());
      if (growth > room) throw diskDoesNotFit(what, room, 'this host');
    }
    this.disks.set(file, Math.max(bytes, this.disks.get(file) ?? 0));
    this.onChange();
  }

  /** Records a disk that already exists (found at start), without a check: it is there either way. */
  adopt(file: string, bytes: number): void {
    this.disks.set(file, bytes);
    this.onChange();
  }

  /** The disk is gone (or was never made). */
  release(file: string): void {
    if (this.disks.delete(file)) this.onChange();
  }

  /** The figures the server admits disks against. Cheap: one statfs and one stat per disk held. */
  report(): HostStorage {
    const fs = statfsSync(this.dir);
    let promised = 0;
    let growable = 0;
    for (const [file, size] of this.disks) {
      promised += size;
      let allocated = 0;
      try {
        allocated = statSync(file).blocks * 512;
      } catch {
        /* not made yet: all of it may still be taken */
      }
      growable += Math.max(0, size - allocated);
    }
    return {
      totalBytes: fs.blocks * fs.bsize,
      freeBytes: fs.bavail * fs.bsize,
      promisedBytes: promised,
      growableBytes: growable,
    };
  }
}

/** Sizes up to this have a template made once (≤ ~1 MB of data each); bigger layers are made with mkfs each time. */
const TEMPLATE_MAX_GB = 64;

/**
 * An ephemeral sandbox's writable layer is a sparse ext4 of `sizeGb` holding upper/ and work/, loop-mounted
 * `nosuid,nodev` by the host helper. It lives only as long as its sandbox, so it has no journal, its inode tables are
 * never zeroed (noinit_itable), and it never flushes (nobarrier: a flush through the loop device is an fsync of the
 * image on the host's disk, at every mount and unmount). A layer is a sparse copy (by the host helper, no process) of
 * a template made once per size in `templatesDir`: mkfs syncs the image it writes, which costs tens of ms on a busy
 * disk. Bigger layers than TEMPLATE_MAX_GB are made with mkfs each time.
 *
 * Resolves with the template to copy, or undefined once `image` itself was made with mkfs.
 */
export function layerTemplate(
  templatesDir: string,
  image: string,
  sizeGb: number,
  owner: number,
  logger: Logger,
): Promise<string | undefined> {
  const root = shq(path.join(templatesDir, 'root'));
  const mkfs = (file: string) =>
    `mkfs.ext4 -q -F -m 0 -O ^has_journal,^resize_inode -E lazy_itable_init=1,nodiscard,root_owner=${owner}:${owner} -d ${root} -L mags-layer ${file} ${sizeGb}G >/dev/null`;
  // The layer's root, upper/ and work/ belong to the sandbox's root (the user namespace's host id).
  const withRoot = `install -d -o ${owner} -g ${owner} -m 0700 ${root} && install -d -o ${owner} -g ${owner} -m 0755 ${root}/upper ${root}/work && `;
  if (sizeGb > TEMPLATE_MAX_GB) return sh(withRoot + mkfs(shq(image)), { logger }).then(() => undefined);
  const template = path.join(templatesDir, `${sizeGb}G-u${owner}.img`);
  if (existsSync(template)) return Promise.resolve(template);
  let making = templatesMaking.get(template);
  if (!making) {
    // Made under a name of its own, then renamed: a sandbox never copies a half-written template.
    const partial = shq(`${template}.${randomBytes(4).toString('hex')}`);
    making = sh(`mkdir -p ${shq(templatesDir)} && ${withRoot}${mkfs(partial)} && mv ${partial} ${shq(template)}`, {
      logger,
    })
      .then(() => template)
      .finally(() => templatesMaking.delete(template));
    templatesMaking.set(template, making);
  }
  return making;
}

/** Templates being made, so sandboxes made at once wait for one mkfs. */
const templatesMaking = new Map<string, Promise<string>>();

/** Where the layer templates live: in the runtime directory (tmpfs), so each holds only its few hundred KB of RAM. */
export function layerTemplatesDir(config: AgentConfig): string {
  return path.join(config.runtimeRoot, 'layers');
}
