// The fake agent the server's tests use speaks the protocol the real agent speaks: every kind of message, checked
// against the schemas of @mags/api both ways. If it drifted, the server's tests would pin behaviour against messages
// no real agent sends, or miss messages the server would refuse.
import assert from 'node:assert/strict';
import { request } from 'node:http';
import { describe, test } from 'node:test';
import { type AgentEnd, AgentToServer, EXEC_STREAM_TYPE, ServerToAgent } from '@mags/api';
import type { TSchema } from 'typebox';
import { FakeAgent } from './fake-agent.js';
import { errorBody, startTestServer } from './helpers.js';

/** Every kind of message in a union of the protocol, named as kindOf() names a message. */
function kindsOf(union: { anyOf: TSchema[] }): string[] {
  const kinds = union.anyOf.map((variant) => {
    const { type, ok } = (variant as { properties: Record<string, { const?: unknown }> }).properties;
    return ok ? `${type.const} (ok: ${ok.const})` : String(type.const);
  });
  assert.equal(new Set(kinds).size, kinds.length, `one name per kind: ${kinds.join(', ')}`);
  return kinds;
}

describe('fake agent', () => {
  test('it sends every kind of agent message, and the server sends it every kind of order, all valid by the shared schemas', async () => {
    let refuse = false;
    const t = await startTestServer({
      agent: {
        onOrder: () =>
          refuse
            ? { ok: false, status: 409, code: 'workspace_busy', error: 'workspace dev is in use on this host' }
            : undefined,
      },
    });
    const agent = t.agent!;
    const call = (method: 'GET' | 'POST' | 'DELETE', url: string, payload?: Record<string, unknown>) =>
      t.server.app.inject({ method, url, headers: t.auth, ...(payload ? { payload } : {}) });
    const submit = async (body: Record<string, unknown>) => {
      const res = await call('POST', '/api/v1/mags-jobs', body);
      assert.equal(res.statusCode, 202, res.body);
      return res.json().request_id as string;
    };
    const finished = async (id: string) => {
      const res = await call('GET', `/api/v1/mags-jobs/${id}/status?wait=30`);
      assert.equal(res.statusCode, 200, res.body);
      return res.json().status as string;
    };
    try {
      agent.reportStorage({
        totalBytes: 100 * 1024 ** 3,
        freeBytes: 80 * 1024 ** 3,
        promisedBytes: 2 * 1024 ** 3,
        growableBytes: 2 * 1024 ** 3,
      });
      assert.equal(
        await finished(await submit({ script: 'echo hi\nerr oops\nexit 3', workspace_id: 'dev', persistent: true })),
        'sleeping', // a persistent run sleeps when its script ends
      );
      const hung = await submit({ script: 'hang' });
      await agent.until(() => agent.running.has(hung));
      assert.equal((await call('POST', `/api/v1/mags-jobs/${hung}/stop`)).json().status, 'stopped');
      assert.equal(await finished(await submit({ script: 'timeout' })), 'failed');
      assert.equal(await finished(await submit({ script: 'crash the runtime failed' })), 'error');

      // A long-lived sandbox and execs into it: output (acknowledged), stdin (acknowledged), a kill, a refusal.
      const sandbox = await submit({ long_lived: true, workspace_id: 'box' });
      await agent.until(() => agent.running.has(sandbox));
      const piped = await t.server.app.inject({
        method: 'POST',
        url: '/api/v1/mags-jobs/box/exec',
        headers: { ...t.auth, 'content-type': EXEC_STREAM_TYPE },
        payload: `${JSON.stringify({ command: 'cat' })}\n${JSON.stringify({ stdin: Buffer.from('hi').toString('base64') })}\n`,
      });
      assert.equal(piped.json().stdout, 'hi', piped.body);
      const base = await t.server.listen();
      const killed = request(`${base}/api/v1/mags-jobs/box/exec`, {
        method: 'POST',
        headers: { ...t.auth, accept: EXEC_STREAM_TYPE, 'content-type': 'application/json' },
      });
      killed.on('error', () => {});
      killed.on('response', (res) => res.destroy());
      killed.end(JSON.stringify({ command: 'hang' }));
      await agent.until(() => [...agent.execs.values()].some((e) => e.killed));
      const job = agent.running.get(sandbox)!;
      agent.running.delete(sandbox); // as if its sandbox had just ended on the agent
      errorBody(await call('POST', '/api/v1/mags-jobs/box/exec', { command: 'echo' }), 409, 'conflict');
      agent.running.set(sandbox, job);
      // An exec on a terminal (as the SSH gateway opens one), resized while it runs.
      const owner = (await t.server.store.users.ownerId())!;
      const { run } = await t.server.execs.start(owner, 'box', {
        command: 'size\nresized\nsize',
        stdin: false,
        tty: { term: 'xterm', cols: 80, rows: 24 },
      });
      const shown: Buffer[] = [];
      run.onOutput((_stream, data) => {
        shown.push(data);
        run.ack(data.length);
      });
      run.resize(100, 30);
      assert.deepEqual(await run.exited, { exitCode: 0, reason: 'exited' });
      assert.equal(Buffer.concat(shown).toString(), '24 80\n30 100\n');
      agent.running.delete(sandbox);
      agent.running.set(sandbox, job);
      assert.equal((await call('POST', `/api/v1/mags-jobs/${sandbox}/stop`)).json().status, 'stopped');

      // A sandbox that sleeps (frozen) and is woken: by an exec, and by becoming always-on (update, then wake).
      const sleeper = await submit({ long_lived: true, workspace_id: 'nap', persistent: true });
      await agent.until(() => agent.running.has(sleeper));
      const asleep = async () => {
        agent.sleep(sleeper);
        for (
          let i = 0;
          i < 100 && (await call('GET', `/api/v1/mags-jobs/${sleeper}/status`)).json().status !== 'sleeping';
          i++
        )
          await new Promise((r) => setTimeout(r, 10));
      };
      await asleep();
      assert.equal((await call('POST', '/api/v1/mags-jobs/nap/exec', { command: 'echo up' })).json().stdout, 'up\n');
      assert.equal((await call('GET', `/api/v1/mags-jobs/${sleeper}/status`)).json().status, 'running');
      // Put to sleep on request (E2B's pause), then woken by an exec again.
      const paused = await t.server.lifecycle.sleep(await t.server.store.jobs.get(sleeper).then((j) => j!), 5000);
      assert.equal(paused.status, 'sleeping');
      assert.equal((await call('POST', '/api/v1/mags-jobs/nap/exec', { command: 'echo up' })).json().stdout, 'up\n');
      await asleep();
      const patched = await t.server.app.inject({
        method: 'PATCH',
        url: '/api/v1/mags-jobs/nap',
        headers: t.auth,
        payload: { no_sleep: true, startup_command: 'echo boot' },
      });
      assert.equal(patched.statusCode, 200, patched.body);
      assert.equal(patched.json().status, 'running');
      assert.deepEqual(agent.updates.at(-1), {
        type: 'update',
        jobId: sleeper,
        sleep: null,
        startupCommand: 'echo boot',
      });
      assert.equal((await call('POST', `/api/v1/mags-jobs/${sleeper}/stop`)).json().status, 'stopped');

      assert.equal((await call('POST', '/api/v1/mags-workspaces/dev/sync')).json().changed, true);
      assert.equal((await call('POST', '/api/v1/mags-workspaces/dev/resize', { disk_gb: 4 })).statusCode, 200);
      refuse = true;
      errorBody(await call('POST', '/api/v1/mags-workspaces/dev/resize', { disk_gb: 5 }), 409, 'workspace_busy');
      refuse = false;
      assert.equal((await call('DELETE', '/api/v1/mags-workspaces/dev')).statusCode, 200);

      // Each of these messages passed the schemas on its way (the fake throws on one that does not).
      assert.deepEqual(
        kindsOf(AgentToServer).filter((k) => !agent.kindsSent.has(k)),
        [],
        'the fake sent every kind of agent message',
      );
      assert.deepEqual(
        kindsOf(ServerToAgent).filter((k) => !agent.kindsReceived.has(k)),
        [],
        'the server sent every kind of order',
      );
      assert.deepEqual(
        t.logs.filter((r) => /malformed/.test(r.msg)),
        [],
        'the server refused nothing the fake sent',
      );
      assert.deepEqual(t.errors(), []);
    } finally {
      await t.close();
    }
  });

  test('it throws rather than send, or act on, a message that breaks the protocol', () => {
    let deliver: ((message: unknown) => void) | undefined;
    const sent: unknown[] = [];
    const link: AgentEnd = {
      send: (m) => void sent.push(m),
      onMessage: (handler) => void (deliver = handler),
      onClose: () => {},
      close: () => {},
    };
    const agent = new FakeAgent(link, { capacity: 2 });
    assert.equal(sent.length, 1, 'the hello went out');
    assert.throws(
      () => agent.send({ type: 'pool', pool: { idle: -1, busy: 0, sleeping: 0, min: 0, max: 0 } }),
      /fake agent: its pool message breaks the agent protocol: pool: pool\.idle must be >= 0/,
    );
    assert.throws(
      () => deliver!({ type: 'stop' }),
      /fake agent: the server sent a stop message that breaks the agent protocol: stop: .*jobId/,
    );
    assert.throws(() => deliver!({ type: 'format', requestId: 'r' }), /unknown message type "format"/);
    assert.deepEqual(agent.stops, [], 'nothing acted on');
    assert.equal(sent.length, 1, 'nothing more sent');
    agent.sendUnchecked({ type: 'pool' });
    assert.equal(sent.length, 2, 'sendUnchecked sends what a broken agent would');
  });
});
