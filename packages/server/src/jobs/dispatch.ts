// Dispatch: hands queued jobs, oldest first, to agents with a free slot (placement decides which), and sends each its
// sandbox order. Runs are serialised and coalesced, so it is cheap to ask for one whenever slots or jobs may be new.

import type { SleepTimers } from '@mags/api';
import type { Logger } from 'pino';
import { pickAgent, place } from '../agents/placement.js';
import type { AgentRegistry, ConnectedAgent } from '../agents/registry.js';
import type { Job, Store, WorkspaceRow } from '../store/index.js';
import type { JobEvents } from './events.js';
import { sandboxSpec } from './spec.js';

/** Queued jobs read per page when looking for ones that can run. */
const DISPATCH_PAGE = 100;

export interface DispatcherDeps {
  store: Store;
  agents: AgentRegistry;
  events: JobEvents;
  logger: Logger;
  /** The server's `--sleep-after` and `--stop-after`, for long-lived sandboxes that may sleep. */
  sleep: SleepTimers;
}

export class Dispatcher {
  private dispatching: Promise<void> | undefined;
  private dispatchAgain = false;
  private closed = false;

  constructor(private readonly deps: DispatcherDeps) {}

  /** Looks for queued jobs and free agents. Cheap to call often: runs are serialised and coalesced. */
  requestDispatch(): void {
    if (this.closed) return;
    if (this.dispatching) {
      this.dispatchAgain = true;
      return;
    }
    this.dispatching = (async () => {
      try {
        do {
          this.dispatchAgain = false;
          await this.dispatchOnce();
        } while (this.dispatchAgain && !this.closed);
      } catch (err) {
        this.deps.logger.error({ err }, 'dispatching queued jobs failed');
      } finally {
        this.dispatching = undefined;
      }
    })();
  }

  /** Stops dispatching and waits for a run under way. */
  async close(): Promise<void> {
    this.closed = true;
    await this.dispatching;
  }

  private async dispatchOnce(): Promise<void> {
    // Jobs without a workspace placed in this page, claimed together in one statement per agent.
    const batch: Array<{ agent: ConnectedAgent; job: Job }> = [];
    try {
      await this.dispatchPages(batch);
    } finally {
      // Slots reserved for jobs not claimed yet (a failure or close half-way) are given back.
      for (const { agent, job } of batch) this.deps.agents.releaseSlot(agent, job.id);
    }
  }

  private async dispatchPages(batch: Array<{ agent: ConnectedAgent; job: Job }>): Promise<void> {
    const { store, agents } = this.deps;
    let after: string | undefined;
    for (;;) {
      let online = agents.online();
      if (this.closed || !pickAgent(online)) return;
      const queued = await store.jobs.queued(DISPATCH_PAGE, after);
      if (queued.length === 0) return;
      for (const job of queued) {
        if (this.closed) return;
        after = job.id;
        online = agents.online();
        if (!pickAgent(online)) break; // nothing free anywhere
        const ws = job.spec?.workspace;
        const row = ws !== undefined ? await store.workspaces.getById(ws.id) : undefined;
        // Elsewhere than on a copy it holds, an agent has to make the disk.
        const diskGb = Math.max(job.spec?.disk_gb ?? 0, row?.disk_gb ?? 0);
        const placement = place(online, {
          diskGb,
          workspace: ws && { holderId: row?.agent_id ?? null, persistent: row ? row.persistent === 1 : ws.persistent },
        });
        if (placement.lostCopy) {
          this.deps.logger.warn(
            { jobId: job.id, workspace: ws?.name, agentId: row?.agent_id },
            'the agent holding this local workspace is gone; its files are lost and the job runs on an empty workspace elsewhere',
          );
        }
        if (!placement.agent) continue; // pinned to a busy agent: later jobs may still run
        if (ws) {
          await this.dispatchTo(placement.agent, job, row);
        } else {
          // Reserve the slot now, so that placement of the next jobs sees it taken; claimed below with the others.
          agents.takeSlot(placement.agent, job.id);
          batch.push({ agent: placement.agent, job });
        }
      }
      await this.dispatchBatch(batch.splice(0));
      if (queued.length < DISPATCH_PAGE || !pickAgent(agents.online())) return;
    }
  }

  /** Claims placed jobs (their slots reserved), one statement per agent, and starts those claimed. */
  private async dispatchBatch(batch: Array<{ agent: ConnectedAgent; job: Job }>): Promise<void> {
    const { store, agents } = this.deps;
    const byAgent = new Map<ConnectedAgent, Job[]>();
    for (const { agent, job } of batch) {
      const jobs = byAgent.get(agent);
      if (jobs) jobs.push(job);
      else byAgent.set(agent, [job]);
    }
    let firstError: unknown;
    for (const [agent, jobs] of byAgent) {
      let claimed: Set<string>;
      try {
        claimed = await store.jobs.claimMany(
          jobs.map((j) => j.id),
          agent.id,
        );
      } catch (err) {
        for (const job of jobs) agents.releaseSlot(agent, job.id);
        throw err;
      }
      for (const job of jobs) {
        if (!claimed.has(job.id)) {
          agents.releaseSlot(agent, job.id); // stopped meanwhile
          continue;
        }
        // One job that cannot be started (the store failing it) does not leave the others of the batch claimed.
        await this.startClaimed(agent, job, undefined).catch((err: unknown) => {
          firstError ??= err;
        });
      }
    }
    if (firstError !== undefined) throw firstError;
  }

  private async dispatchTo(agent: ConnectedAgent, job: Job, row: WorkspaceRow | undefined): Promise<void> {
    const { store, agents } = this.deps;
    // Reserve the slot before the await so that a concurrent `exited` does not hand it out twice.
    agents.takeSlot(agent, job.id);
    let claimed: boolean;
    try {
      claimed = await store.jobs.claim(job.id, agent.id);
    } catch (err) {
      agents.releaseSlot(agent, job.id);
      throw err;
    }
    if (!claimed) {
      agents.releaseSlot(agent, job.id); // stopped meanwhile
      return;
    }
    await this.startClaimed(agent, job, row);
  }

  /** Sends a claimed job (its slot taken) to its agent, or fails it if it cannot be started. */
  private async startClaimed(agent: ConnectedAgent, job: Job, row: WorkspaceRow | undefined): Promise<void> {
    const { store, agents, events } = this.deps;
    const fail = async (errorMessage: string) => {
      agents.releaseSlot(agent, job.id);
      const failed = await store.jobs.finish(
        job.id,
        { status: 'error', exitCode: null, errorMessage, completedAt: Date.now() },
        agent.id,
      );
      if (failed) events.emit(job.id, { type: 'status', job: failed });
    };
    // The agent left during the claim; its cleanup did not see this job, so it fails here.
    if (!agent.online) return fail(agent.closeReason);
    if (!job.spec) {
      agent.log.error({ jobId: job.id }, 'a stored job has an unreadable spec');
      return fail('the job could not be read back from the database');
    }
    const ws = job.spec.workspace;
    // A resize after the submit counts (disks only grow).
    // A job started before (woken, or started again) continues its output after its last line.
    const firstSeq = job.started_at !== null ? (await store.logs.lastSeq(job.id)) + 1 : undefined;
    const sandbox = sandboxSpec(job, job.spec, row?.disk_gb ?? 0, { sleep: this.deps.sleep, firstSeq });
    agent.log.info({ jobId: job.id, workspace: ws?.name }, 'job dispatched');
    agents.start(agent, sandbox);
    // The copy will be on this agent: later jobs on a local workspace follow it here.
    if (ws) {
      await store.workspaces
        .setAgent(ws.id, agent.id)
        .catch((err: unknown) =>
          agent.log.warn({ err, jobId: job.id, workspace: ws.name }, 'could not record where the workspace is'),
        );
    }
  }
}
