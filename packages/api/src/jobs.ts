// The job resources of the REST API, in the wire format of the hosted service (snake_case), plus our additions.
import { type Static, Type } from 'typebox';

// Spelled out literal by literal: a mapped string[] would make the static type `never`.
export const JobStatusValue = Type.Union([
  Type.Literal('accepted'),
  Type.Literal('running'),
  Type.Literal('sleeping'),
  Type.Literal('completed'),
  Type.Literal('failed'),
  Type.Literal('error'),
  Type.Literal('stopped'),
]);
export type JobStatusValue = 'accepted' | 'running' | 'sleeping' | 'completed' | 'failed' | 'error' | 'stopped';
export const TERMINAL_STATUSES: readonly JobStatusValue[] = ['completed', 'failed', 'error', 'stopped'];
export function isTerminal(status: string): boolean {
  return (TERMINAL_STATUSES as readonly string[]).includes(status);
}

/** Largest script accepted inline; bigger programs belong in an uploaded file. */
export const MAX_SCRIPT_BYTES = 256 * 1024;
export const NAME_PATTERN = '^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$';
/** An environment variable's name. */
export const ENV_NAME_PATTERN = '^[A-Za-z_][A-Za-z0-9_]*$';
/** The rule of each pattern in words, for validation errors (a person reads the rule, not a regular expression). */
export const PATTERN_RULES: Readonly<Record<string, string>> = {
  [NAME_PATTERN]: 'names are 1–63 letters, digits, ".", "_" or "-", starting with a letter or digit',
  [ENV_NAME_PATTERN]: 'environment variable names are letters, digits or "_", not starting with a digit',
  '^/': 'must be an absolute path (starting with "/")',
  '^[A-Za-z0-9._+-]+$': 'must be letters, digits, ".", "_", "+" or "-"',
  '^[A-Za-z0-9+/]*={0,2}$': 'must be base64',
};
/** Longest value of one environment variable (characters). */
export const MAX_ENV_VALUE = 65536;

export const JobSubmit = Type.Object(
  {
    script: Type.Optional(
      Type.String({
        minLength: 1,
        maxLength: MAX_SCRIPT_BYTES,
        description: 'Shell script run with /bin/sh -c (required, except with long_lived, which takes none)',
      }),
    ),
    type: Type.Optional(Type.Literal('inline', { default: 'inline' })),
    name: Type.Optional(Type.String({ pattern: NAME_PATTERN, description: 'A name to find the job by' })),
    workspace_id: Type.Optional(Type.String({ pattern: NAME_PATTERN })),
    base_workspace_id: Type.Optional(Type.String({ pattern: NAME_PATTERN })),
    persistent: Type.Optional(Type.Boolean()),
    ephemeral: Type.Optional(Type.Boolean()),
    no_sleep: Type.Optional(Type.Boolean()),
    startup_command: Type.Optional(Type.String({ maxLength: 16384 })),
    environment: Type.Optional(
      Type.Record(Type.String({ pattern: ENV_NAME_PATTERN }), Type.String({ maxLength: MAX_ENV_VALUE }), {
        description: 'Environment variables for the script',
      }),
    ),
    file_ids: Type.Optional(Type.Array(Type.String({ minLength: 1 }), { maxItems: 100 })),
    disk_gb: Type.Optional(Type.Integer({ minimum: 1, maximum: 1024, default: 2 })),
    url: Type.Optional(Type.Boolean()),
    port: Type.Optional(
      Type.Integer({ minimum: 1, maximum: 65535, description: 'The port the URL reaches (with url; default 8080)' }),
    ),
    url_private: Type.Optional(
      Type.Boolean({ description: "With url: the URL answers only requests carrying the owner's token" }),
    ),
    vcpus: Type.Optional(Type.Number({ minimum: 0.1, maximum: 64, description: 'CPU share in cores (default 1)' })),
    memory_mb: Type.Optional(
      Type.Integer({ minimum: 32, maximum: 262144, description: 'Memory limit (default 1024)' }),
    ),
    timeout_s: Type.Optional(
      Type.Integer({ minimum: 1, maximum: 604800, description: 'Wall-clock limit (default 3600)' }),
    ),
    network: Type.Optional(Type.Union([Type.Literal('internet'), Type.Literal('none')])),
    long_lived: Type.Optional(
      Type.Boolean({
        description:
          'A sandbox that stays up on workspace_id (mags new): no script, no timeout; status running until stopped. ' +
          'Run commands in it with POST /api/v1/mags-jobs/{id}/exec',
      }),
    ),
    rootfs_type: Type.Optional(
      Type.String({
        maxLength: 100,
        description:
          "Accepted for the hosted service's clients and ignored (a note is logged): there is one root filesystem",
      }),
    ),
  },
  { additionalProperties: false, $id: 'JobSubmit' },
);
export type JobSubmit = Static<typeof JobSubmit>;

/** `PATCH /api/v1/mags-jobs/{id}`: a running or sleeping job's settings. */
export const JobUpdate = Type.Object(
  {
    no_sleep: Type.Optional(
      Type.Boolean({
        description: 'Never sleep, and start again when the sandbox dies (needs a persistent workspace)',
      }),
    ),
    startup_command: Type.Optional(
      Type.Union([Type.String({ minLength: 1, maxLength: 16384 }), Type.Null()], {
        description: 'Run in the background at every start of the sandbox; null removes it',
      }),
    ),
  },
  { additionalProperties: false },
);
export type JobUpdate = Static<typeof JobUpdate>;

export const JobAccepted = Type.Object({
  request_id: Type.String(),
  status: Type.Literal('accepted'),
  message: Type.String(),
});
export type JobAccepted = Static<typeof JobAccepted>;

const Nullable = <T extends Parameters<typeof Type.Union>[0][number]>(t: T) => Type.Union([t, Type.Null()]);

export const JobStatus = Type.Object(
  {
    request_id: Type.String(),
    name: Nullable(Type.String()),
    status: JobStatusValue,
    workspace_id: Nullable(Type.String()),
    vm_id: Nullable(Type.String()),
    subdomain: Nullable(Type.String()),
    url: Nullable(Type.String()),
    exit_code: Nullable(Type.Integer()),
    script_duration_ms: Nullable(Type.Integer()),
    created_at: Type.String(),
    started_at: Nullable(Type.String()),
    completed_at: Nullable(Type.String()),
    error_message: Nullable(Type.String()),
    script: Type.String(),
    long_lived: Type.Optional(Type.Boolean({ description: 'A sandbox that stays up (mags new): takes execs' })),
    no_sleep: Type.Optional(
      Type.Boolean({ description: 'Never sleeps, and starts again when it dies (PATCH no_sleep changes it)' }),
    ),
  },
  { $id: 'JobStatus' },
);
export type JobStatus = Static<typeof JobStatus>;

export const JobList = Type.Object({
  jobs: Type.Array(JobStatus),
  page: Type.Integer(),
  page_size: Type.Integer(),
  total: Type.Integer(),
});
export type JobList = Static<typeof JobList>;

export const LogStream = Type.Union([Type.Literal('stdout'), Type.Literal('stderr'), Type.Literal('system')]);
export type LogStream = 'stdout' | 'stderr' | 'system';

export const LogEntry = Type.Object({
  seq: Type.Integer({ description: 'Position of the line in the job output, from 1' }),
  timestamp: Type.String(),
  level: Type.Union([Type.Literal('info'), Type.Literal('error')]),
  stream: LogStream,
  message: Type.String(),
});
export type LogEntry = Static<typeof LogEntry>;

export const JobLogs = Type.Object({ logs: Type.Array(LogEntry) });
export type JobLogs = Static<typeof JobLogs>;

export const PoolStatus = Type.Object({
  idle_vms: Type.Integer(),
  busy_vms: Type.Integer({ description: 'Sandboxes holding a job, the sleeping ones included' }),
  sleeping_vms: Type.Integer({ description: 'Of the busy ones, those asleep (frozen, memory kept)' }),
  total_vms: Type.Integer(),
  min_pool_size: Type.Integer(),
  max_pool_size: Type.Integer(),
});
export type PoolStatus = Static<typeof PoolStatus>;

export const StopResult = Type.Object({ success: Type.Boolean(), request_id: Type.String(), status: JobStatusValue });
export type StopResult = Static<typeof StopResult>;

export const AgentSummary = Type.Object({
  id: Type.String(),
  name: Type.String(),
  runtime: Type.String({ description: 'OCI runtime binary and version, e.g. "crun 1.8.1"' }),
  version: Type.String(),
  status: Type.Union([Type.Literal('online'), Type.Literal('offline')]),
  running: Type.Integer(),
  capacity: Type.Integer(),
  last_seen_at: Type.String(),
});
export const ServerStatus = Type.Object({
  server: Type.Object({ version: Type.String(), mode: Type.String(), store: Type.String(), started_at: Type.String() }),
  agents: Type.Array(AgentSummary),
  user: Type.Object({ id: Type.String(), name: Type.String() }),
});
export type ServerStatus = Static<typeof ServerStatus>;
