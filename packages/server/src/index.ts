// @mags/server: the control plane. createServer() opens the store (running migrations), creates the local
// owner on first start, recovers from a previous run, and returns a server ready to listen and take agents.
import type { IncomingMessage, ServerResponse } from 'node:http';
import net, { type AddressInfo } from 'node:net';
import { join } from 'node:path';
import { DEFAULT_ROUTER_PORT, DEFAULT_SSH_PORT, type ServerEnd } from '@mags/api';
import { type ObjectStore, openObjectStore, redact as redactObjects } from '@mags/objects';
import { type Logger, pino } from 'pino';
import { OidcSignIn } from './accounts/oidc.js';
import { registerAccountPages } from './accounts/pages.js';
import { registerAccountRoutes } from './accounts/routes.js';
import { Accounts } from './accounts/service.js';
import { AgentRegistry } from './agents/registry.js';
import { registerAgentRoutes } from './agents/routes.js';
import { redactUrl, resolveServerConfig, type ServerConfig } from './config.js';
import { registerCronRoutes } from './cron/routes.js';
import { CronService } from './cron/service.js';
import { registerDashboard } from './dashboard/routes.js';
import { buildE2bApp } from './e2b/app.js';
import { E2bSandboxes } from './e2b/sandboxes.js';
import { registerFileRoutes } from './files/routes.js';
import { Files } from './files/service.js';
import { buildApp } from './http/app.js';
import { Auth } from './http/auth.js';
import type { MagsApp } from './http/request.js';
import { Dispatcher } from './jobs/dispatch.js';
import { JobEvents } from './jobs/events.js';
import { ExecService } from './jobs/exec.js';
import { SandboxLifecycle } from './jobs/lifecycle.js';
import { LogFollowers } from './jobs/log-stream.js';
import { JobOutput } from './jobs/output.js';
import { JobReports } from './jobs/reports.js';
import { JobRetention } from './jobs/retention.js';
import { registerJobRoutes } from './jobs/routes.js';
import { JobService } from './jobs/service.js';
import { sleepTimers } from './jobs/spec.js';
import { findHaproxy, HaproxyFront } from './router/front.js';
import { Router } from './router/proxy.js';
import { registerRouterRoutes } from './router/routes.js';
import { UrlService } from './router/urls.js';
import { SshGateway } from './ssh/gateway.js';
import { loadHostKey, SshKeys } from './ssh/keys.js';
import { registerSshRoutes } from './ssh/routes.js';
import { Store } from './store/index.js';
import { registerUsageRoutes } from './usage/routes.js';
import { UsageService } from './usage/service.js';
import { StorageReclaim } from './workspaces/reclaim.js';
import { registerReclaimRoutes } from './workspaces/reclaim-route.js';
import { registerWorkspaceRoutes } from './workspaces/routes.js';
import { Workspaces, type WorkspaceTimeouts } from './workspaces/service.js';

export type { LogLevel, ServerConfig, ServerConfigInput, ServerEnvironment, StoreKind } from './config.js';
export { DEFAULT_HOST, DEFAULT_PORT, LOG_LEVELS, redactUrl, resolveServerConfig, storeKindOf } from './config.js';
export type { AuthenticatedUser } from './http/auth.js';
export { Auth, generateToken, hashToken } from './http/auth.js';
export type { MagsApp } from './http/request.js';
export type {
  AgentRow,
  FileRow,
  Job,
  JobSpec,
  LogRow,
  SshKeyRow,
  TokenRow,
  UserRow,
  WorkspaceRow,
} from './store/index.js';
export { Store } from './store/index.js';
export type { WorkspaceTimeouts } from './workspaces/service.js';

export interface CreateServerOptions {
  /** A logger to use instead of creating one at config.logLevel (e.g. to share one with an embedded agent). */
  logger?: Logger;
  /** How long agents may take to answer workspace orders (defaults: 60 s, and 10 min for a sync). */
  workspaceTimeouts?: Partial<WorkspaceTimeouts>;
  /** How often finished jobs past their retention are deleted (default: hourly, and once at start). */
  retentionSweepMs?: number;
  /** Commands (execs and SSH sessions) one user may run at once (default: MAX_EXECS_PER_USER). */
  maxExecsPerUser?: number;
  /** The cron scheduler: how often it looks for due cron jobs (default 1 s) and its clock (tests shorten it). */
  cron?: { tickMs?: number; now?: () => number };
  /** How often every user's storage figure is recorded for usage (default hourly). */
  usageStorageSampleMs?: number;
  /** The first wait of the sign-in throttle after repeated failures, in ms (default 1000; doubles each time). */
  signInThrottleMs?: number;
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
  /** Joins an agent: the server end of an in-process link. */
  attachAgent(link: ServerEnd): void;
  /** Opens commands in sandboxes (the exec route's and the SSH gateway's way in), e.g. for tests. */
  readonly execs: ExecService;
  /** Wakes sandboxes and puts them to sleep (E2B's pause), e.g. for tests. */
  readonly lifecycle: SandboxLifecycle;
  /** The cron scheduler, e.g. for tests to tick it. */
  readonly cron: CronService;
  /**
   * Starts listening on config.host:config.port and returns the base URL (e.g. http://127.0.0.1:7373); the SSH
   * gateway on config.sshPort too, unless it is 0.
   */
  listen(): Promise<string>;
  /** The SSH gateway's port once it listens (undefined without a gateway). */
  sshPort(): number | undefined;
  /** The router's port once it listens (undefined without a router). */
  routerPort(): number | undefined;
  /** The E2B-compatible API's port once it listens (undefined without `--e2b-port`). */
  e2bPort(): number | undefined;
  /** HAProxy in front of the router, when it serves the router port. */
  routerFront(): HaproxyFront | undefined;
  /** Stops HTTP (pending long-polls and log streams end), closes agent links, then the store. Idempotent. */
  close(): Promise<void>;
}

export async function createServer(config: ServerConfig, options: CreateServerOptions = {}): Promise<MagsServer> {
  // Validate (and normalise) even a config built by hand; nothing from the environment is read here.
  const cfg = resolveServerConfig(config, {});
  const logger =
    options.logger ??
    pino({ level: cfg.logLevel, base: { service: 'mags-server' }, redact: ['req.headers.authorization'] });

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
  let agents: AgentRegistry | undefined;
  let dispatcher: Dispatcher | undefined;
  let retention: JobRetention | undefined;
  try {
    const events = new JobEvents();
    const auth = new Auth(store.users, store.sessions);
    const localToken = await auth.bootstrapOwner();
    const output = new JobOutput({ store, events, logger, maxLogMb: cfg.maxLogMb });
    const reports = new JobReports({ store, output, events, logger });
    const usage = new UsageService({ store, logger, storageSampleMs: options.usageStorageSampleMs });
    // The domains need each other both ways at run time (agents report to jobs and workspaces, which send agents
    // orders), never while they are built: so what the registry learns is routed here, by name, to the services
    // built below it. Nothing is delivered before an agent attaches, after createServer returns.
    const registry: AgentRegistry = new AgentRegistry(
      store.agents,
      {
        jobReport: (agentId, report, log) => reports.report(agentId, report, log),
        agentLeft: (agentId, jobIds, reason, log) => reports.agentLeft(agentId, jobIds, reason, log),
        workspaceReport: (agentId, report) => workspaces.report(agentId, report),
        usageReport: (agentId, report, log) => {
          e2b.usageReport(report);
          return usage.report(agentId, report, log);
        },
        slotsFreed: () => dispatch.requestDispatch(),
      },
      logger,
    );
    agents = registry;
    const sleep = sleepTimers(cfg.sleepAfterMs, cfg.stopAfterMs);
    const dispatch = new Dispatcher({ store, agents: registry, events, logger, sleep });
    dispatcher = dispatch;
    const files = new Files({ store, objects, logger, maxUploadBytes: cfg.maxUploadBytes });
    const workspaces: Workspaces = new Workspaces({
      store,
      objects,
      agents: registry,
      stopJob: (jobId) => jobs.stopById(jobId),
      logger,
      localTtlMs: cfg.localWorkspaceTtlS * 1000,
      maxDiskGbPerUser: cfg.maxDiskGbPerUser,
      timeouts: options.workspaceTimeouts,
    });
    const jobs: JobService = new JobService({
      store,
      events,
      agents: registry,
      dispatcher: dispatch,
      workspaces,
      files,
      logger,
      sandboxDiskGb: cfg.sandboxDiskGb,
    });
    const followers = new LogFollowers(
      { store, events, logger, urlOf: (sub) => urls.urlOf(sub) },
      cfg.maxFollowersPerUser,
    );
    const lifecycle = new SandboxLifecycle({ store, agents: registry, dispatcher: dispatch, events, logger, sleep });
    const execs = new ExecService({
      store,
      agents: registry,
      logger,
      lifecycle,
      ...(options.maxExecsPerUser !== undefined ? { maxPerUser: options.maxExecsPerUser } : {}),
      startSandbox: (userId, name) => jobs.submit(userId, { long_lived: true, workspace_id: name, persistent: true }),
    });
    const e2b: E2bSandboxes = new E2bSandboxes({ store, jobs, lifecycle, workspaces, events, logger });
    const cron = new CronService({
      store,
      logger,
      submit: (userId, body) => jobs.submit(userId, body),
      tickMs: options.cron?.tickMs,
      now: options.cron?.now,
    });
    const sshKeys = new SshKeys({ store, logger });
    const accounts = new Accounts({
      store,
      auth,
      logger,
      throttleBaseMs: options.signInThrottleMs,
      async stopUserJobs(userId) {
        const ids = await store.jobs.unfinishedOf(userId);
        for (const id of ids)
          await jobs.stopById(id).catch((err: unknown) => logger.warn({ err, job: id }, 'stop failed'));
        return ids.length;
      },
      async deleteUserData(userId) {
        for (const w of await store.workspaces.list(userId)) await workspaces.deleteWorkspace(userId, w.name, true);
        for (const f of await store.files.list(userId)) await files.delete(userId, f.id);
      },
    });
    const gateway =
      cfg.sshPort === 0
        ? undefined
        : new SshGateway({ keys: sshKeys, execs, logger, hostKey: loadHostKey(cfg.dataDir, logger) });
    let sshPort: number | undefined;
    let routerPort: number | undefined;
    /** The E2B app's request handler, for the router's E2B host names (set once the app is built). */
    let e2bRouting: ((req: IncomingMessage, res: ServerResponse) => void) | undefined;
    const urls: UrlService = new UrlService({
      store,
      events,
      logger,
      appsDomain: cfg.appsDomain,
      router: (): { port: number; tls: boolean } | undefined =>
        routerPort === undefined ? undefined : { port: routerPort, tls: router?.tls ?? false },
    });
    const router: Router | undefined =
      cfg.routerPort === 0
        ? undefined
        : new Router({
            urls,
            agents: registry,
            lifecycle,
            auth,
            logger,
            sleepAfterMs: cfg.sleepAfterMs,
            ...(cfg.tlsCert && cfg.tlsKey ? { tls: { cert: cfg.tlsCert, key: cfg.tlsKey } } : {}),
            // E2B's host names (api, 49983-<id>, <port>-<id>) once the E2B app exists (it is built below).
            ...(cfg.e2bPort === 0
              ? {}
              : {
                  e2b: {
                    handle: (req, res) => (e2bRouting ? e2bRouting(req, res) : res.writeHead(503).end()),
                    resolve: (id) => e2b.resolve(id),
                    domain: () =>
                      cfg.e2bDomain ?? (routerPort === undefined ? cfg.appsDomain : `${cfg.appsDomain}:${routerPort}`),
                  },
                }),
          });
    let front: HaproxyFront | undefined;
    if (router && cfg.routerFront === 'haproxy') {
      const haproxy = findHaproxy();
      if (router.tls) {
        logger.info(
          'router: TLS is terminated by the Node router, which serves the router port alone (no HAProxy front)',
        );
      } else if (!haproxy) {
        logger.warn(
          'router: haproxy is not installed: the Node router serves URLs alone (slower; install the haproxy package, as scripts/install-host-packages.sh does)',
        );
      } else {
        const routerRef = router;
        front = new HaproxyFront({
          haproxy,
          dir: join(cfg.dataDir, 'router-front'),
          logger,
          routes: () => urls.publicRoutes(),
          activity: (host) => void routerRef.frontActivity(host),
        });
        const routerFront = front;
        events.onAnyStatus(() => routerFront.sync());
        urls.onChange(() => routerFront.synced());
      }
    }
    await registry.recover();
    await reports.recover();
    const reclaim = new StorageReclaim({ objects, logger, intervalMs: cfg.gcIntervalMs, graceMs: cfg.gcGraceMs });

    const shutdown = new AbortController();
    app = await buildApp({
      logger,
      auth,
      shutdown: shutdown.signal,
      routes: [
        // Embedded is the only mode until agents can dial in over the network.
        (a) => registerAgentRoutes(a, registry, { mode: 'embedded', store: store.kind, startedAt: Date.now() }),
        (a) =>
          registerJobRoutes(a, {
            jobs,
            followers,
            execs,
            agents: registry,
            lifecycle,
            urlOf: (sub) => urls.urlOf(sub),
          }),
        (a) => registerWorkspaceRoutes(a, workspaces),
        (a) => registerFileRoutes(a, files, cfg.maxUploadBytes),
        (a) => registerReclaimRoutes(a, reclaim, auth),
        (a) => registerAccountRoutes(a, accounts, auth),
        (a) => registerAccountPages(a, accounts, cfg.oidc ? new OidcSignIn(cfg.oidc, logger) : undefined),
        (a) =>
          registerSshRoutes(a, {
            keys: sshKeys,
            port: () => sshPort,
            host: cfg.sshHost,
            openUrl: (userId, ref, port, isPrivate) => urls.open(userId, ref, port, isPrivate),
          }),
        (a) => registerRouterRoutes(a, urls),
        (a) => registerCronRoutes(a, cron),
        (a) => registerUsageRoutes(a, usage),
        (a) => registerDashboard(a, cfg.dashboardDir, logger),
      ],
    });
    await app.ready();
    const e2bApp =
      cfg.e2bPort === 0
        ? undefined
        : await buildE2bApp({
            logger,
            auth,
            sandboxes: e2b,
            exec: execs,
            lifecycle,
            shutdown: shutdown.signal,
            domain: () =>
              cfg.e2bDomain ?? (routerPort === undefined ? cfg.appsDomain : `${cfg.appsDomain}:${routerPort}`),
          });
    await e2bApp?.ready();
    if (e2bApp) e2bRouting = (req, res) => e2bApp.routing(req, res);
    let e2bPort: number | undefined;
    logger.info(
      { store: store.kind, database: redactUrl(cfg.database), objects: redactObjects(cfg.objects) },
      'server ready',
    );
    if (localToken) logger.info('created the local owner and its token');
    retention = new JobRetention(store, logger, cfg.retainDays, options.retentionSweepMs);
    retention.start();
    reclaim.start();
    cron.start();
    usage.start();
    await e2b.start();

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
      execs,
      lifecycle,
      cron,
      sshPort: () => sshPort,
      routerPort: () => routerPort,
      e2bPort: () => e2bPort,
      routerFront: () => front,
      attachAgent: (link) => registry.attach(link),
      async listen() {
        const address = await fastify.listen({ host: cfg.host, port: cfg.port });
        if (gateway && sshPort === undefined) {
          try {
            sshPort = await gateway.listen(cfg.host, cfg.sshPort);
          } catch (err) {
            // The default port taken (another server's gateway, an sshd) leaves this server without SSH rather than
            // without an API; a port given on purpose must be free.
            if ((err as NodeJS.ErrnoException).code !== 'EADDRINUSE' || cfg.sshPort !== DEFAULT_SSH_PORT) throw err;
            logger.warn(
              { port: cfg.sshPort },
              `the SSH gateway's port ${cfg.sshPort} is in use: running without SSH (choose another with --ssh-port)`,
            );
          }
        }
        if (router && routerPort === undefined) {
          try {
            if (front) {
              // The port is checked with Node first, so a port in use fails as without the front.
              await assertFree(cfg.host, cfg.routerPort);
              const inner = await router.listenBehindFront();
              await front.start(cfg.host, cfg.routerPort, inner);
              routerPort = cfg.routerPort;
            } else routerPort = await router.listen(cfg.host, cfg.routerPort);
            logger.info(
              { port: routerPort, appsDomain: cfg.appsDomain, tls: router.tls, front: front ? 'haproxy' : 'node' },
              'router listening',
            );
          } catch (err) {
            // As the SSH gateway: the default port taken leaves this server without URLs; a port given must be free.
            if ((err as NodeJS.ErrnoException).code !== 'EADDRINUSE' || cfg.routerPort !== DEFAULT_ROUTER_PORT)
              throw err;
            logger.warn(
              { port: cfg.routerPort },
              `the router's port ${cfg.routerPort} is in use: running without URLs (choose another with --router-port)`,
            );
          }
        }
        if (e2bApp && e2bPort === undefined) {
          try {
            await e2bApp.listen({ host: cfg.host, port: cfg.e2bPort });
          } catch (err) {
            if ((err as NodeJS.ErrnoException).code !== 'EADDRINUSE') throw err;
            throw new Error(`the E2B API's port ${cfg.host}:${cfg.e2bPort} is in use: choose another --e2b-port`);
          }
          e2bPort = (e2bApp.server.address() as AddressInfo).port;
          logger.info({ port: e2bPort, domain: cfg.e2bDomain }, 'E2B-compatible API listening');
        }
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
          await cron.close();
          e2b.close();
          await e2bApp?.close();
          jobs.close();
          followers.stopAll();
          await gateway?.close();
          await front?.close();
          await router?.close();
          await fastify.close();
          await reclaimed;
          await sweeper.close();
          await usage.close();
          // Dispatch first, so that no job goes to an agent whose link is closing; then the links, whose unfinished
          // jobs end as `error`.
          await dispatch.close();
          await registry.close();
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
    await dispatcher?.close().catch(() => undefined);
    await agents?.close().catch(() => undefined);
    await store.close().catch(() => undefined);
    await objects.close().catch(() => undefined);
    throw err;
  }
}

/** Throws EADDRINUSE (as a listen would) when `host:port` is taken. */
function assertFree(host: string, port: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once('error', reject);
    s.listen({ host, port }, () => s.close(() => resolve()));
  });
}
