// The workspaces table. A workspace serves one unfinished job at a time: `active_job_id` is taken by a conditional
// update in the same transaction that inserts the job (takeForJob), and every way a job ends releases it
// (releaseHeldBy, from the jobs table). The server also holds it with a reservation (an id that is no job's) while it
// deletes, rolls back or forks it; releaseOrphaned() frees what a crash left held.
import { sql } from 'kysely';
import { UNFINISHED, type WorkspaceRow } from './schema.js';
import type { Db } from './transaction.js';

/** A new workspace row; the counters start at zero. */
export interface NewWorkspace {
  id: string;
  user_id: string;
  name: string;
  persistent: boolean;
  disk_gb: number;
  base_label?: string | null;
  base_key?: string | null;
  /** Taken at once (by the job that creates it, or a reservation while it is forked). */
  active_job_id?: string | null;
  created_at: number;
  expires_at?: number | null;
}

/** The fields a workspace changes after creation (not its identity, owner or name). */
export type WorkspacePatch = Partial<
  Pick<
    WorkspaceRow,
    'disk_gb' | 'base_label' | 'base_key' | 'agent_id' | 'head_version' | 'versions' | 'size_bytes' | 'file_count'
  >
>;

/**
 * Gives the workspace to the job `jobId` (free, or already reserved for this very job when the job created it);
 * `persistent` upgrades a local workspace. Undefined when it is taken: `heldBy` names what holds it (null: gone).
 */
export async function takeForJob(
  trx: Db,
  workspaceId: string,
  jobId: string,
  persistent: boolean,
): Promise<{ heldBy: string | null } | undefined> {
  const taken = await trx
    .updateTable('workspaces')
    .set({ active_job_id: jobId, expires_at: null, ...(persistent ? { persistent: 1 } : {}) })
    .where('id', '=', workspaceId)
    .where((eb) => eb.or([eb('active_job_id', 'is', null), eb('active_job_id', '=', jobId)]))
    .returning('id')
    .executeTakeFirst();
  if (taken) return undefined;
  const row = await trx
    .selectFrom('workspaces')
    .select('active_job_id')
    .where('id', '=', workspaceId)
    .executeTakeFirst();
  return { heldBy: row?.active_job_id ?? null };
}

/** Frees the workspaces these (now finished) jobs held; a local one starts its time to live, `localTtlMs`. */
export async function releaseHeldBy(
  trx: Db,
  jobIds: readonly string[],
  now: number,
  localTtlMs: number,
): Promise<void> {
  const expires = now + localTtlMs;
  for (let i = 0; i < jobIds.length; i += 500) {
    await trx
      .updateTable('workspaces')
      .set({
        active_job_id: null,
        last_used_at: now,
        expires_at: sql<number | null>`case when persistent = 0 then cast(${expires} as bigint) else null end`,
      })
      .where('active_job_id', 'in', jobIds.slice(i, i + 500))
      .execute();
  }
}

export class WorkspaceStore {
  constructor(private readonly db: Db) {}

  /** A user's workspace by name; another user's is not found. */
  async get(userId: string, name: string): Promise<WorkspaceRow | undefined> {
    return this.db
      .selectFrom('workspaces')
      .selectAll()
      .where('user_id', '=', userId)
      .where('name', '=', name)
      .executeTakeFirst();
  }

  async getById(id: string): Promise<WorkspaceRow | undefined> {
    return this.db.selectFrom('workspaces').selectAll().where('id', '=', id).executeTakeFirst();
  }

  /** A user's workspaces by name. */
  async list(userId: string): Promise<WorkspaceRow[]> {
    return this.db.selectFrom('workspaces').selectAll().where('user_id', '=', userId).orderBy('name').execute();
  }

  /** Creates a workspace; undefined if the user already has one of that name (also when a concurrent request won). */
  async insert(ws: NewWorkspace): Promise<WorkspaceRow | undefined> {
    return this.db
      .insertInto('workspaces')
      .values({
        id: ws.id,
        user_id: ws.user_id,
        name: ws.name,
        persistent: ws.persistent ? 1 : 0,
        disk_gb: ws.disk_gb,
        base_label: ws.base_label ?? null,
        base_key: ws.base_key ?? null,
        agent_id: null,
        active_job_id: ws.active_job_id ?? null,
        head_version: null,
        versions: 0,
        size_bytes: 0,
        file_count: 0,
        created_at: ws.created_at,
        last_used_at: null,
        expires_at: ws.expires_at ?? null,
      })
      .onConflict((oc) => oc.columns(['user_id', 'name']).doNothing())
      .returningAll()
      .executeTakeFirst();
  }

  /** Holds a free workspace with `token` (not a job id) while the server works on it. False if it is in use. */
  async reserve(id: string, token: string): Promise<boolean> {
    const row = await this.db
      .updateTable('workspaces')
      .set({ active_job_id: token })
      .where('id', '=', id)
      .where('active_job_id', 'is', null)
      .returning('id')
      .executeTakeFirst();
    return row !== undefined;
  }

  /** Lets go of a reservation (or of a job's hold, when that job was never stored). */
  async releaseReservation(id: string, token: string): Promise<void> {
    await this.db
      .updateTable('workspaces')
      .set({ active_job_id: null })
      .where('id', '=', id)
      .where('active_job_id', '=', token)
      .execute();
  }

  async update(id: string, patch: WorkspacePatch): Promise<WorkspaceRow | undefined> {
    if (Object.keys(patch).length === 0) return this.getById(id);
    return this.db.updateTable('workspaces').set(patch).where('id', '=', id).returningAll().executeTakeFirst();
  }

  /** Records the agent holding a host copy (when a job on the workspace is dispatched to it). */
  async setAgent(id: string, agentId: string | null): Promise<void> {
    await this.db.updateTable('workspaces').set({ agent_id: agentId }).where('id', '=', id).execute();
  }

  /** Forgets that `agentId` holds a copy (it reported the copy gone); another agent's claim is kept. */
  async forgetCopy(id: string, agentId: string): Promise<void> {
    await this.db
      .updateTable('workspaces')
      .set({ agent_id: null })
      .where('id', '=', id)
      .where('agent_id', '=', agentId)
      .execute();
  }

  /** Deletes a workspace row held by `token` (the caller's reservation). Returns whether it did. */
  async delete(id: string, token: string): Promise<boolean> {
    const row = await this.db
      .deleteFrom('workspaces')
      .where('id', '=', id)
      .where('active_job_id', '=', token)
      .returning('id')
      .executeTakeFirst();
    return row !== undefined;
  }

  /** A user's local workspaces that no host holds and no job uses, past their time to live. */
  async expiredLocal(userId: string, now = Date.now()): Promise<WorkspaceRow[]> {
    return this.db
      .selectFrom('workspaces')
      .selectAll()
      .where('user_id', '=', userId)
      .where('persistent', '=', 0)
      .where('agent_id', 'is', null)
      .where('active_job_id', 'is', null)
      .where('expires_at', '<', now)
      .execute();
  }

  /** At start: frees workspaces held by a job that is no longer unfinished, or by a reservation a crash left. */
  async releaseOrphaned(): Promise<number> {
    const rows = await this.db
      .updateTable('workspaces')
      .set({ active_job_id: null })
      .where('active_job_id', 'is not', null)
      .where(({ not, exists, selectFrom }) =>
        not(
          exists(
            selectFrom('jobs')
              .select('jobs.id')
              .whereRef('jobs.id', '=', 'workspaces.active_job_id')
              .where('jobs.status', 'in', UNFINISHED),
          ),
        ),
      )
      .returning('id')
      .execute();
    return rows.length;
  }
}
