// URLs of sandboxes: opening a job's URL (its subdomain and port), the URL text, stable aliases (a name a user gives
// a workspace), what a request's host name reaches, and the tokens of private URLs (one-time login links, the
// cookie sessions they start). The proxy (proxy.ts) asks this module and nothing else what a host routes to.
import { randomBytes } from 'node:crypto';
import {
  isTerminal,
  MagsError,
  SUBDOMAIN_PATTERN,
  type UrlAccessResult,
  type UrlAlias,
  type UrlAliasCreate,
} from '@mags/api';
import type { Logger } from 'pino';
import { newSubdomain, uuidv7 } from '../ids.js';
import type { JobEvents } from '../jobs/events.js';
import type { Job, Store, UrlAliasRow } from '../store/index.js';
import { looksLikeE2bLabel } from './e2b.js';

const SUBDOMAIN = new RegExp(SUBDOMAIN_PATTERN);
/** A job's own subdomain: aliases cannot take this shape, so an alias never shadows a sandbox's URL. */
const JOB_SUBDOMAIN = /^[0-9a-f]{12}$/;
/** Names the router keeps for itself. */
const RESERVED = new Set(['www', 'api', 'mags', 'admin', 'router', 'localhost']);
/** How long a one-time login link of a private URL may be opened. */
const LOGIN_TTL_MS = 10 * 60_000;
/** How long the cookie a login link sets stays valid. */
export const SESSION_TTL_MS = 7 * 86_400_000;
const MAX_CODES = 10_000;
/** How long the router trusts a running job's route without reading the store again. */
const ROUTE_CACHE_MS = 1_000;
const MAX_ROUTES = 10_000;
const MAX_SESSIONS = 100_000;

/** Where a request for a host goes. */
export type RouteTarget =
  | { kind: 'job'; job: Job; port: number; private: boolean; subdomain: string; via: 'subdomain' | 'alias' }
  /** The host names no URL. */
  | { kind: 'unknown' }
  /** The URL's job has ended (its sandbox is gone for good). */
  | { kind: 'ended'; job: Job }
  /** An alias whose workspace has no sandbox now. */
  | { kind: 'idle'; workspace: string };

export interface UrlServiceDeps {
  store: Store;
  /** A cached route is dropped as soon as its job changes state. */
  events: JobEvents;
  logger: Logger;
  appsDomain: string;
  /** The router's port and scheme once it listens; undefined: no router. */
  router(): { port: number; tls: boolean } | undefined;
}

export class UrlService {
  private readonly codes = new Map<string, { userId: string; subdomain: string; expires: number }>();
  private readonly sessions = new Map<string, { userId: string; subdomain: string; expires: number }>();
  /** Routes to running sandboxes, for a second: a busy URL does not read the store on every request. */
  private readonly routes = new Map<string, { target: RouteTarget; expires: number; unsubscribe: () => void }>();

  private readonly changeListeners = new Set<() => Promise<void> | void>();

  constructor(private readonly deps: UrlServiceDeps) {}

  /**
   * Calls `listener` when a URL opens or changes port or privacy, or an alias is created or removed; the change is
   * answered after the listener's promise settles (a URL made private is out of the front's map before the answer).
   */
  onChange(listener: () => Promise<void> | void): () => void {
    this.changeListeners.add(listener);
    return () => this.changeListeners.delete(listener);
  }

  private async changed(): Promise<void> {
    await Promise.all([...this.changeListeners].map(async (l) => l()));
  }

  /**
   * The host names (`<label>.<apps-domain>`) of public URLs whose sandbox runs and is awake, with its address and
   * port: what the front may relay without the Node router. Private URLs are never here (the token check is Node's).
   */
  async publicRoutes(): Promise<Map<string, { jobId: string; target: string }>> {
    const { store, appsDomain } = this.deps;
    const out = new Map<string, { jobId: string; target: string }>();
    const route = (label: string, job: Job, port: number) => {
      if (job.status !== 'running' || job.url_private === 1 || !job.sandbox_address) return;
      if (!/^\d{1,3}(\.\d{1,3}){3}$/.test(job.sandbox_address)) return; // the front's map holds IPv4 addresses
      out.set(`${label}.${appsDomain}`, { jobId: job.id, target: `${job.sandbox_address}:${port}` });
    };
    for (const job of await store.jobs.runningWithUrl()) {
      if (job.subdomain && job.url_port !== null) route(job.subdomain, job, job.url_port);
    }
    for (const alias of await store.urlAliases.all()) {
      const job = await store.jobs.liveOnWorkspace(alias.user_id, alias.workspace_id);
      if (job) route(alias.subdomain, job, job.url_port ?? 8080);
    }
    return out;
  }

  /** The URL of a subdomain, or undefined while no router listens. */
  urlOf(subdomain: string): string | undefined {
    const r = this.deps.router();
    if (!r) return undefined;
    const scheme = r.tls ? 'https' : 'http';
    const standard = r.tls ? 443 : 80;
    return `${scheme}://${subdomain}.${this.deps.appsDomain}${r.port === standard ? '' : `:${r.port}`}`;
  }

  /** `POST …/access {port}` for a port other than 22, and `mags url`: opens the caller's job's URL on `port`. */
  async open(userId: string, ref: string, port: number, isPrivate: boolean): Promise<UrlAccessResult> {
    if (!this.deps.router()) {
      throw new MagsError(
        503,
        'unavailable',
        "this server runs no router (started with --router-port 0, or the default port 7380 was in use: see the server's log)",
      );
    }
    const job = await this.deps.store.jobs.findLive(userId, ref);
    if (!job) throw MagsError.notFound(`no job or sandbox named "${ref}"`);
    if (isTerminal(job.status)) {
      throw MagsError.conflict(`job ${job.id} has finished (${job.status}): there is no sandbox to open a URL to`);
    }
    if (job.spec?.network === 'none') {
      throw MagsError.invalid(
        `job ${job.id} runs with network none: the router reaches a sandbox over its network link (use ssh -L PORT instead)`,
      );
    }
    const opened = await this.deps.store.jobs.openUrl(job.id, newSubdomain(), port, isPrivate);
    if (!opened?.subdomain) throw MagsError.notFound(`job ${job.id} no longer exists`);
    // Its port or privacy may have changed, and so may an alias's view of it.
    this.forget();
    await this.changed();
    this.deps.logger.info({ jobId: job.id, port, private: isPrivate }, 'URL opened');
    const url = this.urlOf(opened.subdomain) ?? '';
    const result: UrlAccessResult = { success: true, url, port, subdomain: opened.subdomain, private: isPrivate };
    if (isPrivate) result.login_url = `${url}/.mags/login?code=${this.loginCode(userId, opened.subdomain)}`;
    return result;
  }

  /** A one-time code that, opened on the URL, starts a cookie session for it. */
  private loginCode(userId: string, subdomain: string): string {
    this.sweep(this.codes, MAX_CODES);
    const code = randomBytes(24).toString('base64url');
    this.codes.set(code, { userId, subdomain, expires: Date.now() + LOGIN_TTL_MS });
    return code;
  }

  /** Spends a login code on `subdomain`: the session token for the cookie, or undefined (unknown, used, expired). */
  redeemLogin(code: string, subdomain: string): string | undefined {
    const entry = this.codes.get(code);
    if (!entry) return undefined;
    this.codes.delete(code);
    if (entry.subdomain !== subdomain || entry.expires < Date.now()) return undefined;
    this.sweep(this.sessions, MAX_SESSIONS);
    const session = randomBytes(32).toString('base64url');
    this.sessions.set(session, { userId: entry.userId, subdomain, expires: Date.now() + SESSION_TTL_MS });
    return session;
  }

  /** The user a private URL's cookie session belongs to, if it is one for this subdomain. */
  sessionUser(session: string, subdomain: string): string | undefined {
    const entry = this.sessions.get(session);
    if (!entry || entry.subdomain !== subdomain) return undefined;
    if (entry.expires < Date.now()) {
      this.sessions.delete(session);
      return undefined;
    }
    return entry.userId;
  }

  private sweep(map: Map<string, { expires: number }>, max: number): void {
    const now = Date.now();
    for (const [k, v] of map) if (v.expires < now) map.delete(k);
    // Past the cap, the oldest go first (a Map iterates in insertion order).
    for (const k of map.keys()) {
      if (map.size < max) break;
      map.delete(k);
    }
  }

  /** What a request to `<label>.<apps-domain>` reaches. */
  async resolve(label: string): Promise<RouteTarget> {
    const now = Date.now();
    const cached = this.routes.get(label);
    if (cached && cached.expires > now) return cached.target;
    this.forget(label);
    const target = await this.lookup(label);
    if (target.kind === 'job' && target.job.status === 'running') {
      if (this.routes.size >= MAX_ROUTES) this.forget();
      const unsubscribe = this.deps.events.subscribe(target.job.id, (e) => {
        if (e.type === 'status') this.forget(label);
      });
      this.routes.set(label, { target, expires: now + ROUTE_CACHE_MS, unsubscribe });
    }
    return target;
  }

  /** Forgets what the router knows of a route, or of all (a job, a port or an alias changed). */
  forget(label?: string): void {
    const labels = label === undefined ? [...this.routes.keys()] : [label];
    for (const l of labels) {
      this.routes.get(l)?.unsubscribe();
      this.routes.delete(l);
    }
  }

  private async lookup(label: string): Promise<RouteTarget> {
    const { store } = this.deps;
    if (JOB_SUBDOMAIN.test(label)) {
      const job = await store.jobs.bySubdomain(label);
      if (!job || job.url_port === null) return { kind: 'unknown' };
      if (isTerminal(job.status)) return { kind: 'ended', job };
      return {
        kind: 'job',
        job,
        port: job.url_port,
        private: job.url_private === 1,
        subdomain: label,
        via: 'subdomain',
      };
    }
    const alias = await store.urlAliases.bySubdomain(label);
    if (!alias) return { kind: 'unknown' };
    // Only the alias owner's own sandbox on that workspace: never another user's.
    const job = await store.jobs.liveOnWorkspace(alias.user_id, alias.workspace_id);
    if (!job) return { kind: 'idle', workspace: alias.workspace_id };
    return {
      kind: 'job',
      job,
      port: job.url_port ?? 8080,
      private: job.url_private === 1,
      subdomain: label,
      via: 'alias',
    };
  }

  /** The host's label under the apps domain (`abc` of `abc.localhost:7380`), or undefined. */
  labelOf(host: string | undefined): string | undefined {
    if (!host) return undefined;
    const name = host.toLowerCase().replace(/:\d+$/, '').replace(/\.$/, '');
    const suffix = `.${this.deps.appsDomain}`;
    if (!name.endsWith(suffix)) return undefined;
    const label = name.slice(0, -suffix.length);
    return SUBDOMAIN.test(label) ? label : undefined;
  }

  async createAlias(userId: string, body: UrlAliasCreate): Promise<UrlAlias> {
    const sub = body.subdomain;
    if (!SUBDOMAIN.test(sub)) {
      throw MagsError.invalid(
        `subdomain "${sub}" is not a DNS label: use a-z, 0-9 and -, at most 63 characters, not starting or ending with -`,
      );
    }
    if (JOB_SUBDOMAIN.test(sub)) {
      throw MagsError.invalid(
        `subdomain "${sub}" looks like a sandbox's own subdomain (12 hex characters): choose another name`,
      );
    }
    if (looksLikeE2bLabel(sub)) {
      throw MagsError.invalid(
        `subdomain "${sub}" looks like an E2B sandbox's port host (<port>-<sandbox id>): choose another name`,
      );
    }
    if (RESERVED.has(sub)) throw MagsError.invalid(`subdomain "${sub}" is reserved: choose another name`);
    const ws = await this.deps.store.workspaces.get(userId, body.workspace_id);
    if (!ws)
      throw MagsError.notFound(
        `workspace "${body.workspace_id}" not found (create it with mags new ${body.workspace_id})`,
      );
    const row: UrlAliasRow = {
      id: uuidv7(),
      subdomain: sub,
      user_id: userId,
      workspace_id: ws.name,
      created_at: Date.now(),
    };
    if (!(await this.deps.store.urlAliases.insert(row))) {
      throw MagsError.conflict(`subdomain "${sub}" is taken: choose another name`);
    }
    this.deps.logger.info({ alias: sub, workspace: ws.name }, 'URL alias created');
    await this.changed();
    return this.aliasView(row);
  }

  async listAliases(userId: string): Promise<UrlAlias[]> {
    return (await this.deps.store.urlAliases.list(userId)).map((r) => this.aliasView(r));
  }

  async deleteAlias(userId: string, ref: string): Promise<void> {
    if (!(await this.deps.store.urlAliases.delete(userId, ref))) {
      throw MagsError.notFound(`no URL alias "${ref}" (mags url alias list shows yours)`);
    }
    this.forget();
    await this.changed();
  }

  private aliasView(r: UrlAliasRow): UrlAlias {
    return {
      id: r.id,
      subdomain: r.subdomain,
      workspace_id: r.workspace_id,
      domain: this.deps.appsDomain,
      url: this.urlOf(r.subdomain) ?? '',
      created_at: new Date(r.created_at).toISOString(),
    };
  }
}
