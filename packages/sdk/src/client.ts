// The Mags class: every job, workspace and file operation of the REST API, with camelCase options and results.
import { stat } from 'node:fs/promises';
import { basename } from 'node:path';
import type {
  ExecRequest,
  JobAccepted,
  JobLogs,
  LogEntry,
  AccessResult as WireAccess,
  CronJob as WireCronJob,
  CronList as WireCronList,
  DeviceLoginResult as WireDeviceResult,
  DeviceLoginStarted as WireDeviceStarted,
  JobList as WireJobList,
  JobStatus as WireJobStatus,
  Me as WireMe,
  PoolStatus as WirePoolStatus,
  ServerStatus as WireServerStatus,
  SshKeyInfo as WireSshKey,
  SshKeyList as WireSshKeyList,
  StopResult as WireStopResult,
  TokenCreated as WireTokenCreated,
  TokenList as WireTokenList,
  UrlAccessResult as WireUrlAccess,
  UrlAlias as WireUrlAlias,
  UrlAliasList as WireUrlAliasList,
  UsageReport as WireUsageReport,
  UserCreated as WireUserCreated,
  UserList as WireUserList,
  UserRemoved as WireUserRemoved,
} from '@mags/api';
import {
  checkUploadName,
  type FileInfo as WireFileInfo,
  type FileList as WireFileList,
  type GcReport as WireGcReport,
  type SyncResult as WireSyncResult,
  type WorkspaceInfo as WireWorkspaceInfo,
  type WorkspaceList as WireWorkspaceList,
  type WorkspaceRestored as WireWorkspaceRestored,
  type WorkspaceVersions as WireWorkspaceVersions,
  type WorkspaceCreate,
} from '@mags/api';
import {
  type AddedUser,
  type ApiToken,
  type CreatedToken,
  type CreateTokenOptions,
  type DeviceLogin,
  type DeviceLoginPoll,
  fromWireDeviceResult,
  fromWireDeviceStarted,
  fromWireMe,
  fromWireToken,
  fromWireTokenCreated,
  fromWireUser,
  fromWireUserCreated,
  fromWireUserRemoved,
  type RemovedUser,
  type User,
  type WhoAmI,
} from './accounts.js';
import { type Environment, resolveConnection } from './config.js';
import {
  type CronCreateOptions,
  type CronJob,
  type CronUpdateOptions,
  fromWireCron,
  fromWireUsage,
  toWireCronCreate,
  toWireCronUpdate,
  type UsageResult,
} from './cron.js';
import { MagsApiError, MagsTimeoutError } from './errors.js';
import { type ExecOptions, type ExecResult, ExecStream } from './exec.js';
import { LogFollower } from './follow.js';
import { Transport } from './http.js';
import {
  fromWireJob,
  fromWireJobList,
  fromWirePool,
  fromWireServerStatus,
  fromWireStop,
  type Job,
  type JobListResult,
  type NewOptions,
  type PoolStatus,
  type RunAndWaitResult,
  type RunOptions,
  type RunResult,
  type ServerStatus,
  type StopResult,
  scriptEnded,
  toWireSubmit,
  type UpdateJobOptions,
} from './jobs.js';
import { type AccessResult, type AddSshKeyOptions, fromWireAccess, fromWireSshKey, type SshKey } from './ssh.js';
import { fromWireUrlAccess, fromWireUrlAlias, type UrlAccess, type UrlAlias, type UrlOptions } from './urls.js';
import {
  type CreateWorkspaceOptions,
  type DeleteResult,
  type DeleteWorkspaceOptions,
  type FileListResult,
  fromWireFile,
  fromWireFileList,
  fromWireGc,
  fromWireRestored,
  fromWireSync,
  fromWireVersions,
  fromWireWorkspace,
  fromWireWorkspaceList,
  type GcReport,
  type RestoreResult,
  type SyncResult,
  type UploadedFile,
  type UploadOptions,
  type Workspace,
  type WorkspaceListResult,
  type WorkspaceVersionsResult,
} from './workspaces.js';

export interface MagsOptions {
  /** API token; default: MAGS_API_TOKEN, then `api_token` in $MAGS_HOME/config.json (~/.mags/config.json). */
  apiToken?: string;
  /** Server address; default: MAGS_API_URL, then `api_url` in the config file, then http://127.0.0.1:7373. */
  apiUrl?: string;
  /** Longest wait for the answer to one request, in ms (default 30000). Long-polls and streams add their own wait. */
  timeoutMs?: number;
  /** The reference's name for `timeoutMs` (ms); `timeoutMs` wins when both are given. */
  timeout?: number;
  /** The environment to read MAGS_* variables from (default: process.env). */
  env?: Environment;
}

export interface RunAndWaitOptions extends RunOptions {
  /** Longest wait for the job to end, in ms; past it a MagsTimeoutError is thrown (the job keeps running). Default: no limit. */
  timeout?: number;
}

/** Longest long-poll the server accepts (`?wait=`), in seconds. */
const MAX_WAIT_S = 60;
/** Lines per page when reading a job's whole output. */
const LOG_PAGE = 10_000;
/** Extra wait for operations that move a workspace to or from the object store (sync, restore, delete). */
const TRANSFER_HOLD_MS = 30 * 60_000;
/** Extra wait for operations the agent carries out on a workspace disk (create from a base, resize). */
const AGENT_HOLD_MS = 5 * 60_000;

const ws = (name: string) => `/api/v1/mags-workspaces/${encodeURIComponent(name)}`;

/**
 * A client of a Mags server.
 *
 * ```ts
 * import { Mags } from '@mags/sdk';
 * const mags = new Mags(); // MAGS_API_TOKEN / MAGS_API_URL, else ~/.mags/config.json
 * const result = await mags.runAndWait('echo Hello World');
 * console.log(result.status, result.exitCode, result.logs.map((l) => l.message));
 * ```
 * Failures throw a MagsApiError (`status`, `code`, `message` from the server); a server that cannot be reached
 * throws a MagsConnectionError; an exhausted wait throws a MagsTimeoutError. All three are MagsApiErrors.
 */
export class Mags {
  readonly apiUrl: string;
  private readonly http: Transport;

  constructor(options: MagsOptions = {}) {
    const conn = resolveConnection(options, options.env ?? process.env);
    const timeoutMs = options.timeoutMs ?? options.timeout ?? 30_000;
    if (!Number.isFinite(timeoutMs) || timeoutMs <= 0)
      throw new Error('timeoutMs must be a positive number of milliseconds');
    this.apiUrl = conn.apiUrl;
    this.http = new Transport({ apiUrl: conn.apiUrl, apiToken: conn.apiToken, timeoutMs });
  }

  /** Whether a token was configured (without one, every call but health answers `unauthorized`). */
  get hasToken(): boolean {
    return this.http.options.apiToken !== undefined;
  }

  /** Submits a script; returns at once with the job's request id. */
  async run(script: string, options: RunOptions = {}): Promise<RunResult> {
    const a = await this.http.json<JobAccepted>('/api/v1/mags-jobs', {
      method: 'POST',
      body: toWireSubmit(script, options),
    });
    return { requestId: a.request_id, status: a.status, message: a.message };
  }

  /**
   * Submits a script and waits until it ends (server long-poll), then reads its whole output.
   * `timeout` (ms) bounds the wait: past it, a MagsTimeoutError carrying `requestId` is thrown and the job keeps running.
   */
  async runAndWait(script: string, options: RunAndWaitOptions = {}): Promise<RunAndWaitResult> {
    const { timeout, ...runOptions } = options;
    const started = Date.now();
    const { requestId } = await this.run(script, runOptions);
    return this.result(requestId, timeout === undefined ? undefined : Math.max(0, timeout - (Date.now() - started)));
  }

  /** Waits for a submitted job to end and returns what runAndWait returns: status, exit code and all its logs. */
  async result(requestId: string, timeout?: number): Promise<RunAndWaitResult> {
    const job = await this.wait(requestId, timeout);
    const logs = await this.logs(requestId);
    return {
      requestId,
      status: job.status,
      exitCode: job.exitCode,
      logs,
      durationMs: job.scriptDurationMs,
      errorMessage: job.errorMessage,
    };
  }

  /**
   * Waits until a job's script has ended (a terminal status, or `sleeping`) and returns its state.
   * `timeoutMs` bounds the wait (default: none); past it, a MagsTimeoutError is thrown.
   */
  async wait(nameOrId: string, timeoutMs?: number): Promise<Job> {
    const deadline = timeoutMs === undefined ? Infinity : Date.now() + timeoutMs;
    for (;;) {
      const remaining = deadline - Date.now();
      const waitS = Math.max(0, Math.min(MAX_WAIT_S, remaining / 1000));
      const asked = Date.now();
      const job = await this.statusWait(nameOrId, waitS);
      if (scriptEnded(job.status)) return job;
      if (Date.now() >= deadline) {
        throw new MagsTimeoutError(
          `job ${job.requestId} did not end within ${formatMs(timeoutMs ?? 0)} (it is ${job.status}; it keeps running: stop it with stop("${job.requestId}"))`,
          { requestId: job.requestId },
        );
      }
      // A server that answers before the wait is up without an ended job: do not spin.
      if (Date.now() - asked < 200)
        await new Promise((r) => setTimeout(r, Math.min(250, Math.max(0, deadline - Date.now()))));
    }
  }

  /** A job's status, by request id or name. */
  async status(nameOrId: string): Promise<Job> {
    return this.statusWait(nameOrId, 0);
  }

  private async statusWait(nameOrId: string, waitS: number): Promise<Job> {
    const wait = waitS > 0 ? Math.round(waitS * 1000) / 1000 : undefined;
    const s = await this.http.json<WireJobStatus>(`/api/v1/mags-jobs/${encodeURIComponent(nameOrId)}/status`, {
      query: { wait },
      holdMs: wait === undefined ? 0 : wait * 1000,
      requestId: nameOrId,
    });
    return fromWireJob(s);
  }

  /** A job's output lines in order (all of them, or those after `after`, a `seq`). */
  async logs(nameOrId: string, options: { after?: number } = {}): Promise<LogEntry[]> {
    const all: LogEntry[] = [];
    let after = options.after ?? 0;
    for (;;) {
      const page = await this.http.json<JobLogs>(`/api/v1/mags-jobs/${encodeURIComponent(nameOrId)}/logs`, {
        query: { after, limit: LOG_PAGE },
        requestId: nameOrId,
      });
      for (const entry of page.logs) all.push(entry);
      if (page.logs.length < LOG_PAGE) return all;
      after = page.logs[page.logs.length - 1].seq;
    }
  }

  /**
   * Follows a job's output live (Server-Sent Events): an async iterable of log entries that ends when the job ends.
   * After the loop, `follower.status` (or `await follower.done`) is the job's final state.
   *
   * ```ts
   * const follower = mags.stream(requestId);
   * for await (const line of follower) process.stdout.write(`${line.message}\n`);
   * console.log(follower.status?.status, follower.status?.exitCode);
   * ```
   */
  stream(nameOrId: string, options: { after?: number } = {}): LogFollower {
    return new LogFollower(this.http, nameOrId, options.after ?? 0);
  }

  /** Recent jobs, newest first. */
  async list(options: { page?: number; pageSize?: number } = {}): Promise<JobListResult> {
    const l = await this.http.json<WireJobList>('/api/v1/mags-jobs', {
      query: { page: options.page, page_size: options.pageSize },
    });
    return fromWireJobList(l);
  }

  /**
   * Changes a running or sleeping job's settings (by request id, job name or workspace name) and resolves with the
   * job: `noSleep` (an always-on sandbox that sleeps is woken) and `startupCommand` (from the sandbox's next start).
   * ```ts
   * await mags.updateJob('worker', { noSleep: true, startupCommand: 'node worker.js' });
   * ```
   */
  async updateJob(nameOrId: string, options: UpdateJobOptions): Promise<Job> {
    const body: Record<string, unknown> = {};
    if (options.noSleep !== undefined) body.no_sleep = options.noSleep;
    if (options.startupCommand !== undefined) body.startup_command = options.startupCommand;
    const j = await this.http.json<WireJobStatus>(`/api/v1/mags-jobs/${encodeURIComponent(nameOrId)}`, {
      method: 'PATCH',
      body,
      requestId: nameOrId,
      // Making an always-on sandbox that sleeps run again may restore its workspace first.
      holdMs: 70_000,
    });
    return fromWireJob(j);
  }

  /** Stops a running job (by request id or name); resolves once it has stopped. */
  async stop(nameOrId: string): Promise<StopResult> {
    const s = await this.http.json<WireStopResult>(`/api/v1/mags-jobs/${encodeURIComponent(nameOrId)}/stop`, {
      method: 'POST',
      requestId: nameOrId,
      // The server answers once the sandbox has stopped (at most about 10 s).
      holdMs: 15_000,
    });
    return fromWireStop(s);
  }

  /**
   * Deletes a finished job (by request id or name) and its output. A job that has not finished is refused with
   * a MagsApiError of status 409 (stop it first); an unknown job is 404 `not_found`.
   * ```ts
   * await mags.deleteJob(requestId);
   * ```
   */
  async deleteJob(nameOrId: string): Promise<void> {
    await this.http.json<unknown>(`/api/v1/mags-jobs/${encodeURIComponent(nameOrId)}`, {
      method: 'DELETE',
      requestId: nameOrId,
      allowEmpty: true,
    });
  }

  /**
   * The job with this request id, else the newest running (or sleeping) job with this name or on the workspace of
   * this name, else the newest job of that name or on that workspace; null if none (among the 500 newest jobs).
   */
  async findJob(nameOrId: string): Promise<Job | null> {
    const recent: Job[] = [];
    for (let page = 1; page <= 5; page++) {
      const l = await this.list({ page, pageSize: 100 });
      recent.push(...l.jobs);
      if (page * l.pageSize >= l.total) break;
    }
    const byId = recent.find((j) => j.requestId === nameOrId.toLowerCase());
    if (byId) return byId;
    const named = recent.filter((j) => j.name === nameOrId || j.workspaceId === nameOrId);
    const live = named.find((j) => j.status === 'running' || j.status === 'sleeping');
    if (live ?? named[0]) return live ?? named[0];
    try {
      return await this.status(nameOrId);
    } catch (err) {
      if (err instanceof MagsApiError && err.code === 'not_found') return null;
      throw err;
    }
  }

  /**
   * Starts a sandbox that stays up on workspace `name` (created if missing; persistent with `persistent: true`)
   * and resolves once it runs. Run commands in it with `exec(name, …)`; end it with `stop(name)`.
   * ```ts
   * await mags.new('dev', { persistent: true });
   * const { stdout } = await mags.exec('dev', 'node --version');
   * ```
   */
  async new(name: string, options: NewOptions = {}): Promise<Job> {
    const body = toWireSubmit(undefined, { ...options, workspaceId: name });
    body.long_lived = true;
    const a = await this.http.json<JobAccepted>('/api/v1/mags-jobs', { method: 'POST', body });
    const deadline = Date.now() + (options.timeout ?? 5 * 60_000);
    for (;;) {
      const job = await this.status(a.request_id);
      if (job.status === 'running') return job;
      if (scriptEnded(job.status)) {
        throw new MagsApiError(
          0,
          'sandbox_failed',
          `the sandbox on ${name} did not start (${job.status}${job.errorMessage ? `: ${job.errorMessage}` : ''})`,
          { requestId: job.requestId },
        );
      }
      if (Date.now() >= deadline) {
        throw new MagsTimeoutError(`the sandbox on ${name} is not running yet (${job.status}); it may still start`, {
          requestId: job.requestId,
        });
      }
      await new Promise((r) => setTimeout(r, 50));
    }
  }

  /**
   * Runs `command` with /bin/sh -c in a running sandbox (by workspace name, job name or request id) and resolves
   * once it has ended, with its exit code and its stdout and stderr as text. A non-zero exit is not an error.
   * ```ts
   * const { exitCode, stdout } = await mags.exec('dev', 'ls /root', { timeoutS: 60 });
   * ```
   */
  async exec(nameOrId: string, command: string, options: ExecOptions = {}): Promise<ExecResult> {
    const run = this.execStream(nameOrId, command, options);
    const out = { stdout: [] as Buffer[], stderr: [] as Buffer[] };
    for await (const { stream, data } of run) out[stream].push(data);
    const end = await run.done;
    return {
      exitCode: end.exitCode,
      stdout: Buffer.concat(out.stdout).toString('utf8'),
      stderr: Buffer.concat(out.stderr).toString('utf8'),
      reason: end.reason,
    };
  }

  /**
   * Runs `command` in a running sandbox and streams its output as it is written: bytes exactly, stdout and stderr
   * apart. The command starts when iteration starts; leaving the loop early kills it. See ExecStream.
   */
  execStream(nameOrId: string, command: string, options: ExecOptions = {}): ExecStream {
    const body: ExecRequest = { command };
    if (options.timeoutS !== undefined) body.timeout_s = options.timeoutS;
    if (options.env !== undefined) body.env = options.env;
    if (options.cwd !== undefined) body.cwd = options.cwd;
    return new ExecStream(this.http, `/api/v1/mags-jobs/${encodeURIComponent(nameOrId)}/exec`, body, options, nameOrId);
  }

  /** Warm sandboxes over all the server's agents. */
  async poolStatus(): Promise<PoolStatus> {
    return fromWirePool(await this.http.json<WirePoolStatus>('/api/v1/mags-jobs/pool-status'));
  }

  /** The server, its agents (with their sandbox runtime and versions) and the calling user. */
  async serverStatus(): Promise<ServerStatus> {
    return fromWireServerStatus(await this.http.json<WireServerStatus>('/api/v1/status'));
  }

  // ── Workspaces ────────────────────────────────────────────────────────────────────────────────────────────

  /** The caller's workspaces (local and persistent). */
  async listWorkspaces(): Promise<WorkspaceListResult> {
    return fromWireWorkspaceList(await this.http.json<WireWorkspaceList>('/api/v1/mags-workspaces'));
  }

  /** One workspace by name; a MagsApiError with code `not_found` if the caller has none of that name. */
  async getWorkspace(name: string): Promise<Workspace> {
    return fromWireWorkspace(await this.http.json<WireWorkspaceInfo>(ws(name)));
  }

  /**
   * Creates an empty workspace (or a fork of the persistent workspace `base`, at its current version).
   * ```ts
   * await mags.createWorkspace('fork-1', { persistent: true, base: 'golden', diskGb: 5 });
   * ```
   */
  async createWorkspace(name: string, options: CreateWorkspaceOptions = {}): Promise<Workspace> {
    const body: WorkspaceCreate = { name };
    if (options.persistent !== undefined) body.persistent = options.persistent;
    if (options.base !== undefined) body.base = options.base;
    if (options.diskGb !== undefined) body.disk_gb = options.diskGb;
    return fromWireWorkspace(
      await this.http.json<WireWorkspaceInfo>('/api/v1/mags-workspaces', {
        method: 'POST',
        body,
        holdMs: AGENT_HOLD_MS,
      }),
    );
  }

  /**
   * Deletes a workspace with all its versions and cloud data. While an unfinished job uses it, the server refuses
   * (409, code `workspace_busy` or `conflict`) unless `force` is set.
   */
  async deleteWorkspace(name: string, options: DeleteWorkspaceOptions = {}): Promise<DeleteResult> {
    const r = await this.http.json<DeleteResult>(ws(name), {
      method: 'DELETE',
      query: { force: options.force ? true : undefined },
      holdMs: TRANSFER_HOLD_MS,
    });
    return { success: r.success, name: r.name };
  }

  /** The synced versions of a persistent workspace, oldest first; `current` marks the one new sandboxes start from. */
  async workspaceVersions(name: string): Promise<WorkspaceVersionsResult> {
    return fromWireVersions(await this.http.json<WireWorkspaceVersions>(`${ws(name)}/versions`));
  }

  /** Rolls a persistent workspace back to `version`; the rollback becomes a new version (nothing is lost). */
  async restoreWorkspace(name: string, version: number): Promise<RestoreResult> {
    const r = await this.http.json<WireWorkspaceRestored>(`${ws(name)}/restore`, {
      method: 'POST',
      body: { version },
      holdMs: TRANSFER_HOLD_MS,
    });
    return fromWireRestored(r);
  }

  /** Syncs the workspace of a job (by request id or name) to the object store now; resolves once it is stored. */
  async sync(requestId: string): Promise<SyncResult> {
    const r = await this.http.json<WireSyncResult>(`/api/v1/mags-jobs/${encodeURIComponent(requestId)}/sync`, {
      method: 'POST',
      requestId,
      holdMs: TRANSFER_HOLD_MS,
    });
    return fromWireSync(r);
  }

  /** Syncs a workspace (by name) to the object store now; resolves once it is stored. */
  async syncWorkspace(name: string): Promise<SyncResult> {
    return fromWireSync(
      await this.http.json<WireSyncResult>(`${ws(name)}/sync`, { method: 'POST', holdMs: TRANSFER_HOLD_MS }),
    );
  }

  /** Sets the disk size of a workspace in GB; a size below what its files take is refused. */
  async resize(workspace: string, diskGb: number): Promise<Workspace> {
    const r = await this.http.json<WireWorkspaceInfo>(`${ws(workspace)}/resize`, {
      method: 'POST',
      body: { disk_gb: diskGb },
      holdMs: AGENT_HOLD_MS,
    });
    return fromWireWorkspace(r);
  }

  /**
   * Garbage-collects the server's object store now (the server's owner only, else 403): deleted workspaces' versions,
   * and content no kept version or fork references once older than the grace period. Resolves to what was freed.
   */
  async gc(): Promise<GcReport> {
    return fromWireGc(
      await this.http.json<WireGcReport>('/api/v1/admin/gc', { method: 'POST', holdMs: TRANSFER_HOLD_MS }),
    );
  }

  // ── Files ─────────────────────────────────────────────────────────────────────────────────────────────────

  /**
   * Uploads a local file, streamed from disk; returns its file id, to pass in `fileIds`. The file appears as
   * /uploads/<name> (default: its basename) before the script starts.
   * ```ts
   * const fileId = await mags.uploadFile('data.csv', { onProgress: ({ sent, total }) => console.log(sent, total) });
   * await mags.runAndWait('wc -l /uploads/data.csv', { fileIds: [fileId] });
   * ```
   */
  async uploadFile(path: string, options: UploadOptions = {}): Promise<string> {
    return (await this.upload(path, options)).fileId;
  }

  /** Uploads local files one after the other; returns their file ids in the same order. */
  async uploadFiles(paths: string[], options: Pick<UploadOptions, 'signal'> = {}): Promise<string[]> {
    const ids: string[] = [];
    for (const p of paths) ids.push(await this.uploadFile(p, options));
    return ids;
  }

  /** What `uploadFile` does, answering the whole record: id, name, size and the sha256 the server computed. */
  async upload(path: string, options: UploadOptions = {}): Promise<UploadedFile> {
    const name = options.name ?? basename(path);
    const bad = checkUploadName(name);
    if (bad) throw new MagsApiError(0, 'invalid_request', `cannot upload ${path}: ${bad}`);
    let size: number;
    try {
      const st = await stat(path);
      if (!st.isFile()) throw new MagsApiError(0, 'invalid_request', `cannot upload ${path}: it is not a regular file`);
      size = st.size;
    } catch (err) {
      if (err instanceof MagsApiError) throw err;
      const code = (err as NodeJS.ErrnoException).code;
      const why = code === 'ENOENT' ? 'no such file' : code === 'EACCES' ? 'permission denied' : (err as Error).message;
      throw new MagsApiError(0, 'invalid_request', `cannot upload ${path}: ${why}`, { cause: err });
    }
    const onProgress = options.onProgress;
    const f = await this.http.upload<WireFileInfo>('/api/v1/mags-files', {
      query: { name },
      file: path,
      size,
      signal: options.signal,
      onProgress: onProgress && ((sent, total) => onProgress({ sent, total })),
    });
    return fromWireFile(f);
  }

  /** The caller's uploaded files. */
  async listFiles(): Promise<FileListResult> {
    return fromWireFileList(await this.http.json<WireFileList>('/api/v1/mags-files'));
  }

  /** Deletes an uploaded file. */
  async deleteFile(fileId: string): Promise<void> {
    await this.http.json<unknown>(`/api/v1/mags-files/${encodeURIComponent(fileId)}`, {
      method: 'DELETE',
      allowEmpty: true,
    });
  }

  /**
   * Opens access to a port of a sandbox (by request id or name). Port 22 gives SSH: a fresh key that opens this
   * sandbox alone, and where the gateway listens. Any other port gives the sandbox's URL through the router.
   * ```ts
   * const ssh = await mags.enableAccess(job.requestId, 22);
   * writeFileSync('key', ssh.sshPrivateKey, { mode: 0o600 });
   * // ssh -i key -p ${ssh.sshPort} ${ssh.sshUser}@${ssh.sshHost}
   * const { url } = await mags.enableAccess(job.requestId, 3000);
   * ```
   */
  async enableAccess(nameOrId: string, port: 22): Promise<AccessResult>;
  async enableAccess(nameOrId: string, port: number, options?: UrlOptions): Promise<AccessResult | UrlAccess>;
  async enableAccess(nameOrId: string, port: number, options: UrlOptions = {}): Promise<AccessResult | UrlAccess> {
    if (port !== 22) return this.url(nameOrId, port, options);
    const a = await this.http.json<WireAccess>(`/api/v1/mags-jobs/${encodeURIComponent(nameOrId)}/access`, {
      method: 'POST',
      body: { port },
      requestId: nameOrId,
    });
    return fromWireAccess(a);
  }

  /**
   * Opens the sandbox's public URL (by name or request id) to `port` (default 8080) and returns it; the subdomain
   * stays for the job. `private: true`: only requests with your token (or the cookie of `loginUrl`) are answered.
   * ```ts
   * const { url } = await mags.url('webapp', 3000);
   * ```
   */
  async url(nameOrId: string, port = 8080, options: UrlOptions = {}): Promise<UrlAccess> {
    const a = await this.http.json<WireUrlAccess>(`/api/v1/mags-jobs/${encodeURIComponent(nameOrId)}/access`, {
      method: 'POST',
      body: { port, ...(options.private !== undefined ? { private: options.private } : {}) },
      requestId: nameOrId,
    });
    return fromWireUrlAccess(a);
  }

  /** Gives workspace `workspaceId` the stable URL `<subdomain>.<apps-domain>` (it follows the workspace's sandbox). */
  async urlAliasCreate(subdomain: string, workspaceId: string, domain?: string): Promise<UrlAlias> {
    const a = await this.http.json<WireUrlAlias>('/api/v1/mags-url-aliases', {
      method: 'POST',
      body: { subdomain, workspace_id: workspaceId, ...(domain !== undefined ? { domain } : {}) },
    });
    return fromWireUrlAlias(a);
  }

  /** Your URL aliases, oldest first. */
  async urlAliasList(): Promise<UrlAlias[]> {
    return (await this.http.json<WireUrlAliasList>('/api/v1/mags-url-aliases')).aliases.map(fromWireUrlAlias);
  }

  /** Removes one of your URL aliases (by subdomain); its URL answers 404 from then on. */
  async urlAliasDelete(subdomain: string): Promise<void> {
    await this.http.json<unknown>(`/api/v1/mags-url-aliases/${encodeURIComponent(subdomain)}`, { method: 'DELETE' });
  }

  /**
   * Registers one of your SSH public keys (one OpenSSH line, e.g. the contents of ~/.ssh/id_ed25519.pub): your own
   * `ssh -p 2222 NAME@HOST` then opens your sandbox NAME.
   */
  async addSshKey(publicKey: string, options: AddSshKeyOptions = {}): Promise<SshKey> {
    const k = await this.http.json<WireSshKey>('/api/v1/ssh-keys', {
      method: 'POST',
      body: { public_key: publicKey, ...(options.name !== undefined ? { name: options.name } : {}) },
    });
    return fromWireSshKey(k);
  }

  /** Your registered SSH public keys, oldest first. */
  async listSshKeys(): Promise<SshKey[]> {
    return (await this.http.json<WireSshKeyList>('/api/v1/ssh-keys')).keys.map(fromWireSshKey);
  }

  /** Removes one of your SSH keys (by its id); it is refused from then on. */
  async removeSshKey(id: string): Promise<void> {
    await this.http.json<unknown>(`/api/v1/ssh-keys/${encodeURIComponent(id)}`, { method: 'DELETE', allowEmpty: true });
  }

  /**
   * Creates a cron job: `script` on a standard 5-field schedule (UTC unless `timezone`), each firing an ordinary job
   * named after it. `mags.cronCreate({ name: 'backup', cronExpression: '0 0 * * *', script: 'tar czf …', workspaceId: 'backups' })`
   */
  async cronCreate(options: CronCreateOptions): Promise<CronJob> {
    const c = await this.http.json<WireCronJob>('/api/v1/mags-cron', {
      method: 'POST',
      body: toWireCronCreate(options),
    });
    return fromWireCron(c);
  }

  /** Your cron jobs, oldest first. */
  async cronList(): Promise<CronJob[]> {
    return (await this.http.json<WireCronList>('/api/v1/mags-cron')).cron_jobs.map(fromWireCron);
  }

  /** One cron job (by id or name) with its latest firings (run or skipped). */
  async cronGet(idOrName: string): Promise<CronJob> {
    return fromWireCron(await this.http.json<WireCronJob>(`/api/v1/mags-cron/${encodeURIComponent(idOrName)}`));
  }

  /** Changes a cron job (by id or name): `cronUpdate(id, { enabled: false })`. */
  async cronUpdate(idOrName: string, options: CronUpdateOptions): Promise<CronJob> {
    const c = await this.http.json<WireCronJob>(`/api/v1/mags-cron/${encodeURIComponent(idOrName)}`, {
      method: 'PATCH',
      body: toWireCronUpdate(options),
    });
    return fromWireCron(c);
  }

  /** Deletes a cron job (by id or name); the jobs it fired stay. */
  async cronDelete(idOrName: string): Promise<void> {
    await this.http.json<unknown>(`/api/v1/mags-cron/${encodeURIComponent(idOrName)}`, {
      method: 'DELETE',
      allowEmpty: true,
    });
  }

  /**
   * Your usage per UTC day over the last `windowDays` days (default 30; the reference's `window_days` is accepted
   * too): jobs, sandbox, CPU and memory time, egress bytes and storage held.
   */
  async usage(options: { windowDays?: number; window_days?: number } | number = {}): Promise<UsageResult> {
    const days = typeof options === 'number' ? options : (options.windowDays ?? options.window_days);
    const query = days === undefined ? '' : `?window_days=${encodeURIComponent(String(days))}`;
    return fromWireUsage(await this.http.json<WireUsageReport>(`/api/v1/mags-usage${query}`));
  }

  /** Who the token belongs to. */
  async whoami(): Promise<WhoAmI> {
    return fromWireMe(await this.http.json<WireMe>('/api/v1/me'));
  }

  /** Creates an API token; its secret (`token`) is in this answer only. */
  async createToken(name: string, options: CreateTokenOptions = {}): Promise<CreatedToken> {
    const body = { name, ...(options.expiresInDays !== undefined ? { expires_in_days: options.expiresInDays } : {}) };
    return fromWireTokenCreated(await this.http.json<WireTokenCreated>('/api/v1/tokens', { method: 'POST', body }));
  }

  /** Your tokens that still work, newest first (never their secrets). */
  async listTokens(): Promise<ApiToken[]> {
    return (await this.http.json<WireTokenList>('/api/v1/tokens')).tokens.map(fromWireToken);
  }

  /** Revokes one of your tokens by id: it is refused from the next request on. */
  async revokeToken(id: string): Promise<void> {
    await this.http.json<unknown>(`/api/v1/tokens/${encodeURIComponent(id)}`, { method: 'DELETE', allowEmpty: true });
  }

  /** Sets your password for the browser sign-in (at least 10 characters). */
  async setPassword(password: string): Promise<void> {
    await this.http.json<unknown>('/api/v1/me/password', { method: 'PUT', body: { password }, allowEmpty: true });
  }

  /** Adds a user (owner only): answers its first token and a one-time link to choose a password. */
  async addUser(name: string): Promise<AddedUser> {
    return fromWireUserCreated(
      await this.http.json<WireUserCreated>('/api/v1/users', { method: 'POST', body: { name } }),
    );
  }

  /** The server's users (owner only). */
  async listUsers(): Promise<User[]> {
    return (await this.http.json<WireUserList>('/api/v1/users')).users.map(fromWireUser);
  }

  /** Removes a user (owner only): tokens stop at once, sandboxes stop; data is deleted only with `deleteData`. */
  async removeUser(name: string, options: { deleteData?: boolean } = {}): Promise<RemovedUser> {
    const r = await this.http.json<WireUserRemoved>(`/api/v1/users/${encodeURIComponent(name)}`, {
      method: 'DELETE',
      query: { delete_data: options.deleteData ? true : undefined },
    });
    return fromWireUserRemoved(r);
  }

  /** Starts a `mags login`: a code for a signed-in user to approve at `verificationUriComplete` (no token needed). */
  async startLogin(clientName?: string): Promise<DeviceLogin> {
    const body = clientName === undefined ? {} : { client_name: clientName };
    return fromWireDeviceStarted(
      await this.http.json<WireDeviceStarted>('/api/v1/auth/device', { method: 'POST', body }),
    );
  }

  /** Polls a started login: pending, or approved with the new token (answered once). */
  async pollLogin(deviceCode: string): Promise<DeviceLoginPoll> {
    const r = await this.http.json<WireDeviceResult>('/api/v1/auth/device/token', {
      method: 'POST',
      body: { device_code: deviceCode },
    });
    return fromWireDeviceResult(r);
  }

  /** Whether the server answers `GET /api/v1/health` (no token needed); never throws. */
  async health(timeoutMs = 2_000): Promise<{ ok: boolean; version?: string }> {
    try {
      const res = await fetch(this.http.url('/api/v1/health'), { signal: AbortSignal.timeout(timeoutMs) });
      if (!res.ok) return { ok: false };
      const body = (await res.json()) as { ok?: boolean; version?: string };
      return { ok: body.ok === true, version: body.version };
    } catch {
      return { ok: false };
    }
  }
}

function formatMs(ms: number): string {
  return ms < 1000 ? `${ms} ms` : `${Math.round(ms / 100) / 10} s`;
}
