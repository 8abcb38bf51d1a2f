// Job retention: finished jobs and their output are deleted `retainDays` after they ended, by a sweep that runs
// at start and then periodically. Unfinished jobs (accepted, running, sleeping) are never touched.
import type { Logger } from 'pino';
import type { Store } from '../store/index.js';

/** How often the sweep runs by default. */
export const RETENTION_SWEEP_MS = 60 * 60 * 1000;
/** Jobs deleted per query of the sweep; it goes on until none is left. */
const SWEEP_PAGE = 100;
const DAY_MS = 24 * 60 * 60 * 1000;

export class JobRetention {
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<number> | undefined;
  private closed = false;

  constructor(
    private readonly store: Store,
    private readonly logger: Logger,
    private readonly retainDays: number,
    private readonly intervalMs = RETENTION_SWEEP_MS,
  ) {}

  /** Sweeps now (in the background) and then every interval. Does nothing when jobs are kept forever (0 days). */
  start(): void {
    if (this.retainDays === 0 || this.closed) return;
    const tick = () => {
      void this.sweep().finally(() => {
        if (!this.closed) this.timer = setTimeout(tick, this.intervalMs);
      });
    };
    tick();
  }

  /** Deletes the jobs that ended more than retainDays before `now`; returns how many. Never throws. */
  sweep(now = Date.now()): Promise<number> {
    this.running ??= this.sweepOnce(now).finally(() => (this.running = undefined));
    return this.running;
  }

  /** Stops the timer and waits for a sweep under way. */
  async close(): Promise<void> {
    this.closed = true;
    clearTimeout(this.timer);
    await this.running;
  }

  private async sweepOnce(now: number): Promise<number> {
    const cutoff = now - this.retainDays * DAY_MS;
    let deleted = 0;
    try {
      while (!this.closed) {
        const ids = await this.store.jobs.finishedBefore(cutoff, SWEEP_PAGE);
        for (const id of ids) {
          if (this.closed) break;
          if ((await this.store.jobs.deleteFinished(id)) === 'deleted') deleted++;
        }
        if (ids.length < SWEEP_PAGE) break;
      }
    } catch (err) {
      this.logger.error({ err }, 'deleting expired jobs failed; the next sweep tries again');
    }
    if (deleted > 0)
      this.logger.info({ deleted, retainDays: this.retainDays }, 'deleted finished jobs past their retention');
    return deleted;
  }
}
