// A small pool of sandboxes created ahead of demand, so a job's start path is a write to a waiting launcher.
import type { Logger } from 'pino';
import { type HostContext, Sandbox, type SandboxOptions } from './sandbox.js';

/** Delay for host work that must not sit on a job's critical path (spawning blocks the event loop for a few ms). */
export const OFF_PATH_DELAY_MS = 3;

export class WarmPool {
  private readonly ready: Sandbox[] = [];
  private creating = 0;
  private closed = false;
  private failures = 0;

  constructor(
    private readonly ctx: HostContext,
    readonly size: number,
    readonly options: SandboxOptions,
    private readonly logger: Logger,
    private readonly maxParallel = 2,
    private readonly onChange: () => void = () => {},
  ) {}

  get idle(): number {
    return this.ready.length;
  }

  /**
   * A ready sandbox matching the pool's options, or undefined. The replacement is started a moment later, so the
   * spawns it needs don't hold up the job that just took a sandbox.
   */
  take(): Sandbox | undefined {
    const sandbox = this.ready.shift();
    setTimeout(() => this.refill(), OFF_PATH_DELAY_MS);
    return sandbox;
  }

  refill(): void {
    while (!this.closed && this.ready.length + this.creating < this.size && this.creating < this.maxParallel) {
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
    await Promise.all(this.ready.splice(0).map((s) => s.destroy()));
  }
}
