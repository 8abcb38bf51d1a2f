// The control plane's workspace rules: the workspace a job runs on (found, or created and forked, with its disk
// admitted), creating and forking, deleting, rolling back, syncing and resizing, and what agents report about the
// host copies they hold. Agents do the host work; the server owns the rows and the store data.
import { randomUUID } from 'node:crypto';
import {
  diskDoesNotFit,
  GiB,
  MagsError,
  roomForDisks,
  type SyncResult,
  type WorkspaceInfo,
  type WorkspaceKey,
  type WorkspaceReport,
  type WorkspaceRestored,
  type WorkspaceVersions,
} from '@mags/api';
import {
  deleteWorkspace as deleteStoreData,
  forkBase,
  listVersions,
  type ObjectStore,
  readHead,
  rollback,
} from '@mags/objects';
import type { Logger } from 'pino';
import type { AgentRegistry } from '../agents/registry.js';
import type { Store, WorkspacePatch, WorkspaceRow } from '../store/index.js';

export interface WorkspaceTimeouts {
  /** How long a `drop` or `resize` order may take an agent. */
  orderMs: number;
  /** How long a `sync` order may take (it uploads the changes). */
  syncMs: number;
}

export const DEFAULT_WORKSPACE_TIMEOUTS: WorkspaceTimeouts = { orderMs: 60_000, syncMs: 10 * 60_000 };

/** A new workspace's disk when none is asked for (GB). */
export const DEFAULT_DISK_GB = 2;

export interface WorkspacesDeps {
  store: Store;
  objects: ObjectStore;
  agents: AgentRegistry;
  /** Stops a job (`delete --force` stops the job using the workspace); 409 or 404 if it has ended. */
  stopJob: (jobId: string) => Promise<unknown>;
  logger: Logger;
  localTtlMs: number;
  /** The most GB of workspace disks one user's workspaces may have together. */
  maxDiskGbPerUser: number;
  timeouts?: Partial<WorkspaceTimeouts>;
}

/** A base pinned at one version of one of the caller's persistent workspaces. */
export interface ResolvedBase {
  ref: WorkspaceKey;
  version: number;
  label: string;
}

/** Reservations hold a workspace like a job does (active_job_id) while the server itself works on it. */
const RESERVATION = 'op:';
const reservation = (what: 'create' | 'delete' | 'restore' | 'expire') => `${RESERVATION}${what}:${randomUUID()}`;
const isJobHold = (holder: string | null): boolean => holder !== null && !holder.startsWith(RESERVATION);

const iso = (ms: number | null): string | null => (ms === null ? null : new Date(ms).toISOString());

/** The sync engine names workspaces by store key (`<owner id>/<name>`); users know them by name. */
function userFacing(err: unknown, owner: string): unknown {
  if (!(err instanceof MagsError) || !err.message.includes(`${owner}/`)) return err;
  return new MagsError(err.status, err.code, err.message.split(`${owner}/`).join(''));
}

export class Workspaces {
  private readonly store: Store;
  private readonly objects: ObjectStore;
  private readonly agents: AgentRegistry;
  private readonly stopJob: (jobId: string) => Promise<unknown>;
  private readonly logger: Logger;
  private readonly localTtlMs: number;
  private readonly maxDiskGbPerUser: number;
  private readonly timeouts: WorkspaceTimeouts;

  constructor(deps: WorkspacesDeps) {
    this.store = deps.store;
    this.objects = deps.objects;
    this.agents = deps.agents;
    this.stopJob = deps.stopJob;
    this.logger = deps.logger;
    this.localTtlMs = deps.localTtlMs;
    this.maxDiskGbPerUser = deps.maxDiskGbPerUser;
    this.timeouts = { ...DEFAULT_WORKSPACE_TIMEOUTS, ...deps.timeouts };
  }

  // ── views ───────────────────────────────────────────────────────────────────────────────────────

  view(row: WorkspaceRow): WorkspaceInfo {
    const persistent = row.persistent === 1;
    return {
      name: row.name,
      workspace_id: row.name,
      mode: persistent ? 'persistent' : 'local',
      disk_gb: row.disk_gb,
      size_bytes: row.size_bytes,
      files: row.file_count,
      versions: persistent ? row.versions : 0,
      current_version: persistent ? row.head_version : null,
      base: row.base_label,
      in_use_by: isJobHold(row.active_job_id) ? row.active_job_id : null,
      created_at: new Date(row.created_at).toISOString(),
      last_used_at: iso(row.last_used_at),
      expires_at: !persistent && row.active_job_id === null ? iso(row.expires_at) : null,
    };
  }

  async list(userId: string): Promise<WorkspaceInfo[]> {
    await this.expireUnused(userId);
    return (await this.store.workspaces.list(userId)).map((r) => this.view(r));
  }

  /** One workspace; a persistent one's versions are read from the store (the row may lag behind). */
  async get(userId: string, name: string): Promise<WorkspaceInfo> {
    await this.expireUnused(userId);
    let row = await this.mustGet(userId, name);
    if (row.persistent === 1) {
      try {
        const head = await readHead(this.objects, this.ref(row));
        if (head && (head.head.version !== row.head_version || head.head.versions.length !== row.versions)) {
          row =
            (await this.store.workspaces.update(row.id, {
              head_version: head.head.version,
              versions: head.head.versions.length,
            })) ?? row;
        }
      } catch (err) {
        this.logger.warn({ err, workspace: name }, 'could not read the workspace head; answering from the database');
      }
    }
    return this.view(row);
  }

  // ── jobs ────────────────────────────────────────────────────────────────────────────────────────

  /**
   * The caller's workspace `w.name` for the job `jobId`: the existing one (its disk and base must be those asked for,
   * if any), or a new one held by the job (persistent if -p was given; forked from the base if one was named).
   * `created` says which; a created one the job does not go on with is undone with discard().
   */
  async forJob(
    userId: string,
    jobId: string,
    w: { name: string; persistent: boolean; diskGb?: number; base?: string },
  ): Promise<{ row: WorkspaceRow; created: boolean }> {
    await this.expireUnused(userId);
    const found = await this.store.workspaces.get(userId, w.name);
    if (found) {
      this.checkReuse(found, w);
      return { row: found, created: false };
    }
    const row = await this.create(userId, { ...w, diskGb: w.diskGb ?? DEFAULT_DISK_GB, holder: jobId });
    // Undefined: a concurrent request created it first; go on with theirs.
    if (!row) {
      const theirs = await this.mustGet(userId, w.name);
      this.checkReuse(theirs, w);
      return { row: theirs, created: false };
    }
    return { row, created: true };
  }

  /** The rules for running on an existing workspace: its disk and its base were fixed when it was created. */
  private checkReuse(row: WorkspaceRow, w: { diskGb?: number; base?: string }): void {
    if (w.diskGb !== undefined && w.diskGb !== row.disk_gb) {
      throw MagsError.invalid(
        w.diskGb > row.disk_gb
          ? `workspace "${row.name}" has a ${row.disk_gb} GB disk; to grow it run mags resize ${row.name} --disk ${w.diskGb} first, or leave out --disk`
          : `workspace "${row.name}" has a ${row.disk_gb} GB disk and disks only grow; leave out --disk (or use mags resize to grow it)`,
      );
    }
    if (w.base !== undefined) {
      const own = row.base_label === null ? null : row.base_label.slice(0, row.base_label.lastIndexOf('@'));
      if (own !== w.base) {
        throw MagsError.conflict(
          `workspace "${row.name}" was created ${own === null ? 'without a base' : `on base ${row.base_label}`}; its base is fixed when it is created (leave out --base, or use a new workspace name)`,
        );
      }
    }
  }

  /** `--base B`: the caller's persistent workspace B, at its current version. */
  async resolveBase(userId: string, name: string): Promise<ResolvedBase> {
    const row = await this.store.workspaces.get(userId, name);
    if (!row) throw MagsError.notFound(`base workspace "${name}" not found`);
    if (row.persistent !== 1) {
      throw MagsError.unsupported(
        `workspace "${name}" is local; only a persistent workspace can be a base (run it with -w ${name} -p first)`,
      );
    }
    if (row.base_key !== null) {
      throw MagsError.unsupported(
        `workspace "${name}" was itself created on a base (${row.base_label}); a base cannot have a base of its own`,
      );
    }
    const ref = this.ref(row);
    const head = await readHead(this.objects, ref);
    if (!head)
      throw MagsError.unsupported(
        `workspace "${name}" has no synced version yet; run a job on it with -p before using it as a base`,
      );
    return { ref, version: head.head.version, label: `${name}@${head.head.version}` };
  }

  // ── create, delete ──────────────────────────────────────────────────────────────────────────────

  /** `mags new NAME [-p] [--base B] [--disk N]`. 409 if the caller already has a workspace of that name. */
  async createWorkspace(
    userId: string,
    w: { name: string; persistent: boolean; base?: string; diskGb: number },
  ): Promise<WorkspaceInfo> {
    await this.expireUnused(userId);
    if (await this.store.workspaces.get(userId, w.name))
      throw MagsError.conflict(`workspace "${w.name}" already exists`);
    if (w.base === w.name) throw MagsError.invalid(`workspace "${w.name}" cannot be its own base`);
    const token = reservation('create');
    const row = await this.create(userId, { ...w, holder: token });
    if (!row) throw MagsError.conflict(`workspace "${w.name}" already exists`);
    await this.store.workspaces.releaseReservation(row.id, token);
    this.logger.info({ workspace: w.name, persistent: w.persistent, base: row.base_label }, 'workspace created');
    return this.view((await this.store.workspaces.getById(row.id)) ?? row);
  }

  /**
   * Inserts the row held by `holder`, clears whatever an earlier workspace of that name left in the store, and
   * forks the base. Undefined if the row exists already. On failure nothing is left behind.
   */
  private async create(
    userId: string,
    w: { name: string; persistent: boolean; base?: string; diskGb: number; holder: string },
  ): Promise<WorkspaceRow | undefined> {
    await this.admitForUser(userId, w.diskGb, `a ${w.diskGb} GB disk for workspace "${w.name}"`);
    this.admitOnHost(`a ${w.diskGb} GB disk`, w.diskGb);
    const base = w.base !== undefined ? await this.resolveBase(userId, w.base) : undefined;
    const now = Date.now();
    let row = await this.store.workspaces.insert({
      id: randomUUID(),
      user_id: userId,
      name: w.name,
      persistent: w.persistent,
      disk_gb: w.diskGb,
      base_label: base?.label ?? null,
      active_job_id: w.holder,
      created_at: now,
      expires_at: w.persistent ? null : now + this.localTtlMs,
    });
    if (!row) return undefined;
    try {
      const ref = this.ref(row);
      // Only this row's holder can reach the name now: anything in the store under it is a leftover.
      if (w.persistent || base) await deleteStoreData(this.objects, ref);
      if (base) {
        const fork = await forkBase(this.objects, base.ref, base.version, ref);
        row = (await this.store.workspaces.update(row.id, { base_label: fork.label, base_key: fork.key })) ?? row;
      }
    } catch (err) {
      await this.discard(row, w.holder);
      throw userFacing(err, userId);
    }
    return row;
  }

  /** Undoes a creation that failed half-way (or whose job was not stored). */
  async discard(row: WorkspaceRow, holder: string): Promise<void> {
    try {
      if (row.persistent === 1 || row.base_label !== null) await deleteStoreData(this.objects, this.ref(row));
      await this.store.workspaces.delete(row.id, holder);
    } catch (err) {
      this.logger.error({ err, workspace: row.name }, 'could not remove a workspace whose creation failed');
    }
  }

  /**
   * Deletes the workspace everywhere: every online agent drops its host copy, then its data leaves the object
   * store, then the row goes. In use: 409, unless `force`, which stops the job first. Workspaces forked from this
   * one keep their own copy of their base.
   */
  async deleteWorkspace(userId: string, name: string, force: boolean): Promise<void> {
    let row = await this.mustGet(userId, name);
    if (force && row.active_job_id !== null && isJobHold(row.active_job_id)) {
      const jobId = row.active_job_id;
      this.logger.info({ workspace: name, jobId }, 'stopping the job using a workspace that is being deleted');
      await this.stopJob(jobId).catch((err: unknown) => {
        if (!(err instanceof MagsError && (err.status === 409 || err.status === 404))) throw err;
      });
      row = await this.mustGet(userId, name);
    }
    await this.withReservation(
      row,
      'delete',
      async (token) => {
        await this.dropEverywhere(row);
        await deleteStoreData(this.objects, this.ref(row));
        await this.store.workspaces.delete(row.id, token);
      },
      force,
    );
    this.logger.info({ workspace: name }, 'workspace deleted');
  }

  // ── versions ────────────────────────────────────────────────────────────────────────────────────

  async versions(userId: string, name: string): Promise<WorkspaceVersions> {
    const row = await this.mustGet(userId, name);
    if (row.persistent !== 1) return { name, versions: [] };
    const versions = await listVersions(this.objects, this.ref(row));
    return {
      name,
      versions: versions.map((v) => ({
        version: v.version,
        created_at: v.createdAt,
        files: v.files,
        bytes: v.bytes,
        current: v.current,
      })),
    };
  }

  /**
   * Rolls back to `version`: the rollback is a new version, so nothing is lost. Host copies are dropped first, so
   * the next run restores the rolled-back content rather than running on a stale copy.
   */
  async restore(userId: string, name: string, version: number): Promise<WorkspaceRestored> {
    const row = await this.mustGet(userId, name);
    if (row.persistent !== 1) {
      throw MagsError.invalid(
        `workspace "${name}" is local and has no versions; only persistent workspaces (-p) can be restored`,
      );
    }
    const ref = this.ref(row);
    const kept = await listVersions(this.objects, ref);
    if (!kept.some((v) => v.version === version)) {
      throw MagsError.notFound(
        kept.length === 0
          ? `workspace "${name}" has no synced versions yet`
          : `workspace "${name}" has no version ${version} (kept: ${kept.map((v) => v.version).join(', ')})`,
      );
    }
    const result = await this.withReservation(row, 'restore', async () => {
      await this.dropEverywhere(row);
      const r = await rollback(this.objects, ref, version).catch((err: unknown) =>
        Promise.reject(userFacing(err, userId)),
      );
      const head = await readHead(this.objects, ref);
      await this.store.workspaces.update(row.id, {
        head_version: r.version,
        versions: head?.head.versions.length ?? row.versions + 1,
        agent_id: null,
      });
      return r;
    });
    this.logger.info(
      { workspace: name, version: result.version, restoredFrom: result.restoredFrom },
      'workspace rolled back',
    );
    return { success: true, name, version: result.version, restored_from: result.restoredFrom };
  }

  // ── sync, resize ────────────────────────────────────────────────────────────────────────────────

  /** Syncs now through the agent holding the workspace; with no agent holding it, the store is already current. */
  async sync(userId: string, name: string): Promise<SyncResult> {
    const row = await this.mustGet(userId, name);
    if (row.persistent !== 1) {
      throw MagsError.invalid(
        `workspace "${name}" is local; local workspaces are not synced; run with -p to make it persistent`,
      );
    }
    if (row.agent_id !== null && this.agents.isOnline(row.agent_id)) {
      const r = await this.agents.request(
        row.agent_id,
        { type: 'sync', workspace: this.ref(row) },
        this.timeouts.syncMs,
      );
      if (r.held) {
        const version = r.version ?? null;
        if (version !== null && version !== row.head_version)
          await this.store.workspaces.update(row.id, { head_version: version });
        return { success: true, name, version, changed: r.changed ?? false };
      }
    }
    const head = await readHead(this.objects, this.ref(row));
    return { success: true, name, version: head?.head.version ?? null, changed: false };
  }

  /** `mags sync JOB`: the job's workspace. */
  async syncJob(userId: string, ref: string): Promise<SyncResult> {
    const job = await this.store.jobs.find(userId, ref);
    if (!job) throw MagsError.notFound(`job "${ref}" not found`);
    if (job.workspace_id === null) {
      throw MagsError.invalid(`job "${ref}" has no workspace; only a job run with -w NAME -p has files to sync`);
    }
    return this.sync(userId, job.workspace_id);
  }

  /** Grows the disk: the agent holding a copy grows it now; later runs get the new size wherever they run. */
  async resize(userId: string, name: string, diskGb: number): Promise<WorkspaceInfo> {
    const row = await this.mustGet(userId, name);
    if (diskGb < row.disk_gb) {
      throw MagsError.invalid(
        `workspace "${name}" has a ${row.disk_gb} GB disk and disks only grow; give --disk ${row.disk_gb} or more`,
      );
    }
    if (diskGb === row.disk_gb) return this.view(row);
    const growth = diskGb - row.disk_gb;
    await this.admitForUser(userId, growth, `growing workspace "${name}" to ${diskGb} GB`);
    this.admitOnHost(`growing workspace ${name}'s disk by ${growth} GB`, growth, row.agent_id);
    if (row.agent_id !== null && this.agents.isOnline(row.agent_id)) {
      await this.agents.request(
        row.agent_id,
        { type: 'resize', workspace: this.ref(row), diskGb },
        this.timeouts.orderMs,
      );
    }
    const updated = await this.store.workspaces.update(row.id, { disk_gb: diskGb });
    if (!updated) throw MagsError.notFound(`workspace "${name}" not found (it was deleted meanwhile)`);
    this.logger.info({ workspace: name, diskGb }, 'workspace resized');
    return this.view(updated);
  }

  // ── what agents report ──────────────────────────────────────────────────────────────────────────

  /**
   * An agent holds a copy (`present`: its size, and for a persistent workspace its synced version), or no longer
   * does (`gone`). A local workspace whose copy is gone has no content left: it expired, and is forgotten.
   */
  async report(agentId: string, report: WorkspaceReport): Promise<void> {
    const row = await this.store.workspaces.get(report.owner, report.name);
    if (!row) {
      this.logger.debug(
        { agentId, owner: report.owner, workspace: report.name },
        'report about a workspace that no longer exists',
      );
      return;
    }
    if (report.state === 'present') {
      const patch: WorkspacePatch = { size_bytes: report.usedBytes, file_count: report.files };
      if (report.version !== undefined) patch.head_version = report.version;
      if (report.versions !== undefined) patch.versions = report.versions;
      // A stale copy on an agent that came back must not take over from the online agent with the current one.
      if (row.agent_id === null || row.agent_id === agentId || !this.agents.isOnline(row.agent_id))
        patch.agent_id = agentId;
      await this.store.workspaces.update(row.id, patch);
      return;
    }
    if (row.agent_id !== null && row.agent_id !== agentId) return; // another agent has the current copy
    if (row.persistent === 1 || row.active_job_id !== null) {
      await this.store.workspaces.forgetCopy(row.id, agentId);
      return;
    }
    if (await this.retireLocal(row, agentId)) {
      this.logger.info({ agentId, workspace: row.name }, 'local workspace expired (its host copy was deleted)');
    }
  }

  /** Forgets the caller's local workspaces that no host holds, past their time to live (e.g. `mags new` never used). */
  private async expireUnused(userId: string): Promise<void> {
    for (const row of await this.store.workspaces.expiredLocal(userId)) {
      if (await this.retireLocal(row, null))
        this.logger.info({ workspace: row.name }, 'local workspace expired unused');
    }
  }

  /** Deletes a local workspace with no content left (and its base copy), unless something took it meanwhile. */
  private async retireLocal(row: WorkspaceRow, agentId: string | null): Promise<boolean> {
    const token = reservation('expire');
    if (!(await this.store.workspaces.reserve(row.id, token))) return false;
    const now = await this.store.workspaces.getById(row.id);
    const stillGone = now !== undefined && now.persistent === 0 && (now.agent_id === null || now.agent_id === agentId);
    try {
      if (!stillGone) return false;
      // The row stays (held) until its store data is gone, so a new workspace of this name cannot lose its own.
      if (now.base_label !== null) await deleteStoreData(this.objects, this.ref(now));
      return await this.store.workspaces.delete(row.id, token);
    } catch (err) {
      this.logger.warn({ err, workspace: row.name }, 'could not delete an expired local workspace; will try again');
      return false;
    } finally {
      await this.store.workspaces.releaseReservation(row.id, token);
    }
  }

  // ── disk admission ──────────────────────────────────────────────────────────────────────────────

  /**
   * 507 `insufficient_storage` unless a host has room for `diskGb` more of disk (the agent given, when it reports;
   * else the roomiest online one). With no figures from any agent it is admitted: the agent refuses then, when
   * it makes the disk.
   */
  admitOnHost(what: string, diskGb: number, agentId?: string | null): void {
    const reported = this.agents.storage();
    const holder = agentId ? reported.get(agentId) : undefined;
    const hosts = holder ? [holder] : [...reported.values()];
    if (hosts.length === 0) return;
    const room = Math.max(...hosts.map(roomForDisks));
    if (diskGb * GiB > room)
      throw diskDoesNotFit(what, room, hosts.length === 1 ? 'this server' : 'the roomiest host of this server');
  }

  /** 422 `disk_quota_exceeded` when `moreGb` would bring the user's workspace disks past the per-user total. */
  private async admitForUser(userId: string, moreGb: number, what: string): Promise<void> {
    const held = (await this.store.workspaces.list(userId)).reduce((sum, r) => sum + r.disk_gb, 0);
    if (held + moreGb <= this.maxDiskGbPerUser) return;
    throw new MagsError(
      422,
      'disk_quota_exceeded',
      `${what} would bring your workspaces' disks to ${held + moreGb} GB in total, over this server's limit of ${this.maxDiskGbPerUser} GB per user (they have ${held} GB now: delete a workspace, or ask for less with --disk)`,
    );
  }

  // ── internals ───────────────────────────────────────────────────────────────────────────────────

  private ref(row: WorkspaceRow): WorkspaceKey {
    return { owner: row.user_id, name: row.name };
  }

  private async mustGet(userId: string, name: string): Promise<WorkspaceRow> {
    const row = await this.store.workspaces.get(userId, name);
    if (!row) throw MagsError.notFound(`workspace "${name}" not found`);
    return row;
  }

  /**
   * 409 `workspace_busy`, naming what holds it. `running`: the holding job's sandbox is up, so the sentence
   * suggests entering it with exec (one sandbox per workspace).
   */
  busy(name: string, heldBy: string | null, running = false): MagsError {
    if (heldBy === null) return MagsError.conflict(`workspace "${name}" was deleted meanwhile; try again`);
    if (isJobHold(heldBy) && running) {
      return new MagsError(
        409,
        'workspace_busy',
        `workspace ${name} is in use by the running sandbox of job ${heldBy}; run commands in it with ` +
          `mags exec ${name} '…', or stop it first (mags stop ${heldBy})`,
      );
    }
    if (isJobHold(heldBy)) {
      return new MagsError(
        409,
        'workspace_busy',
        `workspace ${name} is in use by job ${heldBy}; wait for it to finish or stop it (mags stop ${heldBy})`,
      );
    }
    const what = heldBy.split(':')[1];
    const doing =
      what === 'delete'
        ? 'being deleted'
        : what === 'restore'
          ? 'being rolled back'
          : what === 'create'
            ? 'being created'
            : 'being cleaned up';
    return new MagsError(409, 'workspace_busy', `workspace ${name} is ${doing}; try again in a moment`);
  }

  /** Runs `work` while the workspace is held by a reservation (409 `workspace_busy` if something holds it). */
  private async withReservation<T>(
    row: WorkspaceRow,
    what: 'delete' | 'restore',
    work: (token: string) => Promise<T>,
    forced = false,
  ): Promise<T> {
    const token = reservation(what);
    if (!(await this.store.workspaces.reserve(row.id, token))) {
      const holder = (await this.store.workspaces.getById(row.id))?.active_job_id ?? null;
      if (forced && isJobHold(holder)) {
        throw new MagsError(
          409,
          'workspace_busy',
          `job ${holder} using workspace ${row.name} did not stop in time; try again in a moment`,
        );
      }
      if (isJobHold(holder) && what === 'delete') {
        throw new MagsError(
          409,
          'workspace_busy',
          `workspace ${row.name} is in use by job ${holder}; wait for it to finish, stop it, or delete with --force`,
        );
      }
      throw this.busy(row.name, holder);
    }
    try {
      return await work(token);
    } finally {
      await this.store.workspaces.releaseReservation(row.id, token);
    }
  }

  /** Every online agent deletes its host copy; any refusal (or silence) stops the operation. */
  private async dropEverywhere(row: WorkspaceRow): Promise<void> {
    const ref = this.ref(row);
    const agents = this.agents.online().map((a) => a.id);
    const results = await Promise.allSettled(
      agents.map((agentId) => this.agents.request(agentId, { type: 'drop', workspace: ref }, this.timeouts.orderMs)),
    );
    const failed = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
    if (failed) {
      const err = failed.reason as unknown;
      const agentId = agents[results.indexOf(failed)];
      this.logger.warn({ err, agentId, workspace: row.name }, 'an agent could not drop its copy of a workspace');
      if (err instanceof MagsError) {
        throw new MagsError(
          err.status,
          err.code,
          `the host copy of workspace ${row.name} on agent ${agentId} could not be removed: ${err.message}`,
        );
      }
      throw err;
    }
  }
}
