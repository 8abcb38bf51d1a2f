// Job output is bounded: a job stores at most the server's cap (then one line says where it was cut), lines are
// stored in batches without loss or reordering, finished jobs expire after the retention period or are deleted on
// request, and followers that read slowly (or never) cost the server bounded memory.
import assert from 'node:assert/strict';
import net from 'node:net';
import { after, before, describe, test } from 'node:test';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import type { JobStatus, LogEntry } from '@mags/api';
import { errorBody, freshPostgres, startTestServer, type TestServer, waitFor } from './helpers.js';

function collectGarbage(): void {
  setFlagsFromString('--expose-gc');
  (runInNewContext('gc') as () => void)();
}

async function submit(t: TestServer, script: string): Promise<string> {
  const res = await t.server.app.inject({
    method: 'POST',
    url: '/api/v1/mags-jobs',
    headers: t.auth,
    payload: { script },
  });
  assert.equal(res.statusCode, 202, res.body);
  return res.json().request_id as string;
}

async function waitEnded(t: TestServer, id: string): Promise<JobStatus> {
  for (;;) {
    const res = await t.server.app.inject({
      method: 'GET',
      url: `/api/v1/mags-jobs/${id}/status?wait=30`,
      headers: t.auth,
    });
    const job = res.json() as JobStatus;
    if (['completed', 'failed', 'error', 'stopped'].includes(job.status)) return job;
  }
}

/** Every stored line of a job, read page by page as a client would. */
async function allLogs(t: TestServer, id: string): Promise<LogEntry[]> {
  const out: LogEntry[] = [];
  let after = 0;
  for (;;) {
    const res = await t.server.app.inject({
      method: 'GET',
      url: `/api/v1/mags-jobs/${id}/logs?after=${after}&limit=50000`,
      headers: t.auth,
    });
    assert.equal(res.statusCode, 200, res.body);
    const logs = res.json().logs as LogEntry[];
    out.push(...logs);
    if (logs.length < 50000) return out;
    after = logs[logs.length - 1].seq;
  }
}

describe('the stored output cap', () => {
  let t: TestServer;
  before(async () => {
    t = await startTestServer({ config: { maxLogMb: 1 } });
  });
  after(async () => {
    const errors = t.errors();
    await t.close();
    assert.deepEqual(errors, []);
  });

  test('a job printing far more than the cap stores at most the cap, then one notice as its last line, and still ends with its exit code', async () => {
    // About 8 MB of output against a 1 MB cap.
    const id = await submit(t, 'lines 400000\nexit 3');
    const job = await waitEnded(t, id);
    assert.equal(job.status, 'failed');
    assert.equal(job.exit_code, 3, 'the exit code is kept');
    const logs = await allLogs(t, id);
    const last = logs.at(-1)!;
    assert.equal(last.stream, 'system');
    assert.equal(last.message, "[output truncated: more than 1 MB; the rest of this job's output was not stored]");
    assert.equal(logs.filter((l) => /output truncated/.test(l.message)).length, 1, 'one notice');
    const kept = logs.slice(0, -1);
    const bytes = kept.reduce((n, l) => n + Buffer.byteLength(l.message) + 1, 0);
    assert.ok(bytes <= 1024 * 1024, `${bytes} bytes stored`);
    assert.ok(kept.length > 10_000, `the output up to the cap is kept (${kept.length} lines)`);
    assert.deepEqual(
      kept.slice(0, 3).map((l) => l.message),
      ['line 1', 'line 2', 'line 3'],
    );
    assert.deepEqual(
      logs.map((l) => l.seq),
      Array.from({ length: logs.length }, (_, i) => i + 1),
      'in order, nothing missing before the cut',
    );
  });

  test('a followed job sees the same lines and the notice, then its end', async () => {
    const id = await submit(t, 'manual');
    await t.agent!.until(() => t.agent!.running.has(id));
    const base = await t.server.listen();
    const res = await fetch(`${base}/api/v1/mags-jobs/${id}/logs?follow=true`, { headers: t.auth });
    const reading = res.text();
    for (let i = 0; i < 100; i++)
      t.agent!.output(
        id,
        Array.from({ length: 2000 }, (_, j) => `l${i}-${j}`),
      );
    t.agent!.exit(id, 0);
    const text = await reading;
    const logs = text
      .split('\n\n')
      .filter((b) => b.includes('event: log'))
      .map((b) => JSON.parse(b.slice(b.indexOf('data: ') + 6)) as LogEntry);
    assert.deepEqual(logs, await allLogs(t, id), 'the follower saw exactly what was stored');
    assert.match(logs.at(-1)!.message, /^\[output truncated: more than 1 MB;/);
    assert.match(text, /event: end\ndata: .*"status":"completed"/);
  });

  test('a line longer than 64 KiB is cut, saying so', async () => {
    const id = await submit(t, 'manual');
    await t.agent!.until(() => t.agent!.running.has(id));
    t.agent!.output(id, ['x'.repeat(200_000), 'after']);
    t.agent!.exit(id, 0);
    await waitEnded(t, id);
    const logs = await allLogs(t, id);
    assert.equal(logs.length, 2);
    assert.equal(logs[0].message, `${'x'.repeat(65536)} [line cut: longer than 64 KiB]`);
    assert.equal(logs[1].message, 'after');
  });
});

for (const backend of ['SQLite', 'PostgreSQL'] as const) {
  describe(`storing output in batches (${backend})`, () => {
    let t: TestServer;
    let drop = async (): Promise<void> => {};
    before(async () => {
      let database: string | undefined;
      if (backend === 'PostgreSQL') {
        const pg = await freshPostgres();
        database = pg.url;
        drop = pg.drop;
      }
      t = await startTestServer({ database, agent: { batch: 1 } });
    });
    after(async () => {
      const errors = t.errors();
      await t.close();
      await drop();
      assert.deepEqual(errors, []);
    });

    test('many small messages are stored in far fewer writes, every line once and in order, the last ones before the end', async () => {
      const store = t.server.store;
      let writes = 0;
      const original = store.logs.append.bind(store.logs);
      store.logs.append = (jobId, lines) => {
        writes++;
        return original(jobId, lines);
      };
      try {
        const id = await submit(t, 'manual');
        await t.agent!.until(() => t.agent!.running.has(id));
        // 6,000 messages of one line each, alternating streams, then the exit right behind them.
        const n = 6000;
        for (let i = 1; i <= n; i++) t.agent!.output(id, [`m${i}`], i % 2 ? 'stdout' : 'stderr');
        t.agent!.exit(id, 0);
        const job = await waitEnded(t, id);
        assert.equal(job.status, 'completed');
        const logs = await allLogs(t, id);
        assert.equal(logs.length, n, 'no line lost, none repeated');
        assert.deepEqual(
          logs.map((l) => l.message),
          Array.from({ length: n }, (_, i) => `m${i + 1}`),
        );
        assert.deepEqual(
          logs.map((l) => l.stream),
          Array.from({ length: n }, (_, i) => (i % 2 ? 'stderr' : 'stdout')),
        );
        assert.ok(writes <= n / 100, `${writes} writes for ${n} messages`);
      } finally {
        store.logs.append = original;
      }
    });
  });
}

describe('retention and deleting jobs', () => {
  let t: TestServer;
  before(async () => {
    t = await startTestServer({ config: { retainDays: 2 }, retentionSweepMs: 20 });
  });
  after(async () => {
    const errors = t.errors();
    await t.close();
    assert.deepEqual(errors, []);
  });

  test('finished jobs older than the retention period are deleted with their output; newer and unfinished ones stay', async () => {
    const old = await submit(t, 'echo old\nexit 1');
    const recent = await submit(t, 'echo recent');
    await waitEnded(t, old);
    await waitEnded(t, recent);
    const running = await submit(t, 'hang');
    await waitFor(async () => (await t.server.store.jobs.get(running))?.status === 'running', 'the job running');
    const day = 24 * 60 * 60 * 1000;
    const db = t.server.store.db;
    await db
      .updateTable('jobs')
      .set({ created_at: Date.now() - 5 * day, completed_at: Date.now() - 3 * day })
      .where('id', '=', old)
      .execute();
    await db
      .updateTable('jobs')
      .set({ completed_at: Date.now() - day })
      .where('id', '=', recent)
      .execute();
    await db
      .updateTable('jobs')
      .set({ created_at: Date.now() - 9 * day })
      .where('id', '=', running)
      .execute();

    await waitFor(async () => (await t.server.store.jobs.get(old)) === undefined, 'the sweep');
    errorBody(
      await t.server.app.inject({ method: 'GET', url: `/api/v1/mags-jobs/${old}/status`, headers: t.auth }),
      404,
      'not_found',
    );
    assert.deepEqual(await t.server.store.logs.read(old), [], 'its output is gone too');
    assert.equal((await t.server.store.jobs.get(recent))?.status, 'completed');
    assert.equal((await t.server.store.logs.read(recent)).length, 1);
    assert.equal((await t.server.store.jobs.get(running))?.status, 'running', 'an unfinished job is never swept');
    await t.server.app.inject({ method: 'POST', url: `/api/v1/mags-jobs/${running}/stop`, headers: t.auth });
  });

  test('DELETE removes a finished job and its output (204), refuses an unfinished one (409), and is 404 for another user and the second time', async () => {
    const done = await submit(t, 'echo bye');
    await waitEnded(t, done);
    const busy = await submit(t, 'hang');
    await waitFor(async () => (await t.server.store.jobs.get(busy))?.status === 'running', 'the job running');
    const del = (id: string, headers = t.auth) =>
      t.server.app.inject({ method: 'DELETE', url: `/api/v1/mags-jobs/${id}`, headers });

    const mallory = await t.server.store.users.create('mallory');
    const otherAuth = { authorization: `Bearer ${await t.server.auth.createToken(mallory.id, 'test')}` };
    assert.equal(errorBody(await del(done, otherAuth), 404, 'not_found').error, `job "${done}" not found`);

    const refused = errorBody(await del(busy), 409, 'conflict');
    assert.equal(refused.error, `job "${busy}" has not finished (running); stop it first, then delete it`);
    assert.equal((await t.server.store.jobs.get(busy))?.status, 'running');

    const ok = await del(done);
    assert.equal(ok.statusCode, 204);
    assert.equal(ok.body, '');
    errorBody(
      await t.server.app.inject({ method: 'GET', url: `/api/v1/mags-jobs/${done}/logs`, headers: t.auth }),
      404,
      'not_found',
    );
    assert.deepEqual(await t.server.store.logs.read(done), []);
    errorBody(await del(done), 404, 'not_found');

    await t.server.app.inject({ method: 'POST', url: `/api/v1/mags-jobs/${busy}/stop`, headers: t.auth });
    assert.equal((await del(busy)).statusCode, 204, 'once stopped it can be deleted');

    const doc = (await t.server.app.inject({ method: 'GET', url: '/api/v1/openapi.json' })).json();
    const op = doc.paths['/api/v1/mags-jobs/{id}'].delete;
    assert.ok(op.responses['204'] && op.responses['404'] && op.responses['409'], 'documented in the OpenAPI document');
  });
});

/** An SSE client on a raw socket that reads nothing until told to (a slow or stuck follower). */
class RawFollower {
  private readonly socket: net.Socket;
  private received: Buffer[] = [];
  readonly ended: Promise<void>;
  constructor(base: string, path: string, token: string) {
    const url = new URL(base);
    this.socket = net.connect(Number(url.port), url.hostname);
    this.socket.setNoDelay(true);
    this.socket.write(
      `GET ${path} HTTP/1.1\r\nHost: ${url.host}\r\nAuthorization: Bearer ${token}\r\nAccept: text/event-stream\r\n\r\n`,
    );
    this.socket.pause();
    // Ended when the server closes the connection or ends the chunked body.
    this.ended = new Promise((resolve) => {
      this.socket.once('close', () => resolve());
      this.socket.on('data', (b: Buffer) => {
        this.received.push(b);
        if (b.toString('latin1').endsWith('\r\n0\r\n\r\n')) resolve();
      });
    });
  }
  /** Starts reading (and keeps every byte). */
  read(): void {
    this.socket.resume();
  }
  text(): string {
    return Buffer.concat(this.received).toString();
  }
  close(): void {
    this.socket.destroy();
  }
}

/** The log events in a raw HTTP/1.1 chunked SSE response. */
function sseLogs(raw: string): LogEntry[] {
  const body = raw.slice(raw.indexOf('\r\n\r\n') + 4);
  // Chunked encoding: drop the chunk-size lines.
  let text = '';
  let rest = body;
  for (;;) {
    const eol = rest.indexOf('\r\n');
    if (eol < 0) break;
    const size = parseInt(rest.slice(0, eol), 16);
    if (!Number.isFinite(size) || size === 0) break;
    text += rest.slice(eol + 2, eol + 2 + size);
    rest = rest.slice(eol + 2 + size + 2);
  }
  return text
    .split('\n\n')
    .filter((b) => b.includes('event: log'))
    .map((b) => JSON.parse(b.slice(b.indexOf('data: ') + 6)) as LogEntry);
}

describe('slow followers', () => {
  let t: TestServer;
  let base: string;
  before(async () => {
    t = await startTestServer({ config: { maxLogMb: 1024, maxFollowersPerUser: 100 } });
    base = await t.server.listen();
  });
  after(async () => {
    const errors = t.errors();
    await t.close();
    assert.deepEqual(errors, []);
  });

  test('followers that never read keep the server’s memory bounded, /health answers, and one that reads late gets every line in order', async (ctx) => {
    const id = await submit(t, 'manual');
    await t.agent!.until(() => t.agent!.running.has(id));
    const followers = Array.from(
      { length: 30 },
      () => new RawFollower(base, `/api/v1/mags-jobs/${id}/logs?follow=true`, t.token),
    );
    await new Promise((r) => setTimeout(r, 100)); // let every follower subscribe

    collectGarbage();
    const baseline = process.memoryUsage().heapUsed;
    // About 32 MB of output, in batches the size the real agent sends.
    const batches = 150;
    const perBatch = 2000;
    const payload = 'y'.repeat(100);
    let peak = 0;
    for (let b = 0; b < batches; b++) {
      t.agent!.output(
        id,
        Array.from({ length: perBatch }, (_, i) => `${b * perBatch + i + 1} ${payload}`),
      );
      if (b % 20 === 19) {
        // Wait until this much is stored, then see what the server holds.
        const lastSeq = (b + 1) * perBatch;
        await waitFor(
          async () => (await t.server.store.logs.read(id, lastSeq - 1, 1)).length === 1,
          'stored output',
          20_000,
        );
        collectGarbage();
        peak = Math.max(peak, process.memoryUsage().heapUsed - baseline);
      }
    }
    const total = batches * perBatch;
    const volume = total * (payload.length + 8);
    const health = await fetch(`${base}/api/v1/health`);
    assert.equal(health.status, 200, '/health answers while followers are stuck');
    ctx.diagnostic(
      `heap grew by ${Math.round(peak / 1e6)} MB at most while ${Math.round(volume / 1e6)} MB of output went to 30 stuck followers`,
    );
    // Holding the output for the stuck followers (what the server did before) grows the heap by more than the output.
    assert.ok(
      peak < volume / 2,
      `heap grew by ${Math.round(peak / 1e6)} MB while ${Math.round(volume / 1e6)} MB of output went to 30 stuck followers`,
    );

    // One follower starts reading now: it gets every line, in order, then the end.
    const late = followers[0];
    late.read();
    t.agent!.exit(id, 0);
    await late.ended;
    const logs = sseLogs(late.text());
    assert.equal(logs.length, total, 'no line lost, none repeated');
    assert.ok(
      logs.every((l, i) => l.seq === i + 1),
      'in order',
    );
    assert.match(late.text(), /event: end\ndata: .*"status":"completed"/);
    for (const f of followers) f.close();
  });

  test('a user may hold only so many followers at once: one more is 429 with a sentence', async () => {
    const other = await startTestServer({ config: { maxFollowersPerUser: 2 } });
    try {
      const url = await other.server.listen();
      const id = await submit(other, 'hang');
      await other.agent!.until(() => other.agent!.running.has(id));
      const follow = (signal: AbortSignal) =>
        fetch(`${url}/api/v1/mags-jobs/${id}/logs?follow=true`, { headers: other.auth, signal });
      const aborts = [new AbortController(), new AbortController()];
      const open = await Promise.all(aborts.map((a) => follow(a.signal)));
      assert.deepEqual(
        open.map((r) => r.status),
        [200, 200],
      );
      const third = await follow(new AbortController().signal);
      assert.equal(third.status, 429);
      const body = (await third.json()) as { error: string; code: string };
      assert.equal(body.code, 'too_many_requests');
      assert.match(
        body.error,
        /^you already follow 2 job outputs at once, the most this server allows per user; close one/,
      );
      // Reading without following still works; closing a follower frees its place.
      assert.equal((await fetch(`${url}/api/v1/mags-jobs/${id}/logs`, { headers: other.auth })).status, 200);
      aborts[0].abort();
      await waitFor(async () => {
        const again = await follow(new AbortController().signal);
        if (again.status === 200) {
          await again.body?.cancel();
          return true;
        }
        await again.text();
        return false;
      }, 'a free place');
      aborts[1].abort();
      await other.server.app.inject({ method: 'POST', url: `/api/v1/mags-jobs/${id}/stop`, headers: other.auth });
    } finally {
      await other.close();
    }
  });
});
