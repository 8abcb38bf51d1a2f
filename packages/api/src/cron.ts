// Cron jobs of the REST API (snake_case wire format, the reference's field names): a script run on a schedule, each
// firing an ordinary job. Shared by the server, SDK and CLI.
import { type Static, Type } from 'typebox';
import { MAX_SCRIPT_BYTES, NAME_PATTERN } from './jobs.js';

const Nullable = <T extends Parameters<typeof Type.Union>[0][number]>(t: T) => Type.Union([t, Type.Null()]);

/** Longest cron expression accepted (characters). */
export const MAX_CRON_EXPRESSION = 200;
/** Longest IANA time zone name accepted. */
export const MAX_TIMEZONE = 64;

const Expression = Type.String({
  minLength: 1,
  maxLength: MAX_CRON_EXPRESSION,
  description: 'Standard 5-field cron expression: minute hour day-of-month month day-of-week, e.g. "*/5 * * * *"',
});
const TimeZone = Type.String({
  minLength: 1,
  maxLength: MAX_TIMEZONE,
  description: 'IANA time zone the expression is read in, e.g. "Europe/Berlin" (default: UTC)',
});

export const CronCreate = Type.Object(
  {
    name: Type.String({
      pattern: NAME_PATTERN,
      description: 'Unique among your cron jobs; each firing job is named so',
    }),
    cron_expression: Expression,
    script: Type.String({ minLength: 1, maxLength: MAX_SCRIPT_BYTES }),
    workspace_id: Type.Optional(
      Type.String({ pattern: NAME_PATTERN, description: 'The workspace each firing runs on (as `mags run -w`)' }),
    ),
    persistent: Type.Optional(
      Type.Boolean({ description: 'The workspace is persistent (as `-p`); needs workspace_id' }),
    ),
    timezone: Type.Optional(Nullable(TimeZone)),
    enabled: Type.Optional(Type.Boolean({ default: true })),
  },
  { additionalProperties: false, $id: 'CronCreate' },
);
export type CronCreate = Static<typeof CronCreate>;

export const CronUpdate = Type.Object(
  {
    name: Type.Optional(Type.String({ pattern: NAME_PATTERN })),
    cron_expression: Type.Optional(Expression),
    script: Type.Optional(Type.String({ minLength: 1, maxLength: MAX_SCRIPT_BYTES })),
    workspace_id: Type.Optional(Nullable(Type.String({ pattern: NAME_PATTERN }))),
    persistent: Type.Optional(Type.Boolean()),
    timezone: Type.Optional(Nullable(TimeZone)),
    enabled: Type.Optional(Type.Boolean()),
  },
  { additionalProperties: false, $id: 'CronUpdate' },
);
export type CronUpdate = Static<typeof CronUpdate>;

export const CronRunStatus = Type.Union([
  /** A job was submitted: job_id. */
  Type.Literal('fired'),
  /** Not run: the previous firing on the same workspace still ran (or the submit was refused): reason. */
  Type.Literal('skipped'),
]);
export type CronRunStatus = Static<typeof CronRunStatus>;

export const CronRun = Type.Object({
  scheduled_at: Type.String({ description: 'The firing time it was for' }),
  status: CronRunStatus,
  job_id: Nullable(Type.String()),
  reason: Nullable(Type.String({ description: 'Why it was skipped' })),
});
export type CronRun = Static<typeof CronRun>;

export const CronJob = Type.Object(
  {
    id: Type.String(),
    name: Type.String(),
    cron_expression: Type.String(),
    script: Type.String(),
    workspace_id: Nullable(Type.String()),
    persistent: Type.Boolean(),
    enabled: Type.Boolean(),
    timezone: Nullable(Type.String({ description: 'null: UTC' })),
    next_run_at: Nullable(Type.String({ description: 'The next firing (null while disabled)' })),
    last_run_at: Nullable(Type.String({ description: 'The last firing, run or skipped' })),
    last_job_id: Nullable(Type.String({ description: 'The job the last run firing submitted' })),
    last_status: Nullable(CronRunStatus),
    created_at: Type.String(),
    updated_at: Type.String(),
    /** GET of one cron job only: its latest firings, newest first (at most 20). */
    runs: Type.Optional(Type.Array(CronRun)),
  },
  { $id: 'CronJob' },
);
export type CronJob = Static<typeof CronJob>;

export const CronList = Type.Object({ cron_jobs: Type.Array(CronJob) });
export type CronList = Static<typeof CronList>;
