export type { AgentStore } from './agents.js';
export type { CronPatch, CronStore } from './cron.js';
export type { DeviceLoginStore } from './device-logins.js';
export type { E2bSandboxStore } from './e2b.js';
export type { FileStore } from './files.js';
export type { Job, JobFinish, NewJob, TakeResult, TerminalStatus } from './jobs.js';
export type {
  AgentRow,
  CronJobRow,
  CronRunRow,
  DeviceLoginRow,
  E2bSandboxRow,
  FileRow,
  JobSpec,
  LogRow,
  SessionRow,
  SshKeyRow,
  TokenRow,
  UrlAliasRow,
  UsageDayRow,
  UserRow,
  WorkspaceRow,
} from './schema.js';
export type { SessionStore } from './sessions.js';
export type { SigninLinkStore } from './signin-links.js';
export type { SshKeyStore } from './ssh-keys.js';
export { Store, type StoreOptions } from './store.js';
export type { UrlAliasStore } from './url-aliases.js';
export type { MeterReading, UsageStore } from './usage.js';
export { utcDay } from './usage.js';
export type { TokenSecret, UserStore } from './users.js';
export type { NewWorkspace, WorkspacePatch } from './workspaces.js';
