// The Mags class: every job operation of the REST API, with camelCase options and results.
import type {
  JobAccepted,
  JobList as WireJobList,
  JobLogs,
  JobStatus as WireJobStatus,
  LogEntry,
  PoolStatus as WirePoolStatus,
  ServerStatus as WireServerStatus,
  StopResult as WireStopResult,
} from '@mags/api';
import { type Environment, resolveConnection } from './config.js';
import { MagsApiError, MagsTimeoutError } from './errors.js';
import { LogFollower } from './follow.js';
import { Transport } from './http.js';
import {
  type Job,
  type JobListResult,
  type PoolStatus,
  type RunAndWaitResult,
  type RunOptions,
  type RunResult,
  type ServerStatus,
  type StopResult,
  fromWireJob,
  fromWireJobList,
  fromWirePool,
  fromWireServerStatus,
  fromWireStop,
  scriptEnded,
  toWireSubmit,
} from './jobs.js';

export interface MagsOptions {
  /** API token; default: MAGS_API_TOKEN, then `api_token` in $MAGS_HOME/config.json (~/.mags/config.json). */
  apiToken?: string;
  /** Server address; default: MAGS_API_URL, then `api_url` in the config file, then http://127.0.0.1:7373. */
  apiUrl?: string;
  /** Longest wait for the answer to one request, in ms (default 30000). Long-polls and streams add their own wait. */
  timeoutMs?: number;
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
    const timeoutMs = options.timeoutMs ?? 30_000;
    if (!Number.isFinite(timeoutMs) || timeoutMs <= 0) throw new Error('timeoutMs must be a positive number of milliseconds');
    this.apiUrl = conn.apiUrl;
    this.http = new Transport({ apiUrl: conn.apiUrl, apiToken: conn.apiToken, timeoutMs });
  }

  /** Whether a token was configured (without one, every call but health answers `unauthorized`). */
  get hasToken(): boolean {
    return this.http.options.apiToken !== undefined;
  }

  /** Submits a script; returns at once with the job's request id. */
  async run(script: string, options: RunOptions = {}): Promise<RunResult> {
    const a = await this.http.json<JobAccepted>('/api/v1/mags-jobs', { method: 'POST', body: toWireSubmit(script, options) });
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
      if (Date.now() - asked < 200) await new Promise((r) => setTimeout(r, Math.min(250, Math.max(0, deadline - Date.now()))));
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
    const l = await this.http.json<WireJobList>('/api/v1/mags-jobs', { query: { page: options.page, page_size: options.pageSize } });
    return fromWireJobList(l);
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

  /** The job with this request id or name, else the newest job on the workspace of that name; null if none. */
  async findJob(nameOrId: string): Promise<Job | null> {
    try {
      return await this.status(nameOrId);
    } catch (err) {
      if (!(err instanceof MagsApiError && err.code === 'not_found')) throw err;
    }
    for (let page = 1; page <= 5; page++) {
      const l = await this.list({ page, pageSize: 100 });
      const hit = l.jobs.find((j) => j.workspaceId === nameOrId);
      if (hit) return hit;
      if (page * l.pageSize >= l.total) break;
    }
    return null;
  }

  /** Warm sandboxes over all the server's agents. */
  async poolStatus(): Promise<PoolStatus> {
    return fromWirePool(await this.http.json<WirePoolStatus>('/api/v1/mags-jobs/pool-status'));
  }

  /** The server, its agents (with their sandbox runtime and versions) and the calling user. */
  async serverStatus(): Promise<ServerStatus> {
    return fromWireServerStatus(await this.http.json<WireServerStatus>('/api/v1/status'));
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
