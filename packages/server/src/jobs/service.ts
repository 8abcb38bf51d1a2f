// The job service behind the job routes: submit (plan, admission, dispatch), find, status with a long-poll, list,
// logs, stop and delete. Every lookup is for the caller only: another user's job is simply not found.
import { isTerminal, type JobSubmit, MagsError } from '@mags/api';
import type { Job, LogRow } from '../store/index.js';
import type { Dispatcher } from './dispatch.js';
import { type AdmissionDeps, admitJob, type PlanOptions, planJob } from './submit.js';
import { hasSettled, waitForJob, waitForTerminal } from './wait.js';

/** How long `stop` waits for the agent to confirm before answering with the job as it is. */
const STOP_CONFIRM_MS = 10_000;

export interface JobServiceDeps extends AdmissionDeps {
  dispatcher: Dispatcher;
}

export class JobService {
  /** Aborted when the server closes: waits (long-polls, stops) answer at once with the job as it is. */
  private readonly abort = new AbortController();

  constructor(private readonly deps: JobServiceDeps) {}

  /** Accepts a submission for `userId`: planned, admitted and stored, then handed to dispatch. */
  async submit(userId: string, body: JobSubmit, options?: PlanOptions): Promise<Job> {
    const job = await admitJob(this.deps, userId, planJob(body, options));
    this.deps.logger.info({ jobId: job.id, name: job.name, workspace: job.workspace_id ?? undefined }, 'job accepted');
    this.deps.dispatcher.requestDispatch();
    return job;
  }

  /** The caller's job by request id, else their newest job of that name; 404 if neither. */
  async find(userId: string, ref: string): Promise<Job> {
    const job = await this.deps.store.jobs.find(userId, ref);
    if (!job) throw MagsError.notFound(`job "${ref}" not found`);
    return job;
  }

  /**
   * The job; with `waitS` > 0, once its script has ended (it finished, or sleeps) or `waitS` seconds passed (or
   * `signal` aborted, or the server closed).
   */
  async status(userId: string, ref: string, waitS: number, signal: AbortSignal): Promise<Job> {
    const job = await this.find(userId, ref);
    if (waitS <= 0 || hasSettled(job)) return job;
    // Either the caller's signal or the server closing ends the wait (listeners, not AbortSignal.any: that one keeps
    // every signal it made alive as long as the server's own, here for the life of the server).
    const either = new AbortController();
    const abort = () => either.abort();
    signal.addEventListener('abort', abort, { once: true });
    this.abort.signal.addEventListener('abort', abort, { once: true });
    if (signal.aborted || this.abort.signal.aborted) either.abort();
    try {
      const { store, events } = this.deps;
      return (await waitForJob(store, events, job.id, hasSettled, waitS * 1000, either.signal)) ?? job;
    } finally {
      signal.removeEventListener('abort', abort);
      this.abort.signal.removeEventListener('abort', abort);
    }
  }

  list(userId: string, page: number, pageSize: number): Promise<{ jobs: Job[]; total: number }> {
    return this.deps.store.jobs.list(userId, page, pageSize);
  }

  /** The job's stored lines after `after`, at most `limit`. */
  async logs(userId: string, ref: string, after: number, limit: number): Promise<LogRow[]> {
    const job = await this.find(userId, ref);
    return this.deps.store.logs.read(job.id, after, limit);
  }

  /**
   * Stops the caller's job (by id, else the unfinished job of that name or on the workspace of that name, as exec
   * finds it); 409 if it has already finished.
   */
  async stop(userId: string, ref: string): Promise<Job> {
    const job = await this.deps.store.jobs.findLive(userId, ref);
    if (!job) throw MagsError.notFound(`job "${ref}" not found`);
    if (isTerminal(job.status)) {
      throw MagsError.conflict(`job "${ref}" has already finished (${job.status}); there is nothing to stop`);
    }
    let stopped: Job;
    try {
      stopped = await this.stopById(job.id);
    } catch (err) {
      if (err instanceof MagsError && err.status === 409) {
        throw MagsError.conflict(`job "${ref}" has already finished; there is nothing to stop`);
      }
      throw err;
    }
    this.deps.logger.info({ jobId: job.id, status: stopped.status }, 'stop requested');
    return stopped;
  }

  /**
   * Stops a job. A queued job stops at once; a job on an agent is stopped by the agent, and this waits
   * (briefly) for its confirmation. Throws 409 if the job had already finished.
   */
  async stopById(jobId: string): Promise<Job> {
    const { store, events, agents, logger } = this.deps;
    let job = await store.jobs.get(jobId);
    if (!job) throw MagsError.notFound(`job "${jobId}" not found`);
    if (job.status === 'accepted' && job.agent_id === null) {
      const stopped = await store.jobs.stopQueued(job.id);
      if (stopped) {
        logger.info({ jobId }, 'queued job stopped');
        events.emit(jobId, { type: 'status', job: stopped });
        return stopped;
      }
      job = (await store.jobs.get(jobId)) ?? job; // handed to an agent meanwhile
    }
    if (isTerminal(job.status)) {
      throw MagsError.conflict(`job "${jobId}" has already finished (${job.status}); there is nothing to stop`);
    }
    if (job.agent_id !== null && agents.stop(job.agent_id, job.id)) {
      return (await waitForTerminal(store, events, job.id, STOP_CONFIRM_MS, this.abort.signal)) ?? job;
    }
    // No agent here holds it (it left, or the job never reached one): nothing runs, so it is stopped.
    const finished = await store.jobs.finish(job.id, {
      status: 'stopped',
      exitCode: null,
      errorMessage: null,
      completedAt: Date.now(),
    });
    if (finished) {
      logger.info({ jobId }, 'job stopped (no agent held it)');
      events.emit(jobId, { type: 'status', job: finished });
      return finished;
    }
    const now = await store.jobs.get(jobId);
    if (now && isTerminal(now.status)) return now;
    throw MagsError.conflict(`job "${jobId}" could not be stopped; try again`);
  }

  /** Deletes the caller's finished job with its output; 409 while it is unfinished. */
  async delete(userId: string, ref: string): Promise<void> {
    const job = await this.find(userId, ref);
    const result = await this.deps.store.jobs.deleteFinished(job.id);
    if (result === 'unfinished') {
      throw MagsError.conflict(`job "${ref}" has not finished (${job.status}); stop it first, then delete it`);
    }
    if (result === 'not_found') throw MagsError.notFound(`job "${ref}" not found`);
    this.deps.logger.info({ jobId: job.id }, 'job deleted');
  }

  /** Ends pending waits (the server is closing). */
  close(): void {
    this.abort.abort();
  }
}
