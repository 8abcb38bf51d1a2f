// The usage_meters and usage_days tables: what each job's sandbox reported it used (cumulative, per sandbox), and
// per user and UTC day the sums of what was new in each report, with the storage held that day.
import { sql } from 'kysely';
import type { UsageDayRow } from './schema.js';
import { type Db, transaction } from './transaction.js';

/** Cumulative figures of one sandbox running one job, as its agent reports them. */
export interface MeterReading {
  jobId: string;
  sandboxId: string;
  sandboxMs: number;
  cpuMs: number;
  memoryMibMs: number;
  egressBytes: number;
  ts: number;
}

/** YYYY-MM-DD of an epoch-ms time, in UTC. */
export function utcDay(ts: number): string {
  return new Date(ts).toISOString().slice(0, 10);
}

export class UsageStore {
  constructor(private readonly db: Db) {}

  /**
   * Adds what is new in a reading (against the sandbox's previous one) to the job owner's day of `ts`; a job's first
   * reading counts the job. A reading that is not ahead of the last adds nothing (resent, or out of order). False
   * when the job is gone.
   */
  async record(r: MeterReading): Promise<boolean> {
    return transaction(this.db, async (trx) => {
      const job = await trx.selectFrom('jobs').select('user_id').where('id', '=', r.jobId).executeTakeFirst();
      if (!job) return false;
      const before = await trx
        .selectFrom('usage_meters')
        .selectAll()
        .where('job_id', '=', r.jobId)
        .where('sandbox_id', '=', r.sandboxId)
        .executeTakeFirst();
      const firstOfJob =
        !before &&
        (await trx.selectFrom('usage_meters').select('job_id').where('job_id', '=', r.jobId).executeTakeFirst()) ===
          undefined;
      const delta = {
        sandbox_ms: Math.max(0, r.sandboxMs - (before?.sandbox_ms ?? 0)),
        cpu_ms: Math.max(0, r.cpuMs - (before?.cpu_ms ?? 0)),
        memory_mib_ms: Math.max(0, r.memoryMibMs - (before?.memory_mib_ms ?? 0)),
        egress_bytes: Math.max(0, r.egressBytes - (before?.egress_bytes ?? 0)),
      };
      const now = {
        sandbox_ms: Math.max(r.sandboxMs, before?.sandbox_ms ?? 0),
        cpu_ms: Math.max(r.cpuMs, before?.cpu_ms ?? 0),
        memory_mib_ms: Math.max(r.memoryMibMs, before?.memory_mib_ms ?? 0),
        egress_bytes: Math.max(r.egressBytes, before?.egress_bytes ?? 0),
        updated_at: r.ts,
      };
      if (before) {
        await trx
          .updateTable('usage_meters')
          .set(now)
          .where('job_id', '=', r.jobId)
          .where('sandbox_id', '=', r.sandboxId)
          .execute();
      } else {
        await trx
          .insertInto('usage_meters')
          .values({ job_id: r.jobId, sandbox_id: r.sandboxId, user_id: job.user_id, ...now })
          .execute();
      }
      const jobs = firstOfJob ? 1 : 0;
      if (jobs === 0 && Object.values(delta).every((v) => v === 0)) return true;
      await trx
        .insertInto('usage_days')
        .values({ user_id: job.user_id, day: utcDay(r.ts), jobs, ...delta, storage_bytes: null })
        .onConflict((oc) =>
          oc.columns(['user_id', 'day']).doUpdateSet({
            jobs: sql`usage_days.jobs + ${jobs}`,
            sandbox_ms: sql`usage_days.sandbox_ms + ${delta.sandbox_ms}`,
            cpu_ms: sql`usage_days.cpu_ms + ${delta.cpu_ms}`,
            memory_mib_ms: sql`usage_days.memory_mib_ms + ${delta.memory_mib_ms}`,
            egress_bytes: sql`usage_days.egress_bytes + ${delta.egress_bytes}`,
          }),
        )
        .execute();
      return true;
    });
  }

  /** Records the storage a user holds now, as that day's figure. */
  async recordStorage(userId: string, bytes: number, ts = Date.now()): Promise<void> {
    await this.db
      .insertInto('usage_days')
      .values({
        user_id: userId,
        day: utcDay(ts),
        jobs: 0,
        sandbox_ms: 0,
        cpu_ms: 0,
        memory_mib_ms: 0,
        egress_bytes: 0,
        storage_bytes: bytes,
      })
      .onConflict((oc) => oc.columns(['user_id', 'day']).doUpdateSet({ storage_bytes: bytes }))
      .execute();
  }

  /** Bytes a user holds in the store: their workspaces (as last measured) and their uploaded files. */
  async storageHeld(userId: string): Promise<number> {
    const workspaces = await this.db
      .selectFrom('workspaces')
      .select('size_bytes')
      .where('user_id', '=', userId)
      .execute();
    const files = await this.db.selectFrom('files').select('size').where('user_id', '=', userId).execute();
    return (
      workspaces.reduce((sum, w) => sum + Number(w.size_bytes), 0) + files.reduce((sum, f) => sum + Number(f.size), 0)
    );
  }

  /** The latest meter reading of a job's sandbox (the figures of its last usage report), if any. */
  async meterOf(
    jobId: string,
  ): Promise<{ sandboxId: string; sandboxMs: number; cpuMs: number; memoryMibMs: number; ts: number } | undefined> {
    const row = await this.db
      .selectFrom('usage_meters')
      .selectAll()
      .where('job_id', '=', jobId)
      .orderBy('updated_at', 'desc')
      .executeTakeFirst();
    if (!row) return undefined;
    return {
      sandboxId: row.sandbox_id,
      sandboxMs: Number(row.sandbox_ms),
      cpuMs: Number(row.cpu_ms),
      memoryMibMs: Number(row.memory_mib_ms),
      ts: Number(row.updated_at),
    };
  }

  /** Users with anything in the store (for the daily storage figure). */
  async usersHolding(): Promise<string[]> {
    const rows = await this.db
      .selectFrom('workspaces')
      .select('user_id')
      .union(this.db.selectFrom('files').select('user_id'))
      .execute();
    return rows.map((r) => r.user_id);
  }

  /** A user's days from `fromDay` (YYYY-MM-DD) on, oldest first. */
  async days(userId: string, fromDay: string): Promise<UsageDayRow[]> {
    return this.db
      .selectFrom('usage_days')
      .selectAll()
      .where('user_id', '=', userId)
      .where('day', '>=', fromDay)
      .orderBy('day', 'asc')
      .execute();
  }

  /** The last storage figure recorded before `day` (carried into days with none). */
  async storageBefore(userId: string, day: string): Promise<number | null> {
    const row = await this.db
      .selectFrom('usage_days')
      .select('storage_bytes')
      .where('user_id', '=', userId)
      .where('day', '<', day)
      .where('storage_bytes', 'is not', null)
      .orderBy('day', 'desc')
      .limit(1)
      .executeTakeFirst();
    return row?.storage_bytes ?? null;
  }
}
