// E2B sandboxes (the service behind e2b/routes.ts): an E2B sandbox is a long-lived Mags job of the caller (without a
// workspace for template `base`, from the warm pool; on a local workspace made for it, based on the template's
// persistent workspace, otherwise), plus a row in e2b_sandboxes (template, metadata, envd and traffic tokens,
// deadline). Create, connect (wakes it), pause (sleeps it), kill (stops it), the deadline (stops or sleeps it at
// `end_at`, re-armed when the server starts) and metrics (from the agent's usage reports) go through the jobs
// services, as `mags` does.
import { randomBytes } from 'node:crypto';
import { type AgentToServer, isTerminal, MagsError } from '@mags/api';
import type { Logger } from 'pino';
import type { JobEvents } from '../jobs/events.js';
import type { SandboxLifecycle } from '../jobs/lifecycle.js';
import type { JobService } from '../jobs/service.js';
import { waitForJob } from '../jobs/wait.js';
import type { E2bSandboxRow, Job, Store } from '../store/index.js';
import type { Workspaces } from '../workspaces/service.js';

/** The envd version sandboxes report: the SDK gates features on it (see docs/architecture.md, E2B). */
export const ENVD_VERSION = '0.5.7';
/** E2B's default timeout, in seconds. */
export const DEFAULT_TIMEOUT_S = 300;
/** The longest timeout (E2B's Pro plan allows 24 h; a self-hosted server allows 30 days). */
export const MAX_TIMEOUT_S = 30 * 86_400;
/** How long create waits for the sandbox to run: less than the SDK's 60 s request timeout, so that it hears why. */
const START_TIMEOUT_MS = 50_000;
/** How long pause waits for the agent to freeze the sandbox. */
const PAUSE_TIMEOUT_MS = 15_000;
/** setTimeout's longest delay; a later deadline is re-armed when this passes. */
const MAX_TIMER_MS = 2 ** 31 - 1;
/** Usage readings kept per sandbox for metrics. */
const READINGS_KEPT = 120;

export interface ResolvedSandbox {
  job: Job;
  userId: string;
  envdToken: string;
  allowPublicTraffic: boolean;
  trafficToken?: string;
  /** The sandbox's environment (E2B `envVars`): envd gives it to every command. */
  envs: Record<string, string>;
}

export interface CreateSandbox {
  templateID: string;
  metadata: Record<string, string>;
  envVars: Record<string, string>;
  timeoutS: number;
  autoPause: boolean;
  allowInternetAccess: boolean;
  allowPublicTraffic: boolean;
}

/** What the control plane answers about a sandbox (GET /sandboxes/{id} and the list). */
export interface SandboxView {
  row: E2bSandboxRow;
  job: Job;
  state: 'running' | 'paused';
}

export type UsageReading = Extract<AgentToServer, { type: 'usage' }>;
type Reading = Pick<UsageReading, 'sandboxId' | 'sandboxMs' | 'cpuMs' | 'memoryMibMs' | 'ts'>;

export interface E2bSandboxesDeps {
  store: Store;
  jobs: JobService;
  lifecycle: SandboxLifecycle;
  workspaces: Workspaces;
  events: JobEvents;
  logger: Logger;
}

export class E2bSandboxes {
  private readonly timers = new Map<string, NodeJS.Timeout>();
  private readonly readings = new Map<string, Reading[]>();
  private closed = false;
  private unlisten?: () => void;

  constructor(private readonly deps: E2bSandboxesDeps) {}

  /**
   * Arms the deadline of every sandbox that has not ended and is not paused (a restart of the server keeps them),
   * and from now on notices a paused sandbox woken by other means than connect (its URL, `mags exec`).
   */
  async start(): Promise<void> {
    for (const row of await this.deps.store.e2b.unfinished()) if (row.paused === 0) this.arm(row.job_id, row.end_at);
    this.unlisten = this.deps.events.onAnyStatus((job) => {
      if (job.status === 'running') void this.wokenElsewhere(job.id);
    });
  }

  close(): void {
    this.closed = true;
    this.unlisten?.();
    for (const t of this.timers.values()) clearTimeout(t);
    this.timers.clear();
  }

  /**
   * The sandbox `sandboxId` for envd and the router: undefined when it is no E2B sandbox or has ended. The caller
   * checks the envd token (or the user) itself.
   */
  resolve = async (sandboxId: string): Promise<ResolvedSandbox | undefined> => {
    const row = await this.deps.store.e2b.get(sandboxId);
    if (!row) return undefined;
    const job = await this.deps.store.jobs.get(row.job_id);
    if (!job || isTerminal(job.status)) return undefined;
    return {
      job,
      userId: row.user_id,
      envdToken: row.envd_token,
      allowPublicTraffic: row.traffic_token === null,
      ...(row.traffic_token !== null ? { trafficToken: row.traffic_token } : {}),
      envs: parseRecord(row.env_vars),
    };
  };

  /** Creates a sandbox for `userId` and resolves once it runs. 404 for an unknown template. */
  async create(userId: string, req: CreateSandbox, signal?: AbortSignal): Promise<{ row: E2bSandboxRow; job: Job }> {
    const { store, jobs, workspaces, logger } = this.deps;
    if (req.templateID !== 'base') {
      try {
        await workspaces.resolveBase(userId, req.templateID);
      } catch (err) {
        if (err instanceof MagsError && err.status === 404) {
          throw MagsError.notFound(
            `template "${req.templateID}" not found: templateID is "base" (the default image) or the name of one of your persistent workspaces`,
          );
        }
        throw err;
      }
    }
    // Template `base`: a long-lived job without a workspace, started from the agent's warm pool like a run; its files
    // live in its sandbox layer as long as it does. A template naming a workspace: a local workspace made for the
    // sandbox with that one as its base (deleted with it).
    const workspace = req.templateID === 'base' ? '' : `e2b-${randomBytes(6).toString('hex')}`;
    const network = req.allowInternetAccess ? ('internet' as const) : ('none' as const);
    const job =
      workspace === ''
        ? await jobs.submit(userId, { long_lived: true, environment: req.envVars, network }, { workspaceless: true })
        : await jobs.submit(userId, {
            long_lived: true,
            workspace_id: workspace,
            environment: req.envVars,
            network,
            base_workspace_id: req.templateID,
          });
    const now = Date.now();
    const row: E2bSandboxRow = {
      job_id: job.id,
      user_id: userId,
      template_id: req.templateID,
      workspace,
      metadata: JSON.stringify(req.metadata),
      env_vars: JSON.stringify(req.envVars),
      envd_token: randomBytes(32).toString('base64url'),
      traffic_token: req.allowPublicTraffic ? null : randomBytes(32).toString('base64url'),
      auto_pause: req.autoPause ? 1 : 0,
      paused: 0,
      end_at: now + req.timeoutS * 1000,
      created_at: now,
    };
    try {
      await store.e2b.insert(row);
    } catch (err) {
      await jobs.stopById(job.id).catch(() => undefined);
      throw err;
    }
    this.arm(job.id, row.end_at);
    logger.info({ jobId: job.id, template: req.templateID, timeoutS: req.timeoutS }, 'e2b sandbox created');
    let running: Job;
    try {
      running = await this.waitRunning(job, signal);
      if (signal?.aborted) {
        throw new MagsError(499, 'client_closed', 'the client went away before the sandbox was up: it was ended');
      }
    } catch (err) {
      // The caller is told it failed: nothing of it may start later and hold resources until its deadline.
      await this.end(row, signal?.aborted ? 'its client went away' : 'it did not start').catch(() => undefined);
      throw err;
    }
    return { row, job: running };
  }

  /** The caller's sandbox that has not ended, or 404 (another user's is not found either). */
  async find(userId: string, sandboxId: string): Promise<{ row: E2bSandboxRow; job: Job }> {
    const row = await this.deps.store.e2b.get(sandboxId);
    const job = row && row.user_id === userId ? await this.deps.store.jobs.get(row.job_id) : undefined;
    if (!row || !job || isTerminal(job.status)) throw notFound(sandboxId);
    return { row, job };
  }

  /** Paused only through the E2B API: a sandbox Mags froze because it was idle is running for E2B (use wakes it). */
  view(row: E2bSandboxRow, job: Job): SandboxView {
    return { row, job, state: row.paused === 1 && job.status !== 'running' ? 'paused' : 'running' };
  }

  /** The caller's live sandboxes, oldest first. */
  async list(userId: string): Promise<SandboxView[]> {
    const rows = await this.deps.store.e2b.unfinishedOf(userId);
    const out: SandboxView[] = [];
    for (const row of rows) {
      const job = await this.deps.store.jobs.get(row.job_id);
      if (job && !isTerminal(job.status)) out.push(this.view(row, job));
    }
    return out;
  }

  /** Resumes a paused sandbox (and waits for it to run); the deadline becomes now + `timeoutS` when given. */
  async connect(
    userId: string,
    sandboxId: string,
    timeoutS: number | undefined,
  ): Promise<{ row: E2bSandboxRow; job: Job; resumed: boolean }> {
    let { row, job } = await this.find(userId, sandboxId);
    const resumed = this.view(row, job).state === 'paused';
    // A paused sandbox had no deadline: it gets the connect's timeout, else E2B's default. A running one keeps its
    // own unless a timeout is given. (Before the wake, so that the wake is not taken for one by other means.)
    if (row.paused === 1 || timeoutS !== undefined) {
      const endAt = Date.now() + (timeoutS ?? DEFAULT_TIMEOUT_S) * 1000;
      await this.deps.store.e2b.resume(row.job_id, endAt);
      this.arm(row.job_id, endAt);
      row = { ...row, paused: 0, end_at: endAt };
    }
    if (job.status !== 'running') job = await this.wakeOrGone(job);
    return { row, job, resumed };
  }

  /** Moves the deadline to now + `timeoutS` (of a paused sandbox too: it runs from its resume). */
  async setTimeout(userId: string, sandboxId: string, timeoutS: number): Promise<E2bSandboxRow> {
    const { row } = await this.find(userId, sandboxId);
    const endAt = Date.now() + timeoutS * 1000;
    await this.deps.store.e2b.setEndAt(row.job_id, endAt);
    if (row.paused === 0) this.arm(row.job_id, endAt);
    return { ...row, end_at: endAt };
  }

  /** Pauses (sleeps) the sandbox, whose deadline stops until it is resumed; 409 when it is paused already. */
  async pause(userId: string, sandboxId: string): Promise<void> {
    const { row, job } = await this.find(userId, sandboxId);
    if (this.view(row, job).state === 'paused') {
      throw new MagsError(409, 'conflict', `sandbox ${sandboxId} is already paused`);
    }
    await this.sleep(job);
  }

  /** Ends the sandbox (its job stops, its workspace is deleted); 404 when it is not (or no longer) there. */
  async kill(userId: string, sandboxId: string): Promise<void> {
    const { row } = await this.find(userId, sandboxId);
    await this.end(row, 'killed');
  }

  /** Metrics from the agent's usage reports: one point per interval between reports (or since start). */
  async metrics(
    userId: string,
    sandboxId: string,
    range: { start?: number; end?: number },
  ): Promise<
    Array<{
      timestamp: string;
      cpuUsedPct: number;
      cpuCount: number;
      memUsed: number;
      memTotal: number;
      memCache: number;
      diskUsed: number;
      diskTotal: number;
    }>
  > {
    const { job } = await this.find(userId, sandboxId);
    const cpuCount = job.spec?.vcpus ?? 1;
    const memTotal = (job.spec?.memory_mb ?? 0) * 1024 * 1024;
    const diskTotal = (job.spec?.disk_gb ?? 0) * 1024 ** 3;
    let readings: Reading[] = this.readings.get(job.id) ?? [];
    if (readings.length === 0) {
      const meter = await this.deps.store.usage.meterOf(job.id);
      if (meter) readings = [meter];
    }
    const points = [];
    for (let i = 0; i < readings.length; i++) {
      const r = readings[i];
      const prev = i > 0 && readings[i - 1].sandboxId === r.sandboxId ? readings[i - 1] : undefined;
      const dt = r.sandboxMs - (prev?.sandboxMs ?? 0);
      if (dt <= 0) continue;
      const cpu = r.cpuMs - (prev?.cpuMs ?? 0);
      const mem = r.memoryMibMs - (prev?.memoryMibMs ?? 0);
      const ts = Math.floor(r.ts / 1000);
      if (range.start !== undefined && ts < range.start) continue;
      if (range.end !== undefined && ts > range.end) continue;
      points.push({
        timestamp: new Date(r.ts).toISOString(),
        cpuUsedPct: round2((cpu / dt / cpuCount) * 100),
        cpuCount,
        memUsed: Math.round((mem / dt) * 1024 * 1024),
        memTotal,
        // Neither figure is measured per sandbox (the usage reports carry none): 0 rather than a guess.
        memCache: 0,
        diskUsed: 0,
        diskTotal,
      });
    }
    return points;
  }

  /** A usage report of an agent (every job's): kept for metrics when the job is an E2B sandbox's. */
  usageReport(m: UsageReading): void {
    const kept = this.readings.get(m.jobId);
    if (kept) {
      kept.push(m);
      if (kept.length > READINGS_KEPT) kept.shift();
      if (m.final) this.readings.delete(m.jobId);
      return;
    }
    if (m.final) return;
    void this.deps.store.e2b.get(m.jobId).then(
      (row) => {
        if (row && !this.readings.has(m.jobId)) this.readings.set(m.jobId, [m]);
      },
      () => undefined,
    );
  }

  private async waitRunning(job: Job, signal?: AbortSignal): Promise<Job> {
    const { store, events } = this.deps;
    const up = await waitForJob(store, events, job.id, (j) => j.status !== 'accepted', START_TIMEOUT_MS, signal);
    if (signal?.aborted) return job;
    if (!up || isTerminal(up.status)) {
      throw new MagsError(
        503,
        'agent_unavailable',
        `sandbox ${job.id} did not start${up?.error_message ? `: ${up.error_message}` : ''}; try again`,
      );
    }
    return up.status === 'sleeping' ? this.wakeOrGone(up) : up;
  }

  private async wakeOrGone(job: Job): Promise<Job> {
    try {
      return await this.deps.lifecycle.wake(job);
    } catch (err) {
      // It ended meanwhile: as gone as any ended sandbox.
      if (err instanceof MagsError && err.status === 409) throw notFound(job.id);
      throw err;
    }
  }

  private arm(jobId: string, endAt: number): void {
    if (this.closed) return;
    clearTimeout(this.timers.get(jobId));
    const delay = Math.max(0, Math.min(endAt - Date.now(), MAX_TIMER_MS));
    const timer = setTimeout(() => {
      this.timers.delete(jobId);
      void this.deadline(jobId).catch((err: unknown) =>
        this.deps.logger.error({ err, jobId }, 'e2b sandbox deadline failed'),
      );
    }, delay);
    timer.unref();
    this.timers.set(jobId, timer);
  }

  /** The deadline passed (or a timer of a moved one fired): stop it, or sleep it when created with autoPause. */
  private async deadline(jobId: string): Promise<void> {
    const row = await this.deps.store.e2b.get(jobId);
    if (!row) return;
    if (row.paused === 1) return;
    if (row.end_at > Date.now() + 5) return this.arm(jobId, row.end_at);
    const job = await this.deps.store.jobs.get(jobId);
    if (!job || isTerminal(job.status)) return;
    if (row.auto_pause === 1) {
      this.deps.logger.info({ jobId }, 'e2b sandbox timed out: pausing it (autoPause)');
      await this.sleep(job);
      return;
    }
    this.deps.logger.info({ jobId }, 'e2b sandbox timed out: ending it');
    await this.end(row, 'timed out');
  }

  /** Puts the sandbox to sleep (frozen now; one Mags froze already stays so) and marks it paused. */
  private async sleep(job: Job): Promise<void> {
    clearTimeout(this.timers.get(job.id));
    this.timers.delete(job.id);
    try {
      await this.deps.lifecycle.sleep(job, PAUSE_TIMEOUT_MS);
    } catch (err) {
      // Not paused after all: the deadline runs again.
      const row = await this.deps.store.e2b.get(job.id);
      if (row) this.arm(job.id, row.end_at);
      throw err;
    }
    await this.deps.store.e2b.setPaused(job.id, true);
  }

  /**
   * A paused sandbox runs again without connect (its URL was requested, `mags exec` ran in it): it is resumed as
   * connect would, with E2B's default timeout.
   */
  private async wokenElsewhere(jobId: string): Promise<void> {
    try {
      const row = await this.deps.store.e2b.get(jobId);
      if (!row || row.paused === 0) return;
      const endAt = Date.now() + DEFAULT_TIMEOUT_S * 1000;
      await this.deps.store.e2b.resume(jobId, endAt);
      this.arm(jobId, endAt);
      this.deps.logger.info({ jobId }, 'a paused e2b sandbox was woken by use: resumed');
    } catch (err) {
      this.deps.logger.warn({ err, jobId }, 'could not resume a woken e2b sandbox');
    }
  }

  private async end(row: E2bSandboxRow, why: string): Promise<void> {
    const { jobs, workspaces, logger } = this.deps;
    clearTimeout(this.timers.get(row.job_id));
    this.timers.delete(row.job_id);
    this.readings.delete(row.job_id);
    try {
      await jobs.stopById(row.job_id);
    } catch (err) {
      if (!(err instanceof MagsError && (err.status === 409 || err.status === 404))) throw err;
    }
    logger.info({ jobId: row.job_id, why }, 'e2b sandbox ended');
    // Without a workspace its files were in its sandbox layer, gone with it.
    if (row.workspace === '') return;
    // The workspace was made for the sandbox alone: it goes with it (in the background, as a sync may still run).
    void workspaces
      .deleteWorkspace(row.user_id, row.workspace, true)
      .catch((err: unknown) => logger.warn({ err, jobId: row.job_id }, 'could not delete an e2b sandbox workspace'));
  }
}

function notFound(sandboxId: string): MagsError {
  return MagsError.notFound(
    `sandbox "${sandboxId.slice(0, 100)}" not found (it never existed, ended, or is not yours)`,
  );
}

function parseRecord(text: string): Record<string, string> {
  try {
    const v = JSON.parse(text) as unknown;
    if (typeof v !== 'object' || v === null || Array.isArray(v)) return {};
    return Object.fromEntries(Object.entries(v).filter((e): e is [string, string] => typeof e[1] === 'string'));
  } catch {
    return {};
  }
}

export function metadataOf(row: E2bSandboxRow): Record<string, string> {
  return parseRecord(row.metadata);
}

function round2(n: number): number {
  return Math.round(n * 100) / 100;
}
