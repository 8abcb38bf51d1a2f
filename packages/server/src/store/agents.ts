// The agents table: every agent that ever said hello, with its last known figures (what `GET /status` lists).
import type { AgentInfo } from '@mags/api';
import type { AgentRow } from './schema.js';
import type { Db } from './transaction.js';

export class AgentStore {
  constructor(private readonly db: Db) {}

  async upsert(info: AgentInfo, now = Date.now()): Promise<void> {
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

  async markOffline(id: string, now = Date.now()): Promise<void> {
    await this.db.updateTable('agents').set({ status: 'offline', last_seen_at: now }).where('id', '=', id).execute();
  }

  async markAllOffline(): Promise<void> {
    await this.db.updateTable('agents').set({ status: 'offline' }).where('status', '=', 'online').execute();
  }

  async list(): Promise<AgentRow[]> {
    return this.db.selectFrom('agents').selectAll().orderBy('last_seen_at', 'desc').orderBy('id').execute();
  }
}
