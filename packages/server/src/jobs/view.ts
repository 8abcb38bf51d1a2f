// Turns jobs and their stored lines into the wire format of the REST API (snake_case, ISO-8601 times).
import type { JobStatus, JobStatusValue, LogEntry, LogStream, OutputLine } from '@mags/api';
import type { Job, LogRow } from '../store/index.js';

const iso = (ms: number | null): string | null => (ms === null ? null : new Date(ms).toISOString());

/** The URL of a job's subdomain; undefined while the server runs no router. */
export type UrlOf = (subdomain: string) => string | undefined;

export function jobStatusView(job: Job, urlOf?: UrlOf): JobStatus {
  return {
    request_id: job.id,
    name: job.name,
    status: job.status as JobStatusValue,
    workspace_id: job.workspace_id,
    vm_id: job.sandbox_id,
    subdomain: job.url_port !== null ? job.subdomain : null,
    url: job.url_port !== null && job.subdomain !== null ? (urlOf?.(job.subdomain) ?? null) : null,
    exit_code: job.exit_code,
    script_duration_ms:
      job.started_at !== null && job.completed_at !== null ? Math.max(0, job.completed_at - job.started_at) : null,
    created_at: new Date(job.created_at).toISOString(),
    started_at: iso(job.started_at),
    completed_at: iso(job.completed_at),
    error_message: job.error_message,
    script: job.script,
    long_lived: job.spec?.long_lived === true,
    no_sleep: job.spec?.no_sleep === true,
  };
}

export function logEntryView(line: LogRow | OutputLine): LogEntry {
  const stream = line.stream as LogStream;
  return {
    seq: line.seq,
    timestamp: new Date(line.ts).toISOString(),
    level: stream === 'stderr' ? 'error' : 'info',
    stream,
    message: line.message,
  };
}
