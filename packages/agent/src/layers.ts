// Ephemeral writable layers: sparse ext4 disks (see disks.ts), loop-mounted by the host helper, kept mounted from one
// sandbox to the next. Unmounting a loop-mounted disk waits for the kernel (10–80 ms on a busy host) and mounting a
// new one costs a copy and a mount, so a layer whose sandbox wrote little is emptied instead (its upper/ and work/
// deleted and made again: the next sandbox starts from an empty upper layer) and handed to the next sandbox of the
// same size. A layer is never shared by two sandboxes at once and keeps nothing of the previous one: only files,
// which are deleted (no process of the sandbox is left when it is given back).
import { randomBytes } from 'node:crypto';
import { chownSync, mkdirSync, statfsSync, statSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import path from 'node:path';
import { GiB } from '@mags/api';
import type { Logger } from 'pino';
import { type AgentConfig, hostNames } from './config.js';
import { type DiskLedger, layerTemplate, layerTemplatesDir } from './disks.js';
import type { HostHelper } from './hostd.js';

/** A layer whose sandbox wrote more than this is thrown away rather than emptied (deleting it costs more). */
const RECYCLE_MAX_WRITTEN = 64 * 1024 ** 2;
/** An idle layer left unused this long is removed. */
const IDLE_MS = 30_000;

export class Layer {
  /** What the empty layer's filesystem uses (its metadata), measured once mounted. */
  emptyBytes = 0;
  idleSince = 0;
  constructor(
    readonly dir: string,
    readonly sizeGb: number,
  ) {}

  get image(): string {
    return path.join(this.dir, 'layer.img');
  }

  /** Where the disk is mounted; it holds upper/ and work/. */
  get mount(): string {
    return path.join(this.dir, 'fs');
  }

  /** Bytes used on the layer's filesystem (one statfs, no process); 0 if it can't be read. */
  usedBytes(): number {
    try {
      const fs = statfsSync(this.mount);
      return (fs.blocks - fs.bfree) * fs.bsize;
    } catch {
      return 0;
    }
  }

  /** Bytes a sandbox wrote to it (beyond the empty filesystem's metadata). */
  written(): number {
    return Math.max(0, this.usedBytes() - this.emptyBytes);
  }
}

export interface LayerContext {
  config: AgentConfig;
  hostd: HostHelper;
  disks: DiskLedger;
  logger: Logger;
}

export class LayerPool {
  private readonly idle: Layer[] = [];
  private readonly timer: NodeJS.Timeout;
  private closed = false;
  recycled = 0;

  constructor(
    private readonly ctx: LayerContext,
    /** Emptied layers kept for the next sandboxes at most (each holds its disk's room in the ledger). */
    private readonly max: number,
  ) {
    this.timer = setInterval(() => this.shrink(), IDLE_MS / 2);
    this.timer.unref();
  }

  get idleCount(): number {
    return this.idle.length;
  }

  /** An empty layer of `sizeGb`: an emptied one, or a new one (507 if its disk does not fit). */
  async take(sizeGb: number): Promise<Layer> {
    const { config, hostd, disks, logger } = this.ctx;
    const i = this.idle.findIndex((l) => l.sizeGb === sizeGb);
    if (i >= 0) {
      const layer = this.idle.splice(i, 1)[0];
      try {
        disks.reserve(layer.image, sizeGb * GiB); // it may grow again
      } catch (err) {
        this.idle.push(layer);
        throw err;
      }
      return layer;
    }
    const layer = new Layer(
      path.join(hostNames(config).sandboxesDir, `layer-${randomBytes(6).toString('hex')}`),
      sizeGb,
    );
    // Before any host work: a layer that does not fit is refused with a sentence (507).
    disks.reserve(layer.image, sizeGb * GiB);
    try {
      mkdirSync(layer.dir, { mode: 0o700 });
      mkdirSync(layer.mount, { mode: 0o700 });
      const template = await layerTemplate(
        layerTemplatesDir(config),
        layer.image,
        sizeGb,
        config.userns.hostId,
        logger,
      );
      if (template) await hostd.request('copy-layer', template, layer.image);
      await hostd.request('mount-layer', layer.image, layer.mount);
      layer.emptyBytes = layer.usedBytes();
      return layer;
    } catch (err) {
      await this.remove(layer);
      throw err;
    }
  }

  /**
   * The sandbox of `layer` has no process left: the layer can't grow any more, so the room the ledger kept for it
   * is free for other disks at once (a burst's ending sandboxes would otherwise hold it until they are removed).
   */
  settle(layer: Layer): void {
    try {
      this.ctx.disks.adopt(layer.image, statSync(layer.image).blocks * 512);
    } catch {
      /* gone already */
    }
  }

  /**
   * A layer whose sandbox has ended and whose overlay is unmounted: emptied and kept for the next sandbox when it
   * holds little and `reusable` (no process of its sandbox can be left), removed otherwise.
   */
  async give(layer: Layer, reusable: boolean): Promise<void> {
    const written = layer.written();
    if (!reusable || this.closed || written > RECYCLE_MAX_WRITTEN || this.idle.length >= this.max) {
      // What a script wrote is deleted before the unmount, which would write it all to the image.
      if (written > RECYCLE_MAX_WRITTEN) await this.empty(layer).catch(() => {});
      return this.remove(layer);
    }
    try {
      await this.empty(layer);
      const owner = this.ctx.config.userns.hostId;
      // As the template made them: the sandbox's root owns its upper layer (its /).
      for (const d of ['upper', 'work']) {
        mkdirSync(path.join(layer.mount, d), { mode: 0o755 });
        chownSync(path.join(layer.mount, d), owner, owner);
      }
    } catch (err) {
      this.ctx.logger.warn({ err, layer: layer.dir }, 'could not empty a layer; removing it');
      return this.remove(layer);
    }
    layer.idleSince = Date.now();
    this.recycled++;
    this.idle.push(layer);
  }

  /** Deletes what a sandbox wrote (never following a link it made: rm does not). */
  private async empty(layer: Layer): Promise<void> {
    for (const d of ['upper', 'work']) await rm(path.join(layer.mount, d), { recursive: true, force: true });
  }

  /** Unmounts a layer and deletes its disk. */
  private async remove(layer: Layer): Promise<void> {
    const { hostd, disks, logger } = this.ctx;
    try {
      await hostd.request('umount', layer.mount);
      // Never deleted through a mount that is still there.
      await rm(layer.dir, { recursive: true, force: true });
    } catch (err) {
      logger.warn({ err, layer: layer.dir }, 'could not remove a layer (the agent removes it at its next start)');
    }
    disks.release(layer.image);
  }

  /** Removes the layers idle for long: the pool follows demand down as well as up. */
  private shrink(): void {
    const old = Date.now() - IDLE_MS;
    for (let i = this.idle.length - 1; i >= 0; i--) {
      if (this.idle[i].idleSince < old) void this.remove(this.idle.splice(i, 1)[0]);
    }
  }

  async close(): Promise<void> {
    this.closed = true;
    clearInterval(this.timer);
    await Promise.all(this.idle.splice(0).map((l) => this.remove(l)));
  }
}
