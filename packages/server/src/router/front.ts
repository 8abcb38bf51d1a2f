// The router's front for plain HTTP: HAProxy (a C proxy) on the router port relays requests for public URLs of awake
// sandboxes straight to them, routed per request by its Host through a map (host → address:port) that this module
// keeps equal to the store through HAProxy's runtime API (a unix socket in a root-only directory). Everything else
// (unknown hosts, private URLs, sleeping or stopped sandboxes, error pages, wake on request) goes to the Node router
// on an internal loopback port, with the client's address in a PROXY v2 header. HAProxy's per-host counters are
// polled every second and reported as URL activity; HAProxy is restarted if it dies.
import { type ChildProcess, spawn } from 'node:child_process';
import { accessSync, chmodSync, constants, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import type { Logger } from 'pino';

/** Where a public URL's host name goes: its job (for activity) and the sandbox's `address:port`. */
export interface FrontRoute {
  jobId: string;
  target: string;
}

export interface FrontDeps {
  /** The haproxy program, an absolute path. */
  haproxy: string;
  /** A directory of the server's state; made root-only (0700): the config, the map, the runtime socket. */
  dir: string;
  logger: Logger;
  /** The routes HAProxy should hold now: public URLs of running sandboxes, by host name (lower case, no port). */
  routes(): Promise<Map<string, FrontRoute>>;
  /** Requests or open connections on a host since the last poll: the URL's traffic is activity for sleep. */
  activity(host: string, jobId: string): void;
  pollMs?: number;
}

const SOCKET = 'admin.sock';
const MAP = 'hosts.map';
const CONFIG = 'haproxy.cfg';
const PID = 'haproxy.pid';
const TABLE = 'sandbox';

/** The haproxy program on PATH (absolute), or undefined when it is not installed. */
export function findHaproxy(envPath = process.env.PATH ?? ''): string | undefined {
  for (const dir of [...envPath.split(':'), '/usr/sbin', '/usr/local/sbin']) {
    if (!dir || !path.isAbsolute(dir)) continue;
    const file = path.join(dir, 'haproxy');
    try {
      accessSync(file, constants.X_OK);
      return file;
    } catch {
      /* not here */
    }
  }
  return undefined;
}

/** setpriv (util-linux) gives haproxy a parent-death signal: a server killed outright leaves no proxy on its port. */
function findSetpriv(): string | undefined {
  for (const file of ['/usr/bin/setpriv', '/bin/setpriv']) {
    try {
      accessSync(file, constants.X_OK);
      return file;
    } catch {
      /* not here */
    }
  }
  return undefined;
}

/** A map key or value as HAProxy's runtime API takes it: no spaces, quotes or control characters can come here. */
function safe(s: string): string {
  if (!/^[a-z0-9.:_-]+$/i.test(s)) throw new Error(`unsafe map entry ${JSON.stringify(s)}`);
  return s;
}

export class HaproxyFront {
  private child: ChildProcess | undefined;
  private closing = false;
  /** Started once: from then on, an exit is followed by a restart. */
  private running = false;
  private listen: { host: string; port: number; nodePort: number } | undefined;
  /** What HAProxy's map holds (as far as this module applied it). */
  private applied = new Map<string, string>();
  /** An update failed part-way: the next one rewrites the whole map. */
  private stale = false;
  /** The job of each host that was in the map: activity seen just after a host left the map still finds its job. */
  private readonly jobs = new Map<string, string>();
  private readonly counts = new Map<string, number>();
  private syncing: Promise<void> | undefined;
  private dirty = false;
  private poller: NodeJS.Timeout | undefined;
  private restartDelayMs = 200;
  private restartTimer: NodeJS.Timeout | undefined;
  /** Times HAProxy was (re)started: a test sees a restart. */
  starts = 0;

  constructor(private readonly deps: FrontDeps) {}

  get pid(): number | undefined {
    return this.child?.pid;
  }

  get socketPath(): string {
    return path.join(this.deps.dir, SOCKET);
  }

  /** Starts HAProxy on `host:port` in front of the Node router's internal port; resolves once it answers. */
  async start(host: string, port: number, nodePort: number): Promise<void> {
    mkdirSync(this.deps.dir, { recursive: true, mode: 0o700 });
    chmodSync(this.deps.dir, 0o700);
    this.killStale();
    this.listen = { host, port, nodePort };
    await this.spawn();
    this.running = true;
    this.poller = setInterval(() => void this.poll(), this.deps.pollMs ?? 1000);
    this.poller.unref();
  }

  /** A HAProxy left by a server that died without closing it (same state dir) holds the port: stop it. */
  private killStale(): void {
    const pidFile = path.join(this.deps.dir, PID);
    let pid: number;
    try {
      pid = Number(readFileSync(pidFile, 'utf8'));
    } catch {
      return;
    }
    try {
      const cmdline = readFileSync(`/proc/${pid}/cmdline`, 'utf8');
      if (cmdline.includes(path.join(this.deps.dir, CONFIG))) {
        process.kill(pid, 'SIGKILL');
        this.deps.logger.warn({ pid }, 'router front: stopped a HAProxy left by an earlier server');
      }
    } catch {
      /* gone already */
    }
    rmSync(pidFile, { force: true });
  }

  private config(): string {
    const { host, port, nodePort } = this.listen!;
    const dir = this.deps.dir;
    const bind = host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`;
    // Timeouts as the Node router's: idle keep-alive 65 s, headers 60 s; a streaming body, SSE or WebSocket is cut
    // only after an hour without a byte.
    return `# Written by mags server at each start of HAProxy; do not edit (the server rewrites it).
global
  stats socket ${dir}/${SOCKET} mode 600 level admin
  hard-stop-after 5s
defaults
  mode http
  timeout connect 5s
  timeout client 1h
  timeout server 1h
  timeout tunnel 1h
  timeout http-keep-alive 65s
  timeout http-request 60s
  timeout client-fin 10s
  timeout server-fin 10s
frontend router
  bind ${bind}
  http-request set-var(txn.host) req.hdr(host),lower,field(1,:)
  http-request set-var(txn.to) var(txn.host),map(${dir}/${MAP})
  # The Node router handles what is not a plain request to an awake public URL; it also strips the owner's token
  # and the private URL cookie before a request reaches a sandbox.
  use_backend node if !{ var(txn.to) -m found }
  use_backend node if { path_beg /.mags/ }
  use_backend node if { req.cook(mags_url) -m found }
  use_backend node if { req.hdr(authorization) -m reg -i ^bearer[[:space:]]+mags_ }
  default_backend ${TABLE}
backend ${TABLE}
  stick-table type string len 253 size 200k expire 10m store http_req_cnt,conn_cur
  http-request track-sc0 var(txn.host)
  http-request set-dst var(txn.to),field(1,:)
  http-request set-dst-port var(txn.to),field(2,:)
  option forwardfor
  http-request set-header X-Forwarded-Proto http
  http-request set-header X-Forwarded-Host %[req.hdr(host)]
  # A sandbox whose port refuses (its server is down, or it stopped before the map caught up) goes to the Node router,
  # which answers with its page (502 naming the port, 404, 410) or wakes it: use-server is persistence that a
  # redispatch on a failed connection breaks, and the load balancer never picks the weight-0 sandbox server itself.
  retries 1
  retry-on conn-failure
  option redispatch 1
  use-server sandbox if TRUE
  server sandbox 0.0.0.0:0 weight 0
  server node 127.0.0.1:${nodePort} send-proxy-v2
backend node
  server node 127.0.0.1:${nodePort} send-proxy-v2
`;
  }

  private async spawn(): Promise<void> {
    const dir = this.deps.dir;
    const routes = await this.deps.routes();
    const lines: string[] = [];
    this.applied = new Map();
    this.stale = false;
    for (const [host, r] of routes) {
      lines.push(`${safe(host)} ${safe(r.target)}`);
      this.applied.set(host, r.target);
      this.jobs.set(host, r.jobId);
    }
    writeFileSync(path.join(dir, MAP), lines.length ? `${lines.join('\n')}\n` : '', { mode: 0o600 });
    writeFileSync(path.join(dir, CONFIG), this.config(), { mode: 0o600 });
    rmSync(this.socketPath, { force: true });
    const setpriv = findSetpriv();
    const args = ['-db', '-f', path.join(dir, CONFIG)];
    const child = setpriv
      ? spawn(setpriv, ['--pdeathsig', 'KILL', '--', this.deps.haproxy, ...args], { stdio: ['ignore', 'pipe', 'pipe'] })
      : spawn(this.deps.haproxy, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    this.child = child;
    this.starts++;
    let output = '';
    const collect = (b: Buffer) => {
      const text = b.toString();
      output = (output + text).slice(-4000);
      for (const line of text.split('\n')) if (line.trim()) this.deps.logger.debug({ haproxy: line }, 'router front');
    };
    child.stdout?.on('data', collect);
    child.stderr?.on('data', collect);
    const exited = new Promise<never>((_, reject) => {
      child.once('exit', (code, signal) => {
        if (this.child === child) this.child = undefined;
        reject(new Error(`haproxy exited (${signal ?? code}): ${output.trim().slice(-1000)}`));
        if (!this.closing && this.running) this.restartLater(code, signal, output.trim().slice(-500));
      });
      child.once('error', reject);
    });
    exited.catch(() => {});
    if (child.pid) writeFileSync(path.join(dir, PID), String(child.pid), { mode: 0o600 });
    const deadline = Date.now() + 10_000;
    for (;;) {
      const ready = await Promise.race([
        this.command('show info').then(
          () => true,
          () => false,
        ),
        exited,
      ]);
      if (ready) break;
      if (Date.now() > deadline) {
        child.kill('SIGKILL');
        throw new Error(`haproxy did not start: ${output.trim().slice(-1000)}`);
      }
      await new Promise((r) => setTimeout(r, 50));
    }
    this.restartDelayMs = 200;
    this.deps.logger.info({ pid: child.pid, port: this.listen?.port }, 'router front (HAProxy) listening');
    // Changes while it started: apply them now.
    this.sync();
  }

  private restartLater(code: number | null, signal: NodeJS.Signals | null, output = ''): void {
    if (this.restartTimer) return;
    const delay = this.restartDelayMs;
    this.restartDelayMs = Math.min(5_000, delay * 2);
    this.deps.logger.warn({ code, signal, inMs: delay, output }, 'router front: HAProxy exited; restarting it');
    this.restartTimer = setTimeout(() => {
      this.restartTimer = undefined;
      if (this.closing) return;
      this.spawn().catch((err: unknown) => {
        this.deps.logger.error({ err }, 'router front: HAProxy did not restart');
        // An exit already scheduled the next try; a failure before HAProxy ran (the store) schedules it here.
        if (!this.child && !this.closing) this.restartLater(null, null);
      });
    }, delay);
  }

  /** One command on the runtime API (a connection per command); resolves with the answer. */
  command(cmd: string): Promise<string> {
    return new Promise((resolve, reject) => {
      const s = net.connect(this.socketPath);
      let out = '';
      s.setTimeout(5_000, () => s.destroy(new Error(`haproxy runtime API: no answer to ${cmd}`)));
      s.on('connect', () => s.end(`${cmd}\n`));
      s.on('data', (b) => {
        out += b.toString();
      });
      s.on('error', reject);
      s.on('close', () => resolve(out));
    });
  }

  /** Brings HAProxy's map in line with the routes (coalesced: call it on any change of URLs or sandboxes). */
  sync(): void {
    this.dirty = true;
    if (this.syncing) return;
    this.syncing = (async () => {
      while (this.dirty && !this.closing) {
        this.dirty = false;
        try {
          await this.apply();
        } catch (err) {
          this.deps.logger.warn({ err }, 'router front: updating the map failed; retrying');
          this.dirty = true;
          await new Promise((r) => setTimeout(r, 500));
        }
      }
    })().finally(() => {
      this.syncing = undefined;
    });
  }

  /**
   * Resolves once the map holds the routes as of this call (or after `timeoutMs`, logged: HAProxy not answering must
   * not hang the API; a URL left in the map by then is relayed until the retries apply the change).
   */
  async synced(timeoutMs = 5_000): Promise<void> {
    this.sync();
    const deadline = Date.now() + timeoutMs;
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<'late'>((r) => {
      timer = setTimeout(() => r('late'), timeoutMs);
    });
    try {
      while (this.syncing && Date.now() < deadline) {
        if ((await Promise.race([this.syncing, late])) === 'late') {
          this.deps.logger.warn('router front: the map did not take a change in time; it still retries');
          return;
        }
      }
    } finally {
      clearTimeout(timer);
    }
  }

  private async apply(): Promise<void> {
    const routes = await this.deps.routes();
    if (!this.child) return; // applied in full at the next start
    const file = path.join(this.deps.dir, MAP);
    const next = new Map<string, string>();
    for (const [host, r] of routes) {
      this.jobs.set(host, r.jobId);
      next.set(host, r.target);
    }
    const cmds: string[] = [];
    if (this.stale) {
      // After a failed update the map's content is unknown: emptied and filled again (meanwhile, misses go to the
      // Node router, which serves them correctly).
      cmds.push(`clear map ${file}`);
      for (const [host, target] of next) cmds.push(`add map ${file} ${safe(host)} ${safe(target)}`);
    } else {
      for (const [host, target] of next) {
        const had = this.applied.get(host);
        if (had === target) continue;
        cmds.push(`${had === undefined ? 'add' : 'set'} map ${file} ${safe(host)} ${safe(target)}`);
      }
      for (const host of this.applied.keys()) if (!next.has(host)) cmds.push(`del map ${file} ${safe(host)}`);
    }
    try {
      for (const cmd of cmds) {
        const answer = (await this.command(cmd)).trim();
        if (answer && !/^Done\.?$/.test(answer)) throw new Error(`haproxy: ${cmd}: ${answer}`);
      }
    } catch (err) {
      this.stale = true;
      throw err;
    }
    if (cmds.length) this.deps.logger.debug({ changes: cmds.length, hosts: next.size }, 'router front: map updated');
    this.applied = next;
    this.stale = false;
  }

  /** Hosts with requests since the last poll, or open connections (a WebSocket, a long download): activity. */
  private async poll(): Promise<void> {
    if (!this.child || this.closing) return;
    let table: string;
    try {
      table = await this.command(`show table ${TABLE}`);
    } catch {
      return;
    }
    const seen = new Set<string>();
    for (const line of table.split('\n')) {
      const m = /key=(\S+) .*conn_cur=(\d+) http_req_cnt=(\d+)/.exec(line);
      if (!m) continue;
      const [, host, cur, count] = m;
      seen.add(host);
      const n = Number(count);
      const moved = this.counts.get(host) !== n;
      this.counts.set(host, n);
      if (!moved && Number(cur) === 0) continue;
      const jobId = this.jobs.get(host);
      if (jobId) this.deps.activity(host, jobId);
    }
    // Hosts neither routed nor counted any more (their table entries expired) are forgotten.
    for (const host of this.jobs.keys()) if (!seen.has(host) && !this.applied.has(host)) this.jobs.delete(host);
    for (const host of this.counts.keys()) if (!seen.has(host)) this.counts.delete(host);
  }

  async close(): Promise<void> {
    this.closing = true;
    if (this.poller) clearInterval(this.poller);
    if (this.restartTimer) clearTimeout(this.restartTimer);
    const child = this.child;
    this.child = undefined;
    if (child && child.exitCode === null) {
      const gone = new Promise((r) => child.once('exit', r));
      child.kill('SIGTERM');
      const t = setTimeout(() => child.kill('SIGKILL'), 3_000);
      await gone;
      clearTimeout(t);
    }
    rmSync(path.join(this.deps.dir, PID), { force: true });
    rmSync(this.socketPath, { force: true });
  }
}
