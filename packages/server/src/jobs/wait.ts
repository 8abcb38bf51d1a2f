// Waiting for a job to reach a state without polling the store: subscribe to its events first, then read it once.
import { isTerminal } from '@mags/api';
import type { Job, Store } from '../store/index.js';
import type { JobEvents } from './events.js';

/** Whether a job's script has ended: it finished, or (a persistent run, or a sandbox that went idle) it sleeps. */
export function hasSettled(job: Job): boolean {
  return isTerminal(job.status) || job.status === 'sleeping';
}

/**
 * Resolves with the job once `until(job)` holds, or as it is when `timeoutMs` passes or `signal` aborts.
 * Undefined if the job does not exist.
 */
export function waitForJob(
  store: Store,
  events: JobEvents,
  jobId: string,
  until: (job: Job) => boolean,
  timeoutMs: number,
  signal?: AbortSignal,
): Promise<Job | undefined> {
  return new Promise<Job | undefined>((resolve, reject) => {
    let done = false;
    const settle = (outcome: () => void) => {
      if (done) return;
      done = true;
      unsubscribe();
      clearTimeout(timer);
      signal?.removeEventListener('abort', rereadAndSettle);
      outcome();
    };
    function rereadAndSettle() {
      settle(() => store.jobs.get(jobId).then(resolve, reject));
    }
    // Subscribe before reading, so a change between the read and the subscription cannot be missed.
    const unsubscribe = events.subscribe(jobId, (event) => {
      if (event.type === 'status' && until(event.job)) settle(() => resolve(event.job));
    });
    const timer = setTimeout(rereadAndSettle, Math.max(0, timeoutMs));
    if (signal?.aborted) return rereadAndSettle();
    signal?.addEventListener('abort', rereadAndSettle, { once: true });
    store.jobs.get(jobId).then(
      (job) => {
        if (!job || until(job) || timeoutMs <= 0) settle(() => resolve(job));
      },
      (err: unknown) => settle(() => reject(err)),
    );
  });
}

/** Resolves with the job once it is terminal, or as it is when `timeoutMs` passes or `signal` aborts. */
export function waitForTerminal(
  store: Store,
  events: JobEvents,
  jobId: string,
  timeoutMs: number,
  signal?: AbortSignal,
): Promise<Job | undefined> {
  return waitForJob(store, events, jobId, (job) => isTerminal(job.status), timeoutMs, signal);
}
