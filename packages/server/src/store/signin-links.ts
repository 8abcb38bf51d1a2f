// The signin_links table: one-time links where a new user chooses a password. Only the code's sha256 is stored.
import type { Db } from './transaction.js';

export class SigninLinkStore {
  constructor(private readonly db: Db) {}

  async insert(codeHash: string, userId: string, now: number, expiresAt: number): Promise<void> {
    await this.db
      .insertInto('signin_links')
      .values({ code_hash: codeHash, user_id: userId, created_at: now, expires_at: expiresAt })
      .execute();
  }

  /** The user of a live link, without using it up. */
  async peek(codeHash: string, now = Date.now()): Promise<string | undefined> {
    const row = await this.db
      .selectFrom('signin_links')
      .select('user_id')
      .where('code_hash', '=', codeHash)
      .where('expires_at', '>', now)
      .executeTakeFirst();
    return row?.user_id;
  }

  /** Uses a link up: its user, or undefined when it was unknown, expired or already used. */
  async take(codeHash: string, now = Date.now()): Promise<string | undefined> {
    const userId = await this.peek(codeHash, now);
    if (!userId) return undefined;
    const r = await this.db.deleteFrom('signin_links').where('code_hash', '=', codeHash).executeTakeFirst();
    return Number(r.numDeletedRows) > 0 ? userId : undefined;
  }
}
