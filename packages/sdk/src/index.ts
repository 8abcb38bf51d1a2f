// @mags/sdk: the Node.js SDK of Mags. `import { Mags } from '@mags/sdk'`, `import Mags from '@mags/sdk'`,
// or from CommonJS `const Mags = require('@mags/sdk')` (as with the hosted service's package) and `const { Mags } = …`.
import { Mags } from './client.js';
import { DEFAULT_API_URL, configPath, isDefaultLocalUrl, magsHome, readConfigFile, resolveConnection } from './config.js';
import { MagsApiError, MagsConnectionError, MagsTimeoutError } from './errors.js';
import { LogFollower } from './follow.js';
import { SseParser } from './sse.js';

export { Mags, type MagsOptions, type RunAndWaitOptions } from './client.js';
export { MagsApiError, MagsConnectionError, MagsTimeoutError } from './errors.js';
export { LogFollower } from './follow.js';
export type {
  AgentSummary,
  Job,
  JobListResult,
  JobStatusValue,
  LogEntry,
  PoolStatus,
  RunAndWaitResult,
  RunOptions,
  RunResult,
  ServerStatus,
  StopResult,
} from './jobs.js';
export type {
  CreateWorkspaceOptions,
  DeleteResult,
  DeleteWorkspaceOptions,
  FileListResult,
  GcReport,
  RestoreResult,
  SyncResult,
  UploadOptions,
  UploadProgress,
  UploadedFile,
  Workspace,
  WorkspaceListResult,
  WorkspaceMode,
  WorkspaceVersion,
  WorkspaceVersionsResult,
} from './workspaces.js';
export {
  type ConfigFile,
  type Connection,
  type Environment,
  DEFAULT_API_URL,
  configPath,
  isDefaultLocalUrl,
  magsHome,
  readConfigFile,
  resolveConnection,
} from './config.js';
export { SseParser, type SseEvent } from './sse.js';
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
