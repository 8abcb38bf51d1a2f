// The sync service: snapshots and restores run in a child process (service-worker.ts) that holds the manifest, the
// hashing and the uploads, so the caller (the agent, inside `mags server`) keeps no per-file memory and its event
// loop stays free however many files a workspace has. The child is started on first use and exits after a minute
// idle (giving its memory back). Manifests are exchanged as files (encodeManifest format).
import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { MagsError } from '@mags/api';
import type { RestoreOptions, RestoreStats } from './restore.js';
import type { ServiceConfig, ServiceRequest } from './service-worker.js';
import type { SnapshotOptions, SnapshotStats } from './snapshot.js';

const here = dirname(fileURLToPath(import.meta.url));
const BUILT = [join(here, 'service-worker.js'), join(here, '../../dist/sync/service-worker.js')].find((p) =>
  existsSync(p),
);
const WORKER = BUILT ?? join(here, 'service-worker.ts');
const NODE_ARGS = BUILT ? [] : ['--import', 'tsx'];

export interface ServiceSnapshotResult {
  version: number;
  unchanged: boolean;
  stats: SnapshotStats;
  versions: number;
  files: number;
  bytes: number;
}

export interface ServiceRestoreResult {
  version: number;
  stats: RestoreStats;
  files: number;
  bytes: number;
}

export interface SyncServiceOptions extends ServiceConfig {
  /** The child exits after this long without requests. Default 60 s. */
  idleMs?: number;
  /** Where the child's own error output is logged. */
  logger?: { warn(obj: object, msg: string): void };
}

type DistributiveOmit<T, K extends PropertyKey> = T extends unknown ? Omit<T, K> : never;
type Pending = { resolve: (v: unknown) => void; reject: (e: unknown) => void };

export class SyncService {
  private child?: ChildProcess;
  private readonly pending = new Map<number, Pending>();
  private nextId = 1;
  private idle?: NodeJS.Timeout;
  private closed = false;

  constructor(private readonly opts: SyncServiceOptions) {}

  /** snapshot() of upperDir in the service; `previousFile` is read, the new manifest written to `manifestOut`. */
  snapshot(
    upperDir: string,
    options: Omit<SnapshotOptions, 'previous'>,
    files: { previousFile?: string; manifestOut: string },
  ): Promise<ServiceSnapshotResult> {
    return this.call({ op: 'snapshot', upperDir, options, ...files }) as Promise<ServiceSnapshotResult>;
  }

  /** restore() in the service; the restored manifest (this host's fingerprints) is written to `manifestOut`. */
  restore(
    ref: { owner: string; name: string; version?: number },
    targetDir: string,
    options: RestoreOptions,
    manifestOut?: string,
  ): Promise<ServiceRestoreResult> {
    return this.call({ op: 'restore', ref, targetDir, options, manifestOut }) as Promise<ServiceRestoreResult>;
  }

  /** restoreManifest() of the manifest stored at `manifestKey` (a version or a fork's base copy), in the service. */
  restoreKey(
    manifestKey: string,
    targetDir: string,
    options: RestoreOptions,
    manifestOut?: string,
  ): Promise<ServiceRestoreResult> {
    return this.call({
      op: 'restoreKey',
      manifestKey,
      targetDir,
      options,
      manifestOut,
    }) as Promise<ServiceRestoreResult>;
  }

  close(): void {
    this.closed = true;
    clearTimeout(this.idle);
    this.child?.stdin?.end();
    this.child = undefined;
  }

  private call(request: DistributiveOmit<ServiceRequest, 'id'>): Promise<unknown> {
    if (this.closed) return Promise.reject(new MagsError(503, 'unavailable', 'the sync service is closed'));
    const child = this.child ?? this.start();
    const id = this.nextId++;
    clearTimeout(this.idle);
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      child.stdin!.write(`${JSON.stringify({ ...request, id })}\n`);
    });
  }

  private start(): ChildProcess {
    const child = spawn(process.execPath, [...NODE_ARGS, WORKER], { stdio: ['pipe', 'pipe', 'pipe'], cwd: here });
    this.child = child;
    // The store's credentials go through the pipe, never the command line or the environment.
    child.stdin!.write(
      `${JSON.stringify({ objects: this.opts.objects, credentials: this.opts.credentials } satisfies ServiceConfig)}\n`,
    );
    child.stdin!.on('error', () => {});
    let stderr = '';
    child.stderr!.on('data', (b: Buffer) => {
      stderr = (stderr + b.toString()).slice(-4000);
    });
    createInterface({ input: child.stdout!, crlfDelay: Infinity }).on('line', (line) => {
      let m: {
        id: number;
        ok: boolean;
        result?: unknown;
        error?: { status: number; code: string; message: string; detail?: string };
      };
      try {
        m = JSON.parse(line);
      } catch {
        return;
      }
      const p = this.pending.get(m.id);
      if (!p) return;
      this.pending.delete(m.id);
      if (m.ok) p.resolve(m.result);
      else {
        const err = new MagsError(m.error!.status, m.error!.code, m.error!.message);
        if (m.error!.detail) (err as { detail?: string }).detail = m.error!.detail;
        p.reject(err);
      }
      this.armIdle(child);
    });
    child.once('exit', (code, signal) => {
      if (this.child === child) this.child = undefined;
      if (this.pending.size > 0) {
        this.opts.logger?.warn({ code, signal, stderr }, 'the sync service exited with work in progress');
        const err = new MagsError(
          500,
          'internal',
          'the sync process ended unexpectedly; nothing was changed, sync again',
        );
        for (const p of this.pending.values()) p.reject(err);
        this.pending.clear();
      }
    });
    child.once('error', (e) => this.opts.logger?.warn({ err: e }, 'the sync service could not start'));
    return child;
  }

  private armIdle(child: ChildProcess): void {
    clearTimeout(this.idle);
    if (this.pending.size > 0) return;
    this.idle = setTimeout(() => {
      if (this.child === child && this.pending.size === 0) {
        this.child = undefined;
        child.stdin?.end();
      }
    }, this.opts.idleMs ?? 60_000);
    this.idle.unref();
  }
}
