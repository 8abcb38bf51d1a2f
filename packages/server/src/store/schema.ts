// The tables as Kysely sees them. Timestamps are epoch milliseconds (bigint columns); JSON is text.
import type { ColumnType, Selectable } from 'kysely';
import { type Static, Type } from 'typebox';

export interface UsersTable {
  id: string;
  name: string;
  created_at: number;
  /** scrypt hash (accounts/passwords.ts) of the browser sign-in password; null: no password set. */
  password_hash: ColumnType<string | null, string | null | undefined, string | null>;
  /** Set by `mags user remove` without --delete-data: the user can no longer sign in, its data is kept. */
  removed_at: ColumnType<number | null, number | null | undefined, number | null>;
  /** "ISSUER SUBJECT" of the OpenID Connect account bound at the user's first single sign-on. */
  oidc_subject: ColumnType<string | null, string | null | undefined, string | null>;
}

export interface TokensTable {
  id: string;
  user_id: string;
  name: string;
  /** sha256 of the whole token, hex. The token itself is never stored. */
  token_hash: string;
  /** The first characters of the token, to recognise it in a listing. */
  prefix: string;
  created_at: number;
  last_used_at: number | null;
  revoked_at: number | null;
  /** When the token stops working; null: never. */
  expires_at: ColumnType<number | null, number | null | undefined, number | null>;
}

/** A browser session: the cookie's sha256, and the CSRF token forms and X-CSRF-Token must carry. */
export interface SessionsTable {
  id_hash: string;
  user_id: string;
  csrf: string;
  created_at: number;
  expires_at: number;
}

/** A `mags login` waiting for approval in a browser: pending → approved (by user_id) → consumed (deleted). */
export interface DeviceLoginsTable {
  /** sha256 of the device code the CLI polls with. */
  device_hash: string;
  user_code: string;
  client_name: string;
  status: string;
  user_id: string | null;
  created_at: number;
  expires_at: number;
}

/** A one-time link where a new user chooses a password. */
export interface SigninLinksTable {
  code_hash: string;
  user_id: string;
  created_at: number;
  expires_at: number;
}

/** Statuses a job can still leave; the others (completed, failed, error, stopped) never change again. */
export const UNFINISHED = ['accepted', 'running', 'sleeping'] as const;

export interface JobsTable {
  id: string;
  user_id: string;
  name: string | null;
  script: string;
  status: string;
  exit_code: number | null;
  error_message: string | null;
  /** Set when the job is handed to an agent: an accepted job with an agent is dispatched, without one it is queued. */
  agent_id: string | null;
  sandbox_id: string | null;
  workspace_id: string | null;
  /** JSON of JobSpec (jobs/spec.ts) */
  spec: string;
  created_at: number;
  started_at: number | null;
  completed_at: number | null;
  /** The job's URL subdomain (12 hex characters), set once it has a URL; kept for the job's life. */
  subdomain: ColumnType<string | null, string | null | undefined, string | null>;
  /** The sandbox port its URL reaches. */
  url_port: ColumnType<number | null, number | null | undefined, number | null>;
  /** 1: the URL answers only requests with the owner's token. */
  url_private: ColumnType<number | null, number | null | undefined, number | null>;
  /** The sandbox's address as its agent reported it at `started` (null: none, e.g. network none). */
  sandbox_address: ColumnType<string | null, string | null | undefined, string | null>;
}

export interface JobLogsTable {
  job_id: string;
  seq: number;
  ts: number;
  stream: string;
  message: string;
}

export interface AgentsTable {
  id: string;
  name: string;
  runtime: string;
  version: string;
  capacity: number;
  status: string;
  first_seen_at: ColumnType<number, number, never>;
  last_seen_at: number;
}

/** A user's workspace (local or persistent); its files live on a host (local) or in the object store (persistent). */
export interface WorkspacesTable {
  id: string;
  user_id: string;
  /** Unique per user; the object-store key is workspaces/<user_id>/<name>/. */
  name: string;
  /** 0 local, 1 persistent. */
  persistent: number;
  disk_gb: number;
  /** NAME@VERSION of the base it was created on. */
  base_label: string | null;
  /** Object key of this workspace's own copy of the base manifest. */
  base_key: string | null;
  /** The agent that last reported holding a host copy. */
  agent_id: string | null;
  /** The unfinished job using it (or a reservation while the server deletes, restores or forks it). */
  active_job_id: string | null;
  /** The current synced version, as last known. */
  head_version: number | null;
  versions: number;
  size_bytes: number;
  file_count: number;
  created_at: ColumnType<number, number, never>;
  last_used_at: number | null;
  /** Local workspaces: when an unused host copy is deleted. */
  expires_at: number | null;
}

/** An uploaded file; its bytes are the object `object_key`. */
export interface FilesTable {
  id: string;
  user_id: string;
  /** The basename it appears as under /uploads/. */
  name: string;
  size: number;
  sha256: string;
  object_key: string;
  created_at: number;
}

export interface SshKeysTable {
  id: string;
  user_id: string;
  name: string;
  /** One OpenSSH public key line, normalised to "TYPE BASE64". */
  public_key: string;
  /** SHA256:… of the key blob (unique: a key opens one user's sandboxes). */
  fingerprint: string;
  /** The job whose sandbox alone this key opens (made by `access`); null for a user's own registered key. */
  job_id: string | null;
  created_at: number;
}

export interface UrlAliasesTable {
  id: string;
  subdomain: string;
  user_id: string;
  workspace_id: string;
  created_at: number;
}

/** An E2B sandbox (e2b/): a long-lived job of its user, with what the E2B API adds to it. */
export interface E2bSandboxesTable {
  /** The job's id: the sandbox's `sandboxID`. */
  job_id: string;
  user_id: string;
  /** `base`, or the name of the user's persistent workspace the sandbox was based on. */
  template_id: string;
  /** The local workspace the sandbox runs on (made for it, deleted with it); empty for template `base` (none). */
  workspace: string;
  /** JSON object of string values. */
  metadata: string;
  /** JSON object: the environment of every command (also the job's environment). */
  env_vars: string;
  /** The sandbox's `envdAccessToken` (random, 256 bits, base64url). */
  envd_token: string;
  /** The `trafficAccessToken` its ports ask for when public traffic is off; null when they are public. */
  traffic_token: string | null;
  /** 1: at its end (`end_at`) the sandbox sleeps (E2B's pause) instead of being stopped. */
  auto_pause: number;
  /**
   * 1: paused through the E2B API (pause, or autoPause at the deadline): no deadline runs until connect resumes it.
   * A sandbox Mags put to sleep because it was idle is not paused: it wakes on use and its deadline runs on.
   */
  paused: number;
  /** When the sandbox ends (E2B's timeout), epoch ms. */
  end_at: number;
  created_at: number;
}

export interface Database {
  users: UsersTable;
  tokens: TokensTable;
  jobs: JobsTable;
  job_logs: JobLogsTable;
  agents: AgentsTable;
  workspaces: WorkspacesTable;
  files: FilesTable;
  ssh_keys: SshKeysTable;
  sessions: SessionsTable;
  device_logins: DeviceLoginsTable;
  signin_links: SigninLinksTable;
  url_aliases: UrlAliasesTable;
  e2b_sandboxes: E2bSandboxesTable;
  cron_jobs: CronJobsTable;
  cron_runs: CronRunsTable;
  usage_meters: UsageMetersTable;
  usage_days: UsageDaysTable;
}

/** A user's script on a schedule (cron/). */
export interface CronJobsTable {
  id: string;
  user_id: string;
  /** Unique per user. */
  name: string;
  cron_expression: string;
  script: string;
  /** The workspace's name (as jobs.workspace_id), or null for an ephemeral run. */
  workspace_id: string | null;
  /** 0 or 1. */
  persistent: number;
  /** IANA time zone; null is UTC. */
  timezone: string | null;
  /** 0 or 1. */
  enabled: number;
  /** The next firing; null while disabled. Servers claim a firing by moving it on (a conditional update). */
  next_run_at: number | null;
  last_run_at: number | null;
  last_job_id: string | null;
  /** 'fired' or 'skipped'. */
  last_status: string | null;
  created_at: number;
  updated_at: number;
}

/** One firing of a cron job, run or skipped; (cron_job_id, scheduled_at) is unique: a firing happens once. */
export interface CronRunsTable {
  id: string;
  cron_job_id: string;
  scheduled_at: number;
  status: string;
  job_id: string | null;
  reason: string | null;
  created_at: number;
}

/** What one sandbox has used for one job so far (the agent's cumulative figures), to add only what is new. */
export interface UsageMetersTable {
  job_id: string;
  sandbox_id: string;
  user_id: string;
  sandbox_ms: number;
  cpu_ms: number;
  memory_mib_ms: number;
  egress_bytes: number;
  updated_at: number;
}

/** A user's usage per UTC day; kept after the jobs it came from are deleted. */
export interface UsageDaysTable {
  user_id: string;
  /** YYYY-MM-DD, UTC. */
  day: string;
  jobs: number;
  sandbox_ms: number;
  cpu_ms: number;
  memory_mib_ms: number;
  egress_bytes: number;
  /** Bytes held in workspaces and files when last measured that day (null: not measured that day). */
  storage_bytes: number | null;
}

export type UserRow = Selectable<UsersTable>;
export type TokenRow = Selectable<TokensTable>;
export type JobRow = Selectable<JobsTable>;
export type LogRow = Selectable<JobLogsTable>;
export type AgentRow = Selectable<AgentsTable>;
export type WorkspaceRow = Selectable<WorkspacesTable>;
export type FileRow = Selectable<FilesTable>;
export type SshKeyRow = Selectable<SshKeysTable>;
export type CronJobRow = Selectable<CronJobsTable>;
export type CronRunRow = Selectable<CronRunsTable>;
export type UsageDayRow = Selectable<UsageDaysTable>;
export type UrlAliasRow = Selectable<UrlAliasesTable>;
export type E2bSandboxRow = Selectable<E2bSandboxesTable>;
export type SessionRow = Selectable<SessionsTable>;
export type DeviceLoginRow = Selectable<DeviceLoginsTable>;

/** What a job asks of its sandbox, resolved at submit; stored as JSON in jobs.spec. */
export const JobSpec = Type.Object({
  vcpus: Type.Number(),
  memory_mb: Type.Integer(),
  timeout_s: Type.Integer(),
  network: Type.Union([Type.Literal('internet'), Type.Literal('none')]),
  /** The workspace disk for a workspace job (the ephemeral layer's disk otherwise). */
  disk_gb: Type.Integer(),
  environment: Type.Record(Type.String(), Type.String()),
  /** The workspace the sandbox's writable layer is (absent for an ephemeral run). */
  workspace: Type.Optional(Type.Object({ id: Type.String(), name: Type.String(), persistent: Type.Boolean() })),
  /** The read-only layer under the writable one: `--base` pinned at submit, or the base the workspace was made on. */
  base: Type.Optional(Type.Object({ label: Type.String(), manifestKey: Type.String() })),
  /** Uploaded files placed at /uploads/<name>. */
  uploads: Type.Optional(Type.Array(Type.Object({ key: Type.String(), name: Type.String(), size: Type.Integer() }))),
  /**
   * A long-lived sandbox (`mags new`): no script; up until it is stopped. Also set when a persistent run that slept
   * is woken: from then on its sandbox is one that stays up.
   */
  long_lived: Type.Optional(Type.Boolean()),
  /** Never sleeps, and is started again when it dies (`--no-sleep`; needs a persistent workspace). */
  no_sleep: Type.Optional(Type.Boolean()),
  /** Run in the background at every start of the sandbox (`--startup-command`). */
  startup_command: Type.Optional(Type.String()),
});
export type JobSpec = Static<typeof JobSpec>;
