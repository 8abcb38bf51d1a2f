// The device_logins table: `mags login` requests waiting for a signed-in user to approve them in a browser.
import type { DeviceLoginRow } from './schema.js';
import { type Db, transaction } from './transaction.js';

export class DeviceLoginStore {
  constructor(private readonly db: Db) {}

  async insert(row: DeviceLoginRow): Promise<void> {
    await this.db.insertInto('device_logins').values(row).execute();
  }

  async byUserCode(userCode: string, now = Date.now()): Promise<DeviceLoginRow | undefined> {
    return this.db
      .selectFrom('device_logins')
      .selectAll()
      .where('user_code', '=', userCode)
      .where('expires_at', '>', now)
      .executeTakeFirst();
  }

  /** Marks a pending login approved by a user; false when it is not pending (expired, approved, denied). */
  async approve(userCode: string, userId: string, now = Date.now()): Promise<boolean> {
    const r = await this.db
      .updateTable('device_logins')
      .set({ status: 'approved', user_id: userId })
      .where('user_code', '=', userCode)
      .where('status', '=', 'pending')
      .where('expires_at', '>', now)
      .executeTakeFirst();
    return Number(r.numUpdatedRows) > 0;
  }

  async deny(userCode: string): Promise<void> {
    await this.db.deleteFrom('device_logins').where('user_code', '=', userCode).execute();
  }

  /**
   * The login polled with this device code: pending, or approved and taken (deleted) by this call, so that one
   * approval gives one token even when two polls race.
   */
  async take(deviceHash: string, now = Date.now()): Promise<DeviceLoginRow | undefined> {
    return transaction(this.db, async (trx) => {
      const row = await trx
        .selectFrom('device_logins')
        .selectAll()
        .where('device_hash', '=', deviceHash)
        .where('expires_at', '>', now)
        .executeTakeFirst();
      if (row?.status !== 'approved') return row;
      const gone = await trx
        .deleteFrom('device_logins')
        .where('device_hash', '=', deviceHash)
        .where('status', '=', 'approved')
        .executeTakeFirst();
      return Number(gone.numDeletedRows) > 0 ? row : undefined;
    });
  }

  async deleteExpired(now = Date.now()): Promise<void> {
    await this.db.deleteFrom('device_logins').where('expires_at', '<=', now).execute();
  }
}
