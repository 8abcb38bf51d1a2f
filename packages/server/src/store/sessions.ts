// The sessions table: browser sign-ins. Only the cookie's sha256 is stored, with the session's CSRF token.
import type { SessionRow } from './schema.js';
import type { Db } from './transaction.js';

export class SessionStore {
  constructor(private readonly db: Db) {}

  async insert(row: SessionRow): Promise<void> {
    await this.db.insertInto('sessions').values(row).execute();
  }

  /** A live session of a user that is not removed. */
  async find(idHash: string, now = Date.now()): Promise<{ session: SessionRow; name: string } | undefined> {
    const row = await this.db
      .selectFrom('sessions')
      .innerJoin('users', 'users.id', 'sessions.user_id')
      .selectAll('sessions')
      .select('users.name as name')
      .where('sessions.id_hash', '=', idHash)
      .where('sessions.expires_at', '>', now)
      .where('users.removed_at', 'is', null)
      .executeTakeFirst();
    if (!row) return undefined;
    const { name, ...session } = row;
    return { session, name };
  }

  async delete(idHash: string): Promise<void> {
    await this.db.deleteFrom('sessions').where('id_hash', '=', idHash).execute();
  }

  async deleteExpired(now = Date.now()): Promise<void> {
    await this.db.deleteFrom('sessions').where('expires_at', '<=', now).execute();
  }
}
