// A workspace's disk: a sparse file holding an ext4 filesystem of the workspace's size, loop-mounted on the host.
// The sandbox's overlay upper layer lives on it, so filling it gives the script ENOSPC and nothing else.
// Its root, upper/ and work/ belong to the sandboxes' root (the user namespace's uid 0).
import { existsSync, mkdirSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import type { Logger } from 'pino';
import { type IdRange, ownBySandboxRoot, shiftTree } from '../ids.js';
import { run, sh, shq } from '../process.js';

export class WorkspaceDisk {
  constructor(
    /** Directory holding disk.img and the mount point. */
    readonly dir: string,
    private readonly logger: Logger,
    /** The sandboxes' user namespace. */
    private readonly ids: IdRange,
  ) {}

  get image(): string {
    return path.join(this.dir, 'disk.img');
  }
  get mountPoint(): string {
    return path.join(this.dir, 'mnt');
  }
  get upper(): string {
    return path.join(this.mountPoint, 'upper');
  }
  get work(): string {
    return path.join(this.mountPoint, 'work');
  }

  /** The disk's size in GB (whole GB: disks are only ever made and grown in whole GB). */
  sizeGb(): number {
    return Math.round(statSync(this.image).size / 1024 ** 3);
  }

  exists(): boolean {
    return existsSync(this.image);
  }

  mounted(): boolean {
    const mp = this.mountPoint;
    return readFileSync('/proc/self/mountinfo', 'utf8')
      .split('\n')
      .some((l) => l.split(' ')[4] === mp);
  }

  /** Creates the filesystem (sparse: it takes space only as it fills). */
  async create(sizeGb: number): Promise<void> {
    mkdirSync(this.mountPoint, { recursive: true, mode: 0o700 });
    const img = shq(this.image);
    await sh(
      `truncate -s ${sizeGb}G ${img} && mkfs.ext4 -q -F -m 0 -E lazy_itable_init=1,lazy_journal_init=1,nodiscard,root_owner=${this.ids.hostId}:${this.ids.hostId} -L mags-ws ${img}`,
      { logger: this.logger },
    );
  }

  async mount(): Promise<void> {
    if (!this.mounted()) {
      mkdirSync(this.mountPoint, { recursive: true, mode: 0o700 });
      const mp = shq(this.mountPoint);
      await sh(`mount -o loop,nosuid,nodev,noatime ${shq(this.image)} ${mp} && mkdir -p ${mp}/upper ${mp}/work`, {
        logger: this.logger,
      });
    }
    await this.ownRoots(); // also for a disk a crashed agent left mounted
  }

  /**
   * Gives the disk's root, upper/ and work/ to the sandboxes' root. A disk made before sandboxes ran in a user
   * namespace (its root is still host root's) has its whole layer shifted into the namespace's ids once, so its files
   * keep their owners as seen inside; the disk's root changes owner last, marking the shift done. Only while no
   * sandbox uses the disk (at mount, or after a restore).
   */
  async ownRoots(): Promise<void> {
    if (statSync(this.mountPoint).uid !== this.ids.hostId) {
      const started = Date.now();
      const r = await shiftTree(this.upper, this.ids);
      this.logger.info(
        { disk: this.dir, ...r, ms: Date.now() - started },
        "workspace disk from before user namespaces: its files' owners shifted into the sandboxes' ids",
      );
    }
    for (const p of [this.upper, this.work, this.mountPoint]) ownBySandboxRoot(p, this.ids);
  }

  async unmount(): Promise<void> {
    if (!this.mounted()) return;
    await run('umount', [this.mountPoint], { logger: this.logger });
  }

  /**
   * Waits until no loop device holds the image any more (`mount -o loop` sets autoclear: the device goes with the
   * last user of the filesystem, in whatever mount namespace); refuses after `timeoutMs`.
   */
  async waitReleased(timeoutMs = 30_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const held = (await run('losetup', ['-j', this.image], { logger: this.logger })).stdout.trim();
      if (held === '') return;
      if (Date.now() > deadline) {
        this.logger.warn({ disk: this.dir, held }, 'a workspace disk to grow is still held after its unmount');
        throw new Error('the workspace disk is still held by a sandbox that is stopping; try again in a moment');
      }
      await new Promise((r) => setTimeout(r, 100));
    }
  }

  /** Grows the filesystem to sizeGb (unmounting it meanwhile if mounted), without touching its contents. Shrinking is refused. */
  async grow(sizeGb: number): Promise<void> {
    const img = shq(this.image);
    const current = statSync(this.image).size;
    const wanted = sizeGb * 1024 ** 3;
    if (wanted < current)
      throw new Error(`a workspace disk can only grow: it is ${Math.round(current / 1024 ** 3)} GB`);
    if (wanted === current) return;
    // Online growth (EXT4_IOC_RESIZE_FS) is refused on some kernels ("Permission denied"), so the disk is grown
    // unmounted; callers make sure no sandbox uses it.
    const wasMounted = this.mounted();
    if (wasMounted) await this.unmount();
    // The filesystem must be gone, not just unmounted here: a sandbox that just stopped may still hold it through its
    // own mount namespace (its overlay's private clone of the mount) for a moment. Resized under that live
    // superblock, the image would be remounted on the same loop device with the old size, or written back over.
    await this.waitReleased();
    await sh(
      `truncate -s ${sizeGb}G ${img} && (e2fsck -f -y ${img} >/dev/null 2>&1 || true) && resize2fs ${img} >/dev/null 2>&1`,
      { logger: this.logger },
    );
    if (wasMounted) await this.mount();
  }
}
