// The store: every read and write of durable state goes through here, on SQLite or PostgreSQL alike.
// Job status changes are conditional updates, so a terminal status (completed, failed, error, stopped)
// never changes again, whatever order messages and requests arrive in.
import { randomUUID } from 'node:crypto';
import { type Kysely, type Transaction, Migrator, sql } from 'kysely';
import type { Logger } from 'pino';
import { type AgentInfo, type JobStatusValue, type OutputLine, MagsError } from '@mags/api';
import { type StoreKind, redactUrl } from '../config.js';
import { openDatabase } from './database.js';
import { migrationProvider } from './migrations.js';
import type { AgentRow, Database, FileRow, JobRow, LogRow, NewJob, TokenRow, UserRow, WorkspaceRow } from './schema.js';

/** Statuses a job can still leave. */
const UNFINISHED: JobStatusValue[] = ['accepted', 'running', 'sleeping'];

/** Rows per INSERT when storing log lines (5 parameters each; well under both backends' limits). */
const LOG_INSERT_CHUNK = 1000;
/** Log rows deleted per statement. */
const LOG_DELETE_SLICE = 5000;

export type TerminalStatus = 'completed' | 'failed' | 'error' | 'stopped';

export interface JobFinish {
  status: TerminalStatus;
  exitCode: number | null;
  errorMessage: string | null;
  completedAt: number;
}

export interface StoreOptions {
  /** How long a local workspace lives unused (sets its expires_at when a job on it ends). Default 600 s. */
  localWorkspaceTtlMs?: number;
}

/** A new workspace row; the counters start at zero. */
export interface NewWorkspace {
  id: string;
  user_id: string;
  name: string;
  persistent: boolean;
  disk_gb: number;
  base_label?: string | null;
  base_key?: string | null;
  /** Taken at once (by the job that creates it, or a reservation while it is forked). */
  active_job_id?: string | null;
  created_at: number;
  expires_at?: number | null;
}

/** The fields a workspace changes after creation (not its identity, owner or name). */
export type WorkspacePatch = Partial<
  Pick<WorkspaceRow, 'disk_gb' | 'base_label' | 'base_key' | 'agent_id' | 'head_version' | 'versions' | 'size_bytes' | 'file_count'>
>;

export type TakeResult = { ok: true; job: JobRow } | { ok: false; heldBy: string | null };

export class Store {
  readonly kind: StoreKind;
  readonly db: Kysely<Database>;
  private closed = false;
  private readonly localTtlMs: number;

  private constructor(kind: StoreKind, db: Kysely<Database>, options: StoreOptions) {
    this.kind = kind;
    this.db = db;
    this.localTtlMs = options.localWorkspaceTtlMs ?? 600_000;
  }

  /** Opens the database and brings its schema up to date. */
  static async open(database: string, logger?: Logger, options: StoreOptions = {}): Promise<Store> {
    const { kind, db } = openDatabase(database, logger);
    const store = new Store(kind, db, options);
    try {
      await store.migrate();
    } catch (err) {
      await store.close().catch(() => undefined);
      if (err instanceof MagsError) throw err;
      throw new MagsError(
        503,
        'unavailable',
        `cannot open the database ${redactUrl(database)}: ${(err as Error).message || String(err)}`,
      );
    }
    return store;
  }

  /** Applies the migrations not yet applied; returns their names. Safe to run again, and from several servers at once. */
  async migrate(): Promise<string[]> {
    const migrator = new Migrator({ db: this.db, provider: migrationProvider });
    const { error, results } = await migrator.migrateToLatest();
    if (error) throw error instanceof Error ? error : new Error(`database migration failed: ${String(error)}`);
    return (results ?? []).filter((r) => r.status === 'Success').map((r) => r.migrationName);
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.db.destroy();
  }

  // ── users and tokens ────────────────────────────────────────────────────────────────────────────

  async countUsers(): Promise<number> {
    const row = await this.db.selectFrom('users').select((eb) => eb.fn.countAll<number>().as('n')).executeTakeFirstOrThrow();
    return Number(row.n);
  }

  /** The server's owner: the first user, made on the first start (Auth.bootstrapOwner). */
  async ownerId(): Promise<string | undefined> {
    const first = this.db.selectFrom('users').select('id').orderBy('created_at').orderBy('id').limit(1);
    return (await first.executeTakeFirst())?.id;
  }

  async getUser(id: string): Promise<UserRow | undefined> {
    return this.db.selectFrom('users').selectAll().where('id', '=', id).executeTakeFirst();
  }

  async createUser(name: string, now = Date.now()): Promise<UserRow> {
    const user = { id: randomUUID(), name, created_at: now };
    await this.db.insertInto('users').values(user).execute();
    return user;
  }

  /**
   * Creates `name` with a token, only if there is no user at all yet. Returns the user, or undefined when
   * another user exists (also when another server replica won the race).
   */
  async createFirstUser(
    name: string,
    token: { hash: string; prefix: string; name: string },
    now = Date.now(),
  ): Promise<UserRow | undefined> {
    return this.db.transaction().execute(async (trx) => {
      if (this.kind === 'postgres') await sql`select pg_advisory_xact_lock(7373001)`.execute(trx);
      const existing = await trx.selectFrom('users').select('id').limit(1).executeTakeFirst();
      if (existing) return undefined;
      const user = { id: randomUUID(), name, created_at: now };
      await trx.insertInto('users').values(user).execute();
      await trx.insertInto('tokens').values(tokenRow(user.id, token, now)).execute();
      return user;
    });
  }

  async insertToken(userId: string, token: { hash: string; prefix: string; name: string }, now = Date.now()): Promise<TokenRow> {
    const row = tokenRow(userId, token, now);
    await this.db.insertInto('tokens').values(row).execute();
    return row;
  }

  /** The user owning the (not revoked) token with this sha256 hash. */
  async findUserByTokenHash(hash: string): Promise<{ user: UserRow; token: TokenRow } | undefined> {
    const row = await this.db
      .selectFrom('tokens')
      .innerJoin('users', 'users.id', 'tokens.user_id')
      .select([
        'tokens.id as token_id',
        'tokens.name as token_name',
        'tokens.prefix',
        'tokens.created_at as token_created_at',
        'tokens.last_used_at',
        'tokens.revoked_at',
        'users.id as user_id',
        'users.name as user_name',
        'users.created_at as user_created_at',
      ])
      .where('tokens.token_hash', '=', hash)
      .where('tokens.revoked_at', 'is', null)
      .executeTakeFirst();
    if (!row) return undefined;
    return {
      user: { id: row.user_id, name: row.user_name, created_at: row.user_created_at },
      token: {
        id: row.token_id,
        user_id: row.user_id,
        name: row.token_name,
        token_hash: hash,
        prefix: row.prefix,
        created_at: row.token_created_at,
        last_used_at: row.last_used_at,
        revoked_at: row.revoked_at,
      },
    };
  }

  async touchToken(id: string, now = Date.now()): Promise<void> {
    await this.db.updateTable('tokens').set({ last_used_at: now }).where('id', '=', id).execute();
  }

  // ── jobs ────────────────────────────────────────────────────────────────────────────────────────

  async insertJob(job: NewJob): Promise<JobRow> {
    return this.insertJobWith(this.db, job);
  }

  private async insertJobWith(db: Kysely<Database>, job: NewJob): Promise<JobRow> {
    const row: JobRow = {
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
    };
    await db.insertInto('jobs').values(row).execute();
    return row;
  }

  async getJob(id: string): Promise<JobRow | undefined> {
    return this.db.selectFrom('jobs').selectAll().where('id', '=', id).executeTakeFirst();
  }

  /** A user's job by request id, else the user's newest job with that name. Another user's job is not found. */
  async findJob(userId: string, ref: string): Promise<JobRow | undefined> {
    const byId = await this.db
      .selectFrom('jobs')
      .selectAll()
      .where('id', '=', ref.toLowerCase())
      .where('user_id', '=', userId)
      .executeTakeFirst();
    if (byId) return byId;
    return this.db
      .selectFrom('jobs')
      .selectAll()
      .where('user_id', '=', userId)
      .where('name', '=', ref)
      .orderBy('created_at', 'desc')
      .orderBy('id', 'desc')
      .limit(1)
      .executeTakeFirst();
  }

  /** A page of a user's jobs, newest first. `page` counts from 1. */
  async listJobs(userId: string, page: number, pageSize: number): Promise<{ jobs: JobRow[]; total: number }> {
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
    return { jobs, total: Number(count.n) };
  }

  /** Jobs waiting for an agent, oldest first (ids are UUIDv7, so id order is submission order), after `afterId`. */
  async queuedJobs(limit: number, afterId?: string): Promise<JobRow[]> {
    let q = this.db.selectFrom('jobs').selectAll().where('status', '=', 'accepted').where('agent_id', 'is', null);
    if (afterId !== undefined) q = q.where('id', '>', afterId);
    return q.orderBy('id', 'asc').limit(limit).execute();
  }

  /** Hands a queued job to an agent. Undefined if it was not queued any more (stopped, or claimed elsewhere). */
  async claimJob(id: string, agentId: string): Promise<JobRow | undefined> {
    return this.db
      .updateTable('jobs')
      .set({ agent_id: agentId })
      .where('id', '=', id)
      .where('status', '=', 'accepted')
      .where('agent_id', 'is', null)
      .returningAll()
      .executeTakeFirst();
  }

  /** accepted → running, only from the agent it was handed to. */
  async markRunning(id: string, agentId: string, sandboxId: string, startedAt: number): Promise<JobRow | undefined> {
    return this.db
      .updateTable('jobs')
      .set({ status: 'running', sandbox_id: sandboxId, started_at: startedAt })
      .where('id', '=', id)
      .where('status', '=', 'accepted')
      .where('agent_id', '=', agentId)
      .returningAll()
      .executeTakeFirst();
  }

  /**
   * Moves an unfinished job to a terminal status and releases its workspace. Undefined if it had already finished,
   * or (with `agentId`) if it is not on that agent.
   */
  async finishJob(id: string, finish: JobFinish, agentId?: string): Promise<JobRow | undefined> {
    return this.db.transaction().execute(async (trx) => {
      let q = trx
        .updateTable('jobs')
        .set({
          status: finish.status,
          exit_code: finish.exitCode,
          error_message: finish.errorMessage,
          completed_at: finish.completedAt,
        })
        .where('id', '=', id)
        .where('status', 'in', UNFINISHED);
      if (agentId !== undefined) q = q.where('agent_id', '=', agentId);
      const job = await q.returningAll().executeTakeFirst();
      if (job) await this.releaseWorkspaces(trx, [job.id], finish.completedAt);
      return job;
    });
  }

  /** Stops a job that no agent has been handed yet, releasing its workspace. Undefined if it is not queued (any more). */
  async stopQueuedJob(id: string, now = Date.now()): Promise<JobRow | undefined> {
    return this.db.transaction().execute(async (trx) => {
      const job = await trx
        .updateTable('jobs')
        .set({ status: 'stopped', completed_at: now })
        .where('id', '=', id)
        .where('status', '=', 'accepted')
        .where('agent_id', 'is', null)
        .returningAll()
        .executeTakeFirst();
      if (job) await this.releaseWorkspaces(trx, [job.id], now);
      return job;
    });
  }

  /**
   * Every unfinished job handed to `agentId` (or, without it, to any agent) becomes `error` with `message`; their
   * workspaces are released.
   */
  async failDispatchedJobs(message: string, agentId?: string, now = Date.now()): Promise<JobRow[]> {
    return this.db.transaction().execute(async (trx) => {
      let q = trx
        .updateTable('jobs')
        .set({ status: 'error', error_message: message, completed_at: now })
        .where('status', 'in', UNFINISHED);
      q = agentId !== undefined ? q.where('agent_id', '=', agentId) : q.where('agent_id', 'is not', null);
      const jobs = await q.returningAll().execute();
      await this.releaseWorkspaces(trx, jobs.map((j) => j.id), now);
      return jobs;
    });
  }

  /** Frees the workspaces these (now finished) jobs held; a local one starts its time to live. */
  private async releaseWorkspaces(trx: Transaction<Database>, jobIds: string[], now: number): Promise<void> {
    const expires = now + this.localTtlMs;
    for (let i = 0; i < jobIds.length; i += 500) {
      await trx
        .updateTable('workspaces')
        .set({
          active_job_id: null,
          last_used_at: now,
          expires_at: sql<number | null>`case when persistent = 0 then cast(${expires} as bigint) else null end`,
        })
        .where('active_job_id', 'in', jobIds.slice(i, i + 500))
        .execute();
    }
  }

  // ── logs ────────────────────────────────────────────────────────────────────────────────────────

  /**
   * Stores a batch of lines in one transaction; a line whose (job, seq) is already stored is ignored. Returns the
   * lines that were new, in order.
   */
  async appendLogs(jobId: string, lines: readonly OutputLine[]): Promise<OutputLine[]> {
    if (lines.length === 0) return [];
    const inserted: OutputLine[] = [];
    await this.db.transaction().execute(async (trx) => {
      for (let i = 0; i < lines.length; i += LOG_INSERT_CHUNK) {
        const chunk = lines.slice(i, i + LOG_INSERT_CHUNK);
        const rows = await trx
          .insertInto('job_logs')
          .values(chunk.map((l) => ({ job_id: jobId, seq: l.seq, ts: l.ts, stream: l.stream, message: l.message })))
          .onConflict((oc) => oc.columns(['job_id', 'seq']).doNothing())
          .returning(['seq', 'ts', 'stream', 'message'])
          .execute();
        for (const r of rows) inserted.push({ seq: r.seq, ts: r.ts, stream: r.stream as OutputLine['stream'], message: r.message });
      }
    });
    inserted.sort((a, b) => a.seq - b.seq);
    return inserted;
  }

  /** Lines with seq > `after`, in order, at most `limit`. */
  async readLogs(jobId: string, after = 0, limit = 10000): Promise<LogRow[]> {
    return this.db
      .selectFrom('job_logs')
      .selectAll()
      .where('job_id', '=', jobId)
      .where('seq', '>', after)
      .orderBy('seq', 'asc')
      .limit(limit)
      .execute();
  }

  /** Deletes a job's output lines, a slice per statement, so a long output never holds the database at once. */
  async deleteLogs(jobId: string): Promise<void> {
    for (;;) {
      const rows = await this.db
        .deleteFrom('job_logs')
        .where('job_id', '=', jobId)
        .where('seq', 'in', (eb) =>
          eb.selectFrom('job_logs').select('seq').where('job_id', '=', jobId).orderBy('seq', 'asc').limit(LOG_DELETE_SLICE),
        )
        .executeTakeFirst();
      if (Number(rows.numDeletedRows) < LOG_DELETE_SLICE) return;
    }
  }

  /**
   * Deletes a finished job with its output. `unfinished` (nothing deleted) while it can still run or write;
   * `not_found` when there is no such job (any more).
   */
  async deleteFinishedJob(id: string): Promise<'deleted' | 'unfinished' | 'not_found'> {
    const job = await this.db.selectFrom('jobs').select(['id', 'status']).where('id', '=', id).executeTakeFirst();
    if (!job) return 'not_found';
    if ((UNFINISHED as string[]).includes(job.status)) return 'unfinished';
    // A terminal status never changes, so no line can be added once the job is seen finished.
    await this.deleteLogs(id);
    const row = await this.db.deleteFrom('jobs').where('id', '=', id).where('status', 'not in', UNFINISHED).returning('id').executeTakeFirst();
    return row ? 'deleted' : 'not_found';
  }

  /** Finished jobs that ended before `cutoff` (epoch ms), oldest first, at most `limit`. */
  async jobsFinishedBefore(cutoff: number, limit: number): Promise<string[]> {
    const rows = await this.db
      .selectFrom('jobs')
      .select('id')
      .where('completed_at', '<', cutoff)
      .where('status', 'not in', UNFINISHED)
      .orderBy('completed_at', 'asc')
      .limit(limit)
      .execute();
    return rows.map((r) => r.id);
  }

  // ── agents ──────────────────────────────────────────────────────────────────────────────────────

  async upsertAgent(info: AgentInfo, now = Date.now()): Promise<void> {
    const values = {
      name: info.name,
      runtime: info.runtime,
      version: info.version,
      capacity: info.capacity,
      status: 'online',
      last_seen_at: now,
    };
    await this.db
      .insertInto('agents')
      .values({ id: info.id, first_seen_at: now, ...values })
      .onConflict((oc) => oc.column('id').doUpdateSet(values))
      .execute();
  }

  async markAgentOffline(id: string, now = Date.now()): Promise<void> {
    await this.db.updateTable('agents').set({ status: 'offline', last_seen_at: now }).where('id', '=', id).execute();
  }

  async markAllAgentsOffline(): Promise<void> {
    await this.db.updateTable('agents').set({ status: 'offline' }).where('status', '=', 'online').execute();
  }

  async listAgents(): Promise<AgentRow[]> {
    return this.db.selectFrom('agents').selectAll().orderBy('last_seen_at', 'desc').orderBy('id').execute();
  }

  // ── workspaces ──────────────────────────────────────────────────────────────────────────────────
  // A workspace serves one unfinished job at a time: `active_job_id` is taken by a conditional update in the same
  // transaction that inserts the job, and every way a job ends (finishJob, stopQueuedJob, failDispatchedJobs)
  // releases it. The server also holds it with a reservation (an id that is no job's) while it deletes, rolls
  // back or forks it; releaseOrphanedWorkspaces() frees what a crash left held.

  /** A user's workspace by name; another user's is not found. */
  async getWorkspace(userId: string, name: string): Promise<WorkspaceRow | undefined> {
    return this.db.selectFrom('workspaces').selectAll().where('user_id', '=', userId).where('name', '=', name).executeTakeFirst();
  }

  async getWorkspaceById(id: string): Promise<WorkspaceRow | undefined> {
    return this.db.selectFrom('workspaces').selectAll().where('id', '=', id).executeTakeFirst();
  }

  /** A user's workspaces by name. */
  async listWorkspaces(userId: string): Promise<WorkspaceRow[]> {
    return this.db.selectFrom('workspaces').selectAll().where('user_id', '=', userId).orderBy('name').execute();
  }

  /** Creates a workspace; undefined if the user already has one of that name (also when a concurrent request won). */
  async insertWorkspace(ws: NewWorkspace): Promise<WorkspaceRow | undefined> {
    return this.db
      .insertInto('workspaces')
      .values({
        id: ws.id,
        user_id: ws.user_id,
        name: ws.name,
        persistent: ws.persistent ? 1 : 0,
        disk_gb: ws.disk_gb,
        base_label: ws.base_label ?? null,
        base_key: ws.base_key ?? null,
        agent_id: null,
        active_job_id: ws.active_job_id ?? null,
        head_version: null,
        versions: 0,
        size_bytes: 0,
        file_count: 0,
        created_at: ws.created_at,
        last_used_at: null,
        expires_at: ws.expires_at ?? null,
      })
      .onConflict((oc) => oc.columns(['user_id', 'name']).doNothing())
      .returningAll()
      .executeTakeFirst();
  }

  /**
   * Gives the workspace to a new job and inserts the job, atomically: the workspace must be free (or already
   * reserved for this very job, when the job created it). `persistent` upgrades a local workspace. When the
   * workspace is in use, nothing is written and `heldBy` names what holds it (null: the workspace is gone).
   */
  async insertJobOnWorkspace(job: NewJob, workspaceId: string, opts: { persistent?: boolean } = {}): Promise<TakeResult> {
    return this.db.transaction().execute(async (trx) => {
      const taken = await trx
        .updateTable('workspaces')
        .set({ active_job_id: job.id, expires_at: null, ...(opts.persistent ? { persistent: 1 } : {}) })
        .where('id', '=', workspaceId)
        .where((eb) => eb.or([eb('active_job_id', 'is', null), eb('active_job_id', '=', job.id)]))
        .returning('id')
        .executeTakeFirst();
      if (!taken) {
        const row = await trx.selectFrom('workspaces').select('active_job_id').where('id', '=', workspaceId).executeTakeFirst();
        return { ok: false, heldBy: row?.active_job_id ?? null };
      }
      return { ok: true, job: await this.insertJobWith(trx, job) };
    });
  }

  /** Holds a free workspace with `token` (not a job id) while the server works on it. False if it is in use. */
  async reserveWorkspace(id: string, token: string): Promise<boolean> {
    const row = await this.db
      .updateTable('workspaces')
      .set({ active_job_id: token })
      .where('id', '=', id)
      .where('active_job_id', 'is', null)
      .returning('id')
      .executeTakeFirst();
    return row !== undefined;
  }

  /** Lets go of a reservation (or of a job's hold, when that job was never stored). */
  async releaseReservation(id: string, token: string): Promise<void> {
    await this.db.updateTable('workspaces').set({ active_job_id: null }).where('id', '=', id).where('active_job_id', '=', token).execute();
  }

  async updateWorkspace(id: string, patch: WorkspacePatch): Promise<WorkspaceRow | undefined> {
    if (Object.keys(patch).length === 0) return this.getWorkspaceById(id);
    return this.db.updateTable('workspaces').set(patch).where('id', '=', id).returningAll().executeTakeFirst();
  }

  /** Records the agent holding a host copy (when a job on the workspace is dispatched to it). */
  async setWorkspaceAgent(id: string, agentId: string | null): Promise<void> {
    await this.db.updateTable('workspaces').set({ agent_id: agentId }).where('id', '=', id).execute();
  }

  /** Forgets that `agentId` holds a copy (it reported the copy gone); another agent's claim is kept. */
  async forgetWorkspaceCopy(id: string, agentId: string): Promise<void> {
    await this.db.updateTable('workspaces').set({ agent_id: null }).where('id', '=', id).where('agent_id', '=', agentId).execute();
  }

  /** Deletes a workspace row held by `token` (the caller's reservation). Returns whether it did. */
  async deleteWorkspace(id: string, token: string): Promise<boolean> {
    const row = await this.db.deleteFrom('workspaces').where('id', '=', id).where('active_job_id', '=', token).returning('id').executeTakeFirst();
    return row !== undefined;
  }

  /** A user's local workspaces that no host holds and no job uses, past their time to live. */
  async expiredLocalWorkspaces(userId: string, now = Date.now()): Promise<WorkspaceRow[]> {
    return this.db
      .selectFrom('workspaces')
      .selectAll()
      .where('user_id', '=', userId)
      .where('persistent', '=', 0)
      .where('agent_id', 'is', null)
      .where('active_job_id', 'is', null)
      .where('expires_at', '<', now)
      .execute();
  }

  /** At start: frees workspaces held by a job that is no longer unfinished, or by a reservation a crash left. */
  async releaseOrphanedWorkspaces(): Promise<number> {
    const rows = await this.db
      .updateTable('workspaces')
      .set({ active_job_id: null })
      .where('active_job_id', 'is not', null)
      .where(({ not, exists, selectFrom }) =>
        not(
          exists(
            selectFrom('jobs')
              .select('jobs.id')
              .whereRef('jobs.id', '=', 'workspaces.active_job_id')
              .where('jobs.status', 'in', UNFINISHED),
          ),
        ),
      )
      .returning('id')
      .execute();
    return rows.length;
  }

  // ── uploaded files ──────────────────────────────────────────────────────────────────────────────

  async insertFile(file: FileRow): Promise<FileRow> {
    await this.db.insertInto('files').values(file).execute();
    return file;
  }

  /** A user's file by id; another user's is not found. */
  async getFile(userId: string, id: string): Promise<FileRow | undefined> {
    return this.db.selectFrom('files').selectAll().where('id', '=', id).where('user_id', '=', userId).executeTakeFirst();
  }

  /** A user's files, newest first. */
  async listFiles(userId: string): Promise<FileRow[]> {
    return this.db.selectFrom('files').selectAll().where('user_id', '=', userId).orderBy('created_at', 'desc').orderBy('id', 'desc').execute();
  }

  /** Deletes a user's file row; returns it (its object is the caller's to delete), or undefined if there was none. */
  async deleteFile(userId: string, id: string): Promise<FileRow | undefined> {
    return this.db.deleteFrom('files').where('id', '=', id).where('user_id', '=', userId).returningAll().executeTakeFirst();
  }
}

/** A new token's row: only the hash and a short prefix of the token are ever stored. */
function tokenRow(userId: string, token: { hash: string; prefix: string; name: string }, now: number): TokenRow {
  return {
    id: randomUUID(),
    user_id: userId,
    name: token.name,
    token_hash: token.hash,
    prefix: token.prefix,
    created_at: now,
    last_used_at: null,
    revoked_at: null,
  };
}
