// What agents report about the jobs they were handed, turned into job state: started → running, output → stored
// lines (through JobOutput), exited → the terminal status with its exit code or a sentence; an agent that leaves
// ends its unfinished jobs as `error`. Every change is announced to waiting clients.
import type { Logger } from 'pino';
import type { JobReport } from '../agents/registry.js';
import type { JobFinish, Store } from '../store/index.js';
import type { JobEvents } from './events.js';
import type { JobOutput } from './output.js';

const MESSAGES = {
  serverRestarted: 'the server restarted while this job was running; its sandbox was cleaned up',
  noExitCode: 'the sandbox ended without reporting an exit code',
  sandboxFailed: 'the sandbox failed',
};

export interface JobReportsDeps {
  store: Store;
  output: JobOutput;
  events: JobEvents;
  logger: Logger;
}

export class JobReports {
  constructor(private readonly deps: JobReportsDeps) {}

  /**
   * Called once at start. Jobs a previous process handed to an agent cannot still be running (the embedded
   * agent cleans its sandboxes on start, and no agent is connected yet): they end as `error`. Jobs still
   * queued stay queued and run when an agent connects.
   */
  async recover(): Promise<void> {
    const { store, logger } = this.deps;
    const failed = await store.jobs.failDispatched(MESSAGES.serverRestarted);
    for (const jobId of failed) logger.warn({ jobId }, 'job was running when the server stopped; marked error');
    const freed = await store.workspaces.releaseOrphaned();
    if (freed > 0)
      logger.warn({ workspaces: freed }, 'released workspaces held by work a previous process left unfinished');
  }

  async report(agentId: string, m: JobReport, log: Logger): Promise<void> {
    const { store, output, events } = this.deps;
    switch (m.type) {
      case 'started': {
        const job = await store.jobs.markRunning(m.jobId, agentId, m.sandboxId, m.ts);
        if (job) {
          log.info({ jobId: m.jobId, sandboxId: m.sandboxId }, 'job running');
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
        // Only a timeout's sentence needs the stored job (its limit); the common end costs one statement.
        const timeoutS = m.reason === 'timeout' ? ((await store.jobs.get(m.jobId))?.spec?.timeout_s ?? 0) : 0;
        const job = await store.jobs.finish(m.jobId, finishFor(m, timeoutS), agentId);
        if (job) {
          log.info({ jobId: m.jobId, status: job.status, exitCode: job.exit_code, reason: m.reason }, 'job finished');
          events.emit(m.jobId, { type: 'status', job });
        }
        return;
      }
    }
  }

  /** The agent left holding these jobs: each ends as `error` with `reason`. */
  async agentLeft(agentId: string, jobIds: readonly string[], reason: string, log: Logger): Promise<void> {
    const { store, output, events } = this.deps;
    const now = Date.now();
    for (const jobId of jobIds) {
      await output.end(jobId);
      const job = await store.jobs.finish(
        jobId,
        { status: 'error', exitCode: null, errorMessage: reason, completedAt: now },
        agentId,
      );
      if (job) {
        log.warn({ jobId }, reason);
        events.emit(jobId, { type: 'status', job });
      }
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
