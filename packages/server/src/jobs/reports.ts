// What agents report about the jobs they were handed, turned into job state: started → running, slept → sleeping,
// woke → running, output → stored lines (through JobOutput), exited → the next state: a terminal status with its
// exit code or a sentence; `sleeping` without a sandbox for a persistent run whose script ended and for a sandbox
// stopped asleep; queued again for an always-on sandbox that died. An agent that leaves (or a restart) ends its
// runs as `error`, lets its long-lived sandboxes sleep on without a sandbox, and starts its always-on ones again.
// Every change is announced to waiting clients.
import type { Logger } from 'pino';
import type { JobReport } from '../agents/registry.js';
import type { Job, JobFinish, Store } from '../store/index.js';
import type { JobEvents } from './events.js';
import type { JobOutput } from './output.js';

const MESSAGES = {
  serverRestarted: 'the server restarted while this job was running; its sandbox was cleaned up',
  restartLoop: 'the always-on sandbox kept dying right after it started, so it was not started again',
  noExitCode: 'the sandbox ended without reporting an exit code',
  sandboxFailed: 'the sandbox failed',
  lostWithoutWorkspace:
    'the sandbox was lost with its agent; it had no workspace to keep its files on, so it ended with them',
  stoppedWithoutWorkspace:
    'the sandbox was ended while it slept because the host ran short of memory; it had no workspace to keep its files on',
};

/**
 * A long-lived sandbox without a workspace (an E2B sandbox of template `base`) keeps its files only in its own
 * sandbox layer: it can sleep frozen, but a sandbox stopped or lost is never slept on (a wake would start an empty
 * one): it ends, and says why.
 */
export function keepsFilesAsleep(job: Job): boolean {
  return job.spec?.workspace !== undefined;
}

export interface JobReportsDeps {
  store: Store;
  output: JobOutput;
  events: JobEvents;
  logger: Logger;
}

/** An always-on sandbox that dies this often within RESTART_WINDOW_MS is not started again. */
const MAX_RESTARTS = 5;
const RESTART_WINDOW_MS = 60_000;

export class JobReports {
  /** When each always-on job was last started again (to stop a sandbox that dies at once from looping). */
  private readonly restarts = new Map<string, number[]>();

  constructor(private readonly deps: JobReportsDeps) {}

  /**
   * Called once at start. Jobs a previous process handed to an agent cannot still be running (the embedded
   * agent cleans its sandboxes on start, and no agent is connected yet): runs end as `error`, long-lived
   * sandboxes sleep on without a sandbox (a request wakes them), always-on ones are queued to start again. Jobs
   * still queued stay queued and run when an agent connects.
   */
  async recover(): Promise<void> {
    const { store, logger } = this.deps;
    for (const job of await store.jobs.onAgents()) {
      await this.sandboxLost(job.id, job.agent_id!, MESSAGES.serverRestarted, logger);
    }
    const freed = await store.workspaces.releaseOrphaned();
    if (freed > 0)
      logger.warn({ workspaces: freed }, 'released workspaces held by work a previous process left unfinished');
  }

  /**
   * A job's sandbox is gone with its agent (which left, or belonged to the previous server process): a run ends as
   * `error` with `reason`; a long-lived sandbox sleeps on without a sandbox (one without a workspace ends as
   * `error`: its files went with it); an always-on one is queued again.
   */
  private async sandboxLost(jobId: string, agentId: string, reason: string, log: Logger): Promise<void> {
    const { store, events } = this.deps;
    const job = await store.jobs.get(jobId);
    if (!job || job.agent_id !== agentId) return;
    let next: Job | undefined;
    let message = reason;
    if (job.spec?.no_sleep) {
      const again = await store.jobs.requeue(jobId, agentId);
      next = again.ok ? again.job : undefined;
      if (next) log.warn({ jobId }, 'the always-on sandbox was lost with its agent; starting it again');
    } else if (job.spec?.long_lived && !keepsFilesAsleep(job)) {
      message = MESSAGES.lostWithoutWorkspace;
    } else if (job.spec?.long_lived) {
      next = await store.jobs.sleepWithoutSandbox(jobId, { agentId });
      if (next) log.warn({ jobId }, 'the sandbox was lost with its agent; the job sleeps until it is woken');
    }
    next ??= await store.jobs.finish(
      jobId,
      { status: 'error', exitCode: null, errorMessage: message, completedAt: Date.now() },
      agentId,
    );
    if (next) {
      if (next.status === 'error') log.warn({ jobId }, message);
      events.emit(jobId, { type: 'status', job: next });
    }
  }

  async report(agentId: string, m: JobReport, log: Logger): Promise<void> {
    const { store, output, events } = this.deps;
    switch (m.type) {
      case 'started': {
        const job = await store.jobs.markRunning(m.jobId, agentId, m.sandboxId, m.ts, m.address ?? null);
        if (job) {
          log.info({ jobId: m.jobId, sandboxId: m.sandboxId }, 'job running');
          events.emit(m.jobId, { type: 'status', job });
        }
        return;
      }
      case 'slept':
      case 'woke': {
        const job =
          m.type === 'slept'
            ? await store.jobs.markSleeping(m.jobId, agentId)
            : await store.jobs.markAwake(m.jobId, agentId);
        if (job) {
          log.info({ jobId: m.jobId }, m.type === 'slept' ? 'sandbox asleep (frozen)' : 'sandbox awake');
          events.emit(m.jobId, { type: 'status', job });
        }
        return;
      }
      case 'output':
        if (m.lines.length === 0) return;
        // Batched, capped and announced by JobOutput; this waits only while the job's batch is full.
        return output.append(m.jobId, m.lines);
      case 'exited': {
        // Every line is stored (and sent to followers) before the job is seen to end.
        await output.end(m.jobId);
        const job = await this.afterSandbox(agentId, m, log);
        if (job) {
          log.info({ jobId: m.jobId, status: job.status, exitCode: job.exit_code, reason: m.reason }, 'sandbox ended');
          events.emit(m.jobId, { type: 'status', job });
        }
        return;
      }
    }
  }

  /** What a job becomes once its sandbox has ended as `m` says. */
  private async afterSandbox(
    agentId: string,
    m: Extract<JobReport, { type: 'exited' }>,
    log: Logger,
  ): Promise<Job | undefined> {
    const { store } = this.deps;
    const { jobId } = m;
    const job = await store.jobs.get(jobId);
    if (!job || job.agent_id !== agentId) return undefined;
    const spec = job.spec;
    if (m.reason === 'asleep' && !keepsFilesAsleep(job)) {
      log.warn({ jobId }, MESSAGES.stoppedWithoutWorkspace);
      return store.jobs.finish(
        jobId,
        { status: 'stopped', exitCode: m.exitCode, errorMessage: MESSAGES.stoppedWithoutWorkspace, completedAt: m.ts },
        agentId,
      );
    }
    if (m.reason === 'asleep') return store.jobs.sleepWithoutSandbox(jobId, { agentId });
    // An always-on sandbox that died (its init ended, or all of it was killed) starts again on its workspace.
    if (m.reason === 'exited' && spec?.no_sleep) {
      if (this.mayRestart(jobId)) {
        const again = await store.jobs.requeue(jobId, agentId);
        if (again.ok) {
          log.warn({ jobId, exitCode: m.exitCode }, 'the always-on sandbox ended; starting it again');
          return again.job;
        }
      } else {
        return store.jobs.finish(
          jobId,
          { status: 'error', exitCode: m.exitCode, errorMessage: MESSAGES.restartLoop, completedAt: m.ts },
          agentId,
        );
      }
    }
    // A persistent run whose script ended sleeps: exec or ssh wake it on its workspace.
    if (m.reason === 'exited' && m.exitCode !== null && !spec?.long_lived && spec?.workspace?.persistent) {
      return store.jobs.sleepWithoutSandbox(jobId, {
        agentId,
        exitCode: m.exitCode,
        endedAt: m.ts,
        errorMessage: m.message ?? null,
      });
    }
    return store.jobs.finish(jobId, finishFor(m, spec?.timeout_s ?? 0), agentId);
  }

  /** Whether an always-on job may start again now (it did not already die MAX_RESTARTS times within the window). */
  private mayRestart(jobId: string): boolean {
    const now = Date.now();
    const recent = (this.restarts.get(jobId) ?? []).filter((t) => now - t < RESTART_WINDOW_MS);
    if (recent.length >= MAX_RESTARTS) {
      this.restarts.delete(jobId);
      return false;
    }
    recent.push(now);
    this.restarts.set(jobId, recent);
    return true;
  }

  /** The agent left holding these jobs: see sandboxLost. */
  async agentLeft(agentId: string, jobIds: readonly string[], reason: string, log: Logger): Promise<void> {
    for (const jobId of jobIds) {
      await this.deps.output.end(jobId);
      await this.sandboxLost(jobId, agentId, reason, log);
    }
  }
}

function finishFor(m: Extract<JobReport, { type: 'exited' }>, timeoutS: number): JobFinish {
  const completedAt = m.ts;
  switch (m.reason) {
    case 'exited':
      if (m.exitCode === null)
        return { status: 'error', exitCode: null, errorMessage: MESSAGES.noExitCode, completedAt };
      return {
        status: m.exitCode === 0 ? 'completed' : 'failed',
        exitCode: m.exitCode,
        errorMessage: m.message ?? null,
        completedAt,
      };
    case 'stopped':
    case 'asleep': // (handled before: the job sleeps on)
      return { status: 'stopped', exitCode: m.exitCode, errorMessage: null, completedAt };
    case 'timeout':
      return {
        status: 'failed',
        exitCode: m.exitCode,
        errorMessage: `the script ran longer than its ${timeoutS} s timeout and was killed`,
        completedAt,
      };
    case 'error':
      return { status: 'error', exitCode: m.exitCode, errorMessage: m.message || MESSAGES.sandboxFailed, completedAt };
  }
}
