// The ssh_keys table: public keys the SSH gateway accepts. A user's own keys (job_id null) open that user's
// sandboxes by name; a sandbox's key (made by `access`, job_id set) opens that job's sandbox only, and goes with it.
import type { SshKeyRow } from './schema.js';
import type { Db } from './transaction.js';

export class SshKeyStore {
  constructor(private readonly db: Db) {}

  /** Inserts a key; false when a key with that fingerprint exists already (of any user). */
  async insert(key: SshKeyRow): Promise<boolean> {
    const inserted = await this.db
      .insertInto('ssh_keys')
      .values(key)
      .onConflict((oc) => oc.column('fingerprint').doNothing())
      .returning('id')
      .executeTakeFirst();
    return inserted !== undefined;
  }

  /** The key with this fingerprint, whoever's it is (the gateway's lookup). */
  async byFingerprint(fingerprint: string): Promise<SshKeyRow | undefined> {
    return this.db.selectFrom('ssh_keys').selectAll().where('fingerprint', '=', fingerprint).executeTakeFirst();
  }

  /** A user's own registered keys (not the sandboxes' keys), oldest first. */
  async listOwn(userId: string): Promise<SshKeyRow[]> {
    return this.db
      .selectFrom('ssh_keys')
      .selectAll()
      .where('user_id', '=', userId)
      .where('job_id', 'is', null)
      .orderBy('created_at', 'asc')
      .orderBy('id', 'asc')
      .execute();
  }

  /** Deletes one of a user's own keys; false if they have none with that id. */
  async deleteOwn(userId: string, id: string): Promise<boolean> {
    const row = await this.db
      .deleteFrom('ssh_keys')
      .where('id', '=', id)
      .where('user_id', '=', userId)
      .where('job_id', 'is', null)
      .returning('id')
      .executeTakeFirst();
    return row !== undefined;
  }
}
