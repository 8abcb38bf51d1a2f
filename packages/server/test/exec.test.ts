// Long-lived sandboxes (`mags new`) and exec through the REST API, against the fake agent: what a user would notice
// is a sandbox that does not stay up, a run that takes over a running sandbox's workspace, output that arrives
// mangled, mixed, incomplete or only once the command ends, a server that holds a whole output in memory, stdin that
// is lost, or a command that can be reached by another user.
import assert from 'node:assert/strict';
import { request } from 'node:http';
import { after, before, describe, test } from 'node:test';
import { EXEC_CHUNK, EXEC_STREAM_TYPE, EXEC_WINDOW } from '@mags/api';
import { errorBody, startTestServer, type TestServer, waitFor } from './helpers.js';

type Method = 'GET' | 'POST' | 'PATCH' | 'DELETE';

describe('long-lived sandboxes and exec', () => {
  let t: TestServer;
  let base: string;
  const call = (method: Method, url: string, payload?: unknown, headers: Record<string, string> = {}) =>
    t.server.app.inject({
      method,
      url,
      headers: { ...t.auth, ...headers },
      ...(payload !== undefined ? { payload: payload as Record<string, unknown> } : {}),
    });
  const status = async (id: string) => (await call('GET', `/api/v1/mags-jobs/${id}/status`)).json();
  /** `mags new NAME`: submits a long-lived job and waits until it runs. */
  const newSandbox = async (name: string, extra: Record<string, unknown> = {}) => {
    const res = await call('POST', '/api/v1/mags-jobs', { long_lived: true, workspace_id: name, ...extra });
    assert.equal(res.statusCode, 202, res.body);
    const id = res.json().request_id as string;
    await waitFor(async () => (await status(id)).status === 'running', 'the sandbox to run');
    return id;
  };
  const exec = (ref: string, body: Record<string, unknown>) =>
    call('POST', `/api/v1/mags-jobs/${encodeURIComponent(ref)}/exec`, body);

  before(async () => {
    t = await startTestServer();
    base = await t.server.listen();
  });
  after(async () => {
    await t.close();
  });

  test('mags new starts a sandbox that stays up on its workspace, named after it, without a script or a timeout', async () => {
    const id = await newSandbox('dev', { persistent: true });
    const job = await status(id);
    assert.equal(job.name, 'dev', 'found by its workspace name');
    assert.equal(job.workspace_id, 'dev');
    assert.equal(job.script, '');
    const spec = t.agent!.starts.find((s) => s.jobId === id)!;
    assert.equal(spec.longLived, true);
    assert.deepEqual(spec.workspace && { name: spec.workspace.name, persistent: spec.workspace.persistent }, {
      name: 'dev',
      persistent: true,
    });
    assert.ok(t.agent!.running.has(id), 'still up on the agent');

    const run = errorBody(
      await call('POST', '/api/v1/mags-jobs', { script: 'echo hi', workspace_id: 'dev' }),
      409,
      'workspace_busy',
    );
    assert.match(run.error, new RegExp(`running sandbox of job ${id}`), run.error);
    assert.match(run.error, /mags exec dev/, run.error);

    const stopped = await call('POST', '/api/v1/mags-jobs/dev/stop');
    assert.equal(stopped.statusCode, 200, stopped.body);
    assert.equal(stopped.json().status, 'stopped');
    assert.equal((await status(id)).status, 'stopped');
    const again = await call('POST', '/api/v1/mags-jobs', { script: 'echo hi', workspace_id: 'dev' });
    assert.equal(again.statusCode, 202, 'the workspace is free once its sandbox stopped');
  });

  test('a long-lived submission takes no script or timeout, and needs a workspace', async () => {
    const cases: Array<[Record<string, unknown>, RegExp]> = [
      [{ long_lived: true, workspace_id: 'x', script: 'echo' }, /long_lived takes no script/],
      [{ long_lived: true }, /long_lived requires workspace_id/],
      [{ long_lived: true, workspace_id: 'x', timeout_s: 5 }, /long_lived takes no timeout_s/],
      [{ workspace_id: 'x' }, /^script: is required/],
    ];
    for (const [body, sentence] of cases) {
      assert.match(errorBody(await call('POST', '/api/v1/mags-jobs', body), 400, 'invalid_request').error, sentence);
    }
  });

  test('exec answers the exit code and stdout and stderr apart, found by workspace name, job name or id', async () => {
    const id = await newSandbox('box', { environment: { FROM_JOB: '1' } });
    for (const ref of ['box', id]) {
      const res = await exec(ref, { command: 'echo one\nerr two\necho three\nexit 3', env: { A: 'b' }, cwd: '/srv' });
      assert.equal(res.statusCode, 200, res.body);
      assert.deepEqual(res.json(), {
        exit_code: 3,
        stdout: 'one\nthree\n',
        stderr: 'two\n',
        reason: 'exited',
        truncated: false,
      });
    }
    const order = [...t.agent!.execs.values()].at(-1)!.order;
    assert.deepEqual(
      {
        jobId: order.jobId,
        environment: order.environment,
        cwd: order.cwd,
        timeoutS: order.timeoutS,
        stdin: order.stdin,
      },
      { jobId: id, environment: { A: 'b' }, cwd: '/srv', timeoutS: 3600, stdin: false },
    );
    assert.deepEqual((await exec('box', { command: 'timeout', timeout_s: 2 })).json().reason, 'timeout');
    errorBody(await exec('box', { command: 'fail the runtime broke' }), 500, 'sandbox_failed');
    errorBody(await exec('box', { command: 'x', cwd: 'relative' }), 400, 'invalid_request');
    errorBody(await exec('nothing-here', { command: 'echo' }), 404, 'not_found');
    await call('POST', `/api/v1/mags-jobs/${id}/stop`);
    const finished = errorBody(await exec(id, { command: 'echo' }), 409, 'conflict');
    assert.match(finished.error, /has finished \(stopped\).*mags new box/);
  });

  test('a job that is not running yet is refused, and one this agent no longer runs is refused by the agent', async () => {
    const res = await call('POST', '/api/v1/mags-jobs', { script: 'manual' });
    const id = res.json().request_id as string;
    await waitFor(async () => (await status(id)).status === 'running');
    const job = t.agent!.running.get(id)!;
    t.agent!.running.delete(id); // the sandbox ended on the agent; its exit is not reported yet
    const refused = errorBody(await exec(id, { command: 'echo hi' }), 409, 'conflict');
    assert.match(refused.error, /no running sandbox/);
    t.agent!.running.set(id, job);
    t.agent!.exit(id, 0);
  });

  test('the streaming form carries 40 MiB of bytes whole and in order, within the flow-control window', async () => {
    await newSandbox('stream');
    const size = 40 * 1024 * 1024;
    const frames = await streamExec(base, t.auth, 'stream', { command: `err e\nbytes ${size}\nexit 7` });
    const out = Buffer.concat(frames.stdout);
    assert.equal(out.length, size);
    for (let i = 0; i < size; i += 4099) assert.equal(out[i], (i % (256 * 1024)) % 256, `byte ${i}`);
    assert.equal(Buffer.concat(frames.stderr).toString(), 'e\n');
    assert.deepEqual(frames.exit, { exit_code: 7, reason: 'exited' });
    const e = [...t.agent!.execs.values()].at(-1)!;
    // The agent stops once a window is unacknowledged: at most one more chunk is in flight.
    assert.ok(e.maxUnacked <= EXEC_WINDOW + EXEC_CHUNK, `at most the window unacknowledged (${e.maxUnacked})`);
    await call('POST', '/api/v1/mags-jobs/stream/stop');
  });

  test('a client that stops reading stops the output; the server holds no more than a window of it', async () => {
    await newSandbox('slow');
    const size = 256 * 1024 * 1024;
    const { res } = await openStream(base, t.auth, 'slow', { command: `bytes ${size}` });
    res.pause();
    const e = () => [...t.agent!.execs.values()].at(-1)!;
    // Let the output fill the socket: then the server stops acknowledging and the command stops writing.
    let sent = -1;
    await waitFor(async () => {
      await new Promise((r) => setTimeout(r, 100));
      const now = e().sent;
      const still = now === sent;
      sent = now;
      return still;
    }, 'the output to stall');
    assert.ok(sent < 64 * 1024 * 1024, `the command was held back (${sent} bytes sent of ${size})`);
    res.destroy(); // the client goes away: the command is killed
    await waitFor(() => e().killed, 'the exec to be killed');
    await call('POST', '/api/v1/mags-jobs/slow/stop');
  });

  test('stdin streamed in the request reaches the command byte for byte', async () => {
    await newSandbox('pipe');
    const input = Buffer.from(Buffer.alloc(3 * 1024 * 1024 + 17).map((_, i) => (i * 7) % 256));
    const frames = await streamExec(base, t.auth, 'pipe', { command: 'cat' }, input);
    assert.ok(Buffer.concat(frames.stdout).equals(input), 'the same bytes came back');
    assert.deepEqual(frames.exit, { exit_code: 0, reason: 'exited' });
    const e = [...t.agent!.execs.values()].at(-1)!;
    assert.equal(e.order.stdin, true);
    await call('POST', '/api/v1/mags-jobs/pipe/stop');
  });

  test('an exec whose agent leaves ends with an error frame', async () => {
    const id = await newSandbox('leaving');
    const { frames, done } = await openStream(base, t.auth, 'leaving', { command: 'hang' });
    await waitFor(() => [...t.agent!.execs.values()].some((e) => e.order.jobId === id));
    t.agent!.link.close();
    await done;
    assert.equal(frames.exit?.reason, 'error');
    assert.match(String(frames.exit?.error), /disconnected/);
    t = await restart(t);
    base = await t.server.listen();
  });

  test("PATCH changes a sandbox's settings and tells its agent; bad input is a 4xx with a sentence", async () => {
    const local = await newSandbox('settings-l');
    const bad: Array<[unknown, number, RegExp]> = [
      [{}, 400, /^nothing to change: give no_sleep, startup_command, or both$/],
      [{ no_sleep: 'yes' }, 400, /^no_sleep: /],
      [{ admin: true }, 400, /admin/],
      [{ startup_command: '' }, 400, /^startup_command: /],
      [{ no_sleep: true }, 400, /no_sleep requires a persistent workspace/],
    ];
    for (const [body, code, message] of bad) {
      const err = errorBody(await call('PATCH', `/api/v1/mags-jobs/${local}`, body), code, 'invalid_request');
      assert.match(err.error, message);
    }
    const id = await newSandbox('settings-p', { persistent: true });
    const res = await call('PATCH', '/api/v1/mags-jobs/settings-p', { no_sleep: true, startup_command: 'npm start' });
    assert.equal(res.statusCode, 200, res.body);
    assert.equal(res.json().request_id, id);
    await waitFor(async () => t.agent!.updates.some((u) => u.jobId === id), 'the update to reach the agent');
    assert.deepEqual(t.agent!.updates.at(-1), { type: 'update', jobId: id, sleep: null, startupCommand: 'npm start' });
    await call('PATCH', `/api/v1/mags-jobs/${id}`, { no_sleep: false, startup_command: null });
    await waitFor(async () => t.agent!.updates.at(-1)?.startupCommand === null, 'the second update');
    assert.ok(t.agent!.updates.at(-1)?.sleep, 'it may sleep again: the timers are sent');
    for (const job of [local, id]) await call('POST', `/api/v1/mags-jobs/${job}/stop`);
    errorBody(await call('PATCH', `/api/v1/mags-jobs/${id}`, { no_sleep: true }), 409, 'conflict');
    assert.deepEqual(t.errors(), []);
  });

  test('one user may run so many commands at once: one more is 429, and a slot frees when one ends', async () => {
    const capped = await startTestServer({ maxExecsPerUser: 2 });
    try {
      const res = await capped.server.app.inject({
        method: 'POST',
        url: '/api/v1/mags-jobs',
        headers: capped.auth,
        payload: { long_lived: true, workspace_id: 'cap' },
      });
      const id = res.json().request_id as string;
      await capped.agent!.until(() => capped.agent!.running.has(id));
      const base = await capped.server.listen();
      const hang = () => {
        const req = request(`${base}/api/v1/mags-jobs/cap/exec`, {
          method: 'POST',
          headers: { ...capped.auth, accept: EXEC_STREAM_TYPE, 'content-type': 'application/json' },
        });
        req.on('error', () => {});
        req.end(JSON.stringify({ command: 'hang' }));
        return req;
      };
      const held = [hang(), hang()];
      await capped.agent!.until(() => [...capped.agent!.execs.values()].filter((e) => !e.killed).length === 2);
      const third = await capped.server.app.inject({
        method: 'POST',
        url: '/api/v1/mags-jobs/cap/exec',
        headers: capped.auth,
        payload: { command: 'echo' },
      });
      assert.match(errorBody(third, 429, 'too_many_requests').error, /the most one user may/);
      held[0].destroy(); // its client goes: the exec is killed, and its slot is free again
      await waitFor(async () => {
        const again = await capped.server.app.inject({
          method: 'POST',
          url: '/api/v1/mags-jobs/cap/exec',
          headers: capped.auth,
          payload: { command: 'echo ok' },
        });
        return again.statusCode === 200;
      }, 'a slot to free');
      held[1].destroy();
    } finally {
      await capped.close();
    }
  });

  test("another user can neither exec in, nor change, nor stop, a user's sandbox", async () => {
    const id = await newSandbox('private');
    const mallory = await t.server.store.users.create('mallory');
    const auth = { authorization: `Bearer ${await t.server.auth.createToken(mallory.id, 'test')}` };
    for (const ref of [id, 'private']) {
      errorBody(await call('POST', `/api/v1/mags-jobs/${ref}/exec`, { command: 'echo' }, auth), 404, 'not_found');
      errorBody(await call('POST', `/api/v1/mags-jobs/${ref}/stop`, undefined, auth), 404, 'not_found');
      errorBody(await call('PATCH', `/api/v1/mags-jobs/${ref}`, { startup_command: 'evil' }, auth), 404, 'not_found');
    }
    assert.equal((await status(id)).status, 'running', 'untouched');
    assert.ok(![...t.agent!.execs.values()].some((e) => e.order.jobId === id), 'nothing reached the agent');
    await call('POST', `/api/v1/mags-jobs/${id}/stop`);
    assert.deepEqual(t.errors(), []);
  });
});

async function restart(old: TestServer): Promise<TestServer> {
  await old.close();
  return startTestServer();
}

interface Frames {
  stdout: Buffer[];
  stderr: Buffer[];
  exit?: { exit_code: number | null; reason: string; error?: string };
}

/** Opens the streaming form; frames fill in as they arrive, `done` resolves at the end of the answer. */
function openStream(
  base: string,
  auth: { authorization: string },
  ref: string,
  body: Record<string, unknown>,
  stdin?: Buffer,
): Promise<{ res: import('node:http').IncomingMessage; frames: Frames; done: Promise<void> }> {
  const frames: Frames = { stdout: [], stderr: [] };
  return new Promise((resolve, reject) => {
    const req = request(`${base}/api/v1/mags-jobs/${ref}/exec`, {
      method: 'POST',
      headers: {
        ...auth,
        accept: EXEC_STREAM_TYPE,
        'content-type': stdin ? EXEC_STREAM_TYPE : 'application/json',
      },
    });
    req.on('error', reject);
    req.on('response', (res) => {
      if (res.statusCode !== 200) return reject(new Error(`status ${res.statusCode}`));
      let pending = '';
      const done = new Promise<void>((end) => {
        res.on('data', (chunk: Buffer) => {
          pending += chunk.toString('utf8');
          let nl: number;
          while ((nl = pending.indexOf('\n')) !== -1) {
            const frame = JSON.parse(pending.slice(0, nl));
            pending = pending.slice(nl + 1);
            if ('stream' in frame) frames[frame.stream as 'stdout' | 'stderr'].push(Buffer.from(frame.data, 'base64'));
            else frames.exit = frame;
          }
        });
        res.on('end', end);
        res.on('close', end);
      });
      resolve({ res, frames, done });
    });
    if (stdin) {
      req.write(`${JSON.stringify(body)}\n`);
      for (let at = 0; at < stdin.length; at += 100_000) {
        req.write(`${JSON.stringify({ stdin: stdin.subarray(at, at + 100_000).toString('base64') })}\n`);
      }
      req.end();
    } else req.end(JSON.stringify(body));
  });
}

async function streamExec(
  base: string,
  auth: { authorization: string },
  ref: string,
  body: Record<string, unknown>,
  stdin?: Buffer,
): Promise<Frames> {
  const { frames, done } = await openStream(base, auth, ref, body, stdin);
  await done;
  return frames;
}
