// Starts a real `mags server` (embedded: control plane + agent) for end-to-end tests, and stops it by PID.
import assert from 'node:assert/strict';
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { Job, Mags } from '@mags/sdk';

export const ROOT = path.resolve(import.meta.dirname, '..');
export const CLI = path.join(ROOT, 'packages/cli/dist/main.js');

export interface TestServer {
  url: string;
  token: string;
  home: string;
  port: number;
  /** The SSH gateway's port. */
  sshPort: number;
  /** The router's port (sandbox URLs: http://<subdomain>.localhost:<routerPort>). */
  routerPort: number;
  pid: number;
  /** Environment for running the CLI against this server. */
  env: NodeJS.ProcessEnv;
  /** SIGTERM (SIGKILL after 20 s); removes MAGS_HOME unless keepHome (to start a server on it again). */
  stop(opts?: { keepHome?: boolean }): Promise<void>;
  /** SIGKILL at once: a crash. MAGS_HOME stays. */
  kill(): Promise<void>;
  /** The first log record (JSON line on stdout, already written or to come) that `match` accepts. */
  waitForLog(match: (record: LogRecord) => boolean, what: string, timeoutMs?: number): Promise<LogRecord>;
}

export type LogRecord = { level: number; msg: string } & Record<string, unknown>;

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address() as net.AddressInfo;
      s.close(() => resolve(port));
    });
  });
}

/** Starts `mags server` with its own MAGS_HOME (a new temporary one unless given) and waits until its agent is online. */
export async function startServer(
  extraArgs: string[] = [],
  existingHome?: string,
  /** The CLI to start (a benchmark compares another build's). */
  cli = CLI,
): Promise<TestServer> {
  const home = existingHome ?? mkdtempSync(path.join(tmpdir(), 'mags-test-home-'));
  const port = await freePort();
  // A free port for the SSH gateway unless the test gives one: the default (2222) is the user's own server's.
  const given = extraArgs.indexOf('--ssh-port');
  const sshPort = given >= 0 ? Number(extraArgs[given + 1]) : await freePort();
  if (given < 0) extraArgs = [...extraArgs, '--ssh-port', String(sshPort)];
  // Likewise the router's (the default, 7380, is the user's own server's).
  const givenRouter = extraArgs.indexOf('--router-port');
  const routerPort = givenRouter >= 0 ? Number(extraArgs[givenRouter + 1]) : await freePort();
  if (givenRouter < 0) extraArgs = [...extraArgs, '--router-port', String(routerPort)];
  // An instance of its own unless the test names one: the default ("0") is the user's own server's, and tests of
  // other files (or a developer's server) may run beside this one.
  const ownInstance = extraArgs.includes('--instance') ? undefined : `t${randomBytes(2).toString('hex')}`;
  if (ownInstance) extraArgs = [...extraArgs, '--instance', ownInstance];
  const env: NodeJS.ProcessEnv = { ...process.env, MAGS_HOME: home };
  delete env.MAGS_API_URL;
  delete env.MAGS_API_TOKEN;
  const child: ChildProcess = spawn(process.execPath, [cli, 'server', '--port', String(port), ...extraArgs], {
    env,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  // The server's log: the most recent records, and the tests waiting for one.
  const records: LogRecord[] = [];
  const waiters = new Set<(r: LogRecord) => void>();
  let partial = '';
  child.stdout?.on('data', (b: Buffer) => {
    const lines = (partial + b.toString()).split('\n');
    partial = lines.pop() ?? '';
    for (const line of lines) {
      let record: LogRecord;
      try {
        record = JSON.parse(line) as LogRecord;
      } catch {
        continue;
      }
      records.push(record);
      if (records.length > 20_000) records.shift();
      for (const w of waiters) w(record);
    }
  });
  let stderr = '';
  child.stderr?.on('data', (b: Buffer) => {
    stderr = (stderr + b.toString()).slice(-8000);
  });
  const url = `http://127.0.0.1:${port}`;
  const deadline = Date.now() + 60_000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`mags server exited (${child.exitCode}): ${stderr}`);
    try {
      const res = await fetch(`${url}/api/v1/health`);
      if (res.ok) break;
    } catch {
      /* not up yet */
    }
    if (Date.now() > deadline) throw new Error(`mags server did not become healthy: ${stderr}`);
    await new Promise((r) => setTimeout(r, 100));
  }
  const config = JSON.parse(readFileSync(path.join(home, 'config.json'), 'utf8')) as { api_token: string };
  // Wait for the agent to announce itself, so the first job doesn't queue behind its start.
  for (let i = 0; i < 100; i++) {
    const res = await fetch(`${url}/api/v1/status`, { headers: { authorization: `Bearer ${config.api_token}` } });
    const body = (await res.json()) as { agents?: Array<{ status: string }> };
    if (body.agents?.some((a) => a.status === 'online')) break;
    await new Promise((r) => setTimeout(r, 100));
  }
  return {
    url,
    token: config.api_token,
    home,
    port,
    sshPort,
    routerPort,
    pid: child.pid!,
    env: { ...env, MAGS_API_URL: url, MAGS_API_TOKEN: config.api_token },
    async stop(opts = {}) {
      if (child.exitCode === null && child.signalCode === null) {
        const exited = new Promise((r) => child.once('exit', r));
        child.kill('SIGTERM');
        const timer = setTimeout(() => child.kill('SIGKILL'), 20_000);
        await exited;
        clearTimeout(timer);
      }
      if (!opts.keepHome) rmSync(home, { recursive: true, force: true });
      if (ownInstance && !opts.keepHome) removeInstance(ownInstance, false);
    },
    waitForLog(match, what, timeoutMs = 60_000) {
      const seen = records.find(match);
      if (seen) return Promise.resolve(seen);
      return new Promise<LogRecord>((resolve, reject) => {
        const timer = setTimeout(() => {
          waiters.delete(waiter);
          reject(new Error(`the server logged no ${what} within ${timeoutMs / 1000} s`));
        }, timeoutMs);
        const waiter = (r: LogRecord) => {
          if (!match(r)) return;
          clearTimeout(timer);
          waiters.delete(waiter);
          resolve(r);
        };
        waiters.add(waiter);
      });
    },
    async kill() {
      if (child.exitCode !== null || child.signalCode !== null) return;
      const exited = new Promise((r) => child.once('exit', r));
      child.kill('SIGKILL');
      await exited;
    },
  };
}

export interface CliResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs the built CLI with the test server's environment (plus `env`), stdout and stderr piped as in a script. */
export function runCli(server: TestServer, args: string[], env: NodeJS.ProcessEnv = {}): Promise<CliResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [CLI, ...args], {
      env: { ...server.env, ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout!.on('data', (b: Buffer) => out.push(b));
    child.stderr!.on('data', (b: Buffer) => err.push(b));
    child.once('error', reject);
    child.once('close', (code) =>
      resolve({ code, stdout: Buffer.concat(out).toString(), stderr: Buffer.concat(err).toString() }),
    );
  });
}

export interface RunResult {
  requestId: string;
  status: string;
  exitCode: number | null;
  stdout: string;
  stderr: string;
  errorMessage: string | null;
}

/** Submits a script through the REST API and waits for it to end: the path every client takes. */
export async function runScript(
  server: TestServer,
  script: string,
  options: Record<string, unknown> = {},
): Promise<RunResult> {
  const headers = { authorization: `Bearer ${server.token}`, 'content-type': 'application/json' };
  const submit = await fetch(`${server.url}/api/v1/mags-jobs`, {
    method: 'POST',
    headers,
    body: JSON.stringify({ script, ...options }),
  });
  const accepted = (await submit.json()) as { request_id: string; error?: string };
  if (submit.status !== 202) throw new Error(`submit failed (${submit.status}): ${accepted.error}`);
  const id = accepted.request_id;
  let status: { status: string; exit_code: number | null; error_message: string | null };
  for (;;) {
    const res = await fetch(`${server.url}/api/v1/mags-jobs/${id}/status?wait=30`, { headers });
    status = (await res.json()) as typeof status;
    // A persistent run sleeps once its script has ended.
    if (['completed', 'failed', 'error', 'stopped', 'sleeping'].includes(status.status)) break;
  }
  const logs = (await (await fetch(`${server.url}/api/v1/mags-jobs/${id}/logs`, { headers })).json()) as {
    logs: Array<{ stream: string; message: string }>;
  };
  const text = (stream: string) =>
    logs.logs
      .filter((l) => l.stream === stream)
      .map((l) => `${l.message}\n`)
      .join('');
  return {
    requestId: id,
    status: status.status,
    exitCode: status.exit_code,
    stdout: text('stdout'),
    stderr: text('stderr'),
    errorMessage: status.error_message,
  };
}

/** What one agent instance's sandboxes create on the host; after its server stops, none of it may remain. */
export function leftovers(instance: string): { netns: string[]; mounts: string[]; loops: string[] } {
  const dir = `/var/lib/mags/sandboxes/${instance}/`;
  const mounts = readFileSync('/proc/self/mountinfo', 'utf8')
    .split('\n')
    .map((l) => l.split(' ')[4])
    .filter((m): m is string => !!m && m.startsWith(dir));
  const netns = existsSync('/run/netns')
    ? readdirSync('/run/netns').filter((n) => n.startsWith(`mags${instance}-`))
    : [];
  // Loop devices backing sandbox layers (an image deleted while attached still holds its space).
  const loops = execFileSync('losetup', ['--list', '--noheadings', '--raw', '--output', 'BACK-FILE'])
    .toString()
    .split('\n')
    .filter((f) => f.startsWith(dir));
  return { netns, mounts, loops };
}

/**
 * After an instance's server has stopped: checks (unless `check` is false) that its sandboxes left no mounts or network
 * namespaces, and removes its workspace, base and cache directories.
 */
export function removeInstance(instance: string, check = true): void {
  if (check) {
    const left = leftovers(instance);
    assert.deepEqual(left.mounts, [], 'no sandbox mounts remain after the server stops');
    assert.deepEqual(left.netns, [], 'no sandbox network namespaces remain');
  }
  for (const sub of ['workspaces', 'bases', 'cache'])
    rmSync(`/var/lib/mags/${sub}/${instance}`, { recursive: true, force: true });
}

/** One REST call as the server's owner: the status and the parsed JSON body. */
export async function api(
  server: TestServer,
  method: string,
  route: string,
  body?: unknown,
): Promise<{ status: number; body: any }> {
  const res = await fetch(`${server.url}${route}`, {
    method,
    headers: {
      authorization: `Bearer ${server.token}`,
      ...(body === undefined ? {} : { 'content-type': 'application/json' }),
    },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await res.text();
  return { status: res.status, body: text ? JSON.parse(text) : undefined };
}

/** Runs a script and insists it succeeds (completed; or sleeping with exit code 0: a persistent run); returns its stdout. */
export async function ok(server: TestServer, script: string, options: Record<string, unknown> = {}): Promise<string> {
  const r = await runScript(server, script, options);
  assert.equal(
    r.status === 'sleeping' && r.exitCode === 0 ? 'completed' : r.status,
    'completed',
    `script failed (${r.status}, exit ${r.exitCode}): ${r.errorMessage}\n${r.stderr}\n${r.stdout}`,
  );
  return r.stdout;
}

/** Polls the job until `until` holds (at most `timeoutMs`); returns it. */
export async function waitJob(
  mags: Mags,
  ref: string,
  until: (j: Job) => boolean,
  what: string,
  timeoutMs = 30_000,
): Promise<Job> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const job = await mags.status(ref);
    if (until(job)) return job;
    if (Date.now() > deadline) throw new Error(`job ${ref} did not get ${what} within ${timeoutMs} ms (${job.status})`);
    await new Promise((r) => setTimeout(r, 100));
  }
}
