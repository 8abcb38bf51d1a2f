// Placement and lifecycle across agents: capacity, FIFO queue, stop of queued jobs, agents leaving and
// coming back, restart recovery, and agents that send nonsense.
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { createInProcessLink, type JobStatus } from '@mags/api';
import { uuidv7 } from '../src/ids.js';
import { createServer, resolveServerConfig, Store } from '../src/index.js';
import { FakeAgent } from './fake-agent.js';
import { agentsOnline, connect, errorBody, startTestServer, type TestServer, tempDir, waitFor } from './helpers.js';

async function submit(t: TestServer, body: Record<string, unknown>): Promise<string> {
  const res = await t.server.app.inject({ method: 'POST', url: '/api/v1/mags-jobs', headers: t.auth, payload: body });
  assert.equal(res.statusCode, 202, res.body);
  return res.json().request_id;
}
async function status(t: TestServer, id: string, wait = 0): Promise<JobStatus> {
  const res = await t.server.app.inject({
    method: 'GET',
    url: `/api/v1/mags-jobs/${id}/status?wait=${wait}`,
    headers: t.auth,
  });
  assert.equal(res.statusCode, 200, res.body);
  return res.json();
}

describe('scheduler', () => {
  test('a job goes to the online agent with the most free capacity', async () => {
    const t = await startTestServer({ agent: false });
    try {
      const small = connect(t, { id: 'small', capacity: 1 });
      const big = connect(t, { id: 'big', capacity: 3 });
      await agentsOnline(t, 2);
      const a = await submit(t, { script: 'hang' }); // big: 3 free vs 1
      await big.until(() => big.running.has(a));
      const b = await submit(t, { script: 'hang' }); // big: 2 free vs 1
      await big.until(() => big.running.has(b));
      const c = await submit(t, { script: 'hang' }); // big 1, small 1: either
      await waitFor(() => big.running.has(c) || small.running.has(c));
      const d = await submit(t, { script: 'hang' });
      await waitFor(() => big.running.has(d) || small.running.has(d));
      assert.equal(big.running.size + small.running.size, 4);
      assert.equal(small.running.size, 1);
      assert.equal(big.running.size, 3);
      const status = (await t.server.app.inject({ method: 'GET', url: '/api/v1/status', headers: t.auth })).json();
      assert.deepEqual(
        status.agents
          .map((x: { id: string; running: number; capacity: number }) => [x.id, x.running, x.capacity])
          .sort(),
        [
          ['big', 3, 3],
          ['small', 1, 1],
        ],
      );
    } finally {
      await t.close();
    }
  });

  test('without free capacity jobs wait as accepted, then run first-in first-out as capacity frees', async () => {
    const t = await startTestServer({ agent: { capacity: 1 } });
    const agent = t.agent!;
    try {
      const first = await submit(t, { script: 'hang' });
      await agent.until(() => agent.running.has(first));
      const queued: string[] = [];
      for (let i = 0; i < 4; i++) queued.push(await submit(t, { script: 'hang' }));
      for (const id of queued) assert.equal((await status(t, id)).status, 'accepted');
      assert.equal(agent.starts.length, 1, 'nothing beyond capacity reaches the agent');

      // A queued job stops at once, without ever reaching an agent.
      const stop = await t.server.app.inject({
        method: 'POST',
        url: `/api/v1/mags-jobs/${queued[1]}/stop`,
        headers: t.auth,
      });
      assert.deepEqual(stop.json(), { success: true, request_id: queued[1], status: 'stopped' });
      assert.equal((await status(t, queued[1])).completed_at !== null, true);

      const order = [first];
      for (const next of [queued[0], queued[2], queued[3]]) {
        const current = order.at(-1)!;
        const res = await t.server.app.inject({
          method: 'POST',
          url: `/api/v1/mags-jobs/${current}/stop`,
          headers: t.auth,
        });
        assert.equal(res.json().status, 'stopped');
        await agent.until(() => agent.running.has(next));
        order.push(next);
      }
      assert.deepEqual(
        agent.starts.map((s) => s.jobId),
        order,
        'dispatched in submission order',
      );
      assert.ok(!agent.starts.some((s) => s.jobId === queued[1]), 'the stopped job never started');
    } finally {
      await t.close();
    }
  });

  test('jobs submitted with no agent connected run when one connects', async () => {
    const t = await startTestServer({ agent: false });
    try {
      const id = await submit(t, { script: 'echo late' });
      assert.equal((await status(t, id)).status, 'accepted');
      const pool = (
        await t.server.app.inject({ method: 'GET', url: '/api/v1/mags-jobs/pool-status', headers: t.auth })
      ).json();
      assert.deepEqual(pool, {
        idle_vms: 0,
        busy_vms: 0,
        sleeping_vms: 0,
        total_vms: 0,
        min_pool_size: 0,
        max_pool_size: 0,
      });
      connect(t, { id: 'late' });
      const job = await status(t, id, 30);
      assert.equal(job.status, 'completed');
    } finally {
      await t.close();
    }
  });

  test('when an agent disconnects its jobs end as error, it shows offline, and queued jobs go elsewhere', async () => {
    const t = await startTestServer({ agent: { id: 'leaving', capacity: 1 } });
    const agent = t.agent!;
    try {
      const running = await submit(t, { script: 'hang' });
      await agent.until(() => agent.running.has(running));
      const waiting = await submit(t, { script: 'echo moved' });
      agent.link.close();
      const failed = await status(t, running, 30);
      assert.equal(failed.status, 'error');
      assert.equal(failed.error_message, 'the agent running this job disconnected');
      const st = (await t.server.app.inject({ method: 'GET', url: '/api/v1/status', headers: t.auth })).json();
      assert.deepEqual(
        st.agents.map((a: { id: string; status: string }) => [a.id, a.status]),
        [['leaving', 'offline']],
      );
      const pool = (
        await t.server.app.inject({ method: 'GET', url: '/api/v1/mags-jobs/pool-status', headers: t.auth })
      ).json();
      assert.equal(pool.total_vms, 0);
      assert.equal((await status(t, waiting)).status, 'accepted');

      connect(t, { id: 'arriving' });
      assert.equal((await status(t, waiting, 30)).status, 'completed');
    } finally {
      await t.close();
    }
  });

  test('an agent that reconnects replaces its old link', async () => {
    const t = await startTestServer({ agent: { id: 'same' } });
    try {
      const id = await submit(t, { script: 'hang' });
      await t.agent!.until(() => t.agent!.running.has(id));
      const again = connect(t, { id: 'same' });
      assert.equal((await status(t, id, 30)).status, 'error');
      await agentsOnline(t, 1);
      const next = await submit(t, { script: 'echo on the new link' });
      assert.equal((await status(t, next, 30)).status, 'completed');
      assert.ok(again.starts.some((s) => s.jobId === next));
    } finally {
      await t.close();
    }
  });

  test('messages an agent should not send are ignored without harm', async () => {
    const t = await startTestServer();
    const agent = t.agent!;
    try {
      const victim = await submit(t, { script: 'manual' });
      await agent.until(() => agent.running.has(victim));
      const garbage: unknown[] = [
        null,
        42,
        'hello',
        { type: 'bogus' },
        { type: 'hello' },
        { type: 'hello', agent: { id: '', capacity: -1 } },
        { type: 'pool', pool: { idle: 'x' } },
        { type: 'started', jobId: victim },
        { type: 'output', jobId: victim, lines: [{ seq: 0, stream: 'stdout', ts: 1, message: 'x' }] },
        { type: 'output', jobId: victim, lines: [{ seq: 1, stream: 'tty', ts: 1, message: 'x' }] },
        { type: 'output', jobId: victim, lines: 'x' },
        { type: 'output', jobId: uuidv7(), lines: [{ seq: 1, stream: 'stdout', ts: 1, message: 'not yours' }] },
        { type: 'exited', jobId: uuidv7(), exitCode: 0, reason: 'exited', ts: 1 },
        { type: 'exited', jobId: victim, exitCode: 'zero', reason: 'exited', ts: 1 },
        { type: 'exited', jobId: victim, exitCode: 0, reason: 'vanished', ts: 1 },
        { type: 'started', jobId: uuidv7(), sandboxId: 'sbx', ts: 1 },
        { type: 'workspace' },
        { type: 'workspace', report: { owner: 'x' } },
        { type: 'workspace', report: { owner: 'x', name: 'y', state: 'exploded', usedBytes: 0, files: 0, ts: 1 } },
        { type: 'workspace', report: { owner: 'x', name: 'y', state: 'present', usedBytes: -1, files: 0, ts: 1 } },
        {
          type: 'workspace',
          report: { owner: 'nobody', name: 'nothing', state: 'gone', usedBytes: 0, files: 0, ts: 1 },
        },
        { type: 'reply' },
        { type: 'reply', requestId: 'never-asked', ok: true, result: { held: true } },
        { type: 'reply', requestId: 'r', ok: true, result: { held: 'yes' } },
        { type: 'reply', requestId: 'r', ok: false, status: 200, code: 'fine', error: 'not an error' },
        { type: 'reply', requestId: 'r', ok: false, status: 500 },
      ];
      for (const m of garbage) agent.sendUnchecked(m);
      // A link that never says hello cannot report anything.
      const stranger = createInProcessLink();
      t.server.attachAgent(stranger.server);
      stranger.agent.send({ type: 'exited', jobId: victim, exitCode: 1, reason: 'exited', ts: Date.now() });

      agent.output(victim, ['still fine']);
      agent.exit(victim, 0);
      const job = await status(t, victim, 30);
      assert.equal(job.status, 'completed');
      const logs = (
        await t.server.app.inject({ method: 'GET', url: `/api/v1/mags-jobs/${victim}/logs`, headers: t.auth })
      ).json();
      assert.deepEqual(
        logs.logs.map((l: { message: string }) => l.message),
        ['still fine'],
      );
      const health = await t.server.app.inject({ method: 'GET', url: '/api/v1/health' });
      assert.equal(health.statusCode, 200);
      assert.deepEqual(t.errors(), [], 'nonsense from an agent is a warning, not a failure');
      assert.ok(t.logs.some((r) => r.msg === 'ignoring a malformed message from an agent'));
      assert.ok(t.logs.some((r) => /ignoring a reply to a request this agent was not sent/.test(r.msg)));
    } finally {
      await t.close();
    }
  });

  test('a late report cannot change a finished job', async () => {
    const t = await startTestServer();
    const agent = t.agent!;
    try {
      const id = await submit(t, { script: 'manual' });
      await agent.until(() => agent.running.has(id));
      agent.exit(id, 0);
      assert.equal((await status(t, id, 30)).status, 'completed');
      agent.send({ type: 'exited', jobId: id, exitCode: 9, reason: 'error', message: 'late', ts: Date.now() });
      agent.send({ type: 'started', jobId: id, sandboxId: 'again', ts: Date.now() });
      // The job is no longer this agent's: the server logs each late report as ignored (its explicit signal).
      const ignored = (type: string) => t.logs.some((r) => r.jobId === id && r.type === type);
      await waitFor(() => ignored('exited') && ignored('started'), 'the late reports to be ignored');
      const job = await status(t, id);
      assert.equal(job.status, 'completed');
      assert.equal(job.exit_code, 0);
      errorBody(
        await t.server.app.inject({ method: 'POST', url: `/api/v1/mags-jobs/${id}/stop`, headers: t.auth }),
        409,
        'conflict',
      );
    } finally {
      await t.close();
    }
  });
});

describe('server restart', () => {
  test('the local owner token is given only on the first start; jobs left running become error; queued jobs still run', async () => {
    const dir = tempDir();
    const config = resolveServerConfig({ dataDir: dir.path, logLevel: 'silent', port: 0 }, {});
    assert.equal(config.database, join(dir.path, 'mags.db'));
    try {
      const first = await createServer(config);
      const token = first.localToken;
      assert.match(String(token), /^mags_[A-Za-z0-9_-]{43}$/);
      await first.close();

      // Simulate a crash: rows a dead process left behind, one running on an agent, one still queued.
      const store = await Store.open(config.database);
      const user = (await store.jobs.list('nobody', 1, 1)).total; // store is usable
      assert.equal(user, 0);
      const owner = (await store.db.selectFrom('users').select('id').executeTakeFirstOrThrow()).id;
      const spec = {
        vcpus: 1,
        memory_mb: 1024,
        timeout_s: 60,
        network: 'internet' as const,
        disk_gb: 2,
        environment: {},
      };
      const running = uuidv7();
      const queued = uuidv7();
      await store.jobs.insert({
        id: running,
        user_id: owner,
        script: 'hang',
        status: 'accepted',
        spec,
        created_at: Date.now(),
      });
      await store.jobs.claim(running, 'old-agent');
      await store.jobs.markRunning(running, 'old-agent', 'sbx-old', Date.now());
      await store.jobs.insert({
        id: queued,
        user_id: owner,
        script: 'echo after restart',
        status: 'accepted',
        spec,
        created_at: Date.now(),
      });
      await store.close();

      const second = await createServer(config);
      try {
        assert.equal(second.localToken, undefined, 'the owner already exists');
        const headers = { authorization: `Bearer ${token}` };
        const gone = (
          await second.app.inject({ method: 'GET', url: `/api/v1/mags-jobs/${running}/status`, headers })
        ).json();
        assert.equal(gone.status, 'error');
        assert.match(gone.error_message, /server restarted/);
        const link = createInProcessLink();
        second.attachAgent(link.server);
        new FakeAgent(link.agent, {});
        const done = (
          await second.app.inject({ method: 'GET', url: `/api/v1/mags-jobs/${queued}/status?wait=30`, headers })
        ).json();
        assert.equal(done.status, 'completed');
      } finally {
        await second.close();
      }
    } finally {
      dir.remove();
    }
  });

  test('a queued job whose stored spec is unreadable ends as error on its own; the job after it still runs', async () => {
    const t = await startTestServer({ agent: false });
    try {
      const bad = await submit(t, { script: 'echo never' });
      const good = await submit(t, { script: 'echo fine' });
      // What a damaged row looks like when read back (e.g. after a restart): JSON that is not a spec.
      await t.server.store.db.updateTable('jobs').set({ spec: '{"vcpus":"many"}' }).where('id', '=', bad).execute();
      connect(t, {});
      const failed = await status(t, bad, 30);
      assert.equal(failed.status, 'error');
      assert.equal(failed.error_message, 'the job could not be read back from the database');
      assert.equal((await status(t, good, 30)).status, 'completed');
    } finally {
      await t.close();
    }
  });

  test('closing the server ends running jobs as error and closes agent links', async () => {
    const t = await startTestServer();
    const agent = t.agent!;
    const id = await submit(t, { script: 'hang' });
    await agent.until(() => agent.running.has(id));
    let linkClosed = false;
    agent.link.onClose(() => (linkClosed = true));
    const database = t.server.config.database;
    await t.server.close();
    await t.server.close(); // idempotent
    assert.equal(linkClosed, true);
    const store = await Store.open(database);
    try {
      const job = await store.jobs.get(id);
      assert.equal(job?.status, 'error');
      assert.equal(job?.error_message, 'the server shut down while this job was running');
    } finally {
      await store.close();
      await t.close();
    }
  });
});
