// The Node.js SDK against a real server, plus the parts that need none (SSE parsing, resuming a broken stream,
// where the token and address come from).
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { MagsError } from '@mags/api';
import DefaultMags, {
  type LogEntry,
  Mags,
  MagsApiError,
  MagsConnectionError,
  MagsTimeoutError,
  SseParser,
} from '@mags/sdk';
import { freePort, ROOT, startServer, type TestServer } from './harness.js';

let server: TestServer;
let mags: Mags;

before(async () => {
  server = await startServer(['--instance', `s${randomBytes(2).toString('hex')}`]);
  mags = new Mags({ apiUrl: server.url, apiToken: server.token });
});
after(async () => {
  await server?.stop();
});

describe('against a server', () => {
  test('runAndWait returns status, exit code and the logs with message, stream and timestamp', async () => {
    const result = await mags.runAndWait('echo Hello World; echo warn >&2');
    assert.match(result.requestId, /^[0-9a-f-]{36}$/);
    assert.equal(result.status, 'completed');
    assert.equal(result.exitCode, 0);
    assert.equal(result.errorMessage, null);
    assert.equal(typeof result.durationMs, 'number');
    assert.equal(result.logs.length, 2);
    const [first, second] = result.logs;
    assert.equal(first.message, 'Hello World');
    assert.equal(first.stream, 'stdout');
    assert.ok(!Number.isNaN(Date.parse(first.timestamp)), 'timestamp is a date');
    assert.equal(first.seq, 1);
    assert.deepEqual([second.stream, second.message], ['stderr', 'warn']);

    const failed = await mags.runAndWait('exit 5');
    assert.equal(failed.status, 'failed');
    assert.equal(failed.exitCode, 5);
  });

  test('run, status and logs map the options and results between camelCase and the wire', async () => {
    const name = `sdk-${randomBytes(3).toString('hex')}`;
    const accepted = await mags.run('echo "$A-$B"; echo two; echo three', {
      name,
      environment: { A: 'x', B: 'y' },
      memoryMb: 256,
      vcpus: 0.5,
      timeoutS: 60,
      network: 'none',
    });
    assert.equal(accepted.status, 'accepted');
    assert.equal(typeof accepted.message, 'string');
    const job = await mags.wait(accepted.requestId, 60_000);
    assert.equal(job.status, 'completed');

    const byName = await mags.status(name);
    assert.equal(byName.requestId, accepted.requestId, 'status() takes the job name too');
    assert.equal(byName.name, name);
    assert.equal(byName.exitCode, 0);
    assert.equal(byName.errorMessage, null);
    assert.ok(byName.createdAt && byName.startedAt && byName.completedAt);
    assert.equal(typeof byName.scriptDurationMs, 'number');
    assert.match(byName.script, /echo two/);
    assert.equal(byName.longLived, false, 'a script job is not long-lived');
    assert.equal(byName.noSleep, false);

    const logs = await mags.logs(accepted.requestId);
    assert.deepEqual(
      logs.map((l) => l.message),
      ['x-y', 'two', 'three'],
    );
    const later = await mags.logs(accepted.requestId, { after: logs[0].seq });
    assert.deepEqual(
      later.map((l) => l.message),
      ['two', 'three'],
    );

    const found = await mags.findJob(name);
    assert.equal(found?.requestId, accepted.requestId);
    assert.equal(await mags.findJob(`missing-${randomBytes(3).toString('hex')}`), null);

    const list = await mags.list({ page: 1, pageSize: 5 });
    assert.equal(list.pageSize, 5);
    assert.ok(list.jobs.some((j) => j.requestId === accepted.requestId));
    assert.ok(list.total >= 1);

    const pool = await mags.poolStatus();
    for (const key of ['idleVms', 'busyVms', 'totalVms', 'minPoolSize', 'maxPoolSize'] as const)
      assert.equal(typeof pool[key], 'number');
    const status = await mags.serverStatus();
    assert.ok(status.agents.some((a) => a.status === 'online' && a.runtime.length > 0));
    assert.equal(typeof status.server.startedAt, 'string');
  });

  test('a sandbox from new() is longLived; updateJob({ noSleep }) shows in its status and list entry', async () => {
    const name = `sdk-live-${randomBytes(3).toString('hex')}`;
    try {
      const job = await mags.new(name, { persistent: true });
      assert.equal(job.longLived, true, 'new() makes a long-lived sandbox');
      assert.equal(job.noSleep, false, 'it sleeps when idle unless asked not to');
      const updated = await mags.updateJob(name, { noSleep: true });
      assert.equal(updated.noSleep, true);
      assert.equal(updated.longLived, true);
      const status = await mags.status(name);
      assert.equal(status.noSleep, true, 'status() maps no_sleep');
      const listed = (await mags.list({ pageSize: 100 })).jobs.find((j) => j.requestId === job.requestId);
      assert.equal(listed?.longLived, true, 'list() maps long_lived');
      assert.equal(listed?.noSleep, true, 'list() maps no_sleep');
    } finally {
      await mags.stop(name).catch(() => {});
    }
  });

  test('stream() yields lines live, in order, and ends with the job', async () => {
    const { requestId } = await mags.run('for i in 1 2 3 4 5; do echo line$i; sleep 0.3; done; echo done >&2');
    const follower = mags.stream(requestId);
    const seen: LogEntry[] = [];
    let statusAtFirstLine: string | undefined;
    for await (const entry of follower) {
      if (seen.length === 0) statusAtFirstLine = (await mags.status(requestId)).status;
      seen.push(entry);
    }
    assert.equal(statusAtFirstLine, 'running', 'the first line arrived while the job still ran');
    assert.deepEqual(
      seen.map((e) => `${e.stream}:${e.message}`),
      ['stdout:line1', 'stdout:line2', 'stdout:line3', 'stdout:line4', 'stdout:line5', 'stderr:done'],
    );
    assert.deepEqual(
      seen.map((e) => e.seq),
      [1, 2, 3, 4, 5, 6],
    );
    assert.equal(follower.status?.status, 'completed');
    assert.equal(follower.status?.exitCode, 0);
    assert.equal((await follower.done).requestId, requestId);

    // Following a finished job replays its output and ends; `after` skips what was seen.
    const replay: string[] = [];
    for await (const entry of mags.stream(requestId, { after: 4 })) replay.push(entry.message);
    assert.deepEqual(replay, ['line5', 'done']);
  });

  test('errors are typed and carry the API code', async () => {
    const bad = new Mags({ apiUrl: server.url, apiToken: 'wrong' });
    await assert.rejects(bad.list(), (err: unknown) => {
      assert.ok(err instanceof MagsApiError);
      assert.ok(err instanceof MagsError, 'one error type for the project');
      assert.equal(err.code, 'unauthorized');
      assert.equal(err.status, 401);
      assert.match(err.message, /token/);
      return true;
    });
    await assert.rejects(mags.status('no-such-job'), (err: unknown) => {
      assert.ok(err instanceof MagsApiError);
      assert.equal(err.code, 'not_found');
      assert.equal(err.status, 404);
      assert.equal(err.message, 'job "no-such-job" not found');
      return true;
    });
    await assert.rejects(
      mags.run('true', { memoryMb: 1 }),
      (err: unknown) => err instanceof MagsApiError && err.code === 'invalid_request',
    );
  });

  test('deleteJob deletes a finished job and its logs; an unfinished one is refused with 409', async () => {
    const done = await mags.runAndWait('echo keep me not');
    const running = await mags.run('sleep 60');
    await assert.rejects(mags.deleteJob(running.requestId), (err: unknown) => {
      assert.ok(err instanceof MagsApiError);
      assert.deepEqual([err.status, err.code], [409, 'conflict']);
      assert.match(err.message, /has not finished \((accepted|running)\); stop it first, then delete it$/);
      return true;
    });
    await mags.deleteJob(done.requestId);
    await assert.rejects(
      mags.logs(done.requestId),
      (err: unknown) => err instanceof MagsApiError && err.code === 'not_found',
    );
    await assert.rejects(
      mags.deleteJob(done.requestId),
      (err: unknown) => err instanceof MagsApiError && err.status === 404,
    );
    await mags.stop(running.requestId);
    await mags.deleteJob(running.requestId);
  });

  test('runAndWait throws MagsTimeoutError with the request id when the timeout passes', async () => {
    let id: string | undefined;
    await assert.rejects(mags.runAndWait('sleep 60', { timeout: 800 }), (err: unknown) => {
      assert.ok(err instanceof MagsTimeoutError);
      assert.ok(err instanceof MagsApiError);
      assert.equal(err.code, 'timeout');
      assert.match(err.requestId ?? '', /^[0-9a-f-]{36}$/);
      id = err.requestId;
      return true;
    });
    const job = await mags.status(id!);
    assert.ok(['accepted', 'running'].includes(job.status), 'the job keeps running');
    const stopped = await mags.stop(id!);
    assert.equal(stopped.success, true);
    assert.equal(stopped.status, 'stopped');
  });

  test('MAGS_API_URL and MAGS_API_TOKEN are read from the environment', async () => {
    const saved = { url: process.env.MAGS_API_URL, token: process.env.MAGS_API_TOKEN, home: process.env.MAGS_HOME };
    const emptyHome = mkdtempSync(path.join(tmpdir(), 'mags-sdk-env-'));
    try {
      process.env.MAGS_API_URL = server.url;
      process.env.MAGS_API_TOKEN = server.token;
      process.env.MAGS_HOME = emptyHome;
      const fromEnv = new Mags();
      assert.equal(fromEnv.apiUrl, server.url);
      const r = await fromEnv.runAndWait('echo env');
      assert.equal(r.logs[0]?.message, 'env');
      // An explicit option beats the environment.
      process.env.MAGS_API_TOKEN = 'wrong';
      await assert.rejects(new Mags().list(), (e: unknown) => e instanceof MagsApiError && e.code === 'unauthorized');
      await new Mags({ apiToken: server.token }).list();
    } finally {
      for (const [key, value] of [
        ['MAGS_API_URL', saved.url],
        ['MAGS_API_TOKEN', saved.token],
        ['MAGS_HOME', saved.home],
      ] as const) {
        if (value === undefined) delete process.env[key];
        else process.env[key] = value;
      }
      rmSync(emptyHome, { recursive: true, force: true });
    }
  });

  test('with no environment, the config file in MAGS_HOME gives address and token', async () => {
    const home = mkdtempSync(path.join(tmpdir(), 'mags-sdk-config-'));
    try {
      writeFileSync(path.join(home, 'config.json'), JSON.stringify({ api_url: server.url, api_token: server.token }));
      const client = new Mags({ env: { MAGS_HOME: home } });
      assert.equal(client.apiUrl, server.url);
      // The job runs on the file's server under the file's token: the test's own client, the owner's, sees it.
      const name = `from-file-${randomBytes(3).toString('hex')}`;
      const { requestId } = await client.run('true', { name });
      assert.equal((await mags.status(requestId)).name, name);
      // MAGS_API_TOKEN beats the file's token.
      const overridden = new Mags({ env: { MAGS_HOME: home, MAGS_API_TOKEN: 'wrong' } });
      await assert.rejects(overridden.list(), (e: unknown) => e instanceof MagsApiError && e.status === 401);
    } finally {
      rmSync(home, { recursive: true, force: true });
    }
  });
});

describe('without a server', () => {
  test('an unreachable server is a MagsConnectionError that says what to do', async () => {
    const port = await freePort();
    const client = new Mags({ apiUrl: `http://127.0.0.1:${port}`, apiToken: 'x' });
    await assert.rejects(client.list(), (err: unknown) => {
      assert.ok(err instanceof MagsConnectionError);
      assert.ok(err instanceof MagsApiError);
      assert.equal(
        err.message,
        `cannot reach the Mags server at http://127.0.0.1:${port}: is it running? (mags server)`,
      );
      return true;
    });
  });

  test('with nothing configured, the default is the local server', () => {
    const home = mkdtempSync(path.join(tmpdir(), 'mags-sdk-default-'));
    try {
      assert.equal(new Mags({ env: { MAGS_HOME: home } }).apiUrl, 'http://127.0.0.1:7373');
    } finally {
      rmSync(home, { recursive: true, force: true });
    }
  });

  test('import default, import { Mags } and require() give the same class', () => {
    assert.equal(DefaultMags, Mags);
    // Plain Node (not this test's loader): `const Mags = require(…)` is the class, `const { Mags } = require(…)` too.
    const out = execFileSync(
      process.execPath,
      [
        '-e',
        "const Mags = require('@mags/sdk'); const { Mags: M, MagsApiError } = require('@mags/sdk'); console.log(typeof Mags, Mags === M, typeof MagsApiError, new Mags({ apiToken: 'x', apiUrl: 'http://127.0.0.1:1' }).apiUrl)",
      ],
      { encoding: 'utf8', cwd: ROOT },
    );
    assert.equal(out.trim(), 'function true function http://127.0.0.1:1');
  });

  test('the SSE parser handles events split anywhere, CRLF, comments and multi-line data', () => {
    const text =
      ': keep-alive\r\n\r\nid: 1\r\nevent: log\r\ndata: {"a":1}\r\n\r\nevent: end\ndata: x\ndata: y\n\ndata: no-end';
    const bytes = new TextEncoder().encode(text);
    for (let cut = 0; cut <= bytes.length; cut++) {
      const p = new SseParser();
      const events = [...p.push(bytes.slice(0, cut)), ...p.push(bytes.slice(cut)), ...p.end()];
      assert.deepEqual(
        events,
        [
          { event: 'log', data: '{"a":1}', id: '1' },
          { event: 'end', data: 'x\ny', id: undefined },
        ],
        `split at ${cut}`,
      );
    }
  });

  test('a stream that breaks is resumed after the last line, without loss or repeats', async () => {
    const entry = (seq: number) =>
      `id: ${seq}\nevent: log\ndata: ${JSON.stringify({ seq, timestamp: new Date().toISOString(), level: 'info', stream: 'stdout', message: `m${seq}` })}\n\n`;
    const end = `event: end\ndata: ${JSON.stringify({
      request_id: 'j1',
      name: null,
      status: 'completed',
      workspace_id: null,
      vm_id: null,
      subdomain: null,
      url: null,
      exit_code: 0,
      script_duration_ms: 5,
      created_at: new Date().toISOString(),
      started_at: null,
      completed_at: null,
      error_message: null,
      script: 'x',
    })}\n\n`;
    const afters: string[] = [];
    const fake = http.createServer((req, res) => {
      const url = new URL(req.url ?? '/', 'http://x');
      afters.push(url.searchParams.get('after') ?? '');
      res.writeHead(200, { 'content-type': 'text/event-stream' });
      if (afters.length === 1) {
        // Two lines, then the connection drops mid-event.
        res.write(`${entry(1)}${entry(2)}id: 3\nevent: log\ndata: {"seq":3`);
        setTimeout(() => res.destroy(), 50);
      } else {
        res.end(entry(2) + entry(3) + end);
      }
    });
    await new Promise<void>((r) => fake.listen(0, '127.0.0.1', () => r()));
    try {
      const client = new Mags({ apiUrl: `http://127.0.0.1:${(fake.address() as AddressInfo).port}`, apiToken: 'x' });
      const follower = client.stream('j1');
      const got: string[] = [];
      for await (const e of follower) got.push(e.message);
      assert.deepEqual(got, ['m1', 'm2', 'm3']);
      assert.deepEqual(afters, ['0', '2'], 'the second request resumed after line 2');
      assert.equal(follower.status?.status, 'completed');
    } finally {
      fake.closeAllConnections();
      await new Promise((r) => fake.close(r));
    }
  });
});
