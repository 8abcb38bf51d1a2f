// The tables as Kysely sees them. Timestamps are epoch milliseconds (bigint columns); JSON is text.
import type { ColumnType, Insertable, Selectable } from 'kysely';

export interface UsersTable {
  id: string;
  name: string;
  created_at: number;
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
}

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
  /** JSON of JobSpec */
  spec: string;
  created_at: number;
  started_at: number | null;
  completed_at: number | null;
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

export interface Database {
  users: UsersTable;
  tokens: TokensTable;
  jobs: JobsTable;
  job_logs: JobLogsTable;
  agents: AgentsTable;
}

export type UserRow = Selectable<UsersTable>;
export type TokenRow = Selectable<TokensTable>;
export type JobRow = Selectable<JobsTable>;
export type NewJob = Insertable<JobsTable>;
export type LogRow = Selectable<JobLogsTable>;
export type AgentRow = Selectable<AgentsTable>;

/** What a job asks of its sandbox, stored as JSON in jobs.spec. */
export interface JobSpec {
  vcpus: number;
  memory_mb: number;
  timeout_s: number;
  network: 'internet' | 'none';
  disk_gb: number;
  environment: Record<string, string>;
}
