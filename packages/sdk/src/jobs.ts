// The SDK's job types (camelCase) and their one mapping to and from the REST wire format (snake_case) in @mags/api.
import type {
  JobStatusValue,
  JobSubmit,
  LogEntry,
  JobList as WireJobList,
  JobStatus as WireJobStatus,
  PoolStatus as WirePoolStatus,
  ServerStatus as WireServerStatus,
  StopResult as WireStopResult,
} from '@mags/api';

export type { JobStatusValue, LogEntry };

/** Options of `run` and `runAndWait`, named as in the hosted service's Node.js SDK, plus this project's limits. */
export interface RunOptions {
  /** Name the workspace. Local only unless `persistent` is set. */
  workspaceId?: string;
  /** Mount a persistent workspace read-only as the base image. */
  baseWorkspaceId?: string;
  /** Sync the workspace to the object store; files persist indefinitely. */
  persistent?: boolean;
  /** No workspace at all, fastest possible execution. */
  ephemeral?: boolean;
  /** Never auto-sleep, and start again when the sandbox dies (requires `persistent`). */
  noSleep?: boolean;
  /** Run in the background at every start of the sandbox (the first, and every wake from stopped). */
  startupCommand?: string;
  /** Environment variables for the script. */
  environment?: Record<string, string>;
  /** Uploaded files, placed in /uploads/ before the script starts. */
  fileIds?: string[];
  /** Disk size of the workspace in GB (server default 2). */
  diskGb?: number;
  /** Request a public URL (requires `persistent`). */
  url?: boolean;
  /** Port exposed by the public URL (goes with `url`). */
  port?: number;
  /** With `url`: the URL answers only requests carrying your token. */
  urlPrivate?: boolean;
  /** CPU share in cores (server default 1). */
  vcpus?: number;
  /** Memory limit in MB (server default 1024). */
  memoryMb?: number;
  /** Wall-clock limit in seconds (server default 3600); the sandbox is killed when it passes. */
  timeoutS?: number;
  /** `internet` (default) or `none`. */
  network?: 'internet' | 'none';
  /** A name to find the job by (`status(name)`, `stop(name)`). */
  name?: string;
}

/** Options of `new`: the sandbox's workspace and limits (`mags new NAME -p --base B --disk N`). */
export interface NewOptions
  extends Pick<
    RunOptions,
    | 'persistent'
    | 'baseWorkspaceId'
    | 'diskGb'
    | 'environment'
    | 'vcpus'
    | 'memoryMb'
    | 'network'
    | 'name'
    | 'noSleep'
    | 'startupCommand'
    | 'url'
    | 'port'
    | 'urlPrivate'
  > {
  /** Longest wait for the sandbox to run, in ms (default 5 minutes). */
  timeout?: number;
}

/** What `updateJob` changes; a key left out stays as it is. */
export interface UpdateJobOptions {
  /** true: never sleep, and start again when the sandbox dies (a persistent workspace only); false: sleep when idle. */
  noSleep?: boolean;
  /** Run at every start of the sandbox from its next start; null removes it. */
  startupCommand?: string | null;
}

/** What `run` answers: the job was accepted and will start as soon as a sandbox is free. */
export interface RunResult {
  requestId: string;
  status: 'accepted';
  message: string;
}

/** A job as `status`, `list` and `findJob` report it. Times are ISO-8601 strings. */
export interface Job {
  requestId: string;
  name: string | null;
  status: JobStatusValue;
  workspaceId: string | null;
  vmId: string | null;
  subdomain: string | null;
  url: string | null;
  /** The script's exit code (128+signal when it was killed); null while it runs or when it never ran. */
  exitCode: number | null;
  scriptDurationMs: number | null;
  createdAt: string;
  startedAt: string | null;
  completedAt: string | null;
  /** Why the platform failed or killed the job (e.g. a timeout); null otherwise. */
  errorMessage: string | null;
  script: string;
  /** A sandbox that stays up (`new()`): it takes `exec()`s and sleeps when idle unless `noSleep`. */
  longLived: boolean;
  /** Never sleeps, and starts again when it dies (`updateJob(…, { noSleep })` changes it). */
  noSleep: boolean;
}

/** What `runAndWait` answers once the job has ended. */
export interface RunAndWaitResult {
  requestId: string;
  status: JobStatusValue;
  exitCode: number | null;
  /** Every output line in order: `message`, `stream` (stdout, stderr or system), `timestamp`, `seq`, `level`. */
  logs: LogEntry[];
  durationMs: number | null;
  errorMessage: string | null;
}

export interface JobListResult {
  jobs: Job[];
  page: number;
  pageSize: number;
  total: number;
}

export interface PoolStatus {
  idleVms: number;
  /** Sandboxes holding a job, the sleeping ones included. */
  busyVms: number;
  /** Of the busy sandboxes, those asleep (frozen). */
  sleepingVms: number;
  totalVms: number;
  minPoolSize: number;
  maxPoolSize: number;
}

export interface StopResult {
  success: boolean;
  requestId: string;
  status: JobStatusValue;
}

export interface AgentSummary {
  id: string;
  name: string;
  /** OCI runtime binary and version, e.g. "crun 1.8.1". */
  runtime: string;
  version: string;
  status: 'online' | 'offline';
  running: number;
  capacity: number;
  lastSeenAt: string;
}

export interface ServerStatus {
  server: { version: string; mode: string; store: string; startedAt: string };
  agents: AgentSummary[];
  user: { id: string; name: string };
}

/** The submission for `run` (a script) or `new` (none: a long-lived sandbox). */
export function toWireSubmit(script: string | undefined, o: RunOptions = {}): JobSubmit {
  const body: JobSubmit = { type: 'inline' };
  if (script !== undefined) body.script = script;
  const set = <K extends keyof JobSubmit>(key: K, value: JobSubmit[K] | undefined) => {
    if (value !== undefined) body[key] = value;
  };
  set('name', o.name);
  set('workspace_id', o.workspaceId);
  set('base_workspace_id', o.baseWorkspaceId);
  set('persistent', o.persistent);
  set('ephemeral', o.ephemeral);
  set('no_sleep', o.noSleep);
  set('startup_command', o.startupCommand);
  set('environment', o.environment);
  set('file_ids', o.fileIds);
  set('disk_gb', o.diskGb);
  set('url', o.url);
  set('port', o.port);
  set('url_private', o.urlPrivate);
  set('vcpus', o.vcpus);
  set('memory_mb', o.memoryMb);
  set('timeout_s', o.timeoutS);
  set('network', o.network);
  return body;
}

export function fromWireJob(j: WireJobStatus): Job {
  return {
    requestId: j.request_id,
    name: j.name ?? null,
    status: j.status,
    workspaceId: j.workspace_id ?? null,
    vmId: j.vm_id ?? null,
    subdomain: j.subdomain ?? null,
    url: j.url ?? null,
    exitCode: j.exit_code ?? null,
    scriptDurationMs: j.script_duration_ms ?? null,
    createdAt: j.created_at,
    startedAt: j.started_at ?? null,
    completedAt: j.completed_at ?? null,
    errorMessage: j.error_message ?? null,
    script: j.script,
    longLived: j.long_lived ?? false,
    noSleep: j.no_sleep ?? false,
  };
}

export function fromWireJobList(l: WireJobList): JobListResult {
  return { jobs: l.jobs.map(fromWireJob), page: l.page, pageSize: l.page_size, total: l.total };
}

export function fromWirePool(p: WirePoolStatus): PoolStatus {
  return {
    idleVms: p.idle_vms,
    busyVms: p.busy_vms,
    sleepingVms: p.sleeping_vms,
    totalVms: p.total_vms,
    minPoolSize: p.min_pool_size,
    maxPoolSize: p.max_pool_size,
  };
}

export function fromWireStop(s: WireStopResult): StopResult {
  return { success: s.success, requestId: s.request_id, status: s.status };
}

export function fromWireServerStatus(s: WireServerStatus): ServerStatus {
  return {
    server: { version: s.server.version, mode: s.server.mode, store: s.server.store, startedAt: s.server.started_at },
    agents: s.agents.map((a) => ({
      id: a.id,
      name: a.name,
      runtime: a.runtime,
      version: a.version,
      status: a.status,
      running: a.running,
      capacity: a.capacity,
      lastSeenAt: a.last_seen_at,
    })),
    user: { id: s.user.id, name: s.user.name },
  };
}

/** Whether the job's script has ended: a terminal status, or `sleeping` (a persistent sandbox whose script ended). */
export function scriptEnded(status: string): boolean {
  return (
    status === 'completed' || status === 'failed' || status === 'error' || status === 'stopped' || status === 'sleeping'
  );
}
