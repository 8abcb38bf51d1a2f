// The SDK's cron and usage types (camelCase) and their one mapping from the REST wire format (snake_case) in @mags/api.
import type {
  CronCreate as WireCronCreate,
  CronJob as WireCronJob,
  CronUpdate as WireCronUpdate,
  UsageReport as WireUsageReport,
} from '@mags/api';

/** `cronCreate` options: the reference's names (`cronExpression`, `workspaceId`). */
export interface CronCreateOptions {
  name: string;
  /** Standard 5 fields: minute hour day-of-month month day-of-week, e.g. "0 0 * * *". */
  cronExpression: string;
  script: string;
  /** Each firing runs on this workspace (as `mags run -w`); a firing is skipped while the previous one still runs on it. */
  workspaceId?: string;
  /** The workspace is persistent (needs workspaceId). */
  persistent?: boolean;
  /** IANA time zone the expression is read in, e.g. "Europe/Berlin"; UTC by default. */
  timezone?: string;
  /** Default true. */
  enabled?: boolean;
}

/** `cronUpdate` options: what to change (null removes the workspace or the time zone). */
export interface CronUpdateOptions {
  name?: string;
  cronExpression?: string;
  script?: string;
  workspaceId?: string | null;
  persistent?: boolean;
  timezone?: string | null;
  enabled?: boolean;
}

export interface CronRun {
  scheduledAt: string;
  status: 'fired' | 'skipped';
  jobId: string | null;
  reason: string | null;
}

/** A cron job. Times are ISO-8601 strings. */
export interface CronJob {
  id: string;
  name: string;
  cronExpression: string;
  script: string;
  workspaceId: string | null;
  persistent: boolean;
  enabled: boolean;
  /** null: UTC. */
  timezone: string | null;
  /** null while disabled. */
  nextRunAt: string | null;
  lastRunAt: string | null;
  /** The job its last run firing submitted. */
  lastJobId: string | null;
  lastStatus: 'fired' | 'skipped' | null;
  createdAt: string;
  updatedAt: string;
  /** `cronGet` only: the latest firings, newest first. */
  runs?: CronRun[];
}

export interface UsageFigures {
  jobs: number;
  sandboxSeconds: number;
  cpuSeconds: number;
  memoryGbSeconds: number;
  egressBytes: number;
  storageBytes: number;
}

export interface UsageDay extends UsageFigures {
  /** YYYY-MM-DD, UTC. */
  date: string;
}

export interface UsageResult {
  windowDays: number;
  /** Oldest first, one per day of the window (today last). */
  days: UsageDay[];
  /** Sums over the window; storageBytes is what is held now. */
  totals: UsageFigures;
}

export function toWireCronCreate(o: CronCreateOptions): WireCronCreate {
  return {
    name: o.name,
    cron_expression: o.cronExpression,
    script: o.script,
    ...(o.workspaceId !== undefined ? { workspace_id: o.workspaceId } : {}),
    ...(o.persistent !== undefined ? { persistent: o.persistent } : {}),
    ...(o.timezone !== undefined ? { timezone: o.timezone } : {}),
    ...(o.enabled !== undefined ? { enabled: o.enabled } : {}),
  };
}

export function toWireCronUpdate(o: CronUpdateOptions): WireCronUpdate {
  return {
    ...(o.name !== undefined ? { name: o.name } : {}),
    ...(o.cronExpression !== undefined ? { cron_expression: o.cronExpression } : {}),
    ...(o.script !== undefined ? { script: o.script } : {}),
    ...(o.workspaceId !== undefined ? { workspace_id: o.workspaceId } : {}),
    ...(o.persistent !== undefined ? { persistent: o.persistent } : {}),
    ...(o.timezone !== undefined ? { timezone: o.timezone } : {}),
    ...(o.enabled !== undefined ? { enabled: o.enabled } : {}),
  };
}

export function fromWireCron(c: WireCronJob): CronJob {
  return {
    id: c.id,
    name: c.name,
    cronExpression: c.cron_expression,
    script: c.script,
    workspaceId: c.workspace_id,
    persistent: c.persistent,
    enabled: c.enabled,
    timezone: c.timezone,
    nextRunAt: c.next_run_at,
    lastRunAt: c.last_run_at,
    lastJobId: c.last_job_id,
    lastStatus: c.last_status,
    createdAt: c.created_at,
    updatedAt: c.updated_at,
    ...(c.runs
      ? {
          runs: c.runs.map((r) => ({
            scheduledAt: r.scheduled_at,
            status: r.status,
            jobId: r.job_id,
            reason: r.reason,
          })),
        }
      : {}),
  };
}

export function fromWireUsage(u: WireUsageReport): UsageResult {
  const figures = (f: Omit<WireUsageReport['days'][number], 'date'>): UsageFigures => ({
    jobs: f.jobs,
    sandboxSeconds: f.sandbox_seconds,
    cpuSeconds: f.cpu_seconds,
    memoryGbSeconds: f.memory_gb_seconds,
    egressBytes: f.egress_bytes,
    storageBytes: f.storage_bytes,
  });
  return {
    windowDays: u.window_days,
    days: u.days.map((d) => ({ date: d.date, ...figures(d) })),
    totals: figures(u.totals),
  };
}
