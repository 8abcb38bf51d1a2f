// In-process notifications about jobs, keyed by job id: new log lines and status changes. Long-polls and
// log followers wait on these instead of polling the store. They are hints: the store stays the truth.
import { EventEmitter } from 'node:events';
import type { OutputLine } from '@mags/api';
import type { Job } from '../store/index.js';

export type JobEvent = { type: 'logs'; lines: OutputLine[] } | { type: 'status'; job: Job };

/** Not a job id (ids are UUIDs): the channel of every job's status changes. */
const ANY_STATUS = '*status';

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

  /** Calls `listener` for every status change of any job (the router front's map) until the returned function is called. */
  onAnyStatus(listener: (job: Job) => void): () => void {
    this.emitter.on(ANY_STATUS, listener);
    return () => this.emitter.off(ANY_STATUS, listener);
  }

  emit(jobId: string, event: JobEvent): void {
    if (event.type === 'status') {
      for (const listener of this.emitter.listeners(ANY_STATUS) as Array<(job: Job) => void>) {
        try {
          listener(event.job);
        } catch {
          /* the listener's own error handling logs */
        }
      }
    }
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
