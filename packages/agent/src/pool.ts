// Sandboxes created ahead of demand, so a job's start path is a write to a waiting launcher. The pool follows demand:
// each job that finds it empty raises its target by one (up to the agent's capacity, while the host has memory to
// spare), and a quiet spell lowers it again, one step per period, down to its configured size.
import { freemem } from 'node:os';
import { GiB, roomForDisks } from '@mags/api';
import type { Logger } from 'pino';
import { type HostContext, Sandbox, type SandboxOptions } from './sandbox.js';

/** Delay for host work that must not sit on a job's critical path (spawning blocks the event loop for a few ms). */
export const OFF_PATH_DELAY_MS = 3;

/** A period without a job finding the pool empty lowers its target by one. */
const SHRINK_PERIOD_MS = 10_000;
/** Free host memory below which the pool does not grow past its configured size. */
const GROW_MIN_FREE_BYTES = 512 * 1024 ** 2;

export class WarmPool {
  private readonly ready: Sandbox[] = [];
  private creating = 0;
  private closed = false;
  private failures = 0;
  /** How many ready sandboxes the pool aims at now: between `size` and `max`. */
  private target: number;
  private lastMiss = 0;
  private readonly shrinkTimer: NodeJS.Timeout;

  constructor(
    private readonly ctx: HostContext,
    readonly size: number,
    readonly options: SandboxOptions,
    private readonly logger: Logger,
    private readonly maxParallel = 2,
    private readonly onChange: () => void = () => {},
    /** The most it grows to under a burst (the agent's capacity). */
    readonly max = size,
  ) {
    this.target = size;
    this.shrinkTimer = setInterval(() => this.shrink(), SHRINK_PERIOD_MS);
    this.shrinkTimer.unref();
  }

  get idle(): number {
    return this.ready.length;
  }

  /** The pool's current target (for status and tests). */
  get goal(): number {
    return this.target;
  }

  /** Whether the host's disk has room for a few more ephemeral layers beyond the one about to be made. */
  private diskRoom(): boolean {
    try {
      return roomForDisks(this.ctx.disks.report()) > 4 * this.options.diskGb * GiB;
    } catch {
      return false;
    }
  }

  private shrink(): void {
    if (this.closed || Date.now() - this.lastMiss < SHRINK_PERIOD_MS || this.target <= this.size) return;
    this.target--;
    // The sandbox made longest ago goes: removed off any job's path, like every teardown.
    if (this.ready.length > this.target) void this.ready.shift()?.destroy();
    this.onChange();
  }

  /**
   * A ready sandbox matching the pool's options, or undefined. The replacement is started `refillDelayMs` later, so
   * the spawns it needs don't hold up the job that just took a sandbox.
   */
  take(refillDelayMs = OFF_PATH_DELAY_MS): Sandbox | undefined {
    const sandbox = this.ready.shift();
    if (!sandbox || this.ready.length === 0) {
      // Demand outruns the pool: aim higher, while the host has memory to spare.
      this.lastMiss = Date.now();
      if (this.target < this.max && freemem() > GROW_MIN_FREE_BYTES && this.diskRoom()) this.target++;
    }
    setTimeout(() => this.refill(), refillDelayMs);
    return sandbox;
  }

  refill(): void {
    while (!this.closed && this.ready.length + this.creating < this.target && this.creating < this.maxParallel) {
      this.creating++;
      Sandbox.create(this.ctx, this.options)
        .then((sandbox) => {
          this.failures = 0;
          if (this.closed) return sandbox.destroy();
          this.ready.push(sandbox);
          this.onChange();
        })
        .catch((err) => {
          this.failures++;
          this.logger.error({ err }, 'could not prepare a warm sandbox');
        })
        .finally(() => {
          this.creating--;
          // Back off when creation keeps failing, instead of spinning.
          if (this.failures === 0) this.refill();
          else if (!this.closed) setTimeout(() => this.refill(), Math.min(30_000, 500 * 2 ** this.failures)).unref();
        });
    }
  }

  async close(): Promise<void> {
    this.closed = true;
    clearInterval(this.shrinkTimer);
    await Promise.all(this.ready.splice(0).map((s) => s.destroy()));
  }
}
