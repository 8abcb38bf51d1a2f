// Storage reclaim: garbage collection of the object store, every `gcIntervalMs` and on demand, one run at a time
// per server. What may be deleted, and why that is safe while agents sync, is the library's (objects/src/sync/gc.ts);
// several servers on one store may each run it (its deletes are conditional), they only repeat each other's work.

import { type GcReport, MagsError } from '@mags/api';
import { type GcResult, gc, type ObjectStore } from '@mags/objects';
import type { Logger } from 'pino';

export interface StorageReclaimOptions {
  objects: ObjectStore;
  logger: Logger;
  /** Time between the end of one scheduled run and the start of the next; 0: only on demand. */
  intervalMs: number;
  /** The grace period the agents' syncs use too (config.gcGraceMs). */
  graceMs: number;
}

export type GcTrigger = 'schedule' | 'request';

export class StorageReclaim {
  private readonly objects: ObjectStore;
  private readonly logger: Logger;
  private readonly intervalMs: number;
  private readonly graceMs: number;
  private readonly stop = new AbortController();
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<GcReport> | undefined;
  /** The run that starts when the current one ends, shared by every request that arrived meanwhile. */
  private queued: Promise<GcReport> | undefined;

  constructor(options: StorageReclaimOptions) {
    this.objects = options.objects;
    this.logger = options.logger.child({ part: 'gc' });
    this.intervalMs = options.intervalMs;
    this.graceMs = options.graceMs;
  }

  /** Schedules the first run one interval from now (a restart does not trigger a run); nothing if the interval is 0. */
  start(): void {
    if (this.intervalMs === 0 || this.stop.signal.aborted) return;
    this.logger.info({ intervalMs: this.intervalMs, graceMs: this.graceMs }, 'object store gc scheduled');
    this.timer = setTimeout(() => void this.tick(), this.intervalMs);
  }

  /**
   * Runs a collection and answers what it freed. While one runs, the caller waits for it to end and then shares the
   * next run, so the answer covers everything deleted before the call. Rejects with the run's error: 409 when syncs
   * kept pruning versions it was reading (the library already tried three times), 503 when the server closes.
   */
  collect(trigger: GcTrigger = 'request'): Promise<GcReport> {
    if (!this.running) return this.launch(trigger);
    const ended = this.running.then(noop, noop);
    this.queued ??= ended.then(() => {
      this.queued = undefined;
      return this.launch(trigger);
    });
    return this.queued;
  }

  /** Stops the schedule, aborts a run under way and waits until it has stopped. Idempotent. */
  async close(): Promise<void> {
    clearTimeout(this.timer);
    const why = 'the server is shutting down: gc stopped early (what it deleted is gone; run it again later)';
    this.stop.abort(new MagsError(503, 'unavailable', why));
    await Promise.allSettled([this.running, this.queued]);
  }

  private async tick(): Promise<void> {
    // A run someone asked for is under way: this interval's work is being done.
    if (!this.running) await this.launch('schedule').catch(() => undefined); // logged by the run
    if (!this.stop.signal.aborted) this.timer = setTimeout(() => void this.tick(), this.intervalMs);
  }

  private launch(trigger: GcTrigger): Promise<GcReport> {
    if (this.stop.signal.aborted) return Promise.reject(this.stop.signal.reason);
    const run: Promise<GcReport> = this.runOnce(trigger).finally(() => {
      if (this.running === run) this.running = undefined;
    });
    this.running = run;
    return run;
  }

  private async runOnce(trigger: GcTrigger): Promise<GcReport> {
    const started = new Date();
    this.logger.debug({ trigger, graceMs: this.graceMs }, 'object store gc started');
    let result: GcResult;
    try {
      result = await gc(this.objects, { graceMs: this.graceMs, signal: this.stop.signal });
    } catch (err) {
      if (this.stop.signal.aborted) {
        this.logger.info({ trigger }, 'object store gc stopped: the server is closing');
        throw this.stop.signal.reason;
      }
      if (err instanceof MagsError && err.status === 409) {
        const msg = 'object store gc gave up: syncs kept pruning the versions it read; the next run tries again';
        this.logger.warn({ err, trigger }, msg);
      } else {
        this.logger.error({ err, trigger }, 'object store gc failed; the next run tries again');
      }
      throw err;
    }
    const report = toReport(result, started, this.graceMs);
    this.logger.info({ trigger, ...result, durationMs: report.duration_ms }, 'object store gc finished');
    return report;
  }
}

const noop = (): void => undefined;

function toReport(r: GcResult, started: Date, graceMs: number): GcReport {
  return {
    started_at: started.toISOString(),
    duration_ms: Date.now() - started.getTime(),
    grace_ms: graceMs,
    manifests_deleted: r.manifestsDeleted,
    blobs_deleted: r.blobsDeleted,
    packs_deleted: r.packsDeleted,
    bytes_deleted: r.bytesDeleted,
    blobs_spared: r.blobsSpared,
    packs_spared: r.packsSpared,
    blobs_referenced: r.blobsReferenced,
    packs_referenced: r.packsReferenced,
    bases: r.bases,
  };
}
