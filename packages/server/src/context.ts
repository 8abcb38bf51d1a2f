// What the HTTP routes share: the parts of a running server, built once in createServer.
import type { Logger } from 'pino';
import type { ObjectStore } from '@mags/objects';
import type { Auth } from './auth.js';
import type { ServerConfig } from './config.js';
import type { JobEvents } from './events.js';
import type { LogStream } from './http/log-stream.js';
import type { Scheduler } from './scheduler.js';
import type { Store } from './store/index.js';
import type { Workspaces } from './workspaces.js';
import type { StorageReclaim } from './workspaces/reclaim.js';

export interface ServerContext {
  config: ServerConfig;
  store: Store;
  auth: Auth;
  scheduler: Scheduler;
  /** Persistent workspaces, bases and uploaded files. */
  objects: ObjectStore;
  workspaces: Workspaces;
  /** Garbage collection of the object store (scheduled, and `POST /api/v1/admin/gc`). */
  reclaim: StorageReclaim;
  events: JobEvents;
  logger: Logger;
  startedAt: number;
  /** Aborted when the server closes: pending long-polls answer at once. */
  shutdown: AbortSignal;
  /** Open log streams, ended when the server closes. */
  streams: Set<LogStream>;
}
