// `mags server`: the one place embedded mode is wired. It starts the control plane and an agent in this
// process, joins them with an in-process link, stores the first start's token in config.json, and stops
// both on SIGINT/SIGTERM.
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
// The control plane and agent (Fastify, database drivers, the S3 client) load only when `mags server` runs,
// so every other command starts quickly.
import type { Agent, AgentConfig } from '@mags/agent';
import { createInProcessLink, formatDuration as formatGrace } from '@mags/api';
import { type GcReport, readConfigFile } from '@mags/sdk';
import type { MagsServer, ServerConfig } from '@mags/server';
import type { Command } from 'commander';
import { configPath, isLoopbackUrl, magsHome, serverPidPath, updateConfig } from '../config.js';
import { connect } from '../connect.js';
import { UsageError } from '../errors.js';
import { formatBytes, note, printError, printJson } from '../output.js';
import { duration, integer } from './parse.js';

interface ServerFlags {
  host?: string;
  port?: number;
  dataDir?: string;
  database?: string;
  logLevel?: string;
  foreground?: boolean;
  instance?: string;
  stateDir?: string;
  poolSize?: number;
  capacity?: number;
  objects?: string;
  workspaceTtl?: number;
  warm?: number;
  syncInterval?: number;
  usageInterval?: number;
  maxDiskGbPerUser?: number;
  sandboxDiskGb?: number;
  maxLogMb?: number;
  retainDays?: number;
  maxFollowers?: number;
  gcInterval?: number;
  gcGrace?: number;
  sleepAfter?: number;
  stopAfter?: number;
  sshPort?: number;
  sshHost?: string;
  routerPort?: number;
  appsDomain?: string;
  e2bPort?: number;
  e2bDomain?: string;
  tlsCert?: string;
  routerFront?: string;
  tlsKey?: string;
  oidcIssuer?: string;
  oidcClientId?: string;
  oidcClientSecret?: string;
  oidcNameClaim?: string;
}

/** The range of the durations --gc-interval, --gc-grace, --sleep-after, --stop-after (the server checks the same). */
const GC_DURATION = [1000, 30 * 86_400_000] as const;

/** How long a graceful stop may take before the process exits anyway. */
const STOP_TIMEOUT_MS = 30_000;

/** Set once `mags server` runs: its handles keep the process alive and its signal handlers end it, not main. */
let serving = false;
export const isServing = (): boolean => serving;

export function registerServer(program: Command): void {
  const server = program
    .command('server')
    .description('Run the Mags server (control plane + an agent for this host) in the foreground')
    .option('--host <host>', 'address to listen on (default: 127.0.0.1; 0.0.0.0 serves other machines)')
    .option('--port <port>', 'port to listen on (default: 7373)', integer('--port', 0, 65535))
    .option('--data-dir <dir>', 'where the server keeps its data (default: $MAGS_HOME, i.e. ~/.mags)')
    .option('--database <url>', 'postgres://… URL, or a SQLite file (default: <data-dir>/mags.db)')
    .option('--log-level <level>', 'fatal, error, warn, info, debug, trace or silent (default: info)')
    .option(
      '--foreground',
      'run in the foreground (the default; the CLI starts a background server by itself when needed)',
    )
    .option(
      '--instance <tag>',
      "tag keeping this agent's host objects apart from another agent's on the same host (default: $MAGS_AGENT_INSTANCE or 0)",
    )
    .option('--state-dir <dir>', 'where the agent keeps sandboxes and images (default: /var/lib/mags)')
    .option('--pool-size <n>', 'sandboxes kept warm ahead of demand (default: 2)', integer('--pool-size', 0, 1000))
    .option('--capacity <n>', 'sandboxes this host runs at once (default: 16)', integer('--capacity', 1, 10000))
    .option(
      '--objects <url>',
      'object store for persistent workspaces and uploads: a directory, or s3://[KEY:SECRET@]BUCKET?endpoint=URL (default: <data-dir>/objects)',
    )
    .option(
      '--workspace-ttl <seconds>',
      'delete a local workspace (-w without -p) after this long unused (default: 600)',
      integer('--workspace-ttl', 1, 31_536_000),
    )
    .option(
      '--warm <seconds>',
      'keep a workspace mounted, with a sandbox ready on it, this long after a run (default: 300; 0 = never)',
      integer('--warm', 0, 86_400),
    )
    .option(
      '--sync-interval <seconds>',
      'sync persistent workspaces this often while a sandbox runs (default: 300; 0 = only after runs)',
      integer('--sync-interval', 0, 86_400),
    )
    .option(
      '--usage-interval <seconds>',
      "report a running sandbox's usage (CPU, memory, egress) this often; it is also reported when it ends (default: 60)",
      integer('--usage-interval', 1, 86_400),
    )
    .option(
      '--max-disk-gb-per-user <GB>',
      "the most GB of workspace disks one user's workspaces may have together (default: 1024)",
      integer('--max-disk-gb-per-user', 1, 1_000_000),
    )
    .option(
      '--sandbox-disk-gb <GB>',
      'the disk of a sandbox without a workspace (a run without -w, an E2B base sandbox) and of the warm pool: a smaller one lets a host hold more at once (default: 2)',
      integer('--sandbox-disk-gb', 1, 1024),
    )
    .option(
      '--max-log-mb <mb>',
      'output stored per job; past it the rest is dropped and a last line says so (default: 64)',
      integer('--max-log-mb', 1, 1_048_576),
    )
    .option(
      '--retain-days <days>',
      'delete finished jobs and their output this many days after they ended (default: 30; 0 = keep them)',
      integer('--retain-days', 0, 36_500),
    )
    .option(
      '--max-followers <n>',
      'live log streams one user may hold open at once (default: 64)',
      integer('--max-followers', 1, 100_000),
    )
    .option(
      '--gc-interval <duration>',
      'garbage-collect the object store this often, e.g. 30m (default: 1h; 0 or off = only on demand)',
      duration('--gc-interval', ...GC_DURATION, true),
    )
    .option(
      '--gc-grace <duration>',
      'keep unreferenced objects this long; syncs must finish within a quarter of it (default: 2h)',
      duration('--gc-grace', ...GC_DURATION, false),
    )
    .option(
      '--sleep-after <duration>',
      'freeze a long-lived sandbox after this long idle: no exec or SSH session, almost no CPU (default: 10m)',
      duration('--sleep-after', ...GC_DURATION, false),
    )
    .option(
      '--stop-after <duration>',
      'stop a sandbox frozen this long, syncing its workspace and freeing its memory (default: 1h)',
      duration('--stop-after', ...GC_DURATION, false),
    )
    .option(
      '--ssh-port <port>',
      'port of the SSH gateway into sandboxes, on --host (default: 2222, or $MAGS_SSH_PORT; 0 = no SSH)',
      integer('--ssh-port', 0, 65535),
    )
    .option(
      '--ssh-host <host>',
      'host name `mags ssh` and the access route tell clients to reach the gateway by (default: the host name the API was reached by)',
    )
    .option(
      '--router-port <port>',
      'port of the router that serves sandbox URLs (<subdomain>.<apps-domain>), on --host (default: 7380, or $MAGS_ROUTER_PORT; 0 = no URLs)',
      integer('--router-port', 0, 65535),
    )
    .option(
      '--apps-domain <domain>',
      'the wildcard domain URLs live under (default: localhost, so http://<subdomain>.localhost:7380 needs no DNS)',
    )
    .option(
      '--e2b-port <port>',
      'serve the E2B-compatible API (the official `e2b` SDK with E2B_API_URL=http://<host>:<port>) on this port, on --host (default: off, or $MAGS_E2B_PORT)',
      integer('--e2b-port', 0, 65535),
    )
    .option(
      '--e2b-domain <domain[:port]>',
      "the domain E2B sandboxes report: the SDK's getHost(port) is <port>-<id>.<domain> (default: <apps-domain>:<router port>, or $MAGS_E2B_DOMAIN)",
    )
    .option(
      '--tls-cert <file>',
      'PEM certificate (chain) for *.<apps-domain>: the router serves HTTPS (with --tls-key)',
    )
    .option('--tls-key <file>', 'PEM private key of --tls-cert')
    .option(
      '--router-front <front>',
      'haproxy (default: HAProxy relays public URLs of awake sandboxes, the Node router the rest; needs the haproxy package, else node) or node (the Node router alone); or $MAGS_ROUTER_FRONT',
    )
    .option('--oidc-issuer <url>', 'offer single sign-on through this OpenID Connect provider (or $MAGS_OIDC_ISSUER)')
    .option('--oidc-client-id <id>', "the server's client id at the provider (or $MAGS_OIDC_CLIENT_ID)")
    .option(
      '--oidc-client-secret <secret>',
      'its client secret (better: $MAGS_OIDC_CLIENT_SECRET, which other users cannot see in the process list)',
    )
    .option(
      '--oidc-name-claim <claim>',
      'the ID token claim naming the Mags user, who must exist (default: preferred_username; e.g. email)',
    )
    .addHelpText(
      'after',
      `
The first start creates the local owner and its API token and writes both the address and the token to
$MAGS_HOME/config.json (mode 0600), which the CLI and SDK read. Logs go to stdout as JSON lines.
Ctrl-C (or SIGTERM) stops every sandbox, then the server. Sandboxes need root, crun and the root image
(./setup.sh installs them).

Examples:
  $ sudo mags server
  $ sudo mags server --host 0.0.0.0 --port 7373
  $ sudo mags server --database postgres://mags@db.internal/mags
  $ sudo mags server --objects 's3://mags-workspaces?endpoint=http://127.0.0.1:7480'
  $ sudo mags server --max-log-mb 16 --retain-days 7
  $ sudo mags server --gc-interval 6h
  $ sudo mags server --host 0.0.0.0 --ssh-port 2222 --ssh-host sandboxes.example.com
  $ sudo mags server --host 0.0.0.0 --router-port 443 --apps-domain apps.example.com \\
      --tls-cert /etc/mags/apps.pem --tls-key /etc/mags/apps.key
  $ sudo mags server --e2b-port 3000    # then E2B_API_URL=http://127.0.0.1:3000 E2B_SANDBOX_URL=http://127.0.0.1:3000
  $ MAGS_OIDC_CLIENT_SECRET=… sudo -E mags server --oidc-issuer https://accounts.google.com --oidc-client-id ID --oidc-name-claim email
  $ mags server gc`,
    )
    .action(async (flags: ServerFlags) => {
      await serve(flags);
    });

  server
    .command('gc')
    .description('Garbage-collect the object store of the configured server now, and print what it freed (owner only)')
    .option('--json', 'print the result as JSON ({ bytesDeleted, blobsDeleted, packsDeleted, manifestsDeleted, … })')
    .addHelpText(
      'after',
      `
Deletes the versions of deleted workspaces, and the blobs and packs that no kept version or fork references once
they are older than the server's --gc-grace (default 2h); younger ones are counted as kept. The server also does
this by itself every --gc-interval (default 1h).

Examples:
  $ mags server gc
  $ mags server gc --json | jq .bytesDeleted`,
    )
    .action(async (flags: { json?: boolean }) => {
      const mags = await connect();
      note('collecting garbage in the object store…');
      const r = await mags.gc();
      if (flags.json) return printJson(r);
      process.stdout.write(`${describeGc(r)}\n`);
    });
}

function describeGc(r: GcReport): string {
  const n = (count: number, one: string) => `${count} ${one}${count === 1 ? '' : 's'}`;
  const deleted = `${n(r.manifestsDeleted, 'version')}, ${n(r.blobsDeleted, 'blob')} and ${n(r.packsDeleted, 'pack')}`;
  const inUse = `${n(r.blobsReferenced, 'blob')} and ${n(r.packsReferenced, 'pack')} in use (${n(r.bases, 'fork base')})`;
  const young = `${n(r.blobsSpared, 'unreferenced blob')} and ${n(r.packsSpared, 'pack')} younger than ${formatGrace(r.graceMs)}`;
  return `freed ${formatBytes(r.bytesDeleted)}: ${deleted} deleted\nkept ${inUse}\n${young} (gone in a later run)`;
}

async function serve(flags: ServerFlags): Promise<void> {
  const [{ loadAgentConfig, startAgent }, { createServer, resolveServerConfig }] = await Promise.all([
    import('@mags/agent'),
    import('@mags/server'),
  ]);
  const env = process.env;
  // The S3 client warns about Node 20 on every construction; the supported range is ours to state.
  env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED = 'true';
  const home = magsHome(env);
  let config: ServerConfig;
  let agentConfig: AgentConfig;
  try {
    config = resolveServerConfig(
      {
        dataDir: flags.dataDir ?? env.MAGS_DATA_DIR ?? home,
        database: flags.database,
        host: flags.host,
        port: flags.port,
        logLevel: flags.logLevel,
        objects: flags.objects,
        maxDiskGbPerUser: flags.maxDiskGbPerUser,
        sandboxDiskGb: flags.sandboxDiskGb,
        maxLogMb: flags.maxLogMb,
        retainDays: flags.retainDays,
        maxFollowersPerUser: flags.maxFollowers,
        gcIntervalMs: flags.gcInterval,
        gcGraceMs: flags.gcGrace,
        sleepAfterMs: flags.sleepAfter,
        stopAfterMs: flags.stopAfter,
        sshPort: flags.sshPort,
        sshHost: flags.sshHost,
        routerPort: flags.routerPort,
        appsDomain: flags.appsDomain,
        e2bPort: flags.e2bPort,
        e2bDomain: flags.e2bDomain,
        tlsCert: flags.tlsCert,
        tlsKey: flags.tlsKey,
        routerFront: flags.routerFront,
        oidcIssuer: flags.oidcIssuer,
        oidcClientId: flags.oidcClientId,
        oidcClientSecret: flags.oidcClientSecret,
        oidcNameClaim: flags.oidcNameClaim,
      },
      env,
    );
    const seconds = (s: number | undefined) => (s === undefined ? undefined : s * 1000);
    agentConfig = loadAgentConfig({
      instance: flags.instance ?? (env.MAGS_AGENT_INSTANCE?.trim() || undefined),
      stateDir: flags.stateDir,
      poolSize: flags.poolSize,
      capacity: flags.capacity,
      // The warm pool's layers have the size of a sandbox without a workspace, so that such a sandbox takes one.
      defaults: { memoryMb: 1024, vcpus: 1, pids: 1024, diskGb: config.sandboxDiskGb },
      // One store for both halves of the embedded server.
      objects: config.objects,
      objectsCredentials: { accessKeyId: env.AWS_ACCESS_KEY_ID, secretAccessKey: env.AWS_SECRET_ACCESS_KEY },
      localWorkspaceTtlMs: seconds(flags.workspaceTtl),
      warmMs: seconds(flags.warm),
      syncIntervalMs: seconds(flags.syncInterval),
      usageReportMs: seconds(flags.usageInterval),
      // Syncs must keep to the grace period of the gc this server runs (packages/objects/src/sync/gc-policy.ts).
      gcGraceMs: config.gcGraceMs,
    });
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
  mkdirSync(config.dataDir, { recursive: true, mode: 0o700 });

  const server = await createServer(config);
  // Store a new token at once: were listening to fail, it would otherwise be lost (only its hash is kept).
  if (server.localToken) updateConfig(env, { api_token: server.localToken });

  let url: string;
  try {
    url = await server.listen();
  } catch (err) {
    await server.close().catch(() => undefined);
    if ((err as NodeJS.ErrnoException).code === 'EADDRINUSE') {
      throw new Error(
        `${config.host}:${config.port} is already in use: is another mags server running? (choose another --port)`,
      );
    }
    throw err;
  }
  // The CLI and SDK find this server through config.json: always on the first start (with the new token);
  // later, when the file names no server or a local one (so `--port` changes follow), never over a remote one.
  let configured: unknown;
  try {
    configured = readConfigFile(configPath(env)).api_url;
  } catch {
    configured = undefined;
  }
  if (server.localToken) {
    const file = updateConfig(env, { api_url: url, api_token: server.localToken });
    server.logger.info({ file }, 'stored the local API token');
  } else if (typeof configured !== 'string' || (configured !== url && isLoopbackUrl(configured))) {
    updateConfig(env, { api_url: url });
  }
  writePidFile(serverPidPath(env));

  let agent: Agent | undefined;
  let stopping = false;
  const stop = async (signal: string) => {
    if (stopping) {
      printError(`${signal} again: exiting without waiting for sandboxes to stop`);
      process.exit(1);
    }
    stopping = true;
    server.logger.info({ signal }, 'stopping');
    const forced = setTimeout(() => {
      printError(`the server did not stop within ${STOP_TIMEOUT_MS / 1000} s; exiting`);
      process.exit(1);
    }, STOP_TIMEOUT_MS);
    forced.unref();
    await shutdown(agent, server);
    removePidFile(serverPidPath(env));
    process.exit(0);
  };
  process.on('SIGINT', () => void stop('SIGINT'));
  process.on('SIGTERM', () => void stop('SIGTERM'));
  // From here the signal handlers end the process (also one that arrives while the agent starts).
  serving = true;

  // Join before the agent starts: its hello is the first message on the link.
  const link = createInProcessLink();
  server.attachAgent(link.server);
  try {
    agent = await startAgent(agentConfig, link.agent, server.logger.child({ service: 'mags-agent' }));
  } catch (err) {
    link.agent.close();
    await server.close().catch(() => undefined);
    removePidFile(serverPidPath(env));
    throw new Error(`the agent could not start: ${(err as Error).message}`);
  }
  if (stopping) return;
  process.stderr.write(`mags server listening on ${url} (data in ${config.dataDir})\n`);
  if (existsSync(join(config.dashboardDir, 'index.html'))) {
    process.stderr.write(`the dashboard: ${url}/ (the owner sets a password with mags user password)\n`);
  }
}

async function shutdown(agent: Agent | undefined, server: MagsServer): Promise<void> {
  try {
    await agent?.close();
  } catch (err) {
    server.logger.error({ err }, 'stopping the agent failed');
  }
  try {
    await server.close();
  } catch (err) {
    printError(`closing the server failed: ${(err as Error).message}`);
  }
}

/** Records this process as the running local server, so the CLI does not start another beside it. */
function writePidFile(file: string): void {
  try {
    writeFileSync(file, `${process.pid}\n`, { mode: 0o600 });
  } catch {
    /* only a hint for the CLI */
  }
}

/** Removes the pid file when it names this process. */
function removePidFile(file: string): void {
  try {
    if (Number(readFileSync(file, 'utf8').trim()) === process.pid) rmSync(file, { force: true });
  } catch {
    /* none */
  }
}
