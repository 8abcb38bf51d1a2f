// The store: every read and write of durable state goes through here, on SQLite or PostgreSQL alike.
// Job status changes are conditional updates, so a terminal status (completed, failed, error, stopped)
// never changes again, whatever order messages and requests arrive in.
import { randomUUID } from 'node:crypto';
import { type Kysely, Migrator, sql } from 'kysely';
import type { Logger } from 'pino';
import { type AgentInfo, type JobStatusValue, type OutputLine, MagsError } from '@mags/api';
import { type StoreKind, redactUrl } from '../config.js';
import { openDatabase } from './database.js';
import { migrationProvider } from './migrations.js';
import type { AgentRow, Database, JobRow, LogRow, NewJob, TokenRow, UserRow } from './schema.js';

/** Statuses a job can still leave. */
const UNFINISHED: JobStatusValue[] = ['accepted', 'running', 'sleeping'];

/** Rows per INSERT when storing log lines (5 parameters each; well under both backends' limits). */
const LOG_INSERT_CHUNK = 1000;

export type TerminalStatus = 'completed' | 'failed' | 'error' | 'stopped';

export interface JobFinish {
  status: TerminalStatus;
  exitCode: number | null;
  errorMessage: string | null;
  completedAt: number;
}

export class Store {
  readonly kind: StoreKind;
  readonly db: Kysely<Database>;
  private closed = false;

  private constructor(kind: StoreKind, db: Kysely<Database>) {
    this.kind = kind;
    this.db = db;
  }

  /** Opens the database and brings its schema up to date. */
  static async open(database: string, logger?: Logger): Promise<Store> {
    const { kind, db } = openDatabase(database, logger);
    const store = new Store(kind, db);
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
    await this.db.insertInto('jobs').values(row).execute();
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

  /** Jobs waiting for an agent, oldest first (ids are UUIDv7, so id order is submission order). */
  async queuedJobs(limit: number): Promise<JobRow[]> {
    return this.db
      .selectFrom('jobs')
      .selectAll()
      .where('status', '=', 'accepted')
      .where('agent_id', 'is', null)
      .orderBy('id', 'asc')
      .limit(limit)
      .execute();
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
   * Moves an unfinished job to a terminal status. Undefined if it had already finished, or (with `agentId`)
   * if it is not on that agent.
   */
  async finishJob(id: string, finish: JobFinish, agentId?: string): Promise<JobRow | undefined> {
    let q = this.db
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
    return q.returningAll().executeTakeFirst();
  }

  /** Stops a job that no agent has been handed yet. Undefined if it is not queued (any more). */
  async stopQueuedJob(id: string, now = Date.now()): Promise<JobRow | undefined> {
    return this.db
      .updateTable('jobs')
      .set({ status: 'stopped', completed_at: now })
      .where('id', '=', id)
      .where('status', '=', 'accepted')
      .where('agent_id', 'is', null)
      .returningAll()
      .executeTakeFirst();
  }

  /** Every unfinished job handed to `agentId` (or, without it, to any agent) becomes `error` with `message`. */
  async failDispatchedJobs(message: string, agentId?: string, now = Date.now()): Promise<JobRow[]> {
    let q = this.db
      .updateTable('jobs')
      .set({ status: 'error', error_message: message, completed_at: now })
      .where('status', 'in', UNFINISHED);
    q = agentId !== undefined ? q.where('agent_id', '=', agentId) : q.where('agent_id', 'is not', null);
    return q.returningAll().execute();
  }

  // ── logs ────────────────────────────────────────────────────────────────────────────────────────

  /** Stores lines; a line whose (job, seq) is already stored is ignored. Returns the lines that were new. */
  async appendLogs(jobId: string, lines: readonly OutputLine[]): Promise<OutputLine[]> {
    const inserted: OutputLine[] = [];
    for (let i = 0; i < lines.length; i += LOG_INSERT_CHUNK) {
      const chunk = lines.slice(i, i + LOG_INSERT_CHUNK);
      const rows = await this.db
        .insertInto('job_logs')
        .values(chunk.map((l) => ({ job_id: jobId, seq: l.seq, ts: l.ts, stream: l.stream, message: l.message })))
        .onConflict((oc) => oc.columns(['job_id', 'seq']).doNothing())
        .returning(['seq', 'ts', 'stream', 'message'])
        .execute();
      for (const r of rows) inserted.push({ seq: r.seq, ts: r.ts, stream: r.stream as OutputLine['stream'], message: r.message });
    }
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
