// Shared test setup: temporary SQLite files, fresh PostgreSQL schemas, a server with a fake agent attached.

import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInProcessLink } from '@mags/api';
import pg from 'pg';
import { pino } from 'pino';
import {
  createServer,
  type MagsServer,
  resolveServerConfig,
  type ServerConfigInput,
  type WorkspaceTimeouts,
} from '../src/index.js';
import { FakeAgent, type FakeAgentOptions } from './fake-agent.js';

export const PG_HELP =
  'MAGS_TEST_PG_URL is not set: run `scripts/start-postgres.sh` and ' +
  '`export MAGS_TEST_PG_URL=postgres://postgres@127.0.0.1:55432/mags_test`, then run the tests again';

export function tempDir(): { path: string; remove(): void } {
  const path = mkdtempSync(join(tmpdir(), 'mags-server-test-'));
  return { path, remove: () => rmSync(path, { recursive: true, force: true }) };
}

/**
 * A database URL for one fresh, empty PostgreSQL schema (search_path set through the URL), so that test runs
 * never see each other's tables. Fails loudly when the test database is not configured.
 */
export async function freshPostgres(): Promise<{ url: string; drop(): Promise<void> }> {
  const base = process.env.MAGS_TEST_PG_URL;
  if (!base) throw new Error(PG_HELP);
  const schema = `mags_t_${randomBytes(6).toString('hex')}`;
  const admin = new pg.Client({ connectionString: base });
  try {
    await admin.connect();
  } catch (err) {
    throw new Error(`cannot reach PostgreSQL at ${base} (${(err as Error).message}); run scripts/start-postgres.sh`);
  }
  await admin.query(`create schema ${schema}`);
  await admin.end();
  const url = new URL(base);
  url.searchParams.set('options', `-c search_path=${schema}`);
  return {
    url: url.toString(),
    async drop() {
      const c = new pg.Client({ connectionString: base });
      await c.connect();
      await c.query(`drop schema if exists ${schema} cascade`);
      await c.end();
    },
  };
}

export interface TestServer {
  server: MagsServer;
  token: string;
  auth: { authorization: string };
  agent?: FakeAgent;
  /** What the server logged at warn level and above (JSON records), to check that nothing failed inside. */
  logs: Array<{ level: number; msg: string; [key: string]: unknown }>;
  /** Records at error level or above: a request that failed inside the server, a message handler that threw. */
  errors(): Array<{ level: number; msg: string }>;
  close(): Promise<void>;
}

export interface TestServerOptions {
  agent?: FakeAgentOptions | false;
  database?: string;
  /** More settings (e.g. maxUploadBytes); the data directory (with the object store in it) is always a fresh one. */
  config?: ServerConfigInput;
  workspaceTimeouts?: Partial<WorkspaceTimeouts>;
  /** How often the retention sweep runs (default: the server's). */
  retentionSweepMs?: number;
  maxExecsPerUser?: number;
  /** The cron scheduler's tick and clock (default: the server's). */
  cron?: { tickMs?: number; now?: () => number };
  /** The sign-in throttle's first wait (ms). */
  signInThrottleMs?: number;
}

export async function startTestServer(opts: TestServerOptions = {}): Promise<TestServer> {
  const dir = tempDir();
  const config = resolveServerConfig(
    // No SSH gateway unless a test asks for one (a port of its own): the default port is the user's.
    {
      sshPort: 0,
      routerPort: 0,
      ...opts.config,
      dataDir: dir.path,
      database: opts.database,
      port: 0,
      logLevel: 'silent',
    },
    {},
  );
  const logs: TestServer['logs'] = [];
  const logger = pino({ level: 'warn' }, { write: (line: string) => void logs.push(JSON.parse(line)) });
  const server = await createServer(config, {
    logger,
    workspaceTimeouts: opts.workspaceTimeouts,
    retentionSweepMs: opts.retentionSweepMs,
    maxExecsPerUser: opts.maxExecsPerUser,
    cron: opts.cron,
    signInThrottleMs: opts.signInThrottleMs,
  });
  if (!server.localToken) throw new Error('a fresh server must create the local owner token');
  const token = server.localToken;
  let agent: FakeAgent | undefined;
  if (opts.agent !== false) {
    const link = createInProcessLink();
    server.attachAgent(link.server);
    agent = new FakeAgent(link.agent, opts.agent ?? {});
    await waitFor(async () => {
      const res = await server.app.inject({
        method: 'GET',
        url: '/api/v1/status',
        headers: { authorization: `Bearer ${token}` },
      });
      return res.json().agents.some((a: { status: string }) => a.status === 'online');
    });
  }
  return {
    server,
    token,
    auth: { authorization: `Bearer ${token}` },
    agent,
    logs,
    errors: () => logs.filter((r) => r.level >= 50),
    async close() {
      await server.close();
      dir.remove();
    },
  };
}

/** Retries `test` on the next turns of the event loop until it holds (bounded by a count, not a clock). */
export async function waitFor(test: () => boolean | Promise<boolean>, what = 'condition', tries = 2000): Promise<void> {
  for (let i = 0; i < tries; i++) {
    if (await test()) return;
    await new Promise((r) => setTimeout(r, 5));
  }
  throw new Error(`gave up waiting for ${what}`);
}

/** Asserts an error response: exact status, and a body with a sentence and a code. */
export function errorBody(
  res: { statusCode: number; json(): unknown },
  status: number,
  code: string,
): { error: string; code: string } {
  const body = res.json() as { error?: unknown; code?: unknown };
  if (res.statusCode !== status || body.code !== code || typeof body.error !== 'string' || body.error.length === 0) {
    throw new Error(`expected ${status} ${code} with an error sentence, got ${res.statusCode} ${JSON.stringify(body)}`);
  }
  return body as { error: string; code: string };
}

/** Joins a fake agent to the test server over an in-process link. */
export function connect(t: TestServer, options: FakeAgentOptions): FakeAgent {
  const link = createInProcessLink();
  t.server.attachAgent(link.server);
  return new FakeAgent(link.agent, options);
}

export async function agentsOnline(t: TestServer, n: number): Promise<void> {
  await waitFor(async () => {
    const res = await t.server.app.inject({ method: 'GET', url: '/api/v1/status', headers: t.auth });
    return res.json().agents.filter((a: { status: string }) => a.status === 'online').length === n;
  }, `${n} agents online`);
}
