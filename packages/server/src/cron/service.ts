// Cron jobs: a user's script on a schedule. The scheduler ticks (every second by default) and fires each cron job due
// by then: it claims the firing in the store (the cron job's next_run_at moved on conditionally, and a cron_runs row
// unique per firing, in one transaction), so that of several servers on one database one fires it; then it submits an
// ordinary job named after the cron job. A firing whose workspace is still held by the previous one's job (or whose
// submit is refused for another reason) is recorded as skipped, with the sentence. A firing missed by more than
// MISSED_GRACE_MS (no server ran) is not replayed: the schedule resumes at the next one.
import { randomUUID } from 'node:crypto';
import { type CronCreate, type CronJob, type CronUpdate, type JobSubmit, MagsError } from '@mags/api';
import type { Logger } from 'pino';
import type { CronJobRow, CronPatch, CronRunRow, Job, Store } from '../store/index.js';
import { checkSchedule, nextRun } from './schedule.js';

/** A firing due longer ago than this when a server first sees it was missed (downtime): not run. */
export const MISSED_GRACE_MS = 60_000;

export interface CronDeps {
  store: Store;
  logger: Logger;
  /** Submits a firing's job as the user would (`POST /api/v1/mags-jobs`). */
  submit(userId: string, body: JobSubmit): Promise<Job>;
  /** How often due cron jobs are looked for (default 1 s). */
  tickMs?: number;
  /** The scheduler's clock (tests shorten it); default Date.now. */
  now?: () => number;
}

export class CronService {
  private timer?: NodeJS.Timeout;
  private ticking?: Promise<void>;
  private closed = false;
  private readonly now: () => number;

  constructor(private readonly deps: CronDeps) {
    this.now = deps.now ?? Date.now;
  }

  async create(userId: string, body: CronCreate): Promise<CronJob> {
    const timezone = body.timezone ?? null;
    const persistent = body.persistent ?? false;
    checkWorkspace(body.workspace_id ?? null, persistent);
    checkSchedule(body.cron_expression, timezone);
    const now = this.now();
    const enabled = body.enabled ?? true;
    const row: CronJobRow = {
      id: randomUUID(),
      user_id: userId,
      name: body.name,
      cron_expression: body.cron_expression.trim().split(/\s+/).join(' '),
      script: body.script,
      workspace_id: body.workspace_id ?? null,
      persistent: persistent ? 1 : 0,
      timezone,
      enabled: enabled ? 1 : 0,
      next_run_at: enabled ? nextRun(body.cron_expression, timezone, now) : null,
      last_run_at: null,
      last_job_id: null,
      last_status: null,
      created_at: now,
      updated_at: now,
    };
    if (!(await this.deps.store.cron.insert(row))) {
      throw MagsError.conflict(
        `you have a cron job named ${body.name} already; choose another name, or change it with mags cron list and remove`,
      );
    }
    this.deps.logger.info({ cronJobId: row.id, name: row.name, next: row.next_run_at }, 'cron job created');
    return view(row);
  }

  async list(userId: string): Promise<CronJob[]> {
    return (await this.deps.store.cron.list(userId)).map((r) => view(r));
  }

  /** One of the user's cron jobs, by id or name, with its latest firings. */
  async get(userId: string, ref: string): Promise<CronJob> {
    const row = await this.find(userId, ref);
    return view(row, await this.deps.store.cron.runs(row.id));
  }

  async update(userId: string, ref: string, body: CronUpdate): Promise<CronJob> {
    const row = await this.find(userId, ref);
    const merged = {
      workspace_id: body.workspace_id !== undefined ? body.workspace_id : row.workspace_id,
      persistent: body.persistent ?? (body.workspace_id === null ? false : row.persistent === 1),
      cron_expression:
        body.cron_expression !== undefined ? body.cron_expression.trim().split(/\s+/).join(' ') : row.cron_expression,
      timezone: body.timezone !== undefined ? body.timezone : row.timezone,
      enabled: body.enabled ?? row.enabled === 1,
    };
    checkWorkspace(merged.workspace_id, merged.persistent);
    checkSchedule(merged.cron_expression, merged.timezone);
    const patch: CronPatch = {
      ...(body.name !== undefined ? { name: body.name } : {}),
      ...(body.script !== undefined ? { script: body.script } : {}),
      workspace_id: merged.workspace_id,
      persistent: merged.persistent ? 1 : 0,
      cron_expression: merged.cron_expression,
      timezone: merged.timezone,
      enabled: merged.enabled ? 1 : 0,
    };
    // The schedule changed, or it was switched on: the next firing is counted from now (nothing missed is replayed).
    const rescheduled =
      merged.cron_expression !== row.cron_expression ||
      merged.timezone !== row.timezone ||
      merged.enabled !== (row.enabled === 1);
    if (!merged.enabled) patch.next_run_at = null;
    else if (rescheduled || row.next_run_at === null)
      patch.next_run_at = nextRun(merged.cron_expression, merged.timezone, this.now());
    const result = await this.deps.store.cron.update(userId, row.id, patch, this.now());
    if (result === 'clash')
      throw MagsError.conflict(`you have a cron job named ${body.name} already; choose another name`);
    if (result === 'missing') throw notFound(ref);
    return this.get(userId, row.id);
  }

  async remove(userId: string, ref: string): Promise<void> {
    const row = await this.find(userId, ref);
    if (!(await this.deps.store.cron.delete(userId, row.id))) throw notFound(ref);
    this.deps.logger.info({ cronJobId: row.id, name: row.name }, 'cron job removed');
  }

  private async find(userId: string, ref: string): Promise<CronJobRow> {
    const row = await this.deps.store.cron.find(userId, ref);
    if (!row) throw notFound(ref);
    return row;
  }

  /** Starts the scheduler. */
  start(): void {
    const every = this.deps.tickMs ?? 1000;
    this.timer = setInterval(() => void this.tick(), every);
    this.timer.unref();
  }

  async close(): Promise<void> {
    this.closed = true;
    clearInterval(this.timer);
    await this.ticking;
  }

  /**
   * Fires every cron job due by now (one tick at a time: a tick still under way is joined). Returns when the
   * firings are settled (submitted or recorded as skipped).
   */
  tick(): Promise<void> {
    if (this.closed) return Promise.resolve();
    this.ticking ??= this.fireDue().finally(() => {
      this.ticking = undefined;
    });
    return this.ticking;
  }

  private async fireDue(): Promise<void> {
    const { store, logger } = this.deps;
    const now = this.now();
    let due: CronJobRow[];
    try {
      due = await store.cron.due(now);
    } catch (err) {
      logger.error({ err }, 'could not read the due cron jobs');
      return;
    }
    for (const row of due) {
      if (this.closed) return;
      const dueAt = row.next_run_at!;
      const log = logger.child({ cronJobId: row.id, name: row.name });
      try {
        // From now, not from the due time: however long no server ran, the schedule resumes at its next firing.
        const next = nextRun(row.cron_expression, row.timezone, Math.max(now, dueAt));
        if (now - dueAt > MISSED_GRACE_MS) {
          if (await store.cron.skipMissed(row.id, dueAt, next))
            log.info({ missed: new Date(dueAt).toISOString() }, 'cron firing missed while no server ran: not replayed');
          continue;
        }
        const runId = randomUUID();
        if (!(await store.cron.claim(row.id, dueAt, next, runId, now))) continue; // another server fired it
        await this.fire(row, runId, log);
      } catch (err) {
        log.error({ err }, 'cron firing failed');
      }
    }
  }

  private async fire(row: CronJobRow, runId: string, log: Logger): Promise<void> {
    const body: JobSubmit = {
      script: row.script,
      name: row.name,
      ...(row.workspace_id ? { workspace_id: row.workspace_id, persistent: row.persistent === 1 } : {}),
    };
    try {
      const job = await this.deps.submit(row.user_id, body);
      await this.deps.store.cron.settle(row.id, runId, { status: 'fired', jobId: job.id, reason: null });
      log.info({ jobId: job.id }, 'cron job fired');
    } catch (err) {
      if (!(err instanceof MagsError)) throw err;
      const reason =
        err.code === 'workspace_busy'
          ? `skipped: the previous firing still runs on workspace ${row.workspace_id} (${err.message})`
          : `skipped: the job was refused (${err.message})`;
      await this.deps.store.cron.settle(row.id, runId, { status: 'skipped', jobId: null, reason });
      log.info({ reason }, 'cron firing skipped');
    }
  }
}

function checkWorkspace(workspace: string | null, persistent: boolean): void {
  if (persistent && !workspace)
    throw MagsError.invalid('persistent needs a workspace: give workspace_id (mags cron add -w NAME -p)');
}

function notFound(ref: string): MagsError {
  return MagsError.notFound(`cron job ${ref} not found; list yours with mags cron list`);
}

const iso = (ms: number | null) => (ms === null ? null : new Date(Number(ms)).toISOString());

function view(row: CronJobRow, runs?: CronRunRow[]): CronJob {
  return {
    id: row.id,
    name: row.name,
    cron_expression: row.cron_expression,
    script: row.script,
    workspace_id: row.workspace_id,
    persistent: row.persistent === 1,
    enabled: row.enabled === 1,
    timezone: row.timezone,
    next_run_at: iso(row.next_run_at),
    last_run_at: iso(row.last_run_at),
    last_job_id: row.last_job_id,
    last_status: row.last_status === 'fired' || row.last_status === 'skipped' ? row.last_status : null,
    created_at: iso(row.created_at)!,
    updated_at: iso(row.updated_at)!,
    ...(runs
      ? {
          runs: runs
            .filter((r) => r.status === 'fired' || r.status === 'skipped')
            .map((r) => ({
              scheduled_at: iso(r.scheduled_at)!,
              status: r.status as 'fired' | 'skipped',
              job_id: r.job_id,
              reason: r.reason,
            })),
        }
      : {}),
  };
}
