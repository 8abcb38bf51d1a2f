// The agents connected to this server: their links, what each said in hello and reports of its pool and storage,
// the jobs handed to each (its used slots), and workspace orders sent to one agent with its reply awaited (or a
// timeout). Every message is checked before it is acted on, and one agent's messages are handled in the order sent.
// What agents report about jobs and workspaces is passed on to the AgentEvents wired in by the composition root.
import { randomUUID } from 'node:crypto';
import {
  type AgentInfo,
  type AgentToServer,
  type ExecOrder,
  type HostStorage,
  MagsError,
  type PoolStatus,
  parseAgentMessage,
  type SandboxSpec,
  type ServerEnd,
  type ServerStatus,
  type ServerToAgent,
  type WorkspaceOrder,
  type WorkspaceOrderResult,
  type WorkspaceReport,
} from '@mags/api';
import type { Logger } from 'pino';
import type { AgentStore } from '../store/index.js';

type AgentSummary = ServerStatus['agents'][number];

/** A workspace order without its requestId (the registry adds one). */
export type OrderBody =
  | { type: 'sync'; workspace: WorkspaceOrder['workspace'] }
  | { type: 'resize'; workspace: WorkspaceOrder['workspace']; diskGb: number }
  | { type: 'drop'; workspace: WorkspaceOrder['workspace'] };

/** What an agent reports about a job it was handed. */
export type JobReport = Extract<AgentToServer, { type: 'started' | 'slept' | 'woke' | 'output' | 'exited' }>;

/** What an agent metered for a job's sandbox. */
export type UsageReport = Extract<AgentToServer, { type: 'usage' }>;

/** Where the registry passes on what it learns; each is awaited before the agent's next message is handled. */
export interface AgentEvents {
  /** A report about a job this agent holds (after `exited`, the agent no longer holds it). */
  jobReport(agentId: string, report: JobReport, log: Logger): Promise<void>;
  workspaceReport(agentId: string, report: WorkspaceReport): Promise<void>;
  /** What a job's sandbox used so far (cumulative), from the agent holding the job. */
  usageReport(agentId: string, report: UsageReport, log: Logger): Promise<void>;
  /** The agent left (or the server is closing) with these jobs unfinished; they end with `reason`. */
  agentLeft(agentId: string, jobIds: string[], reason: string, log: Logger): Promise<void>;
  /** Slots may have become free (an agent said hello or left, a job ended): queued jobs may run now. */
  slotsFreed(): void;
}

const CLOSE_REASONS = {
  agentDisconnected: 'the agent running this job disconnected',
  serverShutdown: 'the server shut down while this job was running',
};

/** What placement and dispatch see of a connected agent. */
export interface ConnectedAgent {
  readonly id: string;
  readonly online: boolean;
  /** Slots not taken by a job handed to it. */
  readonly freeSlots: number;
  /** Its last storage figures; undefined if it reports none. */
  readonly storage: HostStorage | undefined;
  /** What its unfinished jobs end with when its link closes. */
  readonly closeReason: string;
  readonly log: Logger;
}

/** What an agent reports about an exec, in order; `exited` is the last. */
export type ExecReport = Extract<AgentToServer, { type: 'execStarted' | 'execOutput' | 'execInputAck' | 'execExited' }>;

/** The server's side of an exec running on an agent: its stdin, its flow control, and a kill. */
export interface ExecChannel {
  /** Stdin bytes (at most EXEC_CHUNK), `eof` with the last. */
  input(data: Buffer, eof: boolean): void;
  /** This many output bytes were passed on: the agent may send as many more. */
  ack(bytes: number): void;
  /** Kill the exec's processes (its client went away); its `execExited` follows. */
  kill(): void;
  /** Resize the exec's terminal (one it was started with). */
  resize(cols: number, rows: number): void;
}

interface OpenExec {
  conn: AgentConnection;
  /** Receives the agent's reports about the exec; after `execExited` nothing more. */
  report(message: ExecReport): void;
}

interface PendingRequest {
  conn: AgentConnection;
  resolve(result: WorkspaceOrderResult): void;
  reject(err: MagsError): void;
  timer: NodeJS.Timeout;
}

class AgentConnection implements ConnectedAgent {
  info?: AgentInfo;
  pool: AgentInfo['pool'] = { idle: 0, busy: 0, sleeping: 0, min: 0, max: 0 };
  storage: HostStorage | undefined;
  online = false;
  /** Jobs handed to this agent that have not exited yet. */
  readonly jobs = new Set<string>();
  /** Messages from one agent are handled one after another, in the order sent. */
  chain: Promise<void> = Promise.resolve();
  closeReason = CLOSE_REASONS.agentDisconnected;

  constructor(
    readonly link: ServerEnd,
    public log: Logger,
  ) {}

  get id(): string {
    return this.info?.id ?? '';
  }

  get freeSlots(): number {
    return this.online && this.info ? Math.max(0, this.info.capacity - this.jobs.size) : 0;
  }
}

/** Every ConnectedAgent outside is one of the registry's connections, handed out by online(). */
const connectionOf = (agent: ConnectedAgent): AgentConnection => agent as AgentConnection;

export class AgentRegistry {
  private readonly connections = new Set<AgentConnection>();
  private readonly byAgentId = new Map<string, AgentConnection>();
  private readonly pending = new Map<string, PendingRequest>();
  private readonly execs = new Map<string, OpenExec>();
  private serial = 0;
  private closed = false;

  constructor(
    private readonly store: AgentStore,
    private readonly events: AgentEvents,
    private readonly logger: Logger,
  ) {}

  /** At start, before any agent joins: none of the agents the store knows is connected. */
  async recover(): Promise<void> {
    await this.store.markAllOffline();
  }

  attach(link: ServerEnd): void {
    if (this.closed) {
      link.close();
      return;
    }
    const conn = new AgentConnection(link, this.logger.child({ link: ++this.serial }));
    this.connections.add(conn);
    const enqueue = (work: () => Promise<void>) => {
      conn.chain = conn.chain
        .then(work)
        .catch((err: unknown) => conn.log.error({ err }, 'failed to handle an agent message'));
    };
    link.onMessage((message) => enqueue(() => this.handle(conn, message)));
    link.onClose(() => enqueue(() => this.detach(conn)));
  }

  /** The connected agents that said hello. */
  online(): ConnectedAgent[] {
    return [...this.byAgentId.values()].filter((c) => c.online && c.info);
  }

  /** Whether the agent with this id is connected and has said hello. */
  isOnline(agentId: string): boolean {
    return this.byAgentId.get(agentId)?.online === true;
  }

  /** Takes a slot of `agent` for `jobId`, before the job is claimed, so that no other job gets it meanwhile. */
  takeSlot(agent: ConnectedAgent, jobId: string): void {
    connectionOf(agent).jobs.add(jobId);
  }

  releaseSlot(agent: ConnectedAgent, jobId: string): void {
    connectionOf(agent).jobs.delete(jobId);
  }

  /** Hands a job (whose slot is taken) to its agent. */
  start(agent: ConnectedAgent, sandbox: SandboxSpec): void {
    connectionOf(agent).link.send({ type: 'start', sandbox });
  }

  /** Asks the agent holding `jobId` to stop it. False when no connected agent holds the job. */
  stop(agentId: string, jobId: string): boolean {
    const conn = this.byAgentId.get(agentId);
    if (!conn?.online || !conn.jobs.has(jobId)) return false;
    conn.log.info({ jobId }, 'asking the agent to stop the job');
    conn.link.send({ type: 'stop', jobId });
    return true;
  }

  /** Sends an order about a job (`update`, `wake`) to the agent holding it. False when no connected agent does. */
  tell(agentId: string, order: Extract<ServerToAgent, { type: 'update' | 'wake' | 'sleep' }>): boolean {
    const conn = this.byAgentId.get(agentId);
    if (!conn?.online || !conn.jobs.has(order.jobId)) return false;
    conn.link.send(order);
    return true;
  }

  /**
   * Starts a command in a job's sandbox on the agent holding the job; `report` gets the agent's reports about it,
   * the last an `execExited` (also made up here, reason `error`, when the agent leaves first). Throws 503 when no
   * connected agent holds the job.
   */
  exec(agentId: string, order: Omit<ExecOrder, 'type' | 'execId'>, report: (m: ExecReport) => void): ExecChannel {
    const conn = this.byAgentId.get(agentId);
    if (!conn?.online || this.closed || !conn.jobs.has(order.jobId)) {
      throw new MagsError(503, 'agent_unavailable', `the agent running job ${order.jobId} is not connected; try again`);
    }
    const execId = randomUUID();
    this.execs.set(execId, { conn, report });
    conn.link.send({ type: 'exec', execId, ...order });
    const live = () => this.execs.get(execId)?.conn === conn;
    return {
      input: (data, eof) => {
        if (live()) conn.link.send({ type: 'execInput', execId, data: data.toString('base64'), eof });
      },
      ack: (bytes) => {
        if (live() && bytes > 0) conn.link.send({ type: 'execAck', execId, bytes });
      },
      kill: () => {
        if (live()) conn.link.send({ type: 'execKill', execId });
      },
      resize: (cols, rows) => {
        if (live()) conn.link.send({ type: 'execResize', execId, cols, rows });
      },
    };
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
      return Promise.reject(
        new MagsError(
          503,
          'agent_unavailable',
          `the agent ${agentId} is not connected; try the ${order.type} again when it is`,
        ),
      );
    }
    const requestId = randomUUID();
    return new Promise<WorkspaceOrderResult>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(requestId);
        conn.log.warn(
          { requestId, order: order.type, workspace: order.workspace.name },
          'agent did not answer a workspace order in time',
        );
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

  /** Warm sandboxes over all connected agents. */
  poolStatus(): PoolStatus {
    const sum = { idle_vms: 0, busy_vms: 0, sleeping_vms: 0, total_vms: 0, min_pool_size: 0, max_pool_size: 0 };
    for (const conn of this.connections) {
      if (!conn.online) continue;
      sum.idle_vms += conn.pool.idle;
      sum.busy_vms += conn.pool.busy;
      sum.sleeping_vms += conn.pool.sleeping;
      sum.min_pool_size += conn.pool.min;
      sum.max_pool_size += conn.pool.max;
    }
    sum.total_vms = sum.idle_vms + sum.busy_vms;
    return sum;
  }

  /** The last storage figures of each online agent that reports them, by agent id. */
  storage(): Map<string, HostStorage> {
    const out = new Map<string, HostStorage>();
    for (const [id, conn] of this.byAgentId) if (conn.online && conn.storage) out.set(id, conn.storage);
    return out;
  }

  /** Every agent the store knows, the connected ones with their live figures: online first, then the latest seen. */
  async summaries(): Promise<AgentSummary[]> {
    const rows = await this.store.list();
    const online = new Map(this.online().map((c) => [c.id, connectionOf(c)]));
    const now = new Date().toISOString();
    const summary = (conn: AgentConnection): AgentSummary => {
      const info = conn.info!;
      return {
        id: info.id,
        name: info.name,
        runtime: info.runtime,
        version: info.version,
        status: 'online',
        running: conn.jobs.size,
        capacity: info.capacity,
        last_seen_at: now,
      };
    };
    const agents = rows.map((row): AgentSummary => {
      const live = online.get(row.id);
      online.delete(row.id);
      if (live) return summary(live);
      const { id, name, runtime, version, capacity } = row;
      return {
        id,
        name,
        runtime,
        version,
        status: 'offline',
        running: 0,
        capacity,
        last_seen_at: new Date(row.last_seen_at).toISOString(),
      };
    });
    for (const live of online.values()) agents.push(summary(live));
    agents.sort((a, b) =>
      a.status === b.status ? b.last_seen_at.localeCompare(a.last_seen_at) : a.status === 'online' ? -1 : 1,
    );
    return agents;
  }

  /** Closes every agent link (their unfinished jobs end as `error`) and waits for their cleanup. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    // Taken now: a link's cleanup removes it from `connections` while its work (failing its jobs) still runs.
    const connections = [...this.connections];
    for (const conn of connections) {
      conn.closeReason = CLOSE_REASONS.serverShutdown;
      this.failPending(conn, new MagsError(503, 'unavailable', 'the server is shutting down; try again in a moment'));
      conn.link.close();
    }
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
      case 'started':
      case 'slept':
      case 'woke':
      case 'output':
      case 'exited': {
        if (!conn.jobs.has(m.jobId)) {
          conn.log.warn({ jobId: m.jobId, type: m.type }, 'ignoring a report about a job this agent was not given');
          return;
        }
        if (m.type === 'exited') conn.jobs.delete(m.jobId);
        await this.events.jobReport(agentId, m, conn.log);
        if (m.type === 'exited') this.events.slotsFreed();
        return;
      }
      case 'usage':
        if (!conn.jobs.has(m.jobId)) {
          conn.log.warn({ jobId: m.jobId, type: m.type }, 'ignoring a report about a job this agent was not given');
          return;
        }
        await this.events.usageReport(agentId, m, conn.log);
        return;
      case 'reply': {
        const pending = this.pending.get(m.requestId);
        if (!pending || pending.conn !== conn) {
          conn.log.warn(
            { requestId: m.requestId },
            'ignoring a reply to a request this agent was not sent (or that timed out)',
          );
          return;
        }
        this.pending.delete(m.requestId);
        clearTimeout(pending.timer);
        if (m.ok) pending.resolve({ ...m.result });
        else pending.reject(new MagsError(m.status, m.code, m.error));
        return;
      }
      case 'workspace':
        await this.events.workspaceReport(agentId, m.report);
        return;
      case 'execStarted':
      case 'execOutput':
      case 'execInputAck':
      case 'execExited': {
        const open = this.execs.get(m.execId);
        if (!open || open.conn !== conn) {
          conn.log.warn({ execId: m.execId, type: m.type }, 'ignoring a report about an exec this agent was not given');
          return;
        }
        if (m.type === 'execExited') this.execs.delete(m.execId);
        open.report(m);
        return;
      }
    }
  }

  /** The agent is gone: its execs end with an error. */
  private failExecs(conn: AgentConnection, message: string): void {
    for (const [execId, open] of this.execs) {
      if (open.conn !== conn) continue;
      this.execs.delete(execId);
      open.report({ type: 'execExited', execId, exitCode: null, reason: 'error', message });
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
    await this.store.upsert(info);
    conn.log.info(
      { name: info.name, runtime: info.runtime, version: info.version, capacity: info.capacity },
      'agent online',
    );
    this.events.slotsFreed();
  }

  private async detach(conn: AgentConnection): Promise<void> {
    if (!this.connections.has(conn)) return;
    this.connections.delete(conn);
    conn.online = false;
    const info = conn.info;
    const who = info ? `the agent ${info.id}` : 'the agent';
    this.failPending(
      conn,
      new MagsError(503, 'agent_unavailable', `${who} disconnected before it answered; try again`),
    );
    this.failExecs(conn, `${who} disconnected while the command ran`);
    if (!info) return;
    if (this.byAgentId.get(info.id) === conn) this.byAgentId.delete(info.id);
    const jobIds = [...conn.jobs];
    conn.jobs.clear();
    await this.events.agentLeft(info.id, jobIds, conn.closeReason, conn.log);
    if (!this.byAgentId.has(info.id)) await this.store.markOffline(info.id, Date.now());
    conn.log.info('agent offline');
    this.events.slotsFreed();
  }
}
