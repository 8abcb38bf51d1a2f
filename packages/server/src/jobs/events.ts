// In-process notifications about jobs, keyed by job id: new log lines and status changes. Long-polls and
// log followers wait on these instead of polling the store. They are hints: the store stays the truth.
import { EventEmitter } from 'node:events';
import type { OutputLine } from '@mags/api';
import type { Job } from '../store/index.js';

export type JobEvent = { type: 'logs'; lines: OutputLine[] } | { type: 'status'; job: Job };

export class JobEvents {
  private readonly emitter = new EventEmitter();

  constructor() {
    // Any number of clients may follow one job.
    this.emitter.setMaxListeners(0);
  }

  /** Calls `listener` for each event about `jobId` until the returned function is called. */
  subscribe(jobId: string, listener: (event: JobEvent) => void): () => void {
    this.emitter.on(jobId, listener);
    return () => this.emitter.off(jobId, listener);
  }

  emit(jobId: string, event: JobEvent): void {
    // A failing listener must not break the agent report or request that emits.
    for (const listener of this.emitter.listeners(jobId) as Array<(e: JobEvent) => void>) {
      try {
        listener(event);
      } catch {
        /* the listener's own error handling logs */
      }
    }
  }

  listenerCount(jobId: string): number {
    return this.emitter.listenerCount(jobId);
  }
}
