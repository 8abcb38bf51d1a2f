// @mags/sdk: the Node.js SDK of Mags. `import { Mags } from '@mags/sdk'`, `import Mags from '@mags/sdk'`,
// or from CommonJS `const Mags = require('@mags/sdk')` (as with the hosted service's package) and `const { Mags } = …`.
import { Mags } from './client.js';
import {
  configPath,
  DEFAULT_API_URL,
  isDefaultLocalUrl,
  magsHome,
  readConfigFile,
  resolveConnection,
} from './config.js';
import { MagsApiError, MagsConnectionError, MagsTimeoutError } from './errors.js';
import { LogFollower } from './follow.js';
import { SseParser } from './sse.js';

export type {
  AddedUser,
  ApiToken,
  CreatedToken,
  CreateTokenOptions,
  DeviceLogin,
  DeviceLoginPoll,
  RemovedUser,
  User,
  WhoAmI,
} from './accounts.js';
export { Mags, type MagsOptions, type RunAndWaitOptions } from './client.js';
export {
  type ConfigFile,
  type Connection,
  configPath,
  DEFAULT_API_URL,
  type Environment,
  isDefaultLocalUrl,
  magsHome,
  readConfigFile,
  resolveConnection,
} from './config.js';
export type {
  CronCreateOptions,
  CronJob,
  CronRun,
  CronUpdateOptions,
  UsageDay,
  UsageFigures,
  UsageResult,
} from './cron.js';
export { MagsApiError, MagsConnectionError, MagsTimeoutError } from './errors.js';
export { type ExecChunk, type ExecEnd, type ExecOptions, type ExecResult, ExecStream } from './exec.js';
export { LogFollower } from './follow.js';
export type {
  AgentSummary,
  Job,
  JobListResult,
  JobStatusValue,
  LogEntry,
  NewOptions,
  PoolStatus,
  RunAndWaitResult,
  RunOptions,
  RunResult,
  ServerStatus,
  StopResult,
  UpdateJobOptions,
} from './jobs.js';
export { type SseEvent, SseParser } from './sse.js';
export type { AccessResult, AddSshKeyOptions, SshKey } from './ssh.js';
export type { UrlAccess, UrlAlias, UrlOptions } from './urls.js';
export type {
  CreateWorkspaceOptions,
  DeleteResult,
  DeleteWorkspaceOptions,
  FileListResult,
  GcReport,
  RestoreResult,
  SyncResult,
  UploadedFile,
  UploadOptions,
  UploadProgress,
  Workspace,
  WorkspaceListResult,
  WorkspaceMode,
  WorkspaceVersion,
  WorkspaceVersionsResult,
} from './workspaces.js';
export default Mags;

// What `require('@mags/sdk')` returns: the class itself, carrying the other exports as properties.
const commonjs = Object.assign(Mags, {
  Mags,
  default: Mags,
  MagsApiError,
  MagsConnectionError,
  MagsTimeoutError,
  LogFollower,
  SseParser,
  DEFAULT_API_URL,
  configPath,
  isDefaultLocalUrl,
  magsHome,
  readConfigFile,
  resolveConnection,
});

export { commonjs as 'module.exports' };
