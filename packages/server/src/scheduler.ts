// The server side of the agent protocol: knows the connected agents, places queued jobs on them, and turns
// their reports (started, output, exited) into job state, log lines and events for waiting clients.
import type { Logger } from 'pino';
import {
  type AgentInfo,
  type AgentToServer,
  type PoolStatus,
  type SandboxSpec,
  type ServerEnd,
  MagsError,
  isTerminal,
} from '@mags/api';
import { checkAgentMessage } from './agent-messages.js';
import type { JobEvents } from './events.js';
import { parseSpec } from './job-view.js';
import { waitForTerminal } from './job-wait.js';
import type { JobFinish, JobRow, Store } from './store/index.js';

/** How long `stop` waits for the agent to confirm before answering with the job as it is. */
const STOP_CONFIRM_MS = 10_000;

export const MESSAGES = {
  agentDisconnected: 'the agent running this job disconnected',
  serverShutdown: 'the server shut down while this job was running',
  serverRestarted: 'the server restarted while this job was running; its sandbox was cleaned up',
  noExitCode: 'the sandbox ended without reporting an exit code',
  sandboxFailed: 'the sandbox failed',
};

interface AgentConnection {
  readonly serial: number;
  readonly link: ServerEnd;
  info?: AgentInfo;
  pool: AgentInfo['pool'];
  online: boolean;
  /** Jobs handed to this agent that have not exited yet. */
  readonly jobs: Set<string>;
  /** Messages from one agent are handled one after another, in the order sent. */
  chain: Promise<void>;
  log: Logger;
  closeReason: string;
}

export interface AgentState {
  id: string;
  info: AgentInfo;
  running: number;
}

export class Scheduler {
  private readonly connections = new Set<AgentConnection>();
  private readonly byAgentId = new Map<string, AgentConnection>();
  private serial = 0;
  private dispatching: Promise<void> | undefined;
  private dispatchAgain = false;
  private closed = false;
  private readonly abort = new AbortController();

  constructor(
    private readonly store: Store,
    private readonly events: JobEvents,
    private readonly logger: Logger,
  ) {}

  /**
   * Called once at start. Jobs a previous process handed to an agent cannot still be running (the embedded
   * agent cleans its sandboxes on start, and no agent is connected yet): they end as `error`. Jobs still
   * queued stay queued and run when an agent connects.
   */
  async recover(): Promise<void> {
    await this.store.markAllAgentsOffline();
    const failed = await this.store.failDispatchedJobs(MESSAGES.serverRestarted);
    for (const job of failed) this.logger.warn({ jobId: job.id }, 'job was running when the server stopped; marked error');
  }

  attachAgent(link: ServerEnd): void {
    if (this.closed) {
      link.close();
      return;
    }
    const conn: AgentConnection = {
      serial: ++this.serial,
      link,
      pool: { idle: 0, busy: 0, min: 0, max: 0 },
      online: false,
      jobs: new Set(),
      chain: Promise.resolve(),
      log: this.logger.child({ link: this.serial }),
      closeReason: MESSAGES.agentDisconnected,
    };
    this.connections.add(conn);
    const enqueue = (work: () => Promise<void>) => {
      conn.chain = conn.chain.then(work).catch((err: unknown) => conn.log.error({ err }, 'failed to handle an agent message'));
    };
    link.onMessage((message) => enqueue(() => this.handle(conn, message)));
    link.onClose(() => enqueue(() => this.detach(conn)));
  }

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
        this.logger.error({ err }, 'dispatching queued jobs failed');
      } finally {
        this.dispatching = undefined;
      }
    })();
  }

  /**
   * Stops a job. A queued job stops at once; a job on an agent is stopped by the agent, and this waits
   * (briefly) for its confirmation. Throws 409 if the job had already finished.
   */
  async stop(jobId: string): Promise<JobRow> {
    let job = await this.store.getJob(jobId);
    if (!job) throw MagsError.notFound(`job "${jobId}" not found`);
    if (job.status === 'accepted' && job.agent_id === null) {
      const stopped = await this.store.stopQueuedJob(job.id);
      if (stopped) {
        this.logger.info({ jobId }, 'queued job stopped');
        this.events.emit(jobId, { type: 'status', job: stopped });
        return stopped;
      }
      job = (await this.store.getJob(jobId)) ?? job; // handed to an agent meanwhile
    }
    if (isTerminal(job.status)) {
      throw MagsError.conflict(`job "${jobId}" has already finished (${job.status}); there is nothing to stop`);
    }
    const conn = job.agent_id !== null ? this.byAgentId.get(job.agent_id) : undefined;
    if (conn?.online && conn.jobs.has(job.id)) {
      conn.log.info({ jobId }, 'asking the agent to stop the job');
      conn.link.send({ type: 'stop', jobId: job.id });
      return (await waitForTerminal(this.store, this.events, job.id, STOP_CONFIRM_MS, this.abort.signal)) ?? job;
    }
    // No agent here holds it (it left, or the job never reached one): nothing runs, so it is stopped.
    const finished = await this.store.finishJob(job.id, { status: 'stopped', exitCode: null, errorMessage: null, completedAt: Date.now() });
    if (finished) {
      this.logger.info({ jobId }, 'job stopped (no agent held it)');
      this.events.emit(jobId, { type: 'status', job: finished });
      return finished;
    }
    const now = await this.store.getJob(jobId);
    if (now && isTerminal(now.status)) return now;
    throw MagsError.conflict(`job "${jobId}" could not be stopped; try again`);
  }

  poolStatus(): PoolStatus {
    const sum = { idle_vms: 0, busy_vms: 0, total_vms: 0, min_pool_size: 0, max_pool_size: 0 };
    for (const conn of this.connections) {
      if (!conn.online) continue;
      sum.idle_vms += conn.pool.idle;
      sum.busy_vms += conn.pool.busy;
      sum.min_pool_size += conn.pool.min;
      sum.max_pool_size += conn.pool.max;
    }
    sum.total_vms = sum.idle_vms + sum.busy_vms;
    return sum;
  }

  /** The agents connected to this server, with the jobs each holds. */
  onlineAgents(): AgentState[] {
    const out: AgentState[] = [];
    for (const [id, conn] of this.byAgentId) {
      if (conn.online && conn.info) out.push({ id, info: conn.info, running: conn.jobs.size });
    }
    return out;
  }

  /** Closes every agent link (their unfinished jobs end as `error`) and waits for pending work. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.abort.abort();
    for (const conn of this.connections) {
      conn.closeReason = MESSAGES.serverShutdown;
      conn.link.close();
    }
    await this.dispatching;
    await Promise.all([...this.connections].map((c) => c.chain));
  }

  // ── internals ───────────────────────────────────────────────────────────────────────────────────

  private async handle(conn: AgentConnection, raw: AgentToServer): Promise<void> {
    if (!this.connections.has(conn)) return; // closed; late messages are dropped
    const checked = checkAgentMessage(raw);
    if (!checked.ok) {
      conn.log.warn({ reason: checked.reason }, 'ignoring a malformed message from an agent');
      return;
    }
    const m = checked.message;
    if (m.type === 'hello') return this.onHello(conn, m.agent);
    if (!conn.info || !conn.online) {
      conn.log.warn({ type: m.type }, 'ignoring a message from an agent that has not said hello');
      return;
    }
    const agentId = conn.info.id;
    switch (m.type) {
      case 'pool':
        conn.pool = { ...m.pool };
        return;
      case 'started': {
        if (!conn.jobs.has(m.jobId)) return this.unknownJob(conn, m.jobId, m.type);
        const job = await this.store.markRunning(m.jobId, agentId, m.sandboxId, m.ts);
        if (job) {
          conn.log.info({ jobId: m.jobId, sandboxId: m.sandboxId }, 'job running');
          this.events.emit(m.jobId, { type: 'status', job });
        }
        return;
      }
      case 'output': {
        if (!conn.jobs.has(m.jobId)) return this.unknownJob(conn, m.jobId, m.type);
        if (m.lines.length === 0) return;
        const inserted = await this.store.appendLogs(m.jobId, m.lines);
        if (inserted.length > 0) this.events.emit(m.jobId, { type: 'logs', lines: inserted });
        return;
      }
      case 'exited': {
        if (!conn.jobs.has(m.jobId)) return this.unknownJob(conn, m.jobId, m.type);
        conn.jobs.delete(m.jobId);
        const current = await this.store.getJob(m.jobId);
        const finish = current ? this.finishFor(current, m) : undefined;
        const job = finish ? await this.store.finishJob(m.jobId, finish, agentId) : undefined;
        if (job) {
          conn.log.info({ jobId: m.jobId, status: job.status, exitCode: job.exit_code, reason: m.reason }, 'job finished');
          this.events.emit(m.jobId, { type: 'status', job });
        }
        this.requestDispatch();
        return;
      }
    }
  }

  private async onHello(conn: AgentConnection, info: AgentInfo): Promise<void> {
    const previous = this.byAgentId.get(info.id);
    if (previous && previous !== conn) {
      // The same agent dialled again: its old link is dead to us.
      previous.log.warn({ agentId: info.id }, 'agent reconnected; closing its previous link');
      previous.link.close();
    }
    if (conn.info && conn.info.id !== info.id) {
      conn.log.warn({ agentId: conn.info.id, newId: info.id }, 'an agent may not change its id on one link; ignored');
      return;
    }
    // In memory first (synchronously), so that the old link's cleanup sees it has been replaced.
    conn.info = { ...info, pool: { ...info.pool } };
    conn.pool = { ...info.pool };
    conn.online = true;
    conn.log = this.logger.child({ agentId: info.id });
    this.byAgentId.set(info.id, conn);
    await this.store.upsertAgent(info);
    conn.log.info({ name: info.name, runtime: info.runtime, version: info.version, capacity: info.capacity }, 'agent online');
    this.requestDispatch();
  }

  private async detach(conn: AgentConnection): Promise<void> {
    if (!this.connections.has(conn)) return;
    this.connections.delete(conn);
    conn.online = false;
    const info = conn.info;
    if (!info) return;
    if (this.byAgentId.get(info.id) === conn) this.byAgentId.delete(info.id);
    const now = Date.now();
    for (const jobId of conn.jobs) {
      const job = await this.store.finishJob(
        jobId,
        { status: 'error', exitCode: null, errorMessage: conn.closeReason, completedAt: now },
        info.id,
      );
      if (job) {
        conn.log.warn({ jobId }, conn.closeReason);
        this.events.emit(jobId, { type: 'status', job });
      }
    }
    conn.jobs.clear();
    if (!this.byAgentId.has(info.id)) await this.store.markAgentOffline(info.id, now);
    conn.log.info('agent offline');
    this.requestDispatch();
  }

  private unknownJob(conn: AgentConnection, jobId: string, type: string): void {
    conn.log.warn({ jobId, type }, 'ignoring a report about a job this agent was not given');
  }

  private finishFor(job: JobRow, m: Extract<AgentToServer, { type: 'exited' }>): JobFinish {
    const completedAt = m.ts;
    switch (m.reason) {
      case 'exited':
        if (m.exitCode === null) return { status: 'error', exitCode: null, errorMessage: MESSAGES.noExitCode, completedAt };
        return { status: m.exitCode === 0 ? 'completed' : 'failed', exitCode: m.exitCode, errorMessage: m.message ?? null, completedAt };
      case 'stopped':
        return { status: 'stopped', exitCode: m.exitCode, errorMessage: null, completedAt };
      case 'timeout': {
        const timeout = safeTimeout(job);
        return {
          status: 'failed',
          exitCode: m.exitCode,
          errorMessage: `the script ran longer than its ${timeout} s timeout and was killed`,
          completedAt,
        };
      }
      case 'error':
        return { status: 'error', exitCode: m.exitCode, errorMessage: m.message || MESSAGES.sandboxFailed, completedAt };
    }
  }

  private pickAgent(): AgentConnection | undefined {
    let best: AgentConnection | undefined;
    let bestFree = 0;
    for (const conn of this.byAgentId.values()) {
      if (!conn.online || !conn.info) continue;
      const free = conn.info.capacity - conn.jobs.size;
      if (free > bestFree) {
        best = conn;
        bestFree = free;
      }
    }
    return best;
  }

  private async dispatchOnce(): Promise<void> {
    let free = 0;
    for (const conn of this.byAgentId.values()) {
      if (conn.online && conn.info) free += Math.max(0, conn.info.capacity - conn.jobs.size);
    }
    if (free === 0) return;
    const queued = await this.store.queuedJobs(free);
    for (const queuedJob of queued) {
      if (this.closed) return;
      const conn = this.pickAgent();
      if (!conn?.info) return;
      const agentId = conn.info.id;
      // Reserve the slot before the await so that a concurrent `exited` does not hand it out twice.
      conn.jobs.add(queuedJob.id);
      let job: JobRow | undefined;
      try {
        job = await this.store.claimJob(queuedJob.id, agentId);
      } catch (err) {
        conn.jobs.delete(queuedJob.id);
        throw err;
      }
      if (!job) {
        conn.jobs.delete(queuedJob.id); // stopped meanwhile
        continue;
      }
      if (!conn.online) {
        // The agent left during the claim; its cleanup did not see this job, so fail it here.
        conn.jobs.delete(job.id);
        const failed = await this.store.finishJob(
          job.id,
          { status: 'error', exitCode: null, errorMessage: conn.closeReason, completedAt: Date.now() },
          agentId,
        );
        if (failed) this.events.emit(job.id, { type: 'status', job: failed });
        continue;
      }
      conn.log.info({ jobId: job.id }, 'job dispatched');
      conn.link.send({ type: 'start', sandbox: sandboxSpec(job) });
    }
    // A full page means there may be more behind it.
    if (queued.length === free) this.dispatchAgain = true;
  }
}

function safeTimeout(job: JobRow): number {
  try {
    return parseSpec(job).timeout_s;
  } catch {
    return 0;
  }
}

export function sandboxSpec(job: JobRow): SandboxSpec {
  const spec = parseSpec(job);
  return {
    jobId: job.id,
    script: job.script,
    environment: spec.environment,
    vcpus: spec.vcpus,
    memoryMb: spec.memory_mb,
    timeoutS: spec.timeout_s,
    network: spec.network,
    diskGb: spec.disk_gb,
  };
}
