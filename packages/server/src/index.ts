// @mags/server: the control plane. createServer() opens the store (running migrations), creates the local
// owner on first start, recovers from a previous run, and returns a server ready to listen and take agents.
import type { AddressInfo } from 'node:net';
import { pino, type Logger } from 'pino';
import type { ServerEnd } from '@mags/api';
import { type ObjectStore, openObjectStore, redact as redactObjects } from '@mags/objects';
import { type MagsApp, buildApp } from './app.js';
import { Auth } from './auth.js';
import { type ServerConfig, redactUrl, resolveServerConfig } from './config.js';
import type { ServerContext } from './context.js';
import { JobEvents } from './events.js';
import type { LogStream } from './http/log-stream.js';
import { JobOutput } from './job-output.js';
import { JobRetention } from './retention.js';
import { Scheduler } from './scheduler.js';
import { Store } from './store/index.js';
import { type WorkspaceTimeouts, Workspaces } from './workspaces.js';
import { StorageReclaim } from './workspaces/reclaim.js';

export { resolveServerConfig, storeKindOf, redactUrl, DEFAULT_HOST, DEFAULT_PORT, LOG_LEVELS } from './config.js';
export type { ServerConfig, ServerConfigInput, ServerEnvironment, LogLevel, ServerMode, StoreKind } from './config.js';
export { Store } from './store/index.js';
export type { JobRow, LogRow, AgentRow, UserRow, TokenRow, JobSpec, WorkspaceRow, FileRow } from './store/index.js';
export type { WorkspaceTimeouts } from './workspaces.js';
export { Auth, generateToken, hashToken } from './auth.js';
export type { AuthenticatedUser } from './auth.js';
export type { MagsApp } from './app.js';

export interface CreateServerOptions {
  /** A logger to use instead of creating one at config.logLevel (e.g. to share one with an embedded agent). */
  logger?: Logger;
  /** How long agents may take to answer workspace orders (defaults: 60 s, and 10 min for a sync). */
  workspaceTimeouts?: Partial<WorkspaceTimeouts>;
  /** How often finished jobs past their retention are deleted (default: hourly, and once at start). */
  retentionSweepMs?: number;
}

export interface MagsServer {
  readonly config: ServerConfig;
  /** The Fastify instance, e.g. for `app.inject()` in tests. */
  readonly app: MagsApp;
  readonly store: Store;
  /** The object store of persistent workspaces, bases and uploads (config.objects). */
  readonly objects: ObjectStore;
  readonly auth: Auth;
  /** In-process notifications about jobs; long-polls and log followers are its listeners. */
  readonly events: JobEvents;
  readonly logger: Logger;
  /** The local owner's token, only on the start that created the owner (the first start on a fresh store). */
  readonly localToken: string | undefined;
  /** Joins an agent: the server end of an in-process link, or of a WebSocket in cluster mode. */
  attachAgent(link: ServerEnd): void;
  /** Starts listening on config.host:config.port and returns the base URL (e.g. http://127.0.0.1:7373). */
  listen(): Promise<string>;
  /** Stops HTTP (pending long-polls and log streams end), closes agent links, then the store. Idempotent. */
  close(): Promise<void>;
}

export async function createServer(config: ServerConfig, options: CreateServerOptions = {}): Promise<MagsServer> {
  // Validate (and normalise) even a config built by hand; nothing from the environment is read here.
  const cfg = resolveServerConfig(config, {});
  const logger = options.logger ?? pino({ level: cfg.logLevel, base: { service: 'mags-server' }, redact: ['req.headers.authorization'] });

  // The S3 client warns about Node 20 on every construction; the supported range is ours to state. (The one
  // write to process.env in the server, before the client library reads it.)
  process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';
  const objects = openObjectStore(cfg.objects, cfg.objectsCredentials);
  let store: Store;
  try {
    store = await Store.open(cfg.database, logger, { localWorkspaceTtlMs: cfg.localWorkspaceTtlS * 1000 });
  } catch (err) {
    await objects.close().catch(() => undefined);
    throw err;
  }
  let app: MagsApp | undefined;
  let scheduler: Scheduler | undefined;
  let retention: JobRetention | undefined;
  try {
    const events = new JobEvents();
    const auth = new Auth(store);
    const localToken = await auth.bootstrapOwner();
    const output = new JobOutput({ store, events, logger, maxLogMb: cfg.maxLogMb });
    scheduler = new Scheduler(store, events, logger, output);
    const workspaces = new Workspaces({
      store,
      objects,
      scheduler,
      logger,
      localTtlMs: cfg.localWorkspaceTtlS * 1000,
      maxDiskGbPerUser: cfg.maxDiskGbPerUser,
      timeouts: options.workspaceTimeouts,
    });
    await scheduler.recover();
    const reclaim = new StorageReclaim({ objects, logger, intervalMs: cfg.gcIntervalMs, graceMs: cfg.gcGraceMs });

    const shutdown = new AbortController();
    const streams = new Set<LogStream>();
    const ctx: ServerContext = {
      config: cfg,
      store,
      auth,
      scheduler,
      objects,
      workspaces,
      reclaim,
      events,
      logger,
      startedAt: Date.now(),
      shutdown: shutdown.signal,
      streams,
    };
    app = await buildApp(ctx);
    await app.ready();
    logger.info(
      { store: store.kind, database: redactUrl(cfg.database), objects: redactObjects(cfg.objects), mode: cfg.mode },
      'server ready',
    );
    if (localToken) logger.info('created the local owner and its token');
    retention = new JobRetention(store, logger, cfg.retainDays, options.retentionSweepMs);
    retention.start();
    reclaim.start();

    const sched = scheduler;
    const sweeper = retention;
    const fastify = app;
    let closing: Promise<void> | undefined;
    return {
      config: cfg,
      app: fastify,
      store,
      objects,
      auth,
      events,
      logger,
      localToken,
      attachAgent: (link) => sched.attachAgent(link),
      async listen() {
        const address = await fastify.listen({ host: cfg.host, port: cfg.port });
        const info = fastify.server.address() as AddressInfo | null;
        if (!info) return address;
        const host = info.address === '0.0.0.0' ? '127.0.0.1' : info.address === '::' ? '::1' : info.address;
        const url = `http://${host.includes(':') ? `[${host}]` : host}:${info.port}`;
        logger.info({ url }, 'listening');
        return url;
      },
      close() {
        closing ??= (async () => {
          shutdown.abort();
          // Before the HTTP server closes: it waits for requests under way, such as a POST /admin/gc.
          const reclaimed = reclaim.close();
          for (const stream of streams) stream.stop();
          await fastify.close();
          await reclaimed;
          await sweeper.close();
          await sched.close();
          await output.close();
          await store.close();
          await objects.close().catch((err: unknown) => logger.warn({ err }, 'closing the object store failed'));
          logger.info('server closed');
        })();
        return closing;
      },
    };
  } catch (err) {
    await app?.close().catch(() => undefined);
    await retention?.close().catch(() => undefined);
    await scheduler?.close().catch(() => undefined);
    await store.close().catch(() => undefined);
    await objects.close().catch(() => undefined);
    throw err;
  }
}
