// The E2B control plane as the official `e2b` SDK sees it, against a real `mags server --e2b-port` with real
// sandboxes: create and getInfo, list with metadata filters and paging, setTimeout ending a sandbox, kill, pause and
// connect resuming, metrics from the cgroups, another user's key seeing nothing, and bad input refused with a
// sentence in E2B's `{ code, message }`. An E2B sandbox is a Mags job: `mags list` and `mags exec` see it.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import { Sandbox, SandboxNotFoundError } from 'e2b';
import { type E2bOpts, type E2bServer, optsFor, startE2b } from './e2b.js';
import { removeInstance, runCli, runScript } from './harness.js';

const instance = `e${randomBytes(2).toString('hex')}`;
let e2b: E2bServer;
let opts: E2bOpts;
/** Sandboxes to kill at the end, whatever happened. */
const made: string[] = [];

before(async () => {
  // Usage reports every second, so that metrics have figures within the test.
  e2b = await startE2b(['--usage-interval', '1', '--instance', instance]);
  opts = e2b.opts;
});
after(async () => {
  for (const id of made) await Sandbox.kill(id, opts).catch(() => undefined);
  await e2b?.server.stop();
  removeInstance(instance);
});

type CreateOpts = NonNullable<Parameters<typeof Sandbox.create>[1]>;

async function create(options: CreateOpts = {}, template = 'base'): Promise<Sandbox> {
  const sbx = await Sandbox.create(template, { ...opts, ...options });
  made.push(sbx.sandboxId);
  return sbx;
}

/** A plain REST call to the E2B API, answering the status and the parsed body (if any). */
async function rest(
  method: string,
  path: string,
  init: { key?: string | null; body?: string; headers?: Record<string, string> } = {},
): Promise<{ status: number; body: unknown; headers: Headers }> {
  const headers: Record<string, string> = { ...init.headers };
  if (init.key !== null) headers['x-api-key'] = init.key ?? opts.apiKey;
  if (init.body !== undefined) headers['content-type'] ??= 'application/json';
  const res = await fetch(`${opts.apiUrl}${path}`, { method, headers, body: init.body });
  const text = await res.text();
  let body: unknown = text;
  try {
    body = text === '' ? undefined : JSON.parse(text);
  } catch {
    /* not JSON */
  }
  return { status: res.status, body, headers: res.headers };
}

/** E2B's error body: the status as `code`, and a sentence. */
function assertError(r: { status: number; body: unknown }, status: number, mentions?: RegExp): void {
  assert.equal(r.status, status, JSON.stringify(r.body));
  const body = r.body as { code?: unknown; message?: unknown };
  assert.equal(body.code, status, `the body's code is the status: ${JSON.stringify(r.body)}`);
  assert.equal(typeof body.message, 'string');
  assert.ok((body.message as string).length > 15, `a sentence: ${body.message}`);
  if (mentions) assert.match(body.message as string, mentions);
}

/** Whether envd (e2b/envd, another module) answers: its health of a live sandbox is not a missing route. */
async function envdPresent(): Promise<boolean> {
  const sbx = await create();
  const res = await fetch(`${opts.sandboxUrl}/health`, { headers: { 'e2b-sandbox-id': sbx.sandboxId } });
  await sbx.kill();
  return res.status !== 404;
}

/** Polls until `check` holds (or fails after `ms`). */
async function eventually(check: () => Promise<boolean>, what: string, ms = 30_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > deadline) assert.fail(`${what} did not happen within ${ms / 1000} s`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

describe('create, getInfo and what Mags sees', () => {
  test('a created sandbox answers every field getInfo reads, and is a Mags job of its user', async () => {
    const before = Date.now();
    const sbx = await create({ metadata: { purpose: 'info' }, envs: { GREETING: 'hello e2b' }, timeoutMs: 120_000 });
    const info = await sbx.getInfo();
    assert.equal(info.sandboxId, sbx.sandboxId);
    assert.equal(info.templateId, 'base');
    assert.deepEqual(info.metadata, { purpose: 'info' });
    assert.equal(info.state, 'running');
    assert.ok(info.cpuCount >= 1);
    assert.ok(info.memoryMB >= 128);
    assert.match(info.envdVersion, /^\d+\.\d+\.\d+$/);
    assert.ok(info.startedAt.getTime() >= before - 2000 && info.startedAt.getTime() <= Date.now());
    // The deadline is the timeout from creation (within the time create took).
    const end = info.endAt.getTime();
    assert.ok(end >= before + 119_000 && end <= Date.now() + 121_000, `endAt ${info.endAt.toISOString()}`);
    assert.equal(info.allowInternetAccess, true);
    assert.equal(info.lifecycle?.onTimeout, 'kill');
    assert.equal(info.sandboxDomain, `localhost:${e2b.server.routerPort}`);
    assert.equal(sbx.getHost(8080), `8080-${sbx.sandboxId}.localhost:${e2b.server.routerPort}`);

    // The same sandbox as a Mags job: listed, and exec'd with the sandbox's environment.
    const list = await runCli(e2b.server, ['list', '--json']);
    assert.equal(list.code, 0, list.stderr);
    assert.ok(list.stdout.includes(sbx.sandboxId), 'mags list shows the E2B sandbox');
    const exec = await runCli(e2b.server, ['exec', sbx.sandboxId, 'echo "$GREETING"']);
    assert.equal(exec.code, 0, exec.stderr);
    assert.equal(exec.stdout, 'hello e2b\n');
  });

  test("a template names one of the user's persistent workspaces: the sandbox starts from its files", async () => {
    const ws = `tpl-${randomBytes(3).toString('hex')}`;
    const seeded = await runScript(e2b.server, 'echo from-template > /root/seed', {
      workspace_id: ws,
      persistent: true,
    });
    assert.ok(['completed', 'sleeping'].includes(seeded.status), JSON.stringify(seeded));
    await runCli(e2b.server, ['stop', ws]); // the seeding run sleeps on its workspace: free it (synced)
    const sbx = await create({}, ws);
    assert.equal((await sbx.getInfo()).templateId, ws);
    const exec = await runCli(e2b.server, ['exec', sbx.sandboxId, 'cat /root/seed']);
    assert.equal(exec.stdout, 'from-template\n', exec.stderr);
  });

  test('allowInternetAccess false turns the network off, as mags run --no-internet', async () => {
    const sbx = await create({ allowInternetAccess: false });
    assert.equal((await sbx.getInfo()).allowInternetAccess, false);
    const links = "tail -n +3 /proc/net/dev | grep -vc ' lo:'";
    const exec = await runCli(e2b.server, ['exec', sbx.sandboxId, links]);
    assert.equal(exec.stdout.trim(), '0', 'only the loopback link');
    const online = await create();
    const other = await runCli(e2b.server, ['exec', online.sandboxId, links]);
    assert.notEqual(other.stdout.trim(), '0', 'a sandbox with the internet has a link beside lo');
  });
});

describe('list', () => {
  test('metadata filters select, and limit 2 pages over 5 sandboxes with X-Next-Token', async () => {
    const run = randomBytes(3).toString('hex');
    const ids: string[] = [];
    for (let i = 0; i < 5; i++) {
      const sbx = await create({ metadata: { run, parity: i % 2 === 0 ? 'even' : 'odd', 'odd key&=': 'v/1 %' } });
      ids.push(sbx.sandboxId);
    }
    const even = await Sandbox.list({ ...opts, query: { metadata: { run, parity: 'even' } } }).nextItems();
    assert.deepEqual(even.map((s) => s.sandboxId).sort(), [ids[0], ids[2], ids[4]].sort());
    // Keys and values with characters the SDK encodes three times.
    const odd = await Sandbox.list({ ...opts, query: { metadata: { run, 'odd key&=': 'v/1 %' } } }).nextItems();
    assert.equal(odd.length, 5);
    assert.equal((await Sandbox.list({ ...opts, query: { metadata: { run: 'none' } } }).nextItems()).length, 0);

    const pager = Sandbox.list({ ...opts, limit: 2, query: { metadata: { run } } });
    const pages: string[][] = [];
    while (pager.hasNext) pages.push((await pager.nextItems()).map((s) => s.sandboxId));
    assert.deepEqual(
      pages.map((p) => p.length),
      [2, 2, 1],
    );
    assert.deepEqual(pages.flat().sort(), [...ids].sort(), 'every sandbox once');

    const page = await rest('GET', `/v2/sandboxes?limit=2&metadata=${encodeURIComponent(`run=${run}`)}`);
    assert.equal(page.status, 200);
    assert.ok(page.headers.get('x-next-token'), 'a next token in the header');
    const bad = await rest('GET', '/v2/sandboxes?nextToken=garbage');
    assertError(bad, 400, /nextToken/);
    assertError(await rest('GET', '/v2/sandboxes?limit=0'), 400, /limit/);
    assertError(await rest('GET', '/v2/sandboxes?state=sleeping'), 400, /state/);
    for (const id of ids) assert.equal(await Sandbox.kill(id, opts), true);
  });
});

describe('lifecycle', () => {
  test('setTimeout(2000) ends the sandbox at its deadline: not running, gone from the API, ended for Mags', async () => {
    const sbx = await create();
    await sbx.setTimeout(2000);
    const info = await sbx.getInfo();
    assert.ok(info.endAt.getTime() <= Date.now() + 2500);
    await eventually(
      async () => (await rest('GET', `/sandboxes/${sbx.sandboxId}`)).status === 404,
      'the sandbox ending at its deadline',
    );
    await assert.rejects(sbx.getInfo(), SandboxNotFoundError);
    // envd's health answers 502 for a gone sandbox: not running (once envd is there; it is another module).
    if (await envdPresent()) assert.equal(await sbx.isRunning(), false);
    const job = await fetch(`${e2b.server.url}/api/v1/mags-jobs/${sbx.sandboxId}/status`, {
      headers: { authorization: `Bearer ${e2b.server.token}` },
    });
    const status = ((await job.json()) as { status: string }).status;
    assert.ok(['stopped', 'completed'].includes(status), `the job ended: ${status}`);
  });

  test('setTimeout moves the deadline later: a sandbox given more time lives past its first one', async () => {
    const sbx = await create({ timeoutMs: 3000 });
    await sbx.setTimeout(60_000);
    await new Promise((r) => setTimeout(r, 4500));
    assert.equal((await sbx.getInfo()).state, 'running');
  });

  test('a client that gives up while its sandbox waits to start leaves no sandbox behind', async () => {
    // A server with one slot, held by a first sandbox: the second create waits in the queue for as long as the
    // test likes, and its client hangs up there (no race with a start that may take 15 ms).
    const small = await startE2b(['--capacity', '1']);
    try {
      const holder = await Sandbox.create({ ...small.opts });
      const tag = randomBytes(3).toString('hex');
      const client = new AbortController();
      const abandoned = fetch(`${small.opts.apiUrl}/v2/sandboxes`, {
        method: 'POST',
        headers: { 'x-api-key': small.opts.apiKey, 'content-type': 'application/json' },
        body: JSON.stringify({ metadata: { tag } }),
        signal: client.signal,
      });
      const waiting = async () => {
        const out = await runCli(small.server, ['list', '--json']);
        const jobs = (JSON.parse(out.stdout) as { jobs: Array<{ status: string }> }).jobs;
        return jobs.some((j) => j.status === 'accepted');
      };
      await eventually(waiting, 'the second sandbox waiting for a slot');
      client.abort();
      await assert.rejects(abandoned);
      await small.server.waitForLog(
        (r) => r.msg === 'e2b sandbox ended' && r.why === 'its client went away',
        'an abandoned E2B sandbox ended',
        30_000,
      );
      const left = async () => (await Sandbox.list({ ...small.opts, query: { metadata: { tag } } }).nextItems()).length;
      await eventually(async () => (await left()) === 0, 'the abandoned sandbox ending');
      assert.equal(await waiting(), false, 'nothing left in the queue');
      assert.equal(await holder.kill(), true);
    } finally {
      await small.server.stop();
    }
  });

  test('kill answers true, then false; the sandbox is gone', async () => {
    const sbx = await create();
    assert.equal(await sbx.kill(), true);
    assert.equal(await sbx.kill(), false);
    assert.equal(await Sandbox.kill(sbx.sandboxId, opts), false);
    await assert.rejects(Sandbox.getInfo(sbx.sandboxId, opts), SandboxNotFoundError);
    await assert.rejects(Sandbox.connect(sbx.sandboxId, opts), SandboxNotFoundError);
  });

  test('pause sleeps the sandbox (paused; pausing again is false), connect resumes it', async () => {
    const sbx = await create({ metadata: { kind: 'pause' } });
    await runCli(e2b.server, ['exec', sbx.sandboxId, 'echo kept > /root/state; nohup sleep 1000 >/dev/null 2>&1 &']);
    assert.equal(await sbx.pause(), true);
    assert.equal((await sbx.getInfo()).state, 'paused');
    assert.equal(await Sandbox.betaPause(sbx.sandboxId, opts), false, 'already paused');
    const paused = await Sandbox.list({
      ...opts,
      query: { state: ['paused'], metadata: { kind: 'pause' } },
    }).nextItems();
    assert.deepEqual(
      paused.map((s) => s.sandboxId),
      [sbx.sandboxId],
    );
    const running = await Sandbox.list({ ...opts, query: { state: ['running'], metadata: { kind: 'pause' } } });
    assert.equal((await running.nextItems()).length, 0);

    const resumed = await Sandbox.connect(sbx.sandboxId, { ...opts, timeoutMs: 60_000 });
    assert.equal(resumed.sandboxId, sbx.sandboxId);
    const info = await resumed.getInfo();
    assert.equal(info.state, 'running');
    assert.ok(info.endAt.getTime() > Date.now() + 50_000, 'connect set the new timeout');
    const exec = await runCli(e2b.server, [
      'exec',
      sbx.sandboxId,
      'cat /root/state; for p in /proc/[0-9]*; do tr "\\0" " " < $p/cmdline; echo; done 2>/dev/null | grep -c "^sleep 1000"',
    ]);
    assert.equal(exec.stdout, 'kept\n1\n', 'memory and processes kept across pause and resume');
    // Connecting to a running sandbox is fine too.
    assert.equal((await Sandbox.connect(sbx.sandboxId, opts)).sandboxId, sbx.sandboxId);
  });

  test('a paused sandbox outlives its deadline; used by other means (mags exec) it resumes with a new one', async () => {
    const sbx = await create({ timeoutMs: 3000 });
    assert.equal(await sbx.pause(), true);
    await new Promise((r) => setTimeout(r, 4500));
    const info = await sbx.getInfo();
    assert.equal(info.state, 'paused', 'still there, paused, past its deadline');
    const exec = await runCli(e2b.server, ['exec', sbx.sandboxId, 'echo awake']);
    assert.equal(exec.stdout, 'awake\n', exec.stderr);
    await eventually(async () => (await sbx.getInfo()).state === 'running', 'the woken sandbox showing running');
    const after = await sbx.getInfo();
    assert.ok(
      after.endAt.getTime() > Date.now() + 200_000,
      `a fresh deadline (E2B's 5 min): ${after.endAt.toISOString()}`,
    );
  });

  test('autoPause: at its deadline the sandbox is paused, not killed', async () => {
    const sbx = await create({ timeoutMs: 2000, lifecycle: { onTimeout: 'pause' } });
    assert.equal((await sbx.getInfo()).lifecycle?.onTimeout, 'pause');
    await eventually(async () => (await sbx.getInfo()).state === 'paused', 'the sandbox pausing at its deadline');
  });

  test('getMetrics answers what the cgroup measured: real, non-zero memory', async () => {
    const sbx = await create();
    await runCli(e2b.server, ['exec', sbx.sandboxId, 'head -c 64m /dev/zero | tail > /dev/null &']);
    let metrics: Awaited<ReturnType<Sandbox['getMetrics']>> = [];
    await eventually(async () => {
      metrics = await sbx.getMetrics();
      return metrics.length >= 2;
    }, 'two usage reports');
    const last = metrics[metrics.length - 1];
    assert.ok(last.memUsed > 100_000, `memory used: ${last.memUsed}`);
    assert.equal(last.memTotal, (await sbx.getInfo()).memoryMB * 1024 * 1024);
    assert.ok(last.cpuUsedPct >= 0 && last.cpuUsedPct <= 100 * last.cpuCount);
    assert.ok(metrics.every((m) => m.timestamp.getTime() <= Date.now()));
    assertError(await rest('GET', `/sandboxes/${sbx.sandboxId}/metrics?start=20&end=10`), 400, /end/);
    assertError(await rest('GET', `/sandboxes/${sbx.sandboxId}/metrics?start=soon`), 400, /start/);
  });
});

describe("isolation: another user's key", () => {
  test("cannot see, get, connect to, pause, setTimeout, kill or read the metrics of the first user's sandbox", async () => {
    const add = await fetch(`${e2b.server.url}/api/v1/users`, {
      method: 'POST',
      headers: { authorization: `Bearer ${e2b.server.token}`, 'content-type': 'application/json' },
      body: JSON.stringify({ name: `other${randomBytes(2).toString('hex')}` }),
    });
    assert.equal(add.status, 201);
    const other = optsFor(e2b, ((await add.json()) as { token: string }).token);
    const mine = await create({ metadata: { owner: 'first' } });
    const theirs = await Sandbox.create({ ...other, metadata: { owner: 'second' } });
    try {
      const seen = await Sandbox.list({ ...other }).nextItems();
      assert.deepEqual(
        seen.map((s) => s.sandboxId),
        [theirs.sandboxId],
        'the list shows only their own',
      );
      const id = mine.sandboxId;
      await assert.rejects(Sandbox.getInfo(id, other), SandboxNotFoundError);
      await assert.rejects(Sandbox.connect(id, other), SandboxNotFoundError);
      await assert.rejects(Sandbox.pause(id, other), SandboxNotFoundError);
      await assert.rejects(Sandbox.setTimeout(id, 1000, other), SandboxNotFoundError);
      await assert.rejects(Sandbox.getMetrics(id, other), SandboxNotFoundError);
      assert.equal(await Sandbox.kill(id, other), false);
      for (const [method, path] of [
        ['GET', `/sandboxes/${id}`],
        ['DELETE', `/sandboxes/${id}`],
        ['POST', `/sandboxes/${id}/pause`],
        ['POST', `/v2/sandboxes/${id}/connect`],
        ['POST', `/sandboxes/${id}/connect`],
        ['GET', `/sandboxes/${id}/metrics`],
      ] as const) {
        assertError(await rest(method, path, { key: other.apiKey }), 404);
      }
      assertError(await rest('POST', `/sandboxes/${id}/timeout`, { key: other.apiKey, body: '{"timeout":1}' }), 404);
      // The first user's sandbox is untouched.
      const info = await mine.getInfo();
      assert.equal(info.state, 'running');
      assert.ok(info.endAt.getTime() > Date.now() + 60_000);
    } finally {
      await Sandbox.kill(theirs.sandboxId, other).catch(() => undefined);
    }
  });
});

describe('bad input', () => {
  test('through the SDK: an unknown template, a negative timeout', async () => {
    await assert.rejects(create({}, 'no-such-workspace'), (err: Error) => {
      assert.match(err.message, /no-such-workspace/);
      return true;
    });
    await assert.rejects(Sandbox.setTimeout(made[0] ?? 'x', -5000, opts), (err: Error) => {
      assert.match(err.message, /timeout/);
      return true;
    });
    await assert.rejects(Sandbox.create({ ...opts, apiKey: 'mags_not-a-real-token' }), (err: Error) => {
      assert.match(err.message, /X-API-KEY|token/);
      return true;
    });
  });

  test('plain REST: 4xx with { code, message } naming what is wrong, never a 500', async () => {
    assertError(await rest('POST', '/v2/sandboxes', { key: null, body: '{}' }), 401, /X-API-KEY/);
    assertError(await rest('GET', '/v2/sandboxes', { key: 'mags_nope' }), 401, /X-API-KEY/);
    assertError(await rest('POST', '/v2/sandboxes', { body: '{"templateID":' }), 400, /JSON/);
    assertError(await rest('POST', '/sandboxes', { body: '{"templateID":"nope-tpl"}' }), 404, /nope-tpl/);
    assertError(await rest('POST', '/v2/sandboxes', { body: '{"timeout":-1}' }), 400, /timeout/);
    assertError(await rest('POST', '/v2/sandboxes', { body: '{"timeout":"soon"}' }), 400, /timeout/);
    assertError(await rest('POST', '/v2/sandboxes', { body: '{"templateID":5}' }), 400, /templateID/);
    assertError(await rest('POST', '/v2/sandboxes', { body: '[1,2]' }), 400);
    assertError(await rest('POST', '/v2/sandboxes', { body: '{"envVars":{"1BAD":"x"}}' }), 400, /envVars/);
    assertError(
      await rest('POST', '/v2/sandboxes', { body: '{"volumeMounts":[{"name":"v","path":"/data"}]}' }),
      400,
      /volumeMounts/,
    );
    assertError(await rest('POST', '/v2/sandboxes', { body: '{"mcp":{"x":{}}}' }), 400, /mcp/);
    assertError(
      await rest('POST', '/v2/sandboxes', { body: '{"network":{"denyOut":["0.0.0.0/0"]}}' }),
      400,
      /network\.denyOut/,
    );
    assertError(await rest('POST', '/v2/sandboxes', { body: '{"surprise":1}' }), 400, /surprise/);
    assertError(
      await rest('POST', '/v2/sandboxes', { body: 'x=1', headers: { 'content-type': 'text/plain' } }),
      415,
      /JSON/,
    );
    assertError(await rest('GET', '/sandboxes/nope'), 404, /nope/);
    assertError(await rest('GET', `/sandboxes/${'x'.repeat(300)}`), 400);
    assertError(await rest('POST', '/sandboxes/nope/timeout', { body: '{}' }), 400, /timeout/);
    assertError(await rest('POST', '/sandboxes/nope/timeout', { body: '{"timeout":10}' }), 404);
    assertError(await rest('GET', '/no/such/route'), 404, /route/);
    assertError(await rest('POST', '/v2/sandboxes', { body: '{"timeout":1.5}' }), 400, /timeout/);
    assertError(await rest('POST', '/v2/sandboxes', { body: '{"metadata":{"k":5}}' }), 400, /metadata/);
    assertError(await rest('POST', '/v2/sandboxes', { body: '{"network":{"surprise":true}}' }), 400, /network/);
    assertError(await rest('POST', '/v2/sandboxes/nope/connect', { body: '[1]' }), 400);
    assertError(await rest('POST', '/v2/sandboxes/nope/connect', { body: '{"timeout":0}' }), 400, /timeout/);
    assertError(await rest('POST', '/sandboxes/nope/pause', { body: '{"memory":"yes"}' }), 400, /memory/);
    assertError(await rest('GET', '/v2/sandboxes?limit=abc'), 400, /limit/);
    assertError(await rest('GET', '/v2/sandboxes?order=sideways'), 400, /order/);
    assertError(await rest('GET', '/v2/sandboxes?startedAfter=yesterday'), 400, /startedAfter/);
    assertError(await rest('GET', '/v2/sandboxes?metadata=%25ZZ%3D1'), 400, /metadata/);
    // A created sandbox answers the fields the SDK reads, with 201.
    const ok = await rest('POST', '/sandboxes', { body: '{"secure":true,"metadata":{"via":"rest"}}' });
    assert.equal(ok.status, 201, JSON.stringify(ok.body));
    const body = ok.body as Record<string, unknown>;
    made.push(body.sandboxID as string);
    for (const field of ['sandboxID', 'templateID', 'envdVersion', 'envdAccessToken', 'domain'])
      assert.equal(typeof body[field], 'string', field);
    assert.ok((body.envdAccessToken as string).length >= 22, 'at least 128 bits');
    const del = await rest('DELETE', `/sandboxes/${body.sandboxID}`);
    assert.equal(del.status, 204);
    assertError(await rest('DELETE', `/sandboxes/${body.sandboxID}`), 404);
  });
});

describe('a restart of the server', () => {
  test('keeps the deadline: a sandbox still ends at the timeout it was given before the server crashed', async () => {
    // On a workspace template: its files are on a workspace, so it can sleep on without its sandbox. (A `base`
    // sandbox has none: lost with the agent, it ends; below.)
    const ws = `tpl-${randomBytes(3).toString('hex')}`;
    await runScript(e2b.server, 'echo seed > /root/seed', { workspace_id: ws, persistent: true });
    await runCli(e2b.server, ['stop', ws]);
    const sbx = await create({ timeoutMs: 20_000, metadata: { kind: 'restart' } }, ws);
    const base = await create({ metadata: { kind: 'restart-base' } });
    const endAt = (await sbx.getInfo()).endAt.getTime();
    const home = e2b.server.home;
    // A crash: a graceful stop ends every sandbox (as `mags server` does on Ctrl-C), a crash leaves them to recover.
    await e2b.server.kill();
    e2b = await startE2b(['--usage-interval', '1', '--instance', instance], home);
    opts = e2b.opts;
    // The base sandbox's files were in its sandbox, lost with the agent of the previous process: it ended, and
    // says why (it never comes back empty under its id).
    await assert.rejects(Sandbox.getInfo(base.sandboxId, opts), SandboxNotFoundError);
    const lost = await fetch(`${e2b.server.url}/api/v1/mags-jobs/${base.sandboxId}/status`, {
      headers: { authorization: `Bearer ${e2b.server.token}` },
    });
    const lostJob = (await lost.json()) as { status: string; error_message: string };
    assert.equal(lostJob.status, 'error');
    assert.match(lostJob.error_message, /no workspace to keep its files on/);
    // The template sandbox was lost with the agent too: the job sleeps until used, which for E2B is still running
    // (not paused by anyone), with its deadline kept.
    const info = await Sandbox.getInfo(sbx.sandboxId, opts);
    assert.equal(info.state, 'running');
    assert.equal(info.endAt.getTime(), endAt);
    assert.ok(endAt > Date.now(), 'the deadline is still ahead');
    await eventually(
      async () => (await rest('GET', `/sandboxes/${sbx.sandboxId}`)).status === 404,
      'the sandbox ending at the deadline it was given before the restart',
      40_000,
    );
    assert.ok(Date.now() >= endAt - 1000, 'not before its deadline');
    const job = await fetch(`${e2b.server.url}/api/v1/mags-jobs/${sbx.sandboxId}/status`, {
      headers: { authorization: `Bearer ${e2b.server.token}` },
    });
    assert.equal(((await job.json()) as { status: string }).status, 'stopped');
  });
});
