// Server configuration: read once (flags, then environment, then defaults), validated, and passed down.
// Nothing else in the server reads process.env.
import { homedir } from 'node:os';
import { isAbsolute, join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { DEFAULT_ROUTER_PORT, DEFAULT_SSH_PORT, formatDuration, MagsError, parseDuration } from '@mags/api';
import { DEFAULT_GC_GRACE_MS } from '@mags/objects';

export const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];
export type StoreKind = 'sqlite' | 'postgres';

export interface ServerConfig {
  /** Where the server keeps its files (the SQLite database by default). */
  dataDir: string;
  /** A `postgres://…` URL, or the path of a SQLite file. */
  database: string;
  host: string;
  /** 0 picks any free port. */
  port: number;
  logLevel: LogLevel;
  /**
   * The object store for persistent workspaces, bases and uploads: a directory, file:///path, or
   * s3://[KEY:SECRET@]BUCKET[/prefix]?endpoint=… (the agents must use the same store).
   */
  objects: string;
  /** S3 credentials when the URL carries none (from AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY). */
  objectsCredentials: { accessKeyId?: string; secretAccessKey?: string };
  /** Largest uploaded file (`POST /api/v1/mags-files`), in bytes. */
  maxUploadBytes: number;
  /**
   * How long a local workspace lives unused: the agents delete host copies after their own `--workspace-ttl`; the
   * server uses this for `expires_at` and to forget local workspaces that no host holds. Give both the same value.
   */
  localWorkspaceTtlS: number;
  /** The most GB of workspace disks one user's workspaces may have together (`--max-disk-gb-per-user`). */
  maxDiskGbPerUser: number;
  /**
   * The disk (GB) of a sandbox without a workspace (a run without -w, an E2B `base` sandbox): its layer, taken from
   * the agent's warm pool, whose layers have this size too (`--sandbox-disk-gb`, default 2). Each is admitted
   * against the host's free space, so it bounds how many such sandboxes a host holds at once.
   */
  sandboxDiskGb: number;
  /** Stored output per job, in MiB: past it the rest is neither stored nor streamed, and one line says so. */
  maxLogMb: number;
  /** Finished jobs and their output are deleted this many days after they ended (0: kept until deleted). */
  retainDays: number;
  /** Open log streams (followers) one user may hold at once; one more is 429. */
  maxFollowersPerUser: number;
  /** How often the object store is garbage-collected (0: only on demand, `POST /api/v1/admin/gc`). */
  gcIntervalMs: number;
  /**
   * Unreferenced objects younger than this are kept. Syncs must use the same value (they must commit within a
   * quarter of it; the embedded agent is given it), see packages/objects/src/sync/gc-policy.ts.
   */
  gcGraceMs: number;
  /** A long-lived sandbox idle this long is frozen (`sleeping`); `--sleep-after`. */
  sleepAfterMs: number;
  /** A sandbox frozen this long is stopped (its workspace synced, its resources freed); `--stop-after`. */
  stopAfterMs: number;
  /** The SSH gateway's port on `host` (0: no SSH gateway). */
  sshPort: number;
  /** The host name `access` tells clients to reach the gateway by; unset: the host name the API was reached by. */
  sshHost: string | undefined;
  /** The router's port on `host` (0: no router; `--router-port`). */
  routerPort: number;
  /** The built web dashboard served at `/` (`$MAGS_DASHBOARD_DIR`; default: packages/dashboard/dist beside the server). */
  dashboardDir: string;
  /** The domain URLs live under: `<subdomain>.<appsDomain>` (`--apps-domain`, default localhost). */
  appsDomain: string;
  /** The E2B-compatible API's port on `host` (`--e2b-port`; 0: off, the default). */
  e2bPort: number;
  /**
   * The `domain` E2B sandboxes report (`--e2b-domain`): the SDK's `getHost(port)` is `<port>-<id>.<domain>`, which
   * the router serves. Unset: the apps domain with the router's port (`localhost:7380`).
   */
  e2bDomain: string | undefined;
  /** PEM certificate and key files: with both, the router serves HTTPS (and plain HTTP redirects to it). */
  tlsCert: string | undefined;
  tlsKey: string | undefined;
  /**
   * What serves the router port for plain HTTP (`--router-front`): `haproxy` in front of the Node router when it is
   * installed (public URLs of awake sandboxes relayed in C), `node`: the Node router alone.
   */
  routerFront: 'haproxy' | 'node';
  /** Sign-in through an OpenID Connect provider (besides local passwords); unset: passwords only. */
  oidc: OidcConfig | undefined;
}

export interface OidcConfig {
  /** The provider's issuer URL (https; http only on a loopback address, for tests). */
  issuer: string;
  clientId: string;
  clientSecret: string;
  /** The ID token claim that names the Mags user (default `preferred_username`); the user must exist. */
  nameClaim: string;
}

/** What a caller (the `mags server` command, a test) may give; anything missing comes from the environment or defaults. */
export interface ServerConfigInput {
  dataDir?: string;
  database?: string;
  host?: string;
  port?: number | string;
  logLevel?: string;
  objects?: string;
  objectsCredentials?: { accessKeyId?: string; secretAccessKey?: string };
  maxUploadBytes?: number | string;
  localWorkspaceTtlS?: number | string;
  maxDiskGbPerUser?: number | string;
  sandboxDiskGb?: number | string;
  maxLogMb?: number | string;
  retainDays?: number | string;
  maxFollowersPerUser?: number | string;
  /** Milliseconds, or a duration such as `1h` (a bare number in a string is seconds; `off` is 0). */
  gcIntervalMs?: number | string;
  /** Milliseconds, or a duration such as `2h`. */
  gcGraceMs?: number | string;
  /** Milliseconds, or a duration such as `10m`. */
  sleepAfterMs?: number | string;
  /** Milliseconds, or a duration such as `1h`. */
  stopAfterMs?: number | string;
  sshPort?: number | string;
  sshHost?: string;
  routerPort?: number | string;
  dashboardDir?: string;
  appsDomain?: string;
  e2bPort?: number | string;
  e2bDomain?: string;
  tlsCert?: string;
  tlsKey?: string;
  routerFront?: string;
  /** A resolved OpenID Connect configuration (what resolveServerConfig answered), or the four fields below. */
  oidc?: OidcConfig;
  oidcIssuer?: string;
  oidcClientId?: string;
  oidcClientSecret?: string;
  oidcNameClaim?: string;
}

export const DEFAULT_PORT = 7373;
export const DEFAULT_HOST = '127.0.0.1';
export const DEFAULT_MAX_UPLOAD_BYTES = 5 * 1024 ** 3;
export const DEFAULT_LOCAL_WORKSPACE_TTL_S = 600;
/** As large as the largest single disk, so this limit alone never refuses a disk the per-disk limit allows. */
export const DEFAULT_MAX_DISK_GB_PER_USER = 1024;
/** The disk of a sandbox without a workspace, and of the warm pool's layers (GB). */
export const DEFAULT_SANDBOX_DISK_GB = 2;
export const DEFAULT_MAX_LOG_MB = 64;
export const DEFAULT_SLEEP_AFTER_MS = 600_000;
export const DEFAULT_STOP_AFTER_MS = 3_600_000;
export const DEFAULT_RETAIN_DAYS = 30;
export const DEFAULT_MAX_FOLLOWERS_PER_USER = 64;
export const DEFAULT_GC_INTERVAL_MS = 3_600_000;
const MAX_GC_DURATION_MS = 30 * 86_400_000;

/** The environment variables the server understands, and only here. */
export interface ServerEnvironment {
  MAGS_DATA_DIR?: string;
  MAGS_DATABASE_URL?: string;
  MAGS_HOST?: string;
  MAGS_PORT?: string;
  MAGS_LOG_LEVEL?: string;
  MAGS_OBJECTS_URL?: string;
  MAGS_MAX_UPLOAD_BYTES?: string;
  MAGS_WORKSPACE_TTL?: string;
  MAGS_MAX_DISK_GB_PER_USER?: string;
  MAGS_MAX_LOG_MB?: string;
  MAGS_RETAIN_DAYS?: string;
  MAGS_MAX_FOLLOWERS?: string;
  MAGS_GC_INTERVAL?: string;
  MAGS_GC_GRACE?: string;
  MAGS_SSH_PORT?: string;
  MAGS_SSH_HOST?: string;
  MAGS_ROUTER_PORT?: string;
  MAGS_DASHBOARD_DIR?: string;
  MAGS_APPS_DOMAIN?: string;
  MAGS_E2B_PORT?: string;
  MAGS_E2B_DOMAIN?: string;
  MAGS_TLS_CERT?: string;
  MAGS_ROUTER_FRONT?: string;
  MAGS_TLS_KEY?: string;
  MAGS_OIDC_ISSUER?: string;
  MAGS_OIDC_CLIENT_ID?: string;
  MAGS_OIDC_CLIENT_SECRET?: string;
  AWS_ACCESS_KEY_ID?: string;
  AWS_SECRET_ACCESS_KEY?: string;
  HOME?: string;
  [name: string]: string | undefined;
}

function expandHome(path: string, env: ServerEnvironment): string {
  if (path === '~' || path.startsWith('~/')) return join(env.HOME || homedir(), path.slice(1));
  return path;
}

function nonEmpty(value: string | undefined): string | undefined {
  return value === undefined || value.trim() === '' ? undefined : value.trim();
}

export function storeKindOf(database: string): StoreKind {
  return /^postgres(ql)?:\/\//i.test(database) ? 'postgres' : 'sqlite';
}

/**
 * Builds a validated ServerConfig. `input` wins over `env`, which wins over the defaults.
 * Throws MagsError(400, invalid_request) with a sentence naming the bad setting.
 */
export function resolveServerConfig(input: ServerConfigInput = {}, env: ServerEnvironment = process.env): ServerConfig {
  const rawDataDir = nonEmpty(input.dataDir) ?? nonEmpty(env.MAGS_DATA_DIR) ?? '~/.mags';
  const dataDir = resolve(expandHome(rawDataDir, env));

  let database = nonEmpty(input.database) ?? nonEmpty(env.MAGS_DATABASE_URL) ?? join(dataDir, 'mags.db');
  if (storeKindOf(database) === 'postgres') {
    let url: URL;
    try {
      url = new URL(database);
    } catch {
      throw MagsError.invalid(`database: "${redactUrl(database)}" is not a valid postgres:// URL`);
    }
    if (!url.hostname && !url.searchParams.get('host')) {
      throw MagsError.invalid(`database: the PostgreSQL URL "${redactUrl(database)}" names no host`);
    }
  } else {
    if (database.startsWith('sqlite:')) database = database.slice('sqlite:'.length);
    if (database === '') throw MagsError.invalid('database: give a postgres:// URL or the path of a SQLite file');
    if (/^[a-z][a-z0-9+.-]*:\/\//i.test(database)) {
      throw MagsError.invalid(`database: "${redactUrl(database)}" is neither a postgres:// URL nor a file path`);
    }
    if (database !== ':memory:') {
      database = expandHome(database, env);
      if (!isAbsolute(database)) database = resolve(database);
    }
  }

  const host = nonEmpty(input.host) ?? nonEmpty(env.MAGS_HOST) ?? DEFAULT_HOST;
  if (/\s|\//.test(host)) throw MagsError.invalid(`host: "${host}" is not a host name or IP address`);

  const rawPort = input.port ?? nonEmpty(env.MAGS_PORT) ?? DEFAULT_PORT;
  const port = typeof rawPort === 'number' ? rawPort : /^\d+$/.test(rawPort.trim()) ? Number(rawPort.trim()) : NaN;
  if (!Number.isInteger(port) || port < 0 || port > 65535) {
    throw MagsError.invalid(`port: "${rawPort}" must be a whole number from 0 to 65535 (0 picks any free port)`);
  }

  const logLevel = (nonEmpty(input.logLevel) ?? nonEmpty(env.MAGS_LOG_LEVEL) ?? 'info').toLowerCase();
  if (!(LOG_LEVELS as readonly string[]).includes(logLevel)) {
    throw MagsError.invalid(`logLevel: "${logLevel}" must be one of ${LOG_LEVELS.join(', ')}`);
  }

  const rawObjects =
    nonEmpty(input.objects) ?? nonEmpty(env.MAGS_OBJECTS_URL) ?? pathToFileURL(join(dataDir, 'objects')).href;
  let objects = rawObjects;
  if (!/^[a-z][a-z0-9+.-]*:/i.test(objects)) objects = resolve(expandHome(objects, env));
  else if (!/^(file|s3):/i.test(objects)) {
    throw MagsError.invalid(`objects: "${redactUrl(objects)}" must be a directory, a file:// URL or an s3:// URL`);
  }
  const objectsCredentials = input.objectsCredentials ?? {
    accessKeyId: nonEmpty(env.AWS_ACCESS_KEY_ID),
    secretAccessKey: nonEmpty(env.AWS_SECRET_ACCESS_KEY),
  };

  const maxUploadBytes = wholeNumber(
    'maxUploadBytes',
    input.maxUploadBytes ?? nonEmpty(env.MAGS_MAX_UPLOAD_BYTES) ?? DEFAULT_MAX_UPLOAD_BYTES,
    1,
    Number.MAX_SAFE_INTEGER,
    'a number of bytes, at least 1',
  );
  const localWorkspaceTtlS = wholeNumber(
    'localWorkspaceTtlS',
    input.localWorkspaceTtlS ?? nonEmpty(env.MAGS_WORKSPACE_TTL) ?? DEFAULT_LOCAL_WORKSPACE_TTL_S,
    1,
    31_536_000,
    'a number of seconds from 1 to 31536000',
  );
  const maxDiskGbPerUser = wholeNumber(
    'maxDiskGbPerUser',
    input.maxDiskGbPerUser ?? nonEmpty(env.MAGS_MAX_DISK_GB_PER_USER) ?? DEFAULT_MAX_DISK_GB_PER_USER,
    1,
    1_000_000,
    'a number of GB from 1 to 1000000',
  );
  const sandboxDiskGb = wholeNumber(
    'sandboxDiskGb',
    input.sandboxDiskGb ?? nonEmpty(env.MAGS_SANDBOX_DISK_GB) ?? DEFAULT_SANDBOX_DISK_GB,
    1,
    1024,
    'a number of GB from 1 to 1024',
  );
  const maxLogMb = wholeNumber(
    'maxLogMb',
    input.maxLogMb ?? nonEmpty(env.MAGS_MAX_LOG_MB) ?? DEFAULT_MAX_LOG_MB,
    1,
    1_048_576,
    'a number of MiB from 1 to 1048576',
  );
  const retainDays = wholeNumber(
    'retainDays',
    input.retainDays ?? nonEmpty(env.MAGS_RETAIN_DAYS) ?? DEFAULT_RETAIN_DAYS,
    0,
    36_500,
    'a number of days from 0 (keep jobs until deleted) to 36500',
  );
  const maxFollowersPerUser = wholeNumber(
    'maxFollowersPerUser',
    input.maxFollowersPerUser ?? nonEmpty(env.MAGS_MAX_FOLLOWERS) ?? DEFAULT_MAX_FOLLOWERS_PER_USER,
    1,
    100_000,
    'a number of streams from 1 to 100000',
  );

  const gcIntervalMs = duration(
    'gcInterval',
    input.gcIntervalMs ?? nonEmpty(env.MAGS_GC_INTERVAL) ?? DEFAULT_GC_INTERVAL_MS,
    true,
  );
  const gcGraceMs = duration('gcGrace', input.gcGraceMs ?? nonEmpty(env.MAGS_GC_GRACE) ?? DEFAULT_GC_GRACE_MS, false);

  const sleepAfterMs = duration(
    'sleepAfter',
    input.sleepAfterMs ?? nonEmpty(env.MAGS_SLEEP_AFTER) ?? DEFAULT_SLEEP_AFTER_MS,
    false,
  );
  const stopAfterMs = duration(
    'stopAfter',
    input.stopAfterMs ?? nonEmpty(env.MAGS_STOP_AFTER) ?? DEFAULT_STOP_AFTER_MS,
    false,
  );
  const rawSshPort = input.sshPort ?? nonEmpty(env.MAGS_SSH_PORT) ?? DEFAULT_SSH_PORT;
  const sshPort = wholeNumber('sshPort', rawSshPort, 0, 65535, 'a port from 1 to 65535, or 0 for no SSH gateway');
  const sshHost = nonEmpty(input.sshHost) ?? nonEmpty(env.MAGS_SSH_HOST);
  if (sshHost !== undefined && !/^[A-Za-z0-9._:-]+$/.test(sshHost)) {
    throw MagsError.invalid(`sshHost: "${sshHost}" is not a host name or IP address`);
  }
  const rawRouterPort = input.routerPort ?? nonEmpty(env.MAGS_ROUTER_PORT) ?? DEFAULT_ROUTER_PORT;
  const routerPort = wholeNumber('routerPort', rawRouterPort, 0, 65535, 'a port from 1 to 65535, or 0 for no router');
  const appsDomain = (nonEmpty(input.appsDomain) ?? nonEmpty(env.MAGS_APPS_DOMAIN) ?? 'localhost').toLowerCase();
  if (
    appsDomain.length > 200 ||
    !appsDomain.split('.').every((l) => /^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$/.test(l))
  ) {
    throw MagsError.invalid(`appsDomain: "${appsDomain}" is not a domain name such as apps.example.com`);
  }
  const e2bPort = wholeNumber(
    'e2bPort',
    input.e2bPort ?? nonEmpty(env.MAGS_E2B_PORT) ?? 0,
    0,
    65535,
    'a port from 1 to 65535, or 0 for no E2B API',
  );
  const e2bDomain = (nonEmpty(input.e2bDomain) ?? nonEmpty(env.MAGS_E2B_DOMAIN))?.toLowerCase();
  if (e2bDomain !== undefined) {
    const [name, port, ...rest] = e2bDomain.split(':');
    const okPort = port === undefined || (/^\d{1,5}$/.test(port) && Number(port) >= 1 && Number(port) <= 65535);
    if (
      rest.length > 0 ||
      !okPort ||
      name.length > 200 ||
      !name.split('.').every((l) => /^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$/.test(l))
    ) {
      throw MagsError.invalid(
        `e2bDomain: "${e2bDomain}" is not a domain name with an optional port, such as e2b.example.com or e2b.test:8443`,
      );
    }
  }
  const tlsCert = nonEmpty(input.tlsCert) ?? nonEmpty(env.MAGS_TLS_CERT);
  const tlsKey = nonEmpty(input.tlsKey) ?? nonEmpty(env.MAGS_TLS_KEY);
  if ((tlsCert === undefined) !== (tlsKey === undefined)) {
    throw MagsError.invalid(
      'tlsCert and tlsKey go together: give both PEM files (--tls-cert and --tls-key), or neither',
    );
  }
  const routerFront = nonEmpty(input.routerFront) ?? nonEmpty(env.MAGS_ROUTER_FRONT) ?? 'haproxy';
  if (routerFront !== 'haproxy' && routerFront !== 'node') {
    throw MagsError.invalid(
      `routerFront: "${routerFront}" is not a router front: use haproxy (the default, when installed) or node`,
    );
  }
  const oidc = oidcConfig(input, env);
  // The server's dist/ and the dashboard's are siblings both in the repository (packages/*) and once installed
  // (node_modules/@mags/*).
  const dashboardDir = resolve(
    nonEmpty(input.dashboardDir) ??
      nonEmpty(env.MAGS_DASHBOARD_DIR) ??
      join(import.meta.dirname, '..', '..', 'dashboard', 'dist'),
  );

  return {
    dataDir,
    database,
    host,
    port,
    logLevel: logLevel as LogLevel,
    objects,
    objectsCredentials: { ...objectsCredentials },
    maxUploadBytes,
    localWorkspaceTtlS,
    maxDiskGbPerUser,
    sandboxDiskGb,
    maxLogMb,
    retainDays,
    maxFollowersPerUser,
    gcIntervalMs,
    gcGraceMs,
    sleepAfterMs,
    stopAfterMs,
    sshPort,
    sshHost,
    routerPort,
    dashboardDir,
    appsDomain,
    e2bPort,
    e2bDomain,
    tlsCert: tlsCert === undefined ? undefined : resolve(tlsCert),
    tlsKey: tlsKey === undefined ? undefined : resolve(tlsKey),
    routerFront,
    oidc,
  };
}

function oidcConfig(input: ServerConfigInput, env: ServerEnvironment): OidcConfig | undefined {
  const nonEmpty = (v: string | undefined) => (v?.trim() ? v.trim() : undefined);
  const given = input.oidc;
  const issuer = nonEmpty(input.oidcIssuer) ?? nonEmpty(given?.issuer) ?? nonEmpty(env.MAGS_OIDC_ISSUER);
  const clientId = nonEmpty(input.oidcClientId) ?? nonEmpty(given?.clientId) ?? nonEmpty(env.MAGS_OIDC_CLIENT_ID);
  const clientSecret =
    nonEmpty(input.oidcClientSecret) ?? nonEmpty(given?.clientSecret) ?? nonEmpty(env.MAGS_OIDC_CLIENT_SECRET);
  if (issuer === undefined) {
    if (clientId !== undefined || clientSecret !== undefined) {
      throw MagsError.invalid('oidcIssuer: an OpenID Connect client id or secret needs --oidc-issuer as well');
    }
    return undefined;
  }
  let url: URL;
  try {
    url = new URL(issuer);
  } catch {
    throw MagsError.invalid(`oidcIssuer: "${issuer}" is not a URL`);
  }
  const loopback = ['127.0.0.1', 'localhost', '[::1]'].includes(url.hostname);
  if (url.protocol !== 'https:' && !(url.protocol === 'http:' && loopback)) {
    throw MagsError.invalid(`oidcIssuer: "${issuer}" must be an https:// URL`);
  }
  if (clientId === undefined || clientSecret === undefined) {
    throw MagsError.invalid(
      'oidcIssuer: give the client id and secret too (--oidc-client-id, and MAGS_OIDC_CLIENT_SECRET or --oidc-client-secret)',
    );
  }
  const nameClaim = nonEmpty(input.oidcNameClaim) ?? nonEmpty(given?.nameClaim) ?? 'preferred_username';
  return { issuer, clientId, clientSecret, nameClaim };
}

function wholeNumber(setting: string, raw: number | string, min: number, max: number, what: string): number {
  const n = typeof raw === 'number' ? raw : /^\d{1,16}$/.test(raw.trim()) ? Number(raw.trim()) : NaN;
  if (!Number.isSafeInteger(n) || n < min || n > max) throw MagsError.invalid(`${setting}: "${raw}" must be ${what}`);
  return n;
}

/** A duration from 1 s to 30 days (`orOff`: or 0, which turns the thing off); a number is milliseconds. */
function duration(setting: string, raw: number | string, orOff: boolean): number {
  const ms = typeof raw === 'number' ? raw : parseDuration(raw);
  const inRange = ms !== undefined && Number.isSafeInteger(ms) && ms >= 1000 && ms <= MAX_GC_DURATION_MS;
  if (!inRange && !(orOff && ms === 0)) {
    const range = `from 1s to ${formatDuration(MAX_GC_DURATION_MS)}`;
    throw MagsError.invalid(
      `${setting}: "${raw}" must be a duration ${range} such as 90s, 15m or 2h${orOff ? ', or 0 / off to turn it off' : ''}`,
    );
  }
  return ms;
}

/** A database URL safe to print: the password is replaced. */
export function redactUrl(url: string): string {
  return url.replace(/^([a-z][a-z0-9+.-]*:\/\/[^:/@]*:)[^@/]*@/i, '$1***@');
}
