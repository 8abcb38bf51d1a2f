// A long-lived sandbox's life beyond submit and stop: waking a sleeping one (thawed by its agent when frozen, started
// again on its workspace when it was stopped) and changing its settings while it lives (`PATCH …/mags-jobs/{id}`:
// always-on or not, its startup command). What agents report (asleep, awake, died) is turned into states by
// reports.ts; this is what requests do.
import { isTerminal, type JobUpdate, MagsError, type SleepTimers } from '@mags/api';
import type { Logger } from 'pino';
import type { AgentRegistry } from '../agents/registry.js';
import type { Job, JobSpec, Store } from '../store/index.js';
import type { Dispatcher } from './dispatch.js';
import type { JobEvents } from './events.js';
import { waitForJob } from './wait.js';

/** How long a request waits for a sleeping sandbox to run again (a stopped one restores its workspace first). */
export const WAKE_TIMEOUT_MS = 60_000;
/** How long a request waits for a frozen sandbox to thaw. */
const THAW_TIMEOUT_MS = 10_000;

export interface LifecycleDeps {
  store: Store;
  agents: AgentRegistry;
  dispatcher: Dispatcher;
  events: JobEvents;
  logger: Logger;
  sleep: SleepTimers;
}

export class SandboxLifecycle {
  constructor(private readonly deps: LifecycleDeps) {}

  /**
   * Makes a sleeping (or starting) job's sandbox run and resolves with the job once it does: a frozen one is woken
   * by its agent, one stopped asleep is queued to start again on its workspace. 409 when it ended meanwhile or
   * its workspace is taken; 503 when it did not come up in time.
   */
  async wake(job: Job): Promise<Job> {
    const { store, agents, dispatcher, events, logger } = this.deps;
    for (let attempt = 0; attempt < 3; attempt++) {
      if (job.status === 'running') return job;
      if (isTerminal(job.status)) {
        throw MagsError.conflict(`job ${job.id} has finished (${job.status}): there is no sandbox to wake`);
      }
      if (job.status === 'sleeping' && job.agent_id !== null) {
        agents.tell(job.agent_id, { type: 'wake', jobId: job.id });
        job = (await this.waitUntilUp(job, THAW_TIMEOUT_MS)) ?? job;
        continue;
      }
      if (job.status === 'sleeping' && !job.spec?.workspace) {
        // (Never the case: a sandbox without a workspace ends rather than sleep without its files; see reports.ts.)
        throw MagsError.conflict(`job ${job.id} has no sandbox and no workspace to start one on: it cannot wake`);
      }
      if (job.status === 'sleeping') {
        const again = await store.jobs.requeue(job.id);
        if (again.ok) {
          logger.info({ jobId: job.id, workspace: job.workspace_id }, 'waking a sleeping sandbox: starting it again');
          events.emit(job.id, { type: 'status', job: again.job });
          dispatcher.requestDispatch();
          job = again.job;
        } else if (again.heldBy !== null) {
          throw MagsError.conflict(
            `job ${job.id} cannot wake: its workspace ${job.workspace_id} is in use by ${again.heldBy}`,
          );
        } else {
          job = (await store.jobs.get(job.id)) ?? job; // it changed meanwhile: look again
          continue;
        }
      }
      job = (await this.waitUntilUp(job, WAKE_TIMEOUT_MS)) ?? job;
    }
    if (job.status === 'running') return job;
    if (isTerminal(job.status)) {
      throw MagsError.conflict(
        `job ${job.id} ended while it was woken (${job.status}${job.error_message ? `: ${job.error_message}` : ''})`,
      );
    }
    throw new MagsError(
      503,
      'agent_unavailable',
      `the sandbox of job ${job.id} is not up yet (${job.status}); try again`,
    );
  }

  /**
   * Puts a running long-lived job's sandbox to sleep now (E2B's pause) and resolves with the job once it sleeps.
   * 409 when it has ended or may not sleep (always-on); 503 when its agent did not freeze it in `timeoutMs`.
   */
  async sleep(job: Job, timeoutMs: number): Promise<Job> {
    const { store, agents, events, logger } = this.deps;
    if (job.status === 'sleeping') return job;
    if (isTerminal(job.status)) throw MagsError.conflict(`job ${job.id} has finished (${job.status}): it cannot sleep`);
    if (!job.spec?.long_lived || job.spec.no_sleep) {
      throw MagsError.conflict(`job ${job.id} is not a sandbox that may sleep (it is always-on, or runs a script)`);
    }
    if (job.status !== 'running' || job.agent_id === null) {
      job = await this.wake(job); // still starting: once it runs
    }
    if (job.agent_id === null) throw new MagsError(503, 'agent_unavailable', `job ${job.id} has no agent; try again`);
    agents.tell(job.agent_id, { type: 'sleep', jobId: job.id });
    const slept = await waitForJob(store, events, job.id, (j) => j.status !== 'running', timeoutMs);
    if (slept?.status === 'sleeping') {
      logger.info({ jobId: job.id }, 'sandbox put to sleep on request');
      return slept;
    }
    if (slept && isTerminal(slept.status)) throw MagsError.conflict(`job ${job.id} ended while it was put to sleep`);
    throw new MagsError(
      503,
      'agent_unavailable',
      `the sandbox of job ${job.id} did not go to sleep in time; try again`,
    );
  }

  /** The job once it runs, has ended, or sleeps on an agent that froze it again; as it is after `timeoutMs`. */
  private waitUntilUp(job: Job, timeoutMs: number): Promise<Job | undefined> {
    const { store, events } = this.deps;
    const from = job.status;
    const up = (j: Job) =>
      j.status === 'running' || isTerminal(j.status) || (from !== 'sleeping' && j.status === 'sleeping');
    return waitForJob(store, events, job.id, up, timeoutMs);
  }

  /**
   * Changes the caller's running or sleeping job `ref`: `no_sleep` (needs a persistent workspace; an always-on
   * sandbox that sleeps is woken) and `startup_command` (null removes it; it runs from the sandbox's next start).
   */
  async update(userId: string, ref: string, patch: JobUpdate): Promise<Job> {
    const { store, agents, logger } = this.deps;
    if (patch.no_sleep === undefined && patch.startup_command === undefined) {
      throw MagsError.invalid('nothing to change: give no_sleep, startup_command, or both');
    }
    const job = await store.jobs.findLive(userId, ref);
    if (!job) throw MagsError.notFound(`no job or sandbox named "${ref}"`);
    if (isTerminal(job.status) || !job.spec) {
      throw MagsError.conflict(`job ${job.id} has finished (${job.status}); there is nothing to change`);
    }
    if (patch.no_sleep === true && !job.spec.workspace?.persistent) {
      throw MagsError.invalid(
        `no_sleep requires a persistent workspace; job ${job.id} has ${job.spec.workspace ? 'a local one' : 'none'} (start it with -p)`,
      );
    }
    if (typeof patch.startup_command === 'string' && patch.startup_command.includes('\0')) {
      throw MagsError.invalid('startup_command: must not contain NUL characters');
    }
    const spec: JobSpec = { ...job.spec };
    if (patch.no_sleep !== undefined) {
      if (patch.no_sleep) spec.no_sleep = true;
      else delete spec.no_sleep;
    }
    if (patch.startup_command !== undefined) {
      if (patch.startup_command) spec.startup_command = patch.startup_command;
      else delete spec.startup_command;
    }
    const updated = await store.jobs.updateSpec(job.id, spec);
    if (!updated) throw MagsError.conflict(`job ${job.id} has just finished; there is nothing to change`);
    logger.info({ jobId: job.id, noSleep: !!spec.no_sleep, startupCommand: !!spec.startup_command }, 'job updated');
    if (updated.agent_id !== null) {
      agents.tell(updated.agent_id, {
        type: 'update',
        jobId: job.id,
        sleep: spec.long_lived && !spec.no_sleep ? this.deps.sleep : null,
        startupCommand: spec.startup_command ?? null,
      });
    }
    // An always-on sandbox does not sleep: one that does is woken now.
    if (spec.no_sleep && updated.status === 'sleeping') return this.wake(updated);
    return updated;
  }
}
