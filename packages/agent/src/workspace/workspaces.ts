// Host copies of workspaces. A workspace's writable layer lives on its own disk (a file-backed ext4 of the
// workspace's size) under workspacesDir/<owner>/<name>/. Local workspaces exist only there and are deleted after
// a period unused; persistent ones are restored from the object store when this host lacks the current version,
// synced after every run (before the run is reported finished), periodically while one runs, and on order.
// After a run the disk stays mounted and a sandbox is parked on it, so the next run starts at once.
//
// One job at a time per workspace is the server's rule; here every change to a copy (open, sync, park, expiry,
// drop) runs on that copy's own queue, so they never overlap.
import { existsSync, readdirSync, readFileSync, statfsSync } from 'node:fs';
import { mkdir, rename, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import type { AgentToServer, SandboxWorkspace, WorkspaceKey, WorkspaceOrderResult, WorkspaceReport } from '@mags/api';
import { GiB, MagsError } from '@mags/api';
import { type IdMap, type ObjectStore, readHead, type SyncService } from '@mags/objects';
import type { Logger } from 'pino';
import type { DiskLedger } from '../disks.js';
import { run } from '../process.js';
import { forUser } from '../user-errors.js';
import type { BaseHandle } from './bases.js';
import { WorkspaceDisk } from './disk.js';

/** What survives an agent restart, in state.json beside the disk image. */
interface SavedState {
  owner: string;
  name: string;
  persistent: boolean;
  /** The store version the content was restored from or last synced as; null before the first sync. */
  version: number | null;
  /** Changes may exist that are not in `version` yet. */
  dirty: boolean;
  lastUsed: number;
  /** Bytes the empty filesystem uses (journal, metadata), subtracted when reporting usage. */
  emptyUsed: number;
  emptyInodes: number;
}

export interface HostCopy {
  readonly key: WorkspaceKey;
  readonly disk: WorkspaceDisk;
  state: SavedState;
  /** The base layer under this workspace, held while the copy exists. */
  base?: BaseHandle;
  /** Resolves when the job using the copy has released it (its sandbox is gone). */
  inUse?: Promise<void>;
  endUse?: () => void;
  /** A sandbox prepared on this copy for its next run, and its creation while in progress. */
  parked?: Parked;
  parking?: Promise<void>;
  expiry?: NodeJS.Timeout;
  retry?: NodeJS.Timeout;
  retryDelayMs: number;
  queue: Promise<unknown>;
  gone: boolean;
}

/** What the manager needs of a sandbox parked on a copy (kept abstract: the agent owns sandboxes). */
export interface Parked {
  readonly network: 'internet' | 'none';
  readonly alive: boolean;
  destroy(): Promise<void>;
}

export interface WorkspaceSettings {
  dir: string;
  cacheDir: string;
  localTtlMs: number;
  warmMs: number;
  /** The sandboxes' user namespace: disks' roots belong to its root (and older disks are shifted into it). */
  userns: { hostId: number; size: number };
  /** Sandboxes' user namespace for manifests: owners are stored as seen inside and restored shifted (undefined: host ids). */
  ids?: IdMap;
  /** The grace period of the object store's gc, which syncs must respect (see objects/src/sync/gc-policy.ts). */
  gcGraceMs: number;
}

class CopyGone extends Error {}

const RETRY_MIN_MS = 1000;
const RETRY_MAX_MS = 30_000;

export const workspaceId = (k: WorkspaceKey): string => `${k.owner}/${k.name}`;

export class WorkspaceManager {
  private readonly copies = new Map<string, HostCopy>();
  private closed = false;

  constructor(
    private readonly settings: WorkspaceSettings,
    private readonly store: ObjectStore,
    /** Every disk made or grown here is admitted against the host's free space first (507 otherwise). */
    private readonly disks: DiskLedger,
    /** Runs syncs and restores in a child process: no per-file memory, no blocked event loop here. */
    private readonly syncs: SyncService,
    private readonly send: (message: AgentToServer) => void,
    private readonly logger: Logger,
  ) {}

  /**
   * The manifest of the last sync or restore of a copy (with this host's inode/ctime fingerprints), kept beside its
   * disk: files unchanged since are not hashed again, also after an agent restart.
   */
  private previousFile(copy: HostCopy): string {
    return path.join(copy.disk.dir, 'previous.manifest');
  }

  // ── lifecycle ──────────────────────────────────────────────────────────────────────────────────

  /**
   * Takes over the copies a previous agent process left: local ones within their time to live stay; persistent
   * ones with unsynced changes are synced (retried until the store takes them); clean persistent ones are removed,
   * since the store holds them.
   */
  async start(): Promise<void> {
    await mkdir(this.settings.dir, { recursive: true });
    for (const owner of readdirSync(this.settings.dir)) {
      for (const name of readdirSync(path.join(this.settings.dir, owner))) {
        const dir = path.join(this.settings.dir, owner, name);
        let state: SavedState;
        try {
          state = JSON.parse(readFileSync(path.join(dir, 'state.json'), 'utf8')) as SavedState;
        } catch {
          this.logger.warn({ dir }, 'removing a workspace copy without a readable state');
          await this.removeDir(new WorkspaceDisk(dir, this.logger, this.settings.userns));
          continue;
        }
        const copy = this.track({ owner: state.owner, name: state.name }, state);
        if (copy.disk.exists()) this.disks.adopt(copy.disk.image, copy.disk.sizeGb() * GiB);
        const keep = state.persistent ? state.dirty : Date.now() - state.lastUsed < this.settings.localTtlMs;
        if (!keep) {
          await this.removeCopy(copy, 'left by a previous agent');
          continue;
        }
        this.logger.info(
          { workspace: workspaceId(copy.key), dirty: state.dirty },
          'workspace copy taken over from a previous agent',
        );
        if (state.persistent) {
          await copy.disk.mount();
          this.scheduleRetry(copy, 0);
        } else {
          this.report(copy);
        }
        this.scheduleExpiry(copy);
      }
    }
  }

  /** Stops timers and parked sandboxes; gives dirty copies one last sync; unmounts every disk (files stay). */
  async close(): Promise<void> {
    this.closed = true;
    await Promise.all(
      [...this.copies.values()].map((copy) =>
        this.enqueue(copy, async () => {
          clearTimeout(copy.expiry);
          clearTimeout(copy.retry);
          await this.unpark(copy);
          if (copy.state.persistent && copy.state.dirty && copy.disk.mounted()) {
            await this.sync(copy).catch((err) =>
              this.logger.warn({ err, workspace: workspaceId(copy.key) }, 'final sync failed; retried at next start'),
            );
          }
          if (copy.state.persistent && !copy.state.dirty) await this.removeDir(copy.disk);
          else
            await copy.disk.unmount().catch((err) => this.logger.warn({ err }, 'could not unmount a workspace disk'));
          copy.base?.release();
        }),
      ),
    );
  }

  // ── runs ───────────────────────────────────────────────────────────────────────────────────────

  /**
   * Makes the copy ready for a run: mounted, at least `diskGb` big, holding the current version (restored if this
   * host lacks it). Waits for the previous run on it to release it.
   */
  async open(ws: SandboxWorkspace, diskGb: number, base: () => Promise<BaseHandle | undefined>): Promise<HostCopy> {
    // A copy that expires while this run waits for it is gone: start again on a new one.
    for (let attempt = 0; ; attempt++) {
      try {
        return await this.openOnce(ws, diskGb, base);
      } catch (err) {
        if (!(err instanceof CopyGone) || attempt >= 3) throw err;
      }
    }
  }

  private async openOnce(
    ws: SandboxWorkspace,
    diskGb: number,
    base: () => Promise<BaseHandle | undefined>,
  ): Promise<HostCopy> {
    const copy = this.copies.get(workspaceId(ws)) ?? this.track(ws, this.freshState(ws));
    while (copy.inUse) await copy.inUse;
    let endUse!: () => void;
    copy.inUse = new Promise<void>((r) => (endUse = r));
    copy.endUse = () => {
      copy.inUse = undefined;
      endUse();
    };
    try {
      await this.enqueue(copy, async () => {
        clearTimeout(copy.expiry);
        if (copy.gone) throw new CopyGone();
        if (!copy.base) copy.base = await base();
        if (!copy.disk.exists()) {
          this.disks.reserve(copy.disk.image, diskGb * GiB, `a ${diskGb} GB disk for workspace ${ws.name}`);
          try {
            await copy.disk.create(diskGb);
          } catch (err) {
            this.disks.release(copy.disk.image);
            throw err;
          }
          await copy.disk.mount();
          const fs = statfsSync(copy.disk.mountPoint);
          copy.state.emptyUsed = (fs.blocks - fs.bfree) * fs.bsize;
          copy.state.emptyInodes = fs.files - fs.ffree;
        } else {
          await copy.disk.mount();
          if (copy.disk.sizeGb() < diskGb) {
            await this.unpark(copy);
            await this.grow(copy, diskGb);
          }
        }
        copy.state.persistent ||= ws.persistent;
        if (copy.state.persistent) {
          let current: number | null;
          try {
            current = (await readHead(this.store, copy.key))?.head.version ?? null;
          } catch (err) {
            // The store is down: a copy this host already holds is still the latest it knows of; run on it.
            if (copy.state.version === null && !copy.state.dirty) {
              throw new MagsError(
                503,
                'unavailable',
                `the object store is unreachable and this host has no copy of workspace ${ws.name}: ${(err as Error).message}`,
              );
            }
            this.logger.warn(
              { err: (err as Error).message, workspace: workspaceId(copy.key) },
              'object store unreachable; running on the host copy',
            );
            current = copy.state.version;
          }
          if (current !== copy.state.version) {
            if (copy.state.dirty) {
              this.logger.warn(
                { workspace: workspaceId(copy.key), local: copy.state.version, current },
                'discarding unsynced changes: the workspace moved to another version elsewhere',
              );
            }
            await this.unpark(copy);
            await this.replaceContent(copy, current);
          }
          copy.state.dirty = true;
        }
        copy.state.lastUsed = Date.now();
        await this.save(copy);
      });
    } catch (err) {
      copy.endUse();
      this.scheduleExpiry(copy);
      throw err;
    }
    return copy;
  }

  /** The sandbox parked on the copy if it suits the run; any other parked sandbox is destroyed first. */
  async takeParked<T extends Parked>(copy: HostCopy, network: 'internet' | 'none'): Promise<T | undefined> {
    await copy.parking;
    const parked = copy.parked;
    copy.parked = undefined;
    if (parked?.alive && parked.network === network) return parked as T;
    await parked?.destroy();
    return undefined;
  }

  /**
   * Prepares a sandbox on the copy for its next run, while the run that just ended is synced and reported: the
   * previous sandbox's root must be unmounted already. Nothing else mounts the copy until this settles.
   */
  startParking(copy: HostCopy, create: () => Promise<Parked>): void {
    if (this.closed || copy.gone || copy.parked || copy.parking || this.settings.warmMs === 0) return;
    copy.parking = create()
      .then((sandbox) => {
        if (this.closed || copy.gone) return sandbox.destroy();
        copy.parked = sandbox;
      })
      .catch((err) =>
        this.logger.warn({ err, workspace: workspaceId(copy.key) }, 'could not park a sandbox on the workspace'),
      )
      .finally(() => {
        copy.parking = undefined;
      });
  }

  /**
   * After a run's processes are gone: a persistent copy is synced. Returns a sentence for the job's output when
   * the sync failed (it is then retried in the background until the store takes it).
   */
  async afterRun(copy: HostCopy): Promise<string | undefined> {
    if (!copy.state.persistent) {
      this.report(copy);
      return undefined;
    }
    return this.enqueue(copy, async () => {
      try {
        await this.sync(copy, false);
        return undefined;
      } catch (err) {
        this.logger.warn(
          { err, detail: (err as { detail?: string }).detail, workspace: workspaceId(copy.key) },
          'workspace sync after a run failed',
        );
        const { status, message } = forUser(err); // no host paths in a job's output
        if (status === 409) {
          this.abandon(copy);
          return `workspace ${copy.key.name} was not synced: ${message}`;
        }
        this.scheduleRetry(copy);
        if (status >= 400 && status < 500) {
          return `workspace ${copy.key.name} could not be synced: ${message}; its changes are kept on this host and the sync is retried`;
        }
        return `workspace ${copy.key.name} could not be synced yet (${message}); its changes are kept on this host and the sync is retried until it succeeds`;
      }
    });
  }

  /** A sync while a run is in progress (periodic); failures are logged and left to the sync after the run. */
  syncDuringRun(copy: HostCopy): void {
    void this.enqueue(copy, () => this.sync(copy, true)).catch((err) =>
      this.logger.warn({ err, workspace: workspaceId(copy.key) }, 'periodic workspace sync failed'),
    );
  }

  /** The run's sandbox no longer holds the copy: the next run may open it. It expires after its period unused. */
  release(copy: HostCopy): void {
    copy.state.lastUsed = Date.now();
    copy.endUse?.();
    if (copy.gone) return;
    void this.enqueue(copy, () => this.save(copy)).catch((err) =>
      this.logger.warn({ err }, 'could not save workspace state'),
    );
    this.scheduleExpiry(copy);
  }

  // ── orders from the server ─────────────────────────────────────────────────────────────────────

  async order(type: 'sync' | 'resize' | 'drop', key: WorkspaceKey, diskGb?: number): Promise<WorkspaceOrderResult> {
    const copy = this.copies.get(workspaceId(key));
    if (!copy || copy.gone) return { held: false };
    if (type === 'sync') {
      if (!copy.state.persistent) return { held: true, version: null, changed: false };
      return this.enqueue(copy, async () => {
        if (!copy.state.dirty && copy.state.version !== null)
          return { held: true, version: copy.state.version, changed: false };
        const r = await this.sync(copy, !!copy.inUse);
        return { held: true, version: r.version, changed: !r.unchanged };
      });
    }
    if (type === 'resize') {
      if (copy.inUse)
        throw new MagsError(
          409,
          'workspace_busy',
          `workspace ${key.name} is in use on this host; resize it after the run`,
        );
      return this.enqueue(copy, async () => {
        await this.unpark(copy);
        if (copy.disk.exists()) await this.grow(copy, diskGb!);
        this.report(copy);
        return { held: true };
      });
    }
    // drop
    if (copy.inUse) throw new MagsError(409, 'workspace_busy', `workspace ${key.name} is in use on this host`);
    await this.enqueue(copy, () => this.removeCopy(copy, 'dropped by the server'));
    return { held: true };
  }

  // ── internals ──────────────────────────────────────────────────────────────────────────────────

  private freshState(ws: SandboxWorkspace): SavedState {
    return {
      owner: ws.owner,
      name: ws.name,
      persistent: ws.persistent,
      version: null,
      dirty: false,
      lastUsed: Date.now(),
      emptyUsed: 0,
      emptyInodes: 0,
    };
  }

  private track(key: WorkspaceKey, state: SavedState): HostCopy {
    const copy: HostCopy = {
      key: { owner: key.owner, name: key.name },
      disk: new WorkspaceDisk(path.join(this.settings.dir, key.owner, key.name), this.logger, this.settings.userns),
      state,
      retryDelayMs: RETRY_MIN_MS,
      queue: Promise.resolve(),
      gone: false,
    };
    this.copies.set(workspaceId(key), copy);
    return copy;
  }

  private enqueue<T>(copy: HostCopy, work: () => Promise<T>): Promise<T> {
    const result = copy.queue.then(work);
    copy.queue = result.catch(() => undefined);
    return result;
  }

  /** Empties the writable layer and restores `version` into it (nothing for null). */
  private async replaceContent(copy: HostCopy, version: number | null): Promise<void> {
    const { upper, work } = copy.disk;
    // rm(1), not fs.rm: it removes trees deeper than PATH_MAX (a sandbox can make them).
    await run('rm', ['-rf', '--', upper, work, this.previousFile(copy)], { timeoutMs: 600_000 });
    await mkdir(work, { recursive: true });
    if (version !== null) {
      const r = await this.syncs.restore(
        { ...copy.key, version },
        upper,
        { cacheDir: this.settings.cacheDir, ids: this.settings.ids },
        this.previousFile(copy),
      );
      this.logger.info({ workspace: workspaceId(copy.key), version, ...r.stats }, 'workspace restored');
    } else {
      await mkdir(upper, { recursive: true });
    }
    await copy.disk.ownRoots();
    copy.state.version = version;
    copy.state.dirty = false;
  }

  /** Snapshots the copy into the store (only from the version it holds: never over a newer one). Call on the queue. */
  private async sync(copy: HostCopy, stillInUse = false): Promise<{ version: number; unchanged: boolean }> {
    const previousFile = this.previousFile(copy);
    const r = await this.syncs.snapshot(
      copy.disk.upper,
      {
        owner: copy.key.owner,
        name: copy.key.name,
        cacheDir: this.settings.cacheDir,
        expectVersion: copy.state.version,
        ids: this.settings.ids,
        gcGraceMs: this.settings.gcGraceMs,
      },
      { previousFile, manifestOut: previousFile },
    );
    copy.state.version = r.version;
    copy.state.dirty = stillInUse;
    copy.retryDelayMs = RETRY_MIN_MS;
    clearTimeout(copy.retry);
    await this.save(copy);
    this.logger.info(
      { workspace: workspaceId(copy.key), version: r.version, unchanged: r.unchanged, ...r.stats },
      'workspace synced',
    );
    this.report(copy, { version: r.version, files: r.files, bytes: r.bytes, versions: r.versions });
    return r;
  }

  /**
   * The head moved elsewhere (a rollback, a run on another host) since this copy was made: its unsynced changes
   * can't be committed without overwriting that. They are given up; the next run restores the current version.
   */
  private abandon(copy: HostCopy): void {
    this.logger.warn(
      { workspace: workspaceId(copy.key), version: copy.state.version },
      'workspace changed elsewhere; unsynced changes on this host are abandoned',
    );
    copy.state.dirty = false;
    copy.state.version = -1; // matches no head: the next open restores
    void this.save(copy).catch(() => {});
  }

  private scheduleRetry(copy: HostCopy, delay = copy.retryDelayMs): void {
    clearTimeout(copy.retry);
    if (this.closed || copy.gone) return;
    copy.retry = setTimeout(() => {
      void this.enqueue(copy, async () => {
        if (copy.gone || !copy.state.dirty) return;
        if (copy.inUse) {
          // The run that failed to sync may still hold the copy (its sandbox being torn down), or a new run took it
          // (its own sync clears this timer): look again later rather than drop the retry.
          this.scheduleRetry(copy);
          return;
        }
        try {
          await copy.disk.mount();
          await this.sync(copy);
        } catch (err) {
          if (err instanceof MagsError && err.status === 409) {
            this.abandon(copy);
            return;
          }
          copy.retryDelayMs = Math.min(RETRY_MAX_MS, copy.retryDelayMs * 2);
          this.logger.warn(
            { err: (err as Error).message, workspace: workspaceId(copy.key), nextMs: copy.retryDelayMs },
            'workspace sync failed; will retry',
          );
          this.scheduleRetry(copy);
        }
      });
    }, delay);
    copy.retry.unref();
  }

  private scheduleExpiry(copy: HostCopy): void {
    clearTimeout(copy.expiry);
    if (this.closed || copy.gone) return;
    const ttl = copy.state.persistent ? this.settings.warmMs : this.settings.localTtlMs;
    const due = Math.max(0, copy.state.lastUsed + ttl - Date.now());
    copy.expiry = setTimeout(() => {
      void this.enqueue(copy, async () => {
        if (copy.gone || copy.inUse) return;
        if (copy.state.persistent && copy.state.dirty) {
          // Not in the store yet: keep it (unparked) until a retry succeeds.
          await this.unpark(copy);
          this.scheduleExpiry(copy);
          return;
        }
        await this.removeCopy(copy, copy.state.persistent ? 'warm period over' : 'unused for its time to live');
      }).catch((err) =>
        this.logger.warn({ err, workspace: workspaceId(copy.key) }, 'could not expire a workspace copy'),
      );
    }, due);
    copy.expiry.unref();
  }

  private async unpark(copy: HostCopy): Promise<void> {
    await copy.parking;
    const parked = copy.parked;
    copy.parked = undefined;
    await parked?.destroy();
  }

  /** Deletes the host copy (call on the copy's queue). */
  private async removeCopy(copy: HostCopy, why: string): Promise<void> {
    copy.gone = true;
    clearTimeout(copy.expiry);
    clearTimeout(copy.retry);
    await this.unpark(copy);
    await this.removeDir(copy.disk);
    copy.base?.release();
    copy.base = undefined;
    this.copies.delete(workspaceId(copy.key));
    this.logger.info({ workspace: workspaceId(copy.key), why }, 'workspace copy removed from this host');
    this.send({ type: 'workspace', report: { ...copy.key, state: 'gone', usedBytes: 0, files: 0, ts: Date.now() } });
  }

  private async removeDir(disk: WorkspaceDisk): Promise<void> {
    await disk.unmount();
    if (disk.mounted()) throw new Error(`workspace disk ${disk.mountPoint} is still mounted`);
    await rm(disk.dir, { recursive: true, force: true });
    this.disks.release(disk.image);
  }

  /** Grows the copy's disk if the growth fits on the host (507 otherwise). Call on the copy's queue. */
  private async grow(copy: HostCopy, diskGb: number): Promise<void> {
    const before = copy.disk.sizeGb();
    if (diskGb <= before) return copy.disk.grow(diskGb);
    this.disks.reserve(
      copy.disk.image,
      diskGb * GiB,
      `growing workspace ${copy.key.name}'s disk by ${diskGb - before} GB`,
    );
    try {
      await copy.disk.grow(diskGb);
    } finally {
      // What the image is now, grown or not.
      this.disks.adopt(copy.disk.image, copy.disk.sizeGb() * GiB);
    }
  }

  private async save(copy: HostCopy): Promise<void> {
    const file = path.join(copy.disk.dir, 'state.json');
    if (!existsSync(copy.disk.dir)) return;
    await writeFile(`${file}.tmp`, JSON.stringify(copy.state));
    await rename(`${file}.tmp`, file);
  }

  private report(copy: HostCopy, synced?: { version: number; files: number; bytes: number; versions: number }): void {
    let usedBytes = synced?.bytes ?? 0;
    let files = synced?.files ?? 0;
    if (!synced && copy.disk.mounted()) {
      const fs = statfsSync(copy.disk.mountPoint);
      usedBytes = Math.max(0, (fs.blocks - fs.bfree) * fs.bsize - copy.state.emptyUsed);
      files = Math.max(0, fs.files - fs.ffree - copy.state.emptyInodes);
    }
    const report: WorkspaceReport = {
      ...copy.key,
      state: 'present',
      usedBytes,
      files,
      ts: Date.now(),
      ...(copy.state.persistent && copy.state.version !== null
        ? { version: copy.state.version, dirty: copy.state.dirty }
        : {}),
    };
    this.send({ type: 'workspace', report: synced ? { ...report, versions: synced.versions } : report });
  }
}
