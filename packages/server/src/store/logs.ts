// The job_logs table: a job's output lines, one row per line, keyed by (job, seq).
import type { OutputLine } from '@mags/api';
import type { LogRow } from './schema.js';
import { type Db, transaction } from './transaction.js';

/** Rows per INSERT when storing log lines (5 parameters each; well under both backends' limits). */
const LOG_INSERT_CHUNK = 1000;
/** Log rows deleted per statement. */
const LOG_DELETE_SLICE = 5000;

export class LogStore {
  constructor(private readonly db: Db) {}

  /**
   * Stores a batch of lines in one transaction; a line whose (job, seq) is already stored is ignored. Returns the
   * lines that were new, in order.
   */
  async append(jobId: string, lines: readonly OutputLine[]): Promise<OutputLine[]> {
    if (lines.length === 0) return [];
    const inserted: OutputLine[] = [];
    await transaction(this.db, async (trx) => {
      for (let i = 0; i < lines.length; i += LOG_INSERT_CHUNK) {
        const chunk = lines.slice(i, i + LOG_INSERT_CHUNK);
        const rows = await trx
          .insertInto('job_logs')
          .values(chunk.map((l) => ({ job_id: jobId, seq: l.seq, ts: l.ts, stream: l.stream, message: l.message })))
          .onConflict((oc) => oc.columns(['job_id', 'seq']).doNothing())
          .returning(['seq', 'ts', 'stream', 'message'])
          .execute();
        for (const r of rows)
          inserted.push({ seq: r.seq, ts: r.ts, stream: r.stream as OutputLine['stream'], message: r.message });
      }
    });
    inserted.sort((a, b) => a.seq - b.seq);
    return inserted;
  }

  /** The seq of the job's last stored line (0 when none). */
  async lastSeq(jobId: string): Promise<number> {
    const row = await this.db
      .selectFrom('job_logs')
      .select((eb) => eb.fn.max('seq').as('last'))
      .where('job_id', '=', jobId)
      .executeTakeFirst();
    return Number(row?.last ?? 0);
  }

  /** Lines with seq > `after`, in order, at most `limit`. */
  async read(jobId: string, after = 0, limit = 10000): Promise<LogRow[]> {
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
  async deleteAll(jobId: string): Promise<void> {
    for (;;) {
      const rows = await this.db
        .deleteFrom('job_logs')
        .where('job_id', '=', jobId)
        .where('seq', 'in', (eb) =>
          eb
            .selectFrom('job_logs')
            .select('seq')
            .where('job_id', '=', jobId)
            .orderBy('seq', 'asc')
            .limit(LOG_DELETE_SLICE),
        )
        .executeTakeFirst();
      if (Number(rows.numDeletedRows) < LOG_DELETE_SLICE) return;
    }
  }
}
