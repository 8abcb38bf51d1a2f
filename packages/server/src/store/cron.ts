// The cron_jobs and cron_runs tables: users' scheduled scripts, and each firing (run or skipped). A firing is claimed
// by moving the cron job's next_run_at on from the time it was due, conditionally, with its cron_runs row (unique per
// cron job and time) in the same transaction: of several servers, one claims it.
import { sql } from 'kysely';
import type { CronJobRow, CronRunRow } from './schema.js';
import { type Db, transaction } from './transaction.js';

export type CronPatch = Partial<
  Pick<
    CronJobRow,
    'name' | 'cron_expression' | 'script' | 'workspace_id' | 'persistent' | 'timezone' | 'enabled' | 'next_run_at'
  >
>;

/** Firings a cron job keeps in cron_runs (older ones are deleted as new ones come). */
const RUNS_KEPT = 100;

export class CronStore {
  constructor(private readonly db: Db) {}

  /** Inserts a cron job; false when the user has one by that name already. */
  async insert(row: CronJobRow): Promise<boolean> {
    const inserted = await this.db
      .insertInto('cron_jobs')
      .values(row)
      .onConflict((oc) => oc.columns(['user_id', 'name']).doNothing())
      .returning('id')
      .executeTakeFirst();
    return inserted !== undefined;
  }

  async list(userId: string): Promise<CronJobRow[]> {
    return this.db
      .selectFrom('cron_jobs')
      .selectAll()
      .where('user_id', '=', userId)
      .orderBy('created_at', 'asc')
      .orderBy('id', 'asc')
      .execute();
  }

  /** The user's cron job with this id, else the one with this name. */
  async find(userId: string, ref: string): Promise<CronJobRow | undefined> {
    const byId = await this.db
      .selectFrom('cron_jobs')
      .selectAll()
      .where('user_id', '=', userId)
      .where('id', '=', ref)
      .executeTakeFirst();
    if (byId) return byId;
    return this.db
      .selectFrom('cron_jobs')
      .selectAll()
      .where('user_id', '=', userId)
      .where('name', '=', ref)
      .executeTakeFirst();
  }

  async get(id: string): Promise<CronJobRow | undefined> {
    return this.db.selectFrom('cron_jobs').selectAll().where('id', '=', id).executeTakeFirst();
  }

  /** Changes a user's cron job; 'clash' when the new name is another of theirs, 'missing' when it is gone. */
  async update(userId: string, id: string, patch: CronPatch, now = Date.now()): Promise<'ok' | 'clash' | 'missing'> {
    try {
      const row = await this.db
        .updateTable('cron_jobs')
        .set({ ...patch, updated_at: now })
        .where('id', '=', id)
        .where('user_id', '=', userId)
        .returning('id')
        .executeTakeFirst();
      return row ? 'ok' : 'missing';
    } catch (err) {
      if (isUniqueViolation(err)) return 'clash';
      throw err;
    }
  }

  async delete(userId: string, id: string): Promise<boolean> {
    const row = await this.db
      .deleteFrom('cron_jobs')
      .where('id', '=', id)
      .where('user_id', '=', userId)
      .returning('id')
      .executeTakeFirst();
    return row !== undefined;
  }

  /** Enabled cron jobs due by `now`, of every user, soonest first. */
  async due(now: number, limit = 100): Promise<CronJobRow[]> {
    return this.db
      .selectFrom('cron_jobs')
      .selectAll()
      .where('enabled', '=', 1)
      .where('next_run_at', 'is not', null)
      .where('next_run_at', '<=', now)
      .orderBy('next_run_at', 'asc')
      .limit(limit)
      .execute();
  }

  /**
   * Claims the firing due at `dueAt`: moves next_run_at on to `next` only if it still is `dueAt`, and records the
   * firing (status 'claimed' until `settle`). False when another server (or tick) claimed it first.
   */
  async claim(
    cronJobId: string,
    dueAt: number,
    next: number | null,
    runId: string,
    now = Date.now(),
  ): Promise<boolean> {
    return transaction(this.db, async (trx) => {
      const moved = await trx
        .updateTable('cron_jobs')
        .set({ next_run_at: next, last_run_at: dueAt })
        .where('id', '=', cronJobId)
        .where('enabled', '=', 1)
        .where('next_run_at', '=', dueAt)
        .returning('id')
        .executeTakeFirst();
      if (!moved) return false;
      const inserted = await trx
        .insertInto('cron_runs')
        .values({
          id: runId,
          cron_job_id: cronJobId,
          scheduled_at: dueAt,
          status: 'claimed',
          job_id: null,
          reason: null,
          created_at: now,
        })
        .onConflict((oc) => oc.columns(['cron_job_id', 'scheduled_at']).doNothing())
        .returning('id')
        .executeTakeFirst();
      return inserted !== undefined;
    });
  }

  /** Moves a cron job's next firing on without firing (it was missed while no server ran). */
  async skipMissed(cronJobId: string, dueAt: number, next: number | null): Promise<boolean> {
    const moved = await this.db
      .updateTable('cron_jobs')
      .set({ next_run_at: next })
      .where('id', '=', cronJobId)
      .where('next_run_at', '=', dueAt)
      .returning('id')
      .executeTakeFirst();
    return moved !== undefined;
  }

  /** Records what a claimed firing became, on the run and on its cron job; old runs beyond RUNS_KEPT go. */
  async settle(
    cronJobId: string,
    runId: string,
    result: { status: 'fired' | 'skipped'; jobId: string | null; reason: string | null },
  ): Promise<void> {
    await transaction(this.db, async (trx) => {
      await trx
        .updateTable('cron_runs')
        .set({ status: result.status, job_id: result.jobId, reason: result.reason })
        .where('id', '=', runId)
        .execute();
      await trx
        .updateTable('cron_jobs')
        .set({
          last_status: result.status,
          ...(result.jobId ? { last_job_id: result.jobId } : {}),
        })
        .where('id', '=', cronJobId)
        .execute();
      const old = await trx
        .selectFrom('cron_runs')
        .select('id')
        .where('cron_job_id', '=', cronJobId)
        .orderBy('scheduled_at', 'desc')
        .offset(RUNS_KEPT)
        .limit(1000)
        .execute();
      if (old.length > 0)
        await trx
          .deleteFrom('cron_runs')
          .where(
            'id',
            'in',
            old.map((r) => r.id),
          )
          .execute();
    });
  }

  /** A cron job's latest firings, newest first. */
  async runs(cronJobId: string, limit = 20): Promise<CronRunRow[]> {
    return this.db
      .selectFrom('cron_runs')
      .selectAll()
      .where('cron_job_id', '=', cronJobId)
      .orderBy('scheduled_at', 'desc')
      .limit(limit)
      .execute();
  }

  /** How many firings of this cron job are recorded (for tests and figures). */
  async countRuns(cronJobId: string): Promise<number> {
    const row = await this.db
      .selectFrom('cron_runs')
      .select(sql<number>`count(*)`.as('n'))
      .where('cron_job_id', '=', cronJobId)
      .executeTakeFirstOrThrow();
    return Number(row.n);
  }
}

/** A unique constraint refused the write (SQLite or PostgreSQL). */
function isUniqueViolation(err: unknown): boolean {
  const e = err as { code?: string; message?: string };
  return e.code === '23505' || e.code === 'SQLITE_CONSTRAINT_UNIQUE' || /UNIQUE constraint/.test(e.message ?? '');
}
