// The router: a reverse proxy on its own port that serves `<subdomain>.<apps-domain>` to the port a URL was opened
// for, on that job's sandbox (its veth address, as its agent reported it). HTTP/1.1 with keep-alive, bodies streamed
// both ways under backpressure, WebSocket and any other upgrade relayed as bytes. A request to a sleeping sandbox
// wakes it and waits (a stopped one's startup command starts its server: the connection is retried for 30 s).
// Private URLs answer only their owner (an API token in the header, or the cookie a one-time login link sets).
// With E2B served (`--e2b-port`), `api.<apps-domain>` and `49983-<id>.<apps-domain>` go to the E2B app in this process
// and `<port>-<id>.<apps-domain>` to that port of E2B sandbox `<id>` (e2b.ts).
import { readFileSync } from 'node:fs';
import http, { type IncomingMessage, type ServerResponse } from 'node:http';
import https from 'node:https';
import net, { type AddressInfo, type Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { MagsError } from '@mags/api';
import type { Logger } from 'pino';
import type { AgentRegistry } from '../agents/registry.js';
import type { Auth } from '../http/auth.js';
import type { SandboxLifecycle } from '../jobs/lifecycle.js';
import type { Job } from '../store/index.js';
import {
  type E2bHost,
  type E2bRouting,
  labelUnder,
  parseE2bLabel,
  TRAFFIC_TOKEN_HEADER,
  trafficAllowed,
} from './e2b.js';
import { SESSION_TTL_MS, type UrlService } from './urls.js';

/** How long a woken sandbox's port may take to answer (its startup command starts the server). */
const WAKE_CONNECT_MS = 30_000;
/** At most one activity order per job this often while its URL carries traffic (less with a short --sleep-after). */
const ACTIVITY_EVERY_MS = 5_000;
const COOKIE = 'mags_url';
/** Headers that concern one hop only (RFC 9110 7.6.1), not forwarded. */
const HOP = new Set([
  'connection',
  'keep-alive',
  'proxy-connection',
  'proxy-authenticate',
  'proxy-authorization',
  'te',
  'trailer',
  'transfer-encoding',
  'upgrade',
]);

export interface RouterDeps {
  urls: UrlService;
  agents: AgentRegistry;
  lifecycle: SandboxLifecycle;
  auth: Auth;
  logger: Logger;
  /** `--sleep-after`: traffic must reach the agent as activity well within it. */
  sleepAfterMs: number;
  tls?: { cert: string; key: string };
  /** E2B's host names, when the server serves E2B (`--e2b-port`). */
  e2b?: E2bRouting;
}

interface Destination {
  job: Job;
  address: string;
  port: number;
  /** The client should wait for the port (the sandbox was just woken). */
  patient: boolean;
}

export class Router {
  private server: net.Server | undefined;
  private readonly plain: http.Server;
  private readonly secure: https.Server | undefined;
  private readonly activity = new Map<string, number>();
  /** Keep-alive connections to sandboxes, per address and port. */
  private readonly pool = new http.Agent({
    keepAlive: true,
    maxSockets: 256,
    maxFreeSockets: 32,
    timeout: 60_000,
    noDelay: true,
  });
  private readonly sockets = new Set<Duplex>();
  /** The client's address of a connection from the front (its PROXY header), by socket. */
  private readonly peers = new WeakMap<object, string>();
  private inner: net.Server | undefined;
  private readonly activityEveryMs: number;

  constructor(private readonly deps: RouterDeps) {
    this.activityEveryMs = Math.min(ACTIVITY_EVERY_MS, Math.max(250, deps.sleepAfterMs / 4));
    const handler = (req: IncomingMessage, res: ServerResponse) => void this.onRequest(req, res);
    const upgrade = (req: IncomingMessage, socket: Duplex, head: Buffer) => void this.onUpgrade(req, socket, head);
    if (deps.tls) {
      this.secure = https.createServer({ cert: readFileSync(deps.tls.cert), key: readFileSync(deps.tls.key) }, handler);
      this.secure.on('upgrade', upgrade);
      // Plain HTTP on the same port is redirected to HTTPS.
      this.plain = http.createServer((req, res) => {
        const host = req.headers.host ?? '';
        res.writeHead(308, { location: `https://${host}${req.url ?? '/'}`, 'content-length': '0' }).end();
      });
    } else {
      this.plain = http.createServer(handler);
      this.plain.on('upgrade', upgrade);
    }
    for (const s of [this.plain, this.secure]) {
      if (!s) continue;
      s.keepAliveTimeout = 65_000;
      s.headersTimeout = 60_000;
      // Long downloads, SSE and WebSockets are not cut by a request timeout; idle sockets by keepAliveTimeout.
      s.requestTimeout = 0;
      s.on('clientError', (_err, socket) => socket.destroy());
    }
  }

  get tls(): boolean {
    return this.secure !== undefined;
  }

  /** Listens on `host:port` (0: any free port); resolves with the port. */
  async listen(host: string, port: number): Promise<number> {
    // noDelay: headers and a small body leave at once (Nagle's wait for an ACK would add the peer's delayed-ACK time).
    const server = net.createServer({ pauseOnConnect: true, noDelay: true }, (socket) => this.onConnection(socket));
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen({ host, port }, () => {
        server.off('error', reject);
        resolve();
      });
    });
    this.server = server;
    return (server.address() as AddressInfo).port;
  }

  /**
   * Listens on a loopback port for the front (HAProxy): every connection starts with a PROXY v2 header that carries
   * the client's address (a connection without one is closed). Resolves with the port.
   */
  async listenBehindFront(): Promise<number> {
    const server = net.createServer({ pauseOnConnect: true, noDelay: true }, (socket) => {
      this.sockets.add(socket);
      socket.once('close', () => this.sockets.delete(socket));
      readProxyHeader(socket).then(
        (peer) => {
          this.peers.set(socket, peer);
          this.plain.emit('connection', socket);
          socket.resume();
        },
        () => socket.destroy(),
      );
    });
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen({ host: '127.0.0.1', port: 0 }, () => {
        server.off('error', reject);
        resolve();
      });
    });
    this.inner = server;
    return (server.address() as AddressInfo).port;
  }

  /**
   * Requests or connections the front relayed to a URL's sandbox: activity for sleep. A host that has just left the
   * front's map (its sandbox went to sleep) with traffic still arriving is woken.
   */
  async frontActivity(host: string): Promise<void> {
    const label = this.deps.urls.labelOf(host);
    if (!label) return;
    const target = await this.deps.urls.resolve(label);
    if (target.kind !== 'job') return;
    if (target.job.status === 'running') return this.touch(target.job);
    if (target.job.status === 'sleeping') {
      await this.deps.lifecycle.wake(target.job).catch((err: unknown) => {
        this.deps.logger.debug({ err, jobId: target.job.id }, 'router: waking on front traffic failed');
      });
    }
  }

  /** One port for both: a TLS handshake (first byte 0x16) goes to HTTPS, anything else to plain HTTP. */
  private onConnection(socket: Socket): void {
    this.sockets.add(socket);
    socket.once('close', () => this.sockets.delete(socket));
    if (!this.secure) {
      this.plain.emit('connection', socket);
      socket.resume();
      return;
    }
    const secure = this.secure;
    socket.once('readable', () => {
      const first: Buffer | null = socket.read(1);
      if (first === null) return socket.destroy();
      socket.unshift(first);
      (first[0] === 0x16 ? secure : this.plain).emit('connection', socket);
    });
  }

  async close(): Promise<void> {
    const server = this.server;
    this.server = undefined;
    if (server) await new Promise<void>((resolve) => server.close(() => resolve()));
    const inner = this.inner;
    this.inner = undefined;
    if (inner) await new Promise<void>((resolve) => inner.close(() => resolve()));
    for (const s of this.sockets) s.destroy();
    this.plain.closeAllConnections();
    this.secure?.closeAllConnections();
    this.pool.destroy();
  }

  private async onRequest(req: IncomingMessage, res: ServerResponse): Promise<void> {
    try {
      const label = this.deps.urls.labelOf(req.headers.host);
      const e2b = this.e2bHost(req, label);
      if (e2b && e2b.kind !== 'port') return this.toE2bApp(req, res, e2b);
      if (label && !e2b && (req.url ?? '').startsWith('/.mags/login?')) return this.login(req, res, label);
      const dest = await this.destination(req, label, e2b);
      const headers = forwardHeaders(req, this.tls, this.peers.get(req.socket));
      await this.reachable(dest);
      const upstream = http.request({
        host: dest.address,
        port: dest.port,
        method: req.method,
        path: req.url,
        headers,
        agent: this.pool,
      });
      upstream.on('response', (up) => {
        const out: http.OutgoingHttpHeaders = {};
        for (const [k, v] of Object.entries(up.headers)) if (!HOP.has(k) && v !== undefined) out[k] = v;
        res.writeHead(up.statusCode ?? 502, up.statusMessage, out);
        // Server-Sent Events: the client learns of the stream before its first event (chunks are piped as they come).
        if (/^text\/event-stream/.test(String(up.headers['content-type'] ?? ''))) res.flushHeaders();
        up.on('data', () => this.touch(dest.job));
        up.pipe(res);
        up.on('error', () => res.destroy());
        res.on('close', () => {
          if (!res.writableFinished) up.destroy();
        });
      });
      upstream.on('error', (err) => {
        if (res.headersSent) return res.destroy();
        this.page(req, res, this.unreachable(dest, err));
      });
      req.on('data', () => this.touch(dest.job));
      req.pipe(upstream);
      req.on('aborted', () => upstream.destroy());
    } catch (err) {
      this.page(req, res, asError(err, this.deps.logger));
    }
  }

  private async onUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer): Promise<void> {
    this.sockets.add(socket);
    socket.once('close', () => this.sockets.delete(socket));
    socket.on('error', () => socket.destroy());
    try {
      const label = this.deps.urls.labelOf(req.headers.host);
      const e2b = this.e2bHost(req, label);
      if (e2b && e2b.kind !== 'port') {
        throw MagsError.notFound('the E2B API and envd take no upgrade requests: this host serves plain HTTP calls');
      }
      const dest = await this.destination(req, label, e2b);
      await this.reachable(dest);
      const upstream = net.connect({ host: dest.address, port: dest.port });
      upstream.setNoDelay(true);
      upstream.once('connect', () => {
        const headers = forwardHeaders(req, this.tls, this.peers.get(req.socket));
        // The upgrade itself is forwarded as asked.
        headers.connection = 'Upgrade';
        if (req.headers.upgrade) headers.upgrade = req.headers.upgrade;
        const lines = [`${req.method} ${req.url} HTTP/1.1`];
        for (const [k, v] of Object.entries(headers)) {
          for (const one of Array.isArray(v) ? v : [v]) if (one !== undefined) lines.push(`${k}: ${one}`);
        }
        upstream.write(`${lines.join('\r\n')}\r\n\r\n`);
        if (head.length) upstream.write(head);
        const touch = () => this.touch(dest.job);
        upstream.on('data', touch);
        socket.on('data', touch);
        upstream.pipe(socket);
        socket.pipe(upstream);
      });
      upstream.on('error', (err) => {
        if (upstream.bytesRead === 0 && socket.writable) {
          const e = this.unreachable(dest, err);
          socket.end(rawPage(e.status, e.message));
        } else socket.destroy();
      });
      upstream.on('close', () => socket.destroy());
      socket.on('close', () => upstream.destroy());
    } catch (err) {
      const e = asError(err, this.deps.logger);
      socket.end(rawPage(e.status, e.message, e.code));
    }
  }

  /** What a host names on the E2B side (under the apps domain or the E2B domain), when this server serves E2B. */
  private e2bHost(req: IncomingMessage, label: string | undefined): E2bHost | undefined {
    const e2b = this.deps.e2b;
    if (!e2b) return undefined;
    const own = label ?? labelUnder(req.headers.host, e2b.domain());
    return own ? parseE2bLabel(own) : undefined;
  }

  /**
   * `api.<domain>` and `49983-<id>.<domain>`: the E2B app answers in this process (no loopback hop). The host names
   * the sandbox for envd, so the header envd routes by is set from it (a client cannot point one host at another id).
   */
  private toE2bApp(req: IncomingMessage, res: ServerResponse, host: E2bHost): void {
    if (host.kind === 'envd') req.headers['e2b-sandbox-id'] = host.sandboxId;
    this.deps.e2b!.handle(req, res);
  }

  /** `<port>-<id>.<domain>`: the E2B sandbox and port, if it exists and the request may reach it. */
  private async e2bTarget(req: IncomingMessage, host: E2bHost & { kind: 'port' }): Promise<{ job: Job; port: number }> {
    const sandbox = await this.deps.e2b!.resolve(host.sandboxId);
    if (!sandbox) {
      throw MagsError.notFound(
        `no sandbox ${host.sandboxId}: it was never created or has ended (check the id in the host name)`,
      );
    }
    if (!trafficAllowed(req, sandbox)) {
      throw new MagsError(
        403,
        'forbidden',
        `the ports of sandbox ${host.sandboxId} are private (created with network.allowPublicTraffic false): send its traffic access token in the ${TRAFFIC_TOKEN_HEADER} header`,
      );
    }
    // The token is the router's business: the sandbox's server never sees it.
    delete req.headers[TRAFFIC_TOKEN_HEADER];
    return { job: sandbox.job, port: host.port };
  }

  /** Where the request goes: the URL's sandbox, awake, or a MagsError for the page. */
  private async destination(req: IncomingMessage, label: string | undefined, e2b?: E2bHost): Promise<Destination> {
    const { urls, lifecycle } = this.deps;
    let target: { job: Job; port: number };
    if (e2b?.kind === 'port') target = await this.e2bTarget(req, e2b);
    else if (label) target = await this.urlTarget(req, label);
    else {
      throw MagsError.notFound(
        `no sandbox URL here: this is the Mags router; sandbox URLs look like ${urls.urlOf('<subdomain>') ?? '<subdomain>.<apps-domain>'}`,
      );
    }
    const { job: found, port } = target;
    let job = found;
    let patient = false;
    if (job.status !== 'running') {
      patient = true;
      job = await lifecycle.wake(job);
    }
    this.touch(job);
    if (!job.sandbox_address) {
      throw new MagsError(
        502,
        'bad_gateway',
        `the sandbox of this URL has no network link (network none): the router cannot reach its port ${port}`,
      );
    }
    return { job, address: job.sandbox_address, port, patient };
  }

  /** A Mags URL (a job's subdomain or an alias): its job and port, if the request may reach it. */
  private async urlTarget(req: IncomingMessage, label: string): Promise<{ job: Job; port: number }> {
    const { urls } = this.deps;
    const target = await urls.resolve(label);
    if (target.kind === 'unknown') throw MagsError.notFound(`no sandbox has the URL ${label}: check the address`);
    if (target.kind === 'ended') {
      throw new MagsError(
        410,
        'gone',
        `the sandbox of this URL has ended (${target.job.status}); start it again with mags new and open a URL with mags url`,
      );
    }
    if (target.kind === 'idle') {
      throw MagsError.notFound(
        `no sandbox runs on workspace "${target.workspace}" now: start one with mags new ${target.workspace} -p`,
      );
    }
    if (target.private && !(await this.owner(req, target.job, target.subdomain))) {
      throw MagsError.unauthorized(
        'this URL is private: send the owner\'s API token ("Authorization: Bearer mags_…") or open the login link mags url prints',
      );
    }
    return { job: target.job, port: target.port };
  }

  /** Whether the request carries the owner's token (header) or a cookie session for this URL. */
  private async owner(req: IncomingMessage, job: Job, subdomain: string): Promise<boolean> {
    const header = req.headers.authorization;
    if (header && /^bearer\s+mags_/i.test(header)) {
      try {
        return (await this.deps.auth.authenticate(header)).id === job.user_id;
      } catch {
        return false;
      }
    }
    const session = cookieOf(req, COOKIE);
    return session !== undefined && this.deps.urls.sessionUser(session, subdomain) === job.user_id;
  }

  private login(req: IncomingMessage, res: ServerResponse, label: string): void {
    const code = new URL(req.url ?? '/', 'http://x').searchParams.get('code') ?? '';
    const session = this.deps.urls.redeemLogin(code, label);
    if (!session) {
      return this.page(
        req,
        res,
        MagsError.unauthorized('this login link was used already or has expired: run mags url again for a new one'),
      );
    }
    const secure = this.tls ? '; Secure' : '';
    res.writeHead(303, {
      location: '/',
      'set-cookie': `${COOKIE}=${session}; Path=/; HttpOnly; SameSite=Lax; Max-Age=${SESSION_TTL_MS / 1000}${secure}`,
      'content-length': '0',
    });
    res.end();
  }

  /** Once the sandbox was just woken: waits until its port takes connections (or 30 s). */
  private async reachable(dest: Destination): Promise<void> {
    if (!dest.patient) return;
    const deadline = Date.now() + WAKE_CONNECT_MS;
    for (;;) {
      try {
        await probe(dest.address, dest.port);
        return;
      } catch (err) {
        if (Date.now() >= deadline) throw this.unreachable(dest, err as Error);
        await new Promise((r) => setTimeout(r, 200));
      }
    }
  }

  private unreachable(dest: Destination, err: Error): MagsError {
    const code = (err as NodeJS.ErrnoException).code;
    this.deps.logger.debug({ jobId: dest.job.id, port: dest.port, code }, 'URL: sandbox port unreachable');
    return new MagsError(
      502,
      'bad_gateway',
      `the sandbox is up but nothing answers on its port ${dest.port}${code ? ` (${code})` : ''}: start a server listening on 0.0.0.0:${dest.port} in it`,
    );
  }

  /** URL traffic is activity: its sandbox's idle timer starts over (a `wake` to an awake sandbox), throttled. */
  private touch(job: Job): void {
    const now = Date.now();
    const last = this.activity.get(job.id) ?? 0;
    if (now - last < this.activityEveryMs || job.agent_id === null) return;
    this.activity.set(job.id, now);
    if (this.activity.size > 10_000) {
      for (const [k, t] of this.activity) if (now - t > this.activityEveryMs) this.activity.delete(k);
    }
    this.deps.agents.tell(job.agent_id, { type: 'wake', jobId: job.id });
  }

  /** An error page: JSON `{error, code}` when the client asks for JSON, else a small HTML page. */
  private page(req: IncomingMessage, res: ServerResponse, err: MagsError): void {
    if (res.headersSent) return void res.destroy();
    const accept = req.headers.accept ?? '';
    const json = /application\/json/.test(accept) && !/text\/html/.test(accept);
    const body = json ? JSON.stringify(err.toJSON()) : htmlPage(err.status, err.message);
    res.writeHead(err.status, {
      'content-type': json ? 'application/json; charset=utf-8' : 'text/html; charset=utf-8',
      'content-length': Buffer.byteLength(body),
      'cache-control': 'no-store',
    });
    res.end(body);
    req.resume();
  }
}

function asError(err: unknown, logger: Logger): MagsError {
  if (err instanceof MagsError) return err;
  logger.error({ err }, 'router: request failed');
  return new MagsError(502, 'bad_gateway', 'the router could not reach this sandbox: try again');
}

function probe(host: string, port: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const s = net.connect({ host, port });
    s.setTimeout(2000, () => s.destroy(Object.assign(new Error('timed out'), { code: 'ETIMEDOUT' })));
    s.once('connect', () => {
      s.destroy();
      resolve();
    });
    s.once('error', reject);
  });
}

/** The client's headers for the sandbox: hop-by-hop ones dropped, forwarding ones set, the router's cookie removed. */
function forwardHeaders(req: IncomingMessage, tls: boolean, frontPeer: string | undefined): http.OutgoingHttpHeaders {
  const out: http.OutgoingHttpHeaders = {};
  const named = new Set(
    (req.headers.connection ?? '')
      .split(',')
      .map((s) => s.trim().toLowerCase())
      .filter(Boolean),
  );
  for (const [k, v] of Object.entries(req.headers)) {
    if (v === undefined || HOP.has(k) || named.has(k)) continue;
    out[k] = v;
  }
  // The owner's API token never reaches the sandbox.
  if (typeof out.authorization === 'string' && /^bearer\s+mags_/i.test(out.authorization)) delete out.authorization;
  if (typeof out.cookie === 'string') {
    const rest = out.cookie
      .split(';')
      .map((c) => c.trim())
      .filter((c) => c && !c.startsWith(`${COOKIE}=`));
    if (rest.length) out.cookie = rest.join('; ');
    else delete out.cookie;
  }
  const peer = frontPeer ?? req.socket.remoteAddress ?? '';
  const prior = req.headers['x-forwarded-for'];
  out['x-forwarded-for'] = prior ? `${prior}, ${peer}` : peer;
  out['x-forwarded-proto'] = tls ? 'https' : 'http';
  if (req.headers.host) out['x-forwarded-host'] = req.headers.host;
  return out;
}

const PROXY_V2 = Buffer.from('0d0a0d0a000d0a515549540a', 'hex');

/** Reads a PROXY protocol v2 header off a paused socket: the client's address (LOCAL: the front's own, ''). */
function readProxyHeader(socket: Socket): Promise<string> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => done(new Error('no PROXY header in time')), 5_000);
    const done = (err: Error | undefined, peer?: string) => {
      clearTimeout(timer);
      socket.off('readable', onReadable);
      socket.off('error', onError);
      if (err) reject(err);
      else resolve(peer ?? '');
    };
    const onError = (err: Error) => done(err);
    const onReadable = () => {
      const head: Buffer | null = socket.read(16);
      if (head === null) return;
      if (!head.subarray(0, 12).equals(PROXY_V2) || head[12] >> 4 !== 2)
        return done(new Error('not a PROXY v2 header'));
      const len = head.readUInt16BE(14);
      const rest: Buffer | null = len === 0 ? Buffer.alloc(0) : socket.read(len);
      if (rest === null) {
        socket.unshift(head);
        return;
      }
      const family = head[13] >> 4;
      let peer = '';
      if ((head[12] & 0x0f) === 1 && family === 1 && rest.length >= 12) peer = [...rest.subarray(0, 4)].join('.');
      else if ((head[12] & 0x0f) === 1 && family === 2 && rest.length >= 36) {
        const parts: string[] = [];
        for (let i = 0; i < 16; i += 2) parts.push(rest.readUInt16BE(i).toString(16));
        peer = net.isIPv6(parts.join(':')) ? parts.join(':') : '';
        const v4 = /^0:0:0:0:0:ffff:([0-9a-f]+):([0-9a-f]+)$/.exec(parts.join(':'));
        if (v4) {
          const a = Number.parseInt(v4[1], 16);
          const b = Number.parseInt(v4[2], 16);
          peer = `::ffff:${a >> 8}.${a & 255}.${b >> 8}.${b & 255}`;
        }
      }
      done(undefined, peer);
    };
    socket.on('readable', onReadable);
    socket.on('error', onError);
    onReadable();
  });
}

function cookieOf(req: IncomingMessage, name: string): string | undefined {
  for (const part of (req.headers.cookie ?? '').split(';')) {
    const [k, ...v] = part.trim().split('=');
    if (k === name) return v.join('=');
  }
  return undefined;
}

const escapeHtml = (s: string) =>
  s.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c] ?? c);

function htmlPage(status: number, message: string): string {
  const title = `${status} ${http.STATUS_CODES[status] ?? ''}`.trim();
  return `<!doctype html><html><head><meta charset="utf-8"><title>${title}</title><style>body{font:16px system-ui,sans-serif;max-width:40em;margin:4em auto;padding:0 1em;color:#222}h1{font-size:1.4em}p{color:#555}</style></head><body><h1>${title}</h1><p>${escapeHtml(message)}</p><p><small>Mags router</small></p></body></html>\n`;
}

/** A whole HTTP response as bytes, for an upgrade request that cannot be relayed. */
function rawPage(status: number, message: string, code?: string): string {
  const body = JSON.stringify({ error: message, code: code ?? (status === 404 ? 'not_found' : 'bad_gateway') });
  return `HTTP/1.1 ${status} ${http.STATUS_CODES[status] ?? ''}\r\ncontent-type: application/json\r\ncontent-length: ${Buffer.byteLength(body)}\r\nconnection: close\r\n\r\n${body}`;
}
