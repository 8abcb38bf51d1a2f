// The jobs table. Status changes are conditional updates, so a terminal status (completed, failed, error, stopped)
// never changes again, whatever order messages and requests arrive in; every way a job ends frees its workspace in
// the same transaction. A row's spec is decoded (and checked) once, as the row is read.

import type { JobStatusValue } from '@mags/api';
import { type Insertable, sql } from 'kysely';
import { Compile } from 'typebox/compile';
import type { LogStore } from './logs.js';
import { type JobRow, JobSpec, type JobsTable, UNFINISHED } from './schema.js';
import { type Db, transaction } from './transaction.js';
import { releaseHeldBy, takeForJob } from './workspaces.js';

/** A job as the server handles it: its row, with the spec decoded (undefined when the stored spec is corrupt). */
export type Job = Omit<JobRow, 'spec'> & { spec: JobSpec | undefined };
export type NewJob = Omit<Insertable<JobsTable>, 'spec'> & { spec: JobSpec };

export type TerminalStatus = 'completed' | 'failed' | 'error' | 'stopped';

export interface JobFinish {
  status: TerminalStatus;
  exitCode: number | null;
  errorMessage: string | null;
  completedAt: number;
}

/** `ended`: the jobs that slept on the workspace without a sandbox, ended by this one taking it over. */
export type TakeResult = { ok: true; job: Job; ended: Job[] } | { ok: false; heldBy: string | null };

const unfinished = [...UNFINISHED] as JobStatusValue[];
const checkSpec = Compile(JobSpec);

/** The spec stored as `text`, or undefined when the text is not one (a corrupt row: an error for its job alone). */
function decodeSpec(text: string): JobSpec | undefined {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    return undefined;
  }
  return checkSpec.Check(value) ? value : undefined;
}

function decoded(row: JobRow): Job;
function decoded(row: JobRow | undefined): Job | undefined;
function decoded(row: JobRow | undefined): Job | undefined {
  return row && { ...row, spec: decodeSpec(row.spec) };
}

/** A submission waiting in the batch insert, with the caller's promise. */
interface PendingInsert {
  job: NewJob;
  resolve: (job: Job) => void;
  reject: (err: unknown) => void;
}

/** Rows per batch insert (about 20 parameters each: well under SQLite's and PostgreSQL's limits). */
const MAX_INSERT_BATCH = 200;

/** The row of a new job, every column given. */
function rowOf(job: NewJob): Job {
  return {
    id: job.id,
    user_id: job.user_id,
    name: job.name ?? null,
    script: job.script,
    status: job.status,
    exit_code: job.exit_code ?? null,
    error_message: job.error_message ?? null,
    agent_id: job.agent_id ?? null,
    sandbox_id: job.sandbox_id ?? null,
    workspace_id: job.workspace_id ?? null,
    spec: job.spec,
    created_at: job.created_at,
    started_at: job.started_at ?? null,
    completed_at: job.completed_at ?? null,
    subdomain: job.subdomain ?? null,
    url_port: job.url_port ?? null,
    url_private: job.url_private ?? null,
    sandbox_address: job.sandbox_address ?? null,
  };
}

export class JobStore {
  constructor(
    private readonly db: Db,
    private readonly logs: LogStore,
    /** How long a local workspace lives unused, from when its job ends. */
    private readonly localTtlMs: number,
  ) {}

  /** Submissions waiting for the next batch insert, oldest first. */
  private pending: PendingInsert[] = [];
  /** Whether a batch is being written (what arrives meanwhile goes into the next one). */
  private writing = false;

  /**
   * Stores a new job; the returned job carries the spec it was given (nothing is read back). Resolves once the row
   * is committed, so an answered submit survives a crash. Jobs inserted together (in one tick, or while the
   * previous batch was being written) are written in one transaction: concurrent submits do not queue behind each
   * other's commits. A row the database refuses fails only its own insert.
   */
  insert(job: NewJob): Promise<Job> {
    return new Promise<Job>((resolve, reject) => {
      this.pending.push({ job, resolve, reject });
      if (this.pending.length === 1 && !this.writing) setImmediate(() => void this.writePending());
    });
  }

  private async writePending(): Promise<void> {
    if (this.writing) return;
    this.writing = true;
    try {
      while (this.pending.length > 0) {
        const batch = this.pending.splice(0, MAX_INSERT_BATCH);
        await this.insertBatch(batch);
      }
    } finally {
      this.writing = false;
    }
  }

  private async insertBatch(batch: PendingInsert[]): Promise<void> {
    if (batch.length > 1) {
      try {
        const rows = batch.map((p) => rowOf(p.job));
        await transaction(this.db, (trx) =>
          trx
            .insertInto('jobs')
            .values(rows.map((row) => ({ ...row, spec: JSON.stringify(row.spec) })))
            .execute(),
        );
        for (const [i, p] of batch.entries()) p.resolve(rows[i]);
        return;
      } catch {
        // One refused row fails the whole statement: each row alone, so that only that one fails.
      }
    }
    for (const p of batch) {
      try {
        p.resolve(await this.insertOn(this.db, p.job));
      } catch (err) {
        p.reject(err);
      }
    }
  }

  /**
   * Gives the workspace to a new job and inserts the job, atomically: the workspace must be free (or already
   * reserved for this very job, when the job created it). `persistent` upgrades a local workspace. When the
   * workspace is in use, nothing is written and `heldBy` names what holds it (null: the workspace is gone).
   */
  async insertOnWorkspace(job: NewJob, workspaceId: string, opts: { persistent?: boolean } = {}): Promise<TakeResult> {
    return transaction(this.db, async (trx) => {
      const refused = await takeForJob(trx, workspaceId, job.id, opts.persistent === true);
      if (refused) return { ok: false, heldBy: refused.heldBy };
      // One sandbox per workspace: a job sleeping without a sandbox on it ends (its exit code kept).
      const ended =
        job.workspace_id == null
          ? []
          : await trx
              .updateTable('jobs')
              .set({ status: 'completed', completed_at: sql<number>`coalesce(completed_at, ${job.created_at})` })
              .where('user_id', '=', job.user_id)
              .where('workspace_id', '=', job.workspace_id)
              .where('status', '=', 'sleeping')
              .where('agent_id', 'is', null)
              .returningAll()
              .execute();
      return { ok: true, job: await this.insertOn(trx, job), ended: ended.map((j) => decoded(j)) };
    });
  }

  private async insertOn(db: Db, job: NewJob): Promise<Job> {
    const row = rowOf(job);
    await db
      .insertInto('jobs')
      .values({ ...row, spec: JSON.stringify(job.spec) })
      .execute();
    return row;
  }

  async get(id: string): Promise<Job | undefined> {
    return decoded(await this.db.selectFrom('jobs').selectAll().where('id', '=', id).executeTakeFirst());
  }

  /** The user's job with request id `ref` (ids are lower-case; another user's job is not found). */
  private async ownedById(userId: string, ref: string): Promise<Job | undefined> {
    const row = await this.db
      .selectFrom('jobs')
      .selectAll()
      .where('id', '=', ref.toLowerCase())
      .where('user_id', '=', userId)
      .executeTakeFirst();
    return decoded(row);
  }

  /** A user's job by request id, else the user's newest job with that name. Another user's job is not found. */
  async find(userId: string, ref: string): Promise<Job | undefined> {
    const byId = await this.ownedById(userId, ref);
    if (byId) return byId;
    const byName = await this.db
      .selectFrom('jobs')
      .selectAll()
      .where('user_id', '=', userId)
      .where('name', '=', ref)
      .orderBy('created_at', 'desc')
      .orderBy('id', 'desc')
      .limit(1)
      .executeTakeFirst();
    return decoded(byName);
  }

  /**
   * What a command is run in (`mags exec REF`): the user's job with id REF; else their newest unfinished job named
   * REF or on the workspace REF (one sandbox per workspace); else their newest job of that name, finished or not.
   */
  async findLive(userId: string, ref: string): Promise<Job | undefined> {
    const byId = await this.ownedById(userId, ref);
    if (byId) return byId;
    const live = await this.db
      .selectFrom('jobs')
      .selectAll()
      .where('user_id', '=', userId)
      .where('status', 'in', unfinished)
      .where((eb) => eb.or([eb('name', '=', ref), eb('workspace_id', '=', ref)]))
      .orderBy('created_at', 'desc')
      .orderBy('id', 'desc')
      .limit(1)
      .executeTakeFirst();
    return live ? decoded(live) : this.find(userId, ref);
  }

  /** The user's newest unfinished job on their workspace `name` (an alias's target), if any. */
  async liveOnWorkspace(userId: string, name: string): Promise<Job | undefined> {
    const row = await this.db
      .selectFrom('jobs')
      .selectAll()
      .where('user_id', '=', userId)
      .where('workspace_id', '=', name)
      .where('status', 'in', unfinished)
      .orderBy('created_at', 'desc')
      .orderBy('id', 'desc')
      .limit(1)
      .executeTakeFirst();
    return decoded(row);
  }

  /** Running jobs with an open URL, whoever's (the router front's map of public URLs). */
  async runningWithUrl(): Promise<Job[]> {
    const rows = await this.db
      .selectFrom('jobs')
      .selectAll()
      .where('status', '=', 'running')
      .where('subdomain', 'is not', null)
      .where('url_port', 'is not', null)
      .execute();
    return rows.map((r) => decoded(r));
  }

  /** The job whose URL has this subdomain, whoever's it is (the router's lookup). */
  async bySubdomain(subdomain: string): Promise<Job | undefined> {
    return decoded(await this.db.selectFrom('jobs').selectAll().where('subdomain', '=', subdomain).executeTakeFirst());
  }

  /**
   * Opens (or moves) a job's URL to `port`: its subdomain is kept if it has one, else `subdomain` is given to it.
   * Undefined when the job is gone.
   */
  async openUrl(id: string, subdomain: string, port: number, isPrivate: boolean): Promise<Job | undefined> {
    const row = await this.db
      .updateTable('jobs')
      .set({
        subdomain: sql<string>`coalesce(subdomain, ${subdomain})`,
        url_port: port,
        url_private: isPrivate ? 1 : 0,
      })
      .where('id', '=', id)
      .returningAll()
      .executeTakeFirst();
    return decoded(row);
  }

  /** A page of a user's jobs, newest first. `page` counts from 1. */
  /** The ids of a user's unfinished jobs (to stop them when the user is removed). */
  async unfinishedOf(userId: string): Promise<string[]> {
    const rows = await this.db
      .selectFrom('jobs')
      .select('id')
      .where('user_id', '=', userId)
      .where('status', 'in', unfinished)
      .execute();
    return rows.map((r) => r.id);
  }

  async list(userId: string, page: number, pageSize: number): Promise<{ jobs: Job[]; total: number }> {
    const [jobs, count] = await Promise.all([
      this.db
        .selectFrom('jobs')
        .selectAll()
        .where('user_id', '=', userId)
        .orderBy('created_at', 'desc')
        .orderBy('id', 'desc')
        .limit(pageSize)
        .offset((page - 1) * pageSize)
        .execute(),
      this.db
        .selectFrom('jobs')
        .select((eb) => eb.fn.countAll<number>().as('n'))
        .where('user_id', '=', userId)
        .executeTakeFirstOrThrow(),
    ]);
    return { jobs: jobs.map((j) => decoded(j)), total: Number(count.n) };
  }

  /** Jobs waiting for an agent, oldest first (ids are UUIDv7, so id order is submission order), after `afterId`. */
  async queued(limit: number, afterId?: string): Promise<Job[]> {
    let q = this.db.selectFrom('jobs').selectAll().where('status', '=', 'accepted').where('agent_id', 'is', null);
    if (afterId !== undefined) q = q.where('id', '>', afterId);
    return (await q.orderBy('id', 'asc').limit(limit).execute()).map((j) => decoded(j));
  }

  /**
   * Hands a queued job to an agent. False if it was not queued any more (stopped, or claimed elsewhere); true means
   * the row is the queued row it was, with `agent_id` set.
   */
  async claim(id: string, agentId: string): Promise<boolean> {
    const row = await this.db
      .updateTable('jobs')
      .set({ agent_id: agentId })
      .where('id', '=', id)
      .where('status', '=', 'accepted')
      .where('agent_id', 'is', null)
      .returning('id')
      .executeTakeFirst();
    return row !== undefined;
  }

  /**
   * Hands queued jobs to an agent in one statement (dispatch of a burst without a round trip per job). The ids of
   * those that were still queued and are now the agent's; the others were stopped or claimed elsewhere meanwhile.
   */
  async claimMany(ids: readonly string[], agentId: string): Promise<Set<string>> {
    if (ids.length === 0) return new Set();
    const rows = await this.db
      .updateTable('jobs')
      .set({ agent_id: agentId })
      .where('id', 'in', ids)
      .where('status', '=', 'accepted')
      .where('agent_id', 'is', null)
      .returning('id')
      .execute();
    return new Set(rows.map((r) => r.id));
  }

  /** accepted → running, only from the agent it was handed to. */
  async markRunning(
    id: string,
    agentId: string,
    sandboxId: string,
    startedAt: number,
    address: string | null = null,
  ): Promise<Job | undefined> {
    const row = await this.db
      .updateTable('jobs')
      .set({ status: 'running', sandbox_id: sandboxId, started_at: startedAt, sandbox_address: address })
      .where('id', '=', id)
      .where('status', '=', 'accepted')
      .where('agent_id', '=', agentId)
      .returningAll()
      .executeTakeFirst();
    return decoded(row);
  }

  /** running → sleeping: its agent froze the idle sandbox (and keeps it, with the workspace). */
  async markSleeping(id: string, agentId: string): Promise<Job | undefined> {
    return this.move(id, agentId, 'running', 'sleeping');
  }

  /** sleeping → running: its agent thawed the sandbox. */
  async markAwake(id: string, agentId: string): Promise<Job | undefined> {
    return this.move(id, agentId, 'sleeping', 'running');
  }

  private async move(id: string, agentId: string, from: JobStatusValue, to: JobStatusValue): Promise<Job | undefined> {
    const row = await this.db
      .updateTable('jobs')
      .set({ status: to })
      .where('id', '=', id)
      .where('status', '=', from)
      .where('agent_id', '=', agentId)
      .returningAll()
      .executeTakeFirst();
    return decoded(row);
  }

  /**
   * A job whose sandbox ended goes on sleeping without one (its agent stopped it asleep, or a persistent run's script
   * ended: `exitCode` and `endedAt` then record it). The job is on no agent and holds its workspace no more; waking it
   * (`wake`) starts a sandbox on the workspace again. Only from `agentId` when given.
   */
  async sleepWithoutSandbox(
    id: string,
    opts: { agentId?: string; exitCode?: number; endedAt?: number; errorMessage?: string | null; now?: number },
  ): Promise<Job | undefined> {
    const now = opts.now ?? Date.now();
    return transaction(this.db, async (trx) => {
      let q = trx
        .updateTable('jobs')
        .set({
          status: 'sleeping',
          agent_id: null,
          sandbox_id: null,
          ...(opts.exitCode !== undefined ? { exit_code: opts.exitCode } : {}),
          ...(opts.endedAt !== undefined ? { completed_at: opts.endedAt } : {}),
          ...(opts.errorMessage !== undefined ? { error_message: opts.errorMessage } : {}),
        })
        .where('id', '=', id)
        .where('status', 'in', unfinished);
      if (opts.agentId !== undefined) q = q.where('agent_id', '=', opts.agentId);
      const job = await q.returningAll().executeTakeFirst();
      if (job) await releaseHeldBy(trx, [job.id], now, this.localTtlMs);
      return decoded(job);
    });
  }

  /**
   * Queues a job again to start a sandbox that stays up on its workspace: a sleeping job without a sandbox (woken),
   * or a job whose sandbox died on `agentId` (an always-on one, started again). The job takes its workspace back in
   * the same transaction; `heldBy` names what holds it instead (then nothing changes).
   */
  async requeue(id: string, agentId?: string): Promise<{ ok: true; job: Job } | { ok: false; heldBy: string | null }> {
    return transaction(this.db, async (trx) => {
      const current = decoded(await trx.selectFrom('jobs').selectAll().where('id', '=', id).executeTakeFirst());
      const movable =
        current?.spec !== undefined &&
        (agentId === undefined
          ? current.status === 'sleeping' && current.agent_id === null
          : (current.status === 'running' || current.status === 'sleeping') && current.agent_id === agentId);
      if (!current?.spec || !movable) return { ok: false, heldBy: null };
      const ws = current.spec.workspace;
      if (ws) {
        const refused = await takeForJob(trx, ws.id, id, false);
        if (refused) return { ok: false, heldBy: refused.heldBy };
      }
      const spec: JobSpec = { ...current.spec, long_lived: true };
      let q = trx
        .updateTable('jobs')
        .set({ status: 'accepted', agent_id: null, sandbox_id: null, spec: JSON.stringify(spec) })
        .where('id', '=', id)
        .where('status', '=', current.status);
      q = agentId === undefined ? q.where('agent_id', 'is', null) : q.where('agent_id', '=', agentId);
      const row = await q.returningAll().executeTakeFirst();
      return row ? { ok: true, job: decoded(row) } : { ok: false, heldBy: null };
    });
  }

  /** Sets a job's spec (its settings changed: `PATCH …/mags-jobs/{id}`); only while it is unfinished. */
  async updateSpec(id: string, spec: JobSpec): Promise<Job | undefined> {
    const row = await this.db
      .updateTable('jobs')
      .set({ spec: JSON.stringify(spec) })
      .where('id', '=', id)
      .where('status', 'in', unfinished)
      .returningAll()
      .executeTakeFirst();
    return decoded(row);
  }

  /** The unfinished jobs on agents (or on `agentId`): what a restart or a departed agent leaves behind. */
  async onAgents(agentId?: string): Promise<Job[]> {
    let q = this.db.selectFrom('jobs').selectAll().where('status', 'in', unfinished);
    q = agentId !== undefined ? q.where('agent_id', '=', agentId) : q.where('agent_id', 'is not', null);
    return (await q.execute()).map((j) => decoded(j));
  }

  /**
   * Moves an unfinished job to a terminal status and releases its workspace. Undefined if it had already finished,
   * or (with `agentId`) if it is not on that agent.
   */
  async finish(id: string, finish: JobFinish, agentId?: string): Promise<Job | undefined> {
    return transaction(this.db, async (trx) => {
      let q = trx
        .updateTable('jobs')
        .set({
          status: finish.status,
          exit_code: finish.exitCode,
          error_message: finish.errorMessage,
          completed_at: finish.completedAt,
        })
        .where('id', '=', id)
        .where('status', 'in', unfinished);
      if (agentId !== undefined) q = q.where('agent_id', '=', agentId);
      const job = await q.returningAll().executeTakeFirst();
      if (job) await releaseHeldBy(trx, [job.id], finish.completedAt, this.localTtlMs);
      return decoded(job);
    });
  }

  /** Stops a job that no agent has been handed yet, releasing its workspace. Undefined if it is not queued (any more). */
  async stopQueued(id: string, now = Date.now()): Promise<Job | undefined> {
    return transaction(this.db, async (trx) => {
      const job = await trx
        .updateTable('jobs')
        .set({ status: 'stopped', completed_at: now })
        .where('id', '=', id)
        .where('status', '=', 'accepted')
        .where('agent_id', 'is', null)
        .returningAll()
        .executeTakeFirst();
      if (job) await releaseHeldBy(trx, [job.id], now, this.localTtlMs);
      return decoded(job);
    });
  }

  /**
   * Deletes a finished job with its output. `unfinished` (nothing deleted) while it can still run or write;
   * `not_found` when there is no such job (any more).
   */
  async deleteFinished(id: string): Promise<'deleted' | 'unfinished' | 'not_found'> {
    const job = await this.db.selectFrom('jobs').select(['id', 'status']).where('id', '=', id).executeTakeFirst();
    if (!job) return 'not_found';
    if ((unfinished as string[]).includes(job.status)) return 'unfinished';
    // A terminal status never changes, so no line can be added once the job is seen finished.
    await this.logs.deleteAll(id);
    const row = await this.db
      .deleteFrom('jobs')
      .where('id', '=', id)
      .where('status', 'not in', unfinished)
      .returning('id')
      .executeTakeFirst();
    return row ? 'deleted' : 'not_found';
  }

  /** Finished jobs that ended before `cutoff` (epoch ms), oldest first, at most `limit`. */
  async finishedBefore(cutoff: number, limit: number): Promise<string[]> {
    const rows = await this.db
      .selectFrom('jobs')
      .select('id')
      .where('completed_at', '<', cutoff)
      .where('status', 'not in', unfinished)
      .orderBy('completed_at', 'asc')
      .limit(limit)
      .execute();
    return rows.map((r) => r.id);
  }
}
