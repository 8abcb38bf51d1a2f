// The server side of the agent protocol: knows the connected agents, places queued jobs on them (a local
// workspace's job on the agent holding it), turns their reports (started, output, exited) into job state, log
// lines and events for waiting clients, and sends workspace orders, matching each `reply` to its request.
import { randomUUID } from 'node:crypto';
import type { Logger } from 'pino';
import {
  type AgentInfo,
  type AgentToServer,
  type HostStorage,
  type PoolStatus,
  type SandboxSpec,
  type ServerEnd,
  type WorkspaceOrder,
  type WorkspaceOrderResult,
  type WorkspaceReport,
  GiB,
  MagsError,
  isTerminal,
  parseAgentMessage,
  roomForDisks,
} from '@mags/api';
import type { JobEvents } from './events.js';
import type { JobOutput } from './job-output.js';
import { parseSpec } from './job-view.js';
import { waitForTerminal } from './job-wait.js';
import type { JobFinish, JobRow, JobSpec, Store, WorkspaceRow } from './store/index.js';

/** How long `stop` waits for the agent to confirm before answering with the job as it is. */
const STOP_CONFIRM_MS = 10_000;
/** Queued jobs read per page when looking for ones that can run. */
const DISPATCH_PAGE = 100;

/** A workspace order without its requestId (the scheduler adds one). */
export type OrderBody =
  | { type: 'sync'; workspace: WorkspaceOrder['workspace'] }
  | { type: 'resize'; workspace: WorkspaceOrder['workspace']; diskGb: number }
  | { type: 'drop'; workspace: WorkspaceOrder['workspace'] };

export type WorkspaceReportHandler = (agentId: string, report: WorkspaceReport) => Promise<void>;

interface PendingRequest {
  conn: AgentConnection;
  resolve(result: WorkspaceOrderResult): void;
  reject(err: MagsError): void;
  timer: NodeJS.Timeout;
}

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
  /** The agent's last storage figures (hello, then pool reports); undefined if it reports none. */
  storage?: HostStorage;
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
  private readonly pending = new Map<string, PendingRequest>();
  private workspaceReports: WorkspaceReportHandler | undefined;

  constructor(
    private readonly store: Store,
    private readonly events: JobEvents,
    private readonly logger: Logger,
    private readonly output: JobOutput,
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
    const freed = await this.store.releaseOrphanedWorkspaces();
    if (freed > 0) this.logger.warn({ workspaces: freed }, 'released workspaces held by work a previous process left unfinished');
  }

  /** Where `workspace` reports from agents go (the workspace service). */
  onWorkspaceReport(handler: WorkspaceReportHandler): void {
    this.workspaceReports = handler;
  }

  /** Whether the agent with this id is connected and has said hello. */
  isOnline(agentId: string): boolean {
    return this.byAgentId.get(agentId)?.online === true;
  }

  /** The ids of the connected agents. */
  onlineAgentIds(): string[] {
    return [...this.byAgentId.entries()].filter(([, c]) => c.online && c.info).map(([id]) => id);
  }

  /**
   * Sends a workspace order to one agent and resolves with its reply. Rejects with the agent's own error (status,
   * code, sentence) when it refuses, 504 `timeout` when it does not answer within `timeoutMs`, and 503
   * `agent_unavailable` when it is not connected or disconnects first.
   */
  request(agentId: string, order: OrderBody, timeoutMs: number): Promise<WorkspaceOrderResult> {
    const conn = this.byAgentId.get(agentId);
    const what = `${order.type} of workspace ${order.workspace.name}`;
    if (!conn?.online || this.closed) {
      return Promise.reject(new MagsError(503, 'agent_unavailable', `the agent ${agentId} is not connected; try the ${order.type} again when it is`));
    }
    const requestId = randomUUID();
    return new Promise<WorkspaceOrderResult>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(requestId);
        conn.log.warn({ requestId, order: order.type, workspace: order.workspace.name }, 'agent did not answer a workspace order in time');
        reject(
          new MagsError(
            504,
            'timeout',
            `the agent ${agentId} did not finish the ${what} within ${timeoutMs < 1000 ? `${timeoutMs} ms` : `${Math.round(timeoutMs / 1000)} s`}; it may still be working on it, so try again in a while`,
          ),
        );
      }, timeoutMs);
      this.pending.set(requestId, { conn, resolve, reject, timer });
      conn.log.debug({ requestId, order: order.type, workspace: order.workspace.name }, 'workspace order sent');
      conn.link.send({ ...order, requestId } as WorkspaceOrder);
    });
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

  /** The last storage figures of each online agent that reports them, by agent id. */
  agentStorage(): Map<string, HostStorage> {
    const out = new Map<string, HostStorage>();
    for (const [id, conn] of this.byAgentId) if (conn.online && conn.storage) out.set(id, conn.storage);
    return out;
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
    // Taken now: a link's cleanup removes it from `connections` while its work (failing its jobs) still runs.
    const connections = [...this.connections];
    for (const conn of connections) {
      conn.closeReason = MESSAGES.serverShutdown;
      this.failPending(conn, new MagsError(503, 'unavailable', 'the server is shutting down; try again in a moment'));
      conn.link.close();
    }
    await this.dispatching;
    await Promise.all(connections.map((c) => c.chain));
  }

  // ── internals ───────────────────────────────────────────────────────────────────────────────────

  private async handle(conn: AgentConnection, raw: unknown): Promise<void> {
    if (!this.connections.has(conn)) return; // closed; late messages are dropped
    const parsed = parseAgentMessage(raw);
    if (!parsed.ok) {
      conn.log.warn({ type: parsed.type, reason: parsed.reason }, 'ignoring a malformed message from an agent');
      return;
    }
    const m = parsed.message;
    if (m.type === 'hello') return this.onHello(conn, m.agent);
    if (!conn.info || !conn.online) {
      conn.log.warn({ type: m.type }, 'ignoring a message from an agent that has not said hello');
      return;
    }
    const agentId = conn.info.id;
    switch (m.type) {
      case 'pool':
        conn.pool = { ...m.pool };
        if (m.storage) conn.storage = { ...m.storage };
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
        // Batched, capped and announced by JobOutput; this waits only while the job's batch is full.
        await this.output.append(m.jobId, m.lines);
        return;
      }
      case 'exited': {
        if (!conn.jobs.has(m.jobId)) return this.unknownJob(conn, m.jobId, m.type);
        conn.jobs.delete(m.jobId);
        // Every line is stored (and sent to followers) before the job is seen to end.
        await this.output.end(m.jobId);
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
      case 'reply': {
        const pending = this.pending.get(m.requestId);
        if (!pending || pending.conn !== conn) {
          conn.log.warn({ requestId: m.requestId }, 'ignoring a reply to a request this agent was not sent (or that timed out)');
          return;
        }
        this.pending.delete(m.requestId);
        clearTimeout(pending.timer);
        if (m.ok) pending.resolve({ ...m.result });
        else pending.reject(new MagsError(m.status, m.code, m.error));
        return;
      }
      case 'workspace':
        await this.workspaceReports?.(agentId, m.report);
        return;
    }
  }

  private failPending(conn: AgentConnection, err: MagsError): void {
    for (const [id, p] of this.pending) {
      if (p.conn !== conn) continue;
      this.pending.delete(id);
      clearTimeout(p.timer);
      p.reject(err);
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
    conn.storage = info.storage ? { ...info.storage } : undefined;
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
    const who = info ? `the agent ${info.id}` : 'the agent';
    this.failPending(conn, new MagsError(503, 'agent_unavailable', `${who} disconnected before it answered; try again`));
    if (!info) return;
    if (this.byAgentId.get(info.id) === conn) this.byAgentId.delete(info.id);
    const now = Date.now();
    for (const jobId of conn.jobs) {
      await this.output.end(jobId);
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

  private freeSlots(conn: AgentConnection): number {
    return conn.online && conn.info ? Math.max(0, conn.info.capacity - conn.jobs.size) : 0;
  }

  /**
   * The agent with the most free slots, among those with room for a new disk of `diskGb` (an agent that reports no
   * storage figures counts as having room). If none has room, any agent with a slot: it refuses with a sentence.
   */
  private pickAgent(diskGb = 0): AgentConnection | undefined {
    let best: AgentConnection | undefined;
    let bestFree = 0;
    let bestFits = false;
    for (const conn of this.byAgentId.values()) {
      const free = this.freeSlots(conn);
      if (free === 0) continue;
      const fits = !conn.storage || roomForDisks(conn.storage) >= diskGb * GiB;
      if ((fits && !bestFits) || (fits === bestFits && free > bestFree)) {
        best = conn;
        bestFree = free;
        bestFits = fits;
      }
    }
    return best;
  }

  /**
   * Where a queued job goes, or undefined if it must wait. A local workspace lives only on the agent that holds it:
   * its job waits for that agent's capacity while the agent is online; if the agent is gone, the copy is lost and
   * the job runs anywhere (on a fresh, empty workspace). A persistent workspace prefers its agent (a warm copy).
   */
  private placement(job: JobRow, row: WorkspaceRow | undefined): AgentConnection | undefined {
    const spec = specOf(job);
    const ws = spec?.workspace;
    // Elsewhere than on a copy it holds, an agent has to make the disk.
    const diskGb = Math.max(spec?.disk_gb ?? 0, row?.disk_gb ?? 0);
    if (!ws) return this.pickAgent(diskGb);
    const holder = row?.agent_id ? this.byAgentId.get(row.agent_id) : undefined;
    if (holder?.online && holder.info) {
      if (this.freeSlots(holder) > 0) return holder;
      if (row && row.persistent === 0) return undefined; // wait for the agent that has the files
      return this.pickAgent(diskGb);
    }
    if (row?.agent_id && row.persistent === 0) {
      this.logger.warn(
        { jobId: job.id, workspace: ws.name, agentId: row.agent_id },
        'the agent holding this local workspace is gone; its files are lost and the job runs on an empty workspace elsewhere',
      );
    }
    return this.pickAgent(diskGb);
  }

  private async dispatchOnce(): Promise<void> {
    let after: string | undefined;
    for (;;) {
      let free = 0;
      for (const conn of this.byAgentId.values()) free += this.freeSlots(conn);
      if (free === 0 || this.closed) return;
      const queued = await this.store.queuedJobs(DISPATCH_PAGE, after);
      if (queued.length === 0) return;
      for (const queuedJob of queued) {
        if (this.closed) return;
        after = queuedJob.id;
        if (!this.pickAgent()) return; // nothing free anywhere
        const wsId = specOf(queuedJob)?.workspace?.id;
        const row = wsId !== undefined ? await this.store.getWorkspaceById(wsId) : undefined;
        const conn = this.placement(queuedJob, row);
        if (!conn?.info) continue; // pinned to a busy agent: later jobs may still run
        await this.dispatchTo(conn, queuedJob, row);
      }
      if (queued.length < DISPATCH_PAGE) return;
    }
  }

  private async dispatchTo(conn: AgentConnection, queuedJob: JobRow, row: WorkspaceRow | undefined): Promise<void> {
    const agentId = conn.info!.id;
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
      return;
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
      return;
    }
    let sandbox: SandboxSpec;
    try {
      sandbox = sandboxSpec(job);
    } catch (err) {
      conn.jobs.delete(job.id);
      conn.log.error({ err, jobId: job.id }, 'a stored job has an unreadable spec');
      const failed = await this.store.finishJob(
        job.id,
        { status: 'error', exitCode: null, errorMessage: 'the job could not be read back from the database', completedAt: Date.now() },
        agentId,
      );
      if (failed) this.events.emit(job.id, { type: 'status', job: failed });
      return;
    }
    const ws = sandbox.workspace ? specOf(job)?.workspace : undefined;
    // A resize after the submit counts (disks only grow).
    if (row) sandbox.diskGb = Math.max(sandbox.diskGb, row.disk_gb);
    conn.log.info({ jobId: job.id, workspace: ws?.name }, 'job dispatched');
    conn.link.send({ type: 'start', sandbox });
    // The copy will be on this agent: later jobs on a local workspace follow it here.
    if (ws) {
      await this.store
        .setWorkspaceAgent(ws.id, agentId)
        .catch((err: unknown) => conn.log.warn({ err, jobId: job.id, workspace: ws.name }, 'could not record where the workspace is'));
    }
  }
}

function specOf(job: JobRow): JobSpec | undefined {
  try {
    return parseSpec(job);
  } catch {
    return undefined;
  }
}

function safeTimeout(job: JobRow): number {
  try {
    return parseSpec(job).timeout_s;
  } catch {
    return 0;
  }
}

/** What the agent is told to run, entirely from the job's row (its spec was resolved at submit). */
export function sandboxSpec(job: JobRow): SandboxSpec {
  const spec = parseSpec(job);
  const sandbox: SandboxSpec = {
    jobId: job.id,
    script: job.script,
    environment: spec.environment,
    vcpus: spec.vcpus,
    memoryMb: spec.memory_mb,
    timeoutS: spec.timeout_s,
    network: spec.network,
    diskGb: spec.disk_gb,
    uploads: (spec.uploads ?? []).map((u) => ({ key: u.key, name: u.name, size: u.size })),
  };
  // Store keys carry the owner's id, never a name the user typed alone.
  if (spec.workspace) sandbox.workspace = { owner: job.user_id, name: spec.workspace.name, persistent: spec.workspace.persistent };
  if (spec.base) sandbox.base = { label: spec.base.label, manifestKey: spec.base.manifestKey };
  return sandbox;
}
