// The e2b_sandboxes table: what the E2B API (e2b/) adds to a long-lived job: its template, metadata, environment,
// envd and traffic tokens, and its deadline (`end_at`, kept here so that it survives a restart of the server).
import { type E2bSandboxRow, UNFINISHED } from './schema.js';
import type { Db } from './transaction.js';

export class E2bSandboxStore {
  constructor(private readonly db: Db) {}

  async insert(row: E2bSandboxRow): Promise<void> {
    await this.db.insertInto('e2b_sandboxes').values(row).execute();
  }

  /** The sandbox `jobId`, whoever's it is. */
  async get(jobId: string): Promise<E2bSandboxRow | undefined> {
    return this.db.selectFrom('e2b_sandboxes').selectAll().where('job_id', '=', jobId).executeTakeFirst();
  }

  /** A user's sandboxes whose jobs have not ended, oldest first (ties by id). */
  async unfinishedOf(userId: string): Promise<E2bSandboxRow[]> {
    return this.db
      .selectFrom('e2b_sandboxes')
      .innerJoin('jobs', 'jobs.id', 'e2b_sandboxes.job_id')
      .selectAll('e2b_sandboxes')
      .where('e2b_sandboxes.user_id', '=', userId)
      .where('jobs.status', 'in', [...UNFINISHED])
      .orderBy('e2b_sandboxes.created_at', 'asc')
      .orderBy('e2b_sandboxes.job_id', 'asc')
      .execute();
  }

  /** Every sandbox whose job has not ended, whoever's (the deadlines re-armed at start). */
  async unfinished(): Promise<E2bSandboxRow[]> {
    return this.db
      .selectFrom('e2b_sandboxes')
      .innerJoin('jobs', 'jobs.id', 'e2b_sandboxes.job_id')
      .selectAll('e2b_sandboxes')
      .where('jobs.status', 'in', [...UNFINISHED])
      .execute();
  }

  /** Moves a sandbox's deadline; false when it has no row. */
  async setEndAt(jobId: string, endAt: number): Promise<boolean> {
    const r = await this.db
      .updateTable('e2b_sandboxes')
      .set({ end_at: endAt })
      .where('job_id', '=', jobId)
      .executeTakeFirst();
    return Number(r.numUpdatedRows) > 0;
  }

  /** Marks a sandbox paused (or resumed); false when it has no row. */
  async setPaused(jobId: string, paused: boolean): Promise<boolean> {
    const r = await this.db
      .updateTable('e2b_sandboxes')
      .set({ paused: paused ? 1 : 0 })
      .where('job_id', '=', jobId)
      .executeTakeFirst();
    return Number(r.numUpdatedRows) > 0;
  }

  /** Resumes a sandbox with a new deadline, in one statement. */
  async resume(jobId: string, endAt: number): Promise<void> {
    await this.db.updateTable('e2b_sandboxes').set({ paused: 0, end_at: endAt }).where('job_id', '=', jobId).execute();
  }

  async delete(jobId: string): Promise<void> {
    await this.db.deleteFrom('e2b_sandboxes').where('job_id', '=', jobId).execute();
  }
}
