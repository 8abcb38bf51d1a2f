// The one way the store's table modules run statements together: on the root connection, a new transaction; inside
// one, that same transaction (Kysely cannot nest them), so a table's step can join its caller's transaction.
import type { Kysely } from 'kysely';
import type { Database } from './schema.js';

/** The root connection or a transaction: every table module runs its statements on one of these. */
export type Db = Kysely<Database>;

export function transaction<T>(db: Db, work: (trx: Db) => Promise<T>): Promise<T> {
  return db.isTransaction ? work(db) : db.transaction().execute(work);
}
