// Workspaces as a client sees them: `-w NAME` (local), `-w NAME -p` (persistent), `--base`, one job per workspace,
// and the management routes (new, list, get, delete, versions, restore, sync, resize), with a fake agent on the
// real protocol and a real object store (a directory) holding versions made by the real sync engine.
import assert from 'node:assert/strict';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { createInProcessLink, type JobStatus, type SandboxSpec, type WorkspaceInfo } from '@mags/api';
import { listVersions, manifestKey, readHead, snapshot } from '@mags/objects';
import { pino } from 'pino';
import { createServer, resolveServerConfig, Store } from '../src/index.js';
import { FakeAgent } from './fake-agent.js';
import { agentsOnline, connect, errorBody, startTestServer, type TestServer, tempDir, waitFor } from './helpers.js';

type Method = 'GET' | 'POST' | 'DELETE';

function client(t: TestServer, headers: Record<string, string> = t.auth) {
  const call = (method: Method, url: string, payload?: unknown) =>
    t.server.app.inject({ method, url, headers, ...(payload === undefined ? {} : { payload: payload as string }) });
  return {
    call,
    async submit(body: Record<string, unknown>): Promise<string> {
      const res = await call('POST', '/api/v1/mags-jobs', body);
      assert.equal(res.statusCode, 202, res.body);
      return res.json().request_id;
    },
    async done(id: string): Promise<JobStatus> {
      for (;;) {
        const res = await call('GET', `/api/v1/mags-jobs/${id}/status?wait=30`);
        assert.equal(res.statusCode, 200, res.body);
        const job = res.json() as JobStatus;
        if (!['accepted', 'running'].includes(job.status)) return job;
      }
    },
    async workspace(name: string): Promise<WorkspaceInfo> {
      const res = await call('GET', `/api/v1/mags-workspaces/${name}`);
      assert.equal(res.statusCode, 200, res.body);
      return res.json();
    },
  };
}

async function userId(t: TestServer, headers = t.auth): Promise<string> {
  return (await t.server.app.inject({ method: 'GET', url: '/api/v1/status', headers })).json().user.id;
}

/** Writes a version of a persistent workspace into the server's object store with the real sync engine. */
async function syncVersion(t: TestServer, owner: string, name: string, files: Record<string, string>): Promise<number> {
  const dir = tempDir();
  try {
    const upper = join(dir.path, 'upper');
    mkdirSync(upper);
    for (const [path, content] of Object.entries(files)) writeFileSync(join(upper, path), content);
    const r = await snapshot(upper, t.server.objects, { owner, name, cacheDir: join(dir.path, 'cache') });
    return r.version;
  } finally {
    dir.remove();
  }
}

const startOf = (agent: FakeAgent, jobId: string): SandboxSpec | undefined =>
  agent.starts.find((s) => s.jobId === jobId);

/** Submits jobs that hang until `target` is full (placement picks the agent with the most room). */
async function fill(c: ReturnType<typeof client>, target: FakeAgent, agents: FakeAgent[]): Promise<void> {
  const running = () => agents.reduce((n, a) => n + a.running.size, 0);
  for (let i = 0; i < 10 && target.running.size < target.info.capacity; i++) {
    const before = running();
    await c.submit({ script: 'hang' });
    await waitFor(() => running() === before + 1, 'the job to start');
  }
  assert.equal(target.running.size, target.info.capacity);
}

describe('workspaces', () => {
  let t: TestServer;
  let c: ReturnType<typeof client>;
  let owner: string;
  before(async () => {
    t = await startTestServer({ workspaceTimeouts: { orderMs: 2000, syncMs: 2000 } });
    c = client(t);
    owner = await userId(t);
  });
  after(async () => {
    const errors = t?.errors() ?? [];
    await t?.close();
    assert.deepEqual(errors, [], 'no request failed inside the server (a 500 is a bug)');
  });

  test('-w NAME makes a local workspace on first use; the agent gets it, the job shows it, the run releases it', async () => {
    const id = await c.submit({ script: 'manual', workspace_id: 'local-1' });
    const agent = t.agent!;
    await agent.until(() => agent.running.has(id));
    assert.deepEqual(startOf(agent, id), {
      jobId: id,
      script: 'manual',
      environment: {},
      vcpus: 1,
      memoryMb: 1024,
      timeoutS: 3600,
      network: 'internet',
      diskGb: 2,
      uploads: [],
      workspace: { owner, name: 'local-1', persistent: false },
    });
    const busy = await c.workspace('local-1');
    assert.equal(busy.mode, 'local');
    assert.equal(busy.in_use_by, id);
    assert.equal(busy.expires_at, null, 'a workspace in use does not expire');
    agent.exit(id, 0);
    const job = await c.done(id);
    assert.equal(job.workspace_id, 'local-1');
    const ws = await c.workspace('local-1');
    assert.deepEqual(
      { ...ws, created_at: 'x', last_used_at: 'x', expires_at: 'x' },
      {
        name: 'local-1',
        workspace_id: 'local-1',
        mode: 'local',
        disk_gb: 2,
        size_bytes: 4096,
        files: 2,
        versions: 0,
        current_version: null,
        base: null,
        in_use_by: null,
        created_at: 'x',
        last_used_at: 'x',
        expires_at: 'x',
      },
    );
    assert.ok(
      Date.parse(String(ws.expires_at)) - Date.parse(String(ws.last_used_at)) === 600_000,
      'a local workspace lives 10 minutes unused',
    );
    const list = (await c.call('GET', '/api/v1/mags-workspaces')).json();
    assert.ok(list.workspaces.some((w: WorkspaceInfo) => w.name === 'local-1'));
  });

  test('-w NAME -p is persistent; used again without -p it stays persistent; a local one used with -p becomes persistent', async () => {
    const a = await c.submit({ script: 'echo one', workspace_id: 'pers-1', persistent: true });
    await c.done(a);
    assert.deepEqual(startOf(t.agent!, a)?.workspace, { owner, name: 'pers-1', persistent: true });
    const b = await c.submit({ script: 'echo two', workspace_id: 'pers-1' });
    await c.done(b);
    assert.deepEqual(startOf(t.agent!, b)?.workspace, { owner, name: 'pers-1', persistent: true });
    const ws = await c.workspace('pers-1');
    assert.equal(ws.mode, 'persistent');
    assert.equal(ws.expires_at, null);
    assert.equal(ws.current_version, 2, 'the version the agent reported after its sync');

    await c.done(await c.submit({ script: 'echo local', workspace_id: 'up-1' }));
    assert.equal((await c.workspace('up-1')).mode, 'local');
    const up = await c.submit({ script: 'echo now persistent', workspace_id: 'up-1', persistent: true });
    await c.done(up);
    assert.deepEqual(startOf(t.agent!, up)?.workspace, { owner, name: 'up-1', persistent: true });
    assert.equal((await c.workspace('up-1')).mode, 'persistent');
  });

  test('a new workspace takes --disk (default 2); an existing one keeps its size and refuses another', async () => {
    const a = await c.submit({ script: 'echo', workspace_id: 'disk-1', disk_gb: 5 });
    await c.done(a);
    assert.equal(startOf(t.agent!, a)?.diskGb, 5);
    const b = await c.submit({ script: 'echo', workspace_id: 'disk-1' });
    await c.done(b);
    assert.equal(startOf(t.agent!, b)?.diskGb, 5);
    const same = await c.submit({ script: 'echo', workspace_id: 'disk-1', disk_gb: 5 });
    await c.done(same);
    const smaller = errorBody(
      await c.call('POST', '/api/v1/mags-jobs', { script: 'echo', workspace_id: 'disk-1', disk_gb: 3 }),
      400,
      'invalid_request',
    );
    assert.match(smaller.error, /has a 5 GB disk and disks only grow; leave out --disk \(or use mags resize/);
    const bigger = errorBody(
      await c.call('POST', '/api/v1/mags-jobs', { script: 'echo', workspace_id: 'disk-1', disk_gb: 8 }),
      400,
      'invalid_request',
    );
    assert.match(bigger.error, /has a 5 GB disk; to grow it run mags resize disk-1 --disk 8 first/);
    assert.equal((await c.workspace('disk-1')).in_use_by, null, 'a refused job does not take the workspace');
  });

  test('one job per workspace: of two concurrent submits exactly one is accepted, the other is 409 naming it', async () => {
    const results = await Promise.all(
      [1, 2].map(() =>
        c.call('POST', '/api/v1/mags-jobs', { script: 'hang', workspace_id: 'busy-1', persistent: true }),
      ),
    );
    const accepted = results.filter((r) => r.statusCode === 202);
    const refused = results.filter((r) => r.statusCode === 409);
    assert.equal(accepted.length, 1, results.map((r) => r.body).join(' | '));
    assert.equal(refused.length, 1);
    const holder = accepted[0].json().request_id;
    const err = errorBody(refused[0], 409, 'workspace_busy');
    assert.equal(
      err.error,
      `workspace busy-1 is in use by job ${holder}; wait for it to finish or stop it (mags stop ${holder})`,
    );
    // Still busy while it runs, also for a different workspace option combination.
    errorBody(
      await c.call('POST', '/api/v1/mags-jobs', { script: 'echo', workspace_id: 'busy-1' }),
      409,
      'workspace_busy',
    );
    // Stopping the job releases it.
    const stop = await c.call('POST', `/api/v1/mags-jobs/${holder}/stop`);
    assert.equal(stop.json().status, 'stopped');
    const next = await c.submit({ script: 'echo free again', workspace_id: 'busy-1' });
    assert.equal((await c.done(next)).status, 'sleeping', 'a persistent run sleeps when its script ends');
    // A job that ends by itself releases it too.
    await c.done(await c.submit({ script: 'echo again', workspace_id: 'busy-1' }));
    const ws = await c.workspace('busy-1');
    assert.equal(ws.in_use_by, null);
  });

  test('the status of a workspace with an unfinished job names the job; two workspaces run side by side', async () => {
    const a = await c.submit({ script: 'manual', workspace_id: 'side-a' });
    const b = await c.submit({ script: 'manual', workspace_id: 'side-b' });
    await t.agent!.until(() => t.agent!.running.has(a) && t.agent!.running.has(b));
    assert.equal((await c.workspace('side-a')).in_use_by, a);
    assert.equal((await c.workspace('side-b')).in_use_by, b);
    t.agent!.exit(a, 0);
    t.agent!.exit(b, 1);
    await c.done(a);
    assert.equal((await c.done(b)).status, 'failed');
    assert.equal((await c.workspace('side-b')).in_use_by, null, 'a failed job releases its workspace');
  });

  describe('bases', () => {
    before(async () => {
      await c.done(await c.submit({ script: 'echo', workspace_id: 'golden', persistent: true }));
      await syncVersion(t, owner, 'golden', { 'a.txt': 'golden v1' });
    });

    test('--base without -w pins the base at its current version', async () => {
      const id = await c.submit({ script: 'echo', base_workspace_id: 'golden' });
      await c.done(id);
      const version = (await readHead(t.server.objects, { owner, name: 'golden' }))!.head.version;
      assert.deepEqual(startOf(t.agent!, id)?.base, {
        label: `golden@${version}`,
        manifestKey: manifestKey({ owner, name: 'golden' }, version),
      });
      assert.equal(startOf(t.agent!, id)?.workspace, undefined);
    });

    test('a new workspace with --base is a fork: it keeps its own copy of the base, fixed at creation', async () => {
      const version = (await readHead(t.server.objects, { owner, name: 'golden' }))!.head.version;
      const id = await c.submit({
        script: 'echo',
        workspace_id: 'fork-1',
        base_workspace_id: 'golden',
        persistent: true,
      });
      await c.done(id);
      const start = startOf(t.agent!, id)!;
      assert.equal(start.base?.label, `golden@${version}`);
      assert.ok(
        start.base?.manifestKey.startsWith(`workspaces/${owner}/fork-1/`),
        `the fork's own copy: ${start.base?.manifestKey}`,
      );
      assert.notEqual(await t.server.objects.head(start.base!.manifestKey), undefined, 'the copy is in the store');
      assert.equal((await c.workspace('fork-1')).base, `golden@${version}`);

      // The base moves on; the fork does not.
      await syncVersion(t, owner, 'golden', { 'a.txt': 'golden v2' });
      const again = await c.submit({ script: 'echo', workspace_id: 'fork-1', base_workspace_id: 'golden' });
      await c.done(again);
      assert.deepEqual(startOf(t.agent!, again)?.base, start.base);
      const plain = await c.submit({ script: 'echo', workspace_id: 'fork-1' });
      await c.done(plain);
      assert.deepEqual(startOf(t.agent!, plain)?.base, start.base, 'the base comes with the workspace');

      const other = errorBody(
        await c.call('POST', '/api/v1/mags-jobs', {
          script: 'echo',
          workspace_id: 'fork-1',
          base_workspace_id: 'pers-1',
        }),
        409,
        'conflict',
      );
      assert.match(other.error, /its base is fixed when it is created/);
      const none = errorBody(
        await c.call('POST', '/api/v1/mags-jobs', {
          script: 'echo',
          workspace_id: 'local-1',
          base_workspace_id: 'golden',
        }),
        409,
        'conflict',
      );
      assert.match(none.error, /created without a base; its base is fixed/);
      // A fork is not a base itself.
      const deeper = errorBody(
        await c.call('POST', '/api/v1/mags-jobs', { script: 'echo', base_workspace_id: 'fork-1' }),
        422,
        'unsupported_option',
      );
      assert.match(deeper.error, /itself created on a base/);
    });

    test('a base must be a persistent workspace of the caller with a synced version', async () => {
      const cases: Array<[string, number, string, RegExp]> = [
        ['no-such', 404, 'not_found', /base workspace "no-such" not found/],
        ['local-1', 422, 'unsupported_option', /is local; only a persistent workspace can be a base/],
      ];
      await c.done(await c.submit({ script: 'echo', workspace_id: 'never-synced', persistent: true }));
      cases.push(['never-synced', 422, 'unsupported_option', /has no synced version yet/]);
      for (const [base, status, code, message] of cases) {
        for (const body of [
          { script: 'echo', base_workspace_id: base },
          { script: 'echo', base_workspace_id: base, workspace_id: `new-on-${base}` },
        ]) {
          const err = errorBody(await c.call('POST', '/api/v1/mags-jobs', body), status, code);
          assert.match(err.error, message);
        }
        errorBody(await c.call('GET', `/api/v1/mags-workspaces/new-on-${base}`), 404, 'not_found');
        errorBody(await c.call('POST', '/api/v1/mags-workspaces', { name: `new-on-${base}`, base }), status, code);
      }
    });

    test('mags new NAME --base B forks B at its current version; a second new of that name is 409', async () => {
      const version = (await readHead(t.server.objects, { owner, name: 'golden' }))!.head.version;
      const res = await c.call('POST', '/api/v1/mags-workspaces', {
        name: 'fork-2',
        base: 'golden',
        persistent: true,
        disk_gb: 3,
      });
      assert.equal(res.statusCode, 201, res.body);
      const ws = res.json() as WorkspaceInfo;
      assert.equal(ws.name, 'fork-2');
      assert.equal(ws.mode, 'persistent');
      assert.equal(ws.disk_gb, 3);
      assert.equal(ws.base, `golden@${version}`);
      assert.equal(ws.in_use_by, null);
      errorBody(await c.call('POST', '/api/v1/mags-workspaces', { name: 'fork-2' }), 409, 'conflict');
      const id = await c.submit({ script: 'echo', workspace_id: 'fork-2' });
      await c.done(id);
      assert.equal(startOf(t.agent!, id)?.base?.label, `golden@${version}`);
      assert.equal(startOf(t.agent!, id)?.diskGb, 3);
    });
  });

  test('mags new: local by default with 2 GB; bad input is 400', async () => {
    const res = await c.call('POST', '/api/v1/mags-workspaces', { name: 'plain-new' });
    assert.equal(res.statusCode, 201, res.body);
    const ws = res.json() as WorkspaceInfo;
    assert.equal(ws.mode, 'local');
    assert.equal(ws.disk_gb, 2);
    assert.notEqual(ws.expires_at, null);
    for (const body of [
      {},
      { name: '../x' },
      { name: 'x', disk_gb: 0 },
      { name: 'x', disk_gb: 2000 },
      { name: 'x', colour: 1 },
      { name: 'x', base: 'x' },
    ]) {
      const r = await c.call('POST', '/api/v1/mags-workspaces', body);
      errorBody(r, 400, 'invalid_request');
    }
  });

  describe('versions and restore', () => {
    before(async () => {
      await c.done(await c.submit({ script: 'echo', workspace_id: 'vers', persistent: true }));
      await syncVersion(t, owner, 'vers', { 'f.txt': 'one' });
      await syncVersion(t, owner, 'vers', { 'f.txt': 'two' });
    });

    test('versions lists the synced versions, the current one marked; a local workspace has none', async () => {
      const res = await c.call('GET', '/api/v1/mags-workspaces/vers/versions');
      assert.equal(res.statusCode, 200);
      const body = res.json();
      assert.equal(body.name, 'vers');
      assert.deepEqual(
        body.versions.map((v: { version: number; current: boolean; files: number }) => [v.version, v.current, v.files]),
        [
          [1, false, 1],
          [2, true, 1],
        ],
      );
      assert.match(body.versions[0].created_at, /^\d{4}-/);
      assert.deepEqual((await c.call('GET', '/api/v1/mags-workspaces/local-1/versions')).json(), {
        name: 'local-1',
        versions: [],
      });
      const ws = await c.workspace('vers');
      assert.equal(ws.current_version, 2);
      assert.equal(ws.versions, 2);
    });

    test('restore rolls back as a new version, after every agent dropped its copy', async () => {
      const ordersBefore = t.agent!.orders.length;
      const res = await c.call('POST', '/api/v1/mags-workspaces/vers/restore', { version: 1 });
      assert.equal(res.statusCode, 200, res.body);
      assert.deepEqual(res.json(), { success: true, name: 'vers', version: 3, restored_from: 1 });
      const drops = t.agent!.orders.slice(ordersBefore);
      assert.deepEqual(
        drops.map((o) => [o.type, o.workspace]),
        [['drop', { owner, name: 'vers' }]],
      );
      const versions = await listVersions(t.server.objects, { owner, name: 'vers' });
      assert.deepEqual(
        versions.map((v) => [v.version, v.current]),
        [
          [1, false],
          [2, false],
          [3, true],
        ],
      );
      const ws = await c.workspace('vers');
      assert.equal(ws.current_version, 3);
    });

    test('restore refuses an unknown version (404), a local workspace (400), a workspace in use (409)', async () => {
      const unknown = errorBody(
        await c.call('POST', '/api/v1/mags-workspaces/vers/restore', { version: 99 }),
        404,
        'not_found',
      );
      assert.match(unknown.error, /has no version 99 \(kept: 1, 2, 3\)/);
      errorBody(
        await c.call('POST', '/api/v1/mags-workspaces/local-1/restore', { version: 1 }),
        400,
        'invalid_request',
      );
      errorBody(await c.call('POST', '/api/v1/mags-workspaces/nope/restore', { version: 1 }), 404, 'not_found');
      errorBody(await c.call('POST', '/api/v1/mags-workspaces/vers/restore', { version: 0 }), 400, 'invalid_request');
      errorBody(await c.call('POST', '/api/v1/mags-workspaces/vers/restore', {}), 400, 'invalid_request');
      const id = await c.submit({ script: 'hang', workspace_id: 'vers' });
      await t.agent!.until(() => t.agent!.running.has(id));
      const busy = errorBody(
        await c.call('POST', '/api/v1/mags-workspaces/vers/restore', { version: 1 }),
        409,
        'workspace_busy',
      );
      assert.match(busy.error, new RegExp(`in use by job ${id}`));
      await c.call('POST', `/api/v1/mags-jobs/${id}/stop`);
      await c.done(id);
    });
  });

  describe('sync', () => {
    test('asks the agent holding the workspace, by name and by job; the new version is recorded', async () => {
      const id = await c.submit({ script: 'manual', workspace_id: 'syncme', persistent: true });
      await t.agent!.until(() => t.agent!.running.has(id));
      const res = await c.call('POST', '/api/v1/mags-workspaces/syncme/sync');
      assert.equal(res.statusCode, 200, res.body);
      assert.deepEqual(res.json(), { success: true, name: 'syncme', version: 1, changed: true });
      const byJob = await c.call('POST', `/api/v1/mags-jobs/${id}/sync`);
      assert.deepEqual(byJob.json(), { success: true, name: 'syncme', version: 2, changed: true });
      assert.equal((await c.workspace('syncme')).current_version, 2);
      t.agent!.exit(id, 0);
      await c.done(id);
    });

    test('with no agent holding it, the store is current: its head, unchanged', async () => {
      const res = await c.call('POST', '/api/v1/mags-workspaces', { name: 'cold', persistent: true });
      assert.equal(res.statusCode, 201);
      assert.deepEqual((await c.call('POST', '/api/v1/mags-workspaces/cold/sync')).json(), {
        success: true,
        name: 'cold',
        version: null,
        changed: false,
      });
      await syncVersion(t, owner, 'cold', { x: 'y' });
      assert.deepEqual((await c.call('POST', '/api/v1/mags-workspaces/cold/sync')).json(), {
        success: true,
        name: 'cold',
        version: 1,
        changed: false,
      });
    });

    test('local workspaces, jobs without a workspace and unknown names are refused', async () => {
      const local = errorBody(await c.call('POST', '/api/v1/mags-workspaces/local-1/sync'), 400, 'invalid_request');
      assert.match(local.error, /local workspaces are not synced; run with -p to make it persistent/);
      const plain = await c.submit({ script: 'echo' });
      await c.done(plain);
      const noWs = errorBody(await c.call('POST', `/api/v1/mags-jobs/${plain}/sync`), 400, 'invalid_request');
      assert.match(noWs.error, /has no workspace/);
      errorBody(await c.call('POST', '/api/v1/mags-jobs/no-such-job/sync'), 404, 'not_found');
      errorBody(await c.call('POST', '/api/v1/mags-workspaces/no-such/sync'), 404, 'not_found');
    });
  });

  describe('resize', () => {
    test('grows the disk: the holding agent grows its copy now, the next run gets the new size', async () => {
      await c.done(await c.submit({ script: 'echo', workspace_id: 'grow', disk_gb: 2 }));
      const before = t.agent!.orders.length;
      const res = await c.call('POST', '/api/v1/mags-workspaces/grow/resize', { disk_gb: 4 });
      assert.equal(res.statusCode, 200, res.body);
      assert.equal(res.json().disk_gb, 4);
      const order = t.agent!.orders.slice(before);
      assert.deepEqual(
        order.map((o) => [o.type, o.type === 'resize' ? o.diskGb : 0]),
        [['resize', 4]],
      );
      const id = await c.submit({ script: 'echo', workspace_id: 'grow' });
      await c.done(id);
      assert.equal(startOf(t.agent!, id)?.diskGb, 4);
      assert.equal(
        (await c.call('POST', '/api/v1/mags-workspaces/grow/resize', { disk_gb: 4 })).json().disk_gb,
        4,
        'the same size is a no-op',
      );
    });

    test('never shrinks, and says the current size; bad sizes and names are 4xx', async () => {
      const err = errorBody(
        await c.call('POST', '/api/v1/mags-workspaces/grow/resize', { disk_gb: 1 }),
        400,
        'invalid_request',
      );
      assert.match(err.error, /has a 4 GB disk and disks only grow; give --disk 4 or more/);
      errorBody(await c.call('POST', '/api/v1/mags-workspaces/grow/resize', { disk_gb: 0 }), 400, 'invalid_request');
      errorBody(await c.call('POST', '/api/v1/mags-workspaces/grow/resize', { disk_gb: 5000 }), 400, 'invalid_request');
      errorBody(await c.call('POST', '/api/v1/mags-workspaces/grow/resize', { disk_gb: '8' }), 400, 'invalid_request');
      errorBody(await c.call('POST', '/api/v1/mags-workspaces/nope/resize', { disk_gb: 8 }), 404, 'not_found');
      assert.equal((await c.workspace('grow')).disk_gb, 4);
    });
  });

  describe('delete', () => {
    test('in use: 409 unless forced; forced: the job is stopped, copies dropped, store data and record removed', async () => {
      const id = await c.submit({ script: 'hang', workspace_id: 'doomed', persistent: true });
      await t.agent!.until(() => t.agent!.running.has(id));
      await syncVersion(t, owner, 'doomed', { f: 'x' });
      const busy = errorBody(await c.call('DELETE', '/api/v1/mags-workspaces/doomed'), 409, 'workspace_busy');
      assert.match(
        busy.error,
        new RegExp(`in use by job ${id}; wait for it to finish, stop it, or delete with --force`),
      );
      assert.equal((await c.workspace('doomed')).in_use_by, id, 'a refused delete changes nothing');

      const res = await c.call('DELETE', '/api/v1/mags-workspaces/doomed?force=true');
      assert.equal(res.statusCode, 200, res.body);
      assert.deepEqual(res.json(), { success: true, name: 'doomed' });
      assert.equal((await c.done(id)).status, 'stopped');
      assert.ok(t.agent!.orders.some((o) => o.type === 'drop' && o.workspace.name === 'doomed'));
      assert.equal(t.agent!.copies.has(`${owner}/doomed`), false, 'the host copy is dropped');
      assert.equal(
        await readHead(t.server.objects, { owner, name: 'doomed' }),
        undefined,
        'the versions are gone from the store',
      );
      errorBody(await c.call('GET', '/api/v1/mags-workspaces/doomed'), 404, 'not_found');
      errorBody(await c.call('DELETE', '/api/v1/mags-workspaces/doomed'), 404, 'not_found');

      // The name can be used again, from scratch.
      const again = await c.submit({ script: 'echo', workspace_id: 'doomed', persistent: true });
      await c.done(again);
      assert.equal((await c.workspace('doomed')).base, null);
    });

    test('deleting a base leaves its forks working (they own their copy)', async () => {
      await c.done(await c.submit({ script: 'echo', workspace_id: 'short-lived-base', persistent: true }));
      await syncVersion(t, owner, 'short-lived-base', { f: 'x' });
      const fork = await c.call('POST', '/api/v1/mags-workspaces', { name: 'orphan-fork', base: 'short-lived-base' });
      assert.equal(fork.statusCode, 201, fork.body);
      assert.equal((await c.call('DELETE', '/api/v1/mags-workspaces/short-lived-base')).statusCode, 200);
      const id = await c.submit({ script: 'echo', workspace_id: 'orphan-fork' });
      await c.done(id);
      const key = startOf(t.agent!, id)!.base!.manifestKey;
      assert.notEqual(await t.server.objects.head(key), undefined);
    });
  });

  test('an agent reporting a local copy gone (expired) removes the workspace; a persistent one is kept', async () => {
    await c.done(await c.submit({ script: 'echo', workspace_id: 'expiring' }));
    await c.done(await c.submit({ script: 'echo', workspace_id: 'staying', persistent: true }));
    assert.equal((await t.server.store.workspaces.get(owner, 'staying'))?.agent_id, 'agent-1');
    t.agent!.report(owner, 'expiring', 'gone');
    t.agent!.report(owner, 'staying', 'gone');
    await waitFor(
      async () => (await c.call('GET', '/api/v1/mags-workspaces/expiring')).statusCode === 404,
      'the expired workspace to go',
    );
    await waitFor(
      async () => (await t.server.store.workspaces.get(owner, 'staying'))?.agent_id === null,
      'the copy to be forgotten',
    );
    assert.equal((await c.workspace('staying')).mode, 'persistent');
  });

  test('the OpenAPI document describes every workspace and file route', async () => {
    const doc = (await c.call('GET', '/api/v1/openapi.json')).json();
    for (const [path, method] of [
      ['/api/v1/mags-workspaces', 'get'],
      ['/api/v1/mags-workspaces', 'post'],
      ['/api/v1/mags-workspaces/{name}', 'get'],
      ['/api/v1/mags-workspaces/{name}', 'delete'],
      ['/api/v1/mags-workspaces/{name}/versions', 'get'],
      ['/api/v1/mags-workspaces/{name}/restore', 'post'],
      ['/api/v1/mags-workspaces/{name}/sync', 'post'],
      ['/api/v1/mags-workspaces/{name}/resize', 'post'],
      ['/api/v1/mags-jobs/{id}/sync', 'post'],
      ['/api/v1/mags-files', 'post'],
      ['/api/v1/mags-files', 'get'],
      ['/api/v1/mags-files/{id}', 'delete'],
    ]) {
      assert.ok(doc.paths[path]?.[method], `${method.toUpperCase()} ${path} is documented`);
    }
    assert.ok(doc.components.schemas.WorkspaceInfo, 'WorkspaceInfo is a named component');
    assert.ok(doc.paths['/api/v1/mags-jobs'].post.responses['409']);
  });

  test('unauthenticated requests are 401 on every workspace and file route', async () => {
    for (const [method, url] of [
      ['GET', '/api/v1/mags-workspaces'],
      ['POST', '/api/v1/mags-workspaces'],
      ['GET', '/api/v1/mags-workspaces/x'],
      ['DELETE', '/api/v1/mags-workspaces/x'],
      ['GET', '/api/v1/mags-workspaces/x/versions'],
      ['POST', '/api/v1/mags-workspaces/x/restore'],
      ['POST', '/api/v1/mags-workspaces/x/sync'],
      ['POST', '/api/v1/mags-workspaces/x/resize'],
      ['POST', '/api/v1/mags-jobs/x/sync'],
      ['POST', '/api/v1/mags-files?name=x'],
      ['GET', '/api/v1/mags-files'],
      ['DELETE', '/api/v1/mags-files/x'],
    ] as const) {
      errorBody(await t.server.app.inject({ method, url, headers: {} }), 401, 'unauthorized');
    }
  });
});

describe("another user's workspaces", () => {
  test('are not seen, read, synced, resized, restored, based on, forked, used or deleted; the owner keeps them intact', async () => {
    const t = await startTestServer();
    try {
      const alice = client(t);
      const aliceId = await userId(t);
      await alice.done(await alice.submit({ script: 'echo', workspace_id: 'secret', persistent: true }));
      await syncVersion(t, aliceId, 'secret', { 'key.pem': 'private' });
      await alice.done(await alice.submit({ script: 'echo', workspace_id: 'secret-local' }));
      const mallory = await t.server.store.users.create('mallory');
      const mAuth = { authorization: `Bearer ${await t.server.auth.createToken(mallory.id, 'test')}` };
      const m = client(t, mAuth);
      const before = await alice.workspace('secret');

      assert.deepEqual((await m.call('GET', '/api/v1/mags-workspaces')).json(), { workspaces: [] });
      for (const name of ['secret', 'secret-local']) {
        for (const [method, url, body] of [
          ['GET', `/api/v1/mags-workspaces/${name}`, undefined],
          ['GET', `/api/v1/mags-workspaces/${name}/versions`, undefined],
          ['POST', `/api/v1/mags-workspaces/${name}/sync`, undefined],
          ['POST', `/api/v1/mags-workspaces/${name}/resize`, { disk_gb: 50 }],
          ['POST', `/api/v1/mags-workspaces/${name}/restore`, { version: 1 }],
          ['DELETE', `/api/v1/mags-workspaces/${name}?force=true`, undefined],
        ] as const) {
          const err = errorBody(await m.call(method, url, body), 404, 'not_found');
          assert.equal(err.error, `workspace "${name}" not found`);
        }
        errorBody(
          await m.call('POST', '/api/v1/mags-jobs', { script: 'cat /x', base_workspace_id: name }),
          404,
          'not_found',
        );
        errorBody(await m.call('POST', '/api/v1/mags-workspaces', { name: 'mine', base: name }), 404, 'not_found');
      }
      // Mallory's own workspace of the same name is hers: a different one, under her own id in the store.
      const hers = await m.submit({ script: 'echo', workspace_id: 'secret', persistent: true });
      await m.done(hers);
      assert.deepEqual(startOf(t.agent!, hers)?.workspace, { owner: mallory.id, name: 'secret', persistent: true });
      const jobSync = errorBody(
        await m.call(
          'POST',
          `/api/v1/mags-jobs/${(await alice.call('GET', '/api/v1/mags-jobs')).json().jobs[0].request_id}/sync`,
        ),
        404,
        'not_found',
      );
      assert.match(jobSync.error, /^job /);

      const after = await alice.workspace('secret');
      assert.deepEqual({ ...after, last_used_at: null }, { ...before, last_used_at: null });
      assert.equal(after.disk_gb, 2);
      assert.deepEqual(
        (await listVersions(t.server.objects, { owner: aliceId, name: 'secret' })).map((v) => v.version),
        [1],
      );
      assert.equal((await alice.workspace('secret-local')).mode, 'local');
      assert.deepEqual(t.errors(), []);
    } finally {
      await t.close();
    }
  });
});

describe('workspace placement and release', () => {
  test('a local workspace waits for the agent holding it; when that agent is gone it runs elsewhere', async () => {
    const t = await startTestServer({ agent: false });
    try {
      const c = client(t);
      const a = connect(t, { id: 'holder', capacity: 1 });
      await agentsOnline(t, 1);
      await c.done(await c.submit({ script: 'echo', workspace_id: 'pinned' }));
      const b = connect(t, { id: 'other', capacity: 2 });
      await agentsOnline(t, 2);

      await fill(c, a, [a, b]);
      assert.ok(b.running.size < 2, 'the other agent still has room');
      const pinned = await c.submit({ script: 'echo pinned', workspace_id: 'pinned' });
      const free = await c.submit({ script: 'echo anywhere' });
      assert.equal((await c.done(free)).status, 'completed', 'a later job runs on the free agent meanwhile');
      assert.ok(b.starts.some((s) => s.jobId === free));
      const pending = await c.call('GET', `/api/v1/mags-jobs/${pinned}/status`);
      assert.equal(pending.json().status, 'accepted', 'the local workspace job waits for its agent');
      assert.ok(!b.starts.some((s) => s.jobId === pinned));

      // The holder frees a slot: the job runs there.
      const running = [...a.running.keys()][0];
      await c.call('POST', `/api/v1/mags-jobs/${running}/stop`);
      assert.equal((await c.done(pinned)).status, 'completed');
      assert.ok(a.starts.some((s) => s.jobId === pinned));

      // The holder goes away: its copy is lost, the next run goes elsewhere (and says so in the log).
      a.link.close();
      await agentsOnline(t, 1);
      const moved = await c.submit({ script: 'echo moved', workspace_id: 'pinned' });
      assert.equal((await c.done(moved)).status, 'completed');
      assert.ok(b.starts.some((s) => s.jobId === moved));
      assert.ok(t.logs.some((r) => /local workspace is gone; its files are lost/.test(r.msg)));
      for (const id of [...b.running.keys()]) await c.call('POST', `/api/v1/mags-jobs/${id}/stop`);
    } finally {
      await t.close();
    }
  });

  test('a persistent workspace prefers its agent but runs elsewhere when that agent is full', async () => {
    const t = await startTestServer({ agent: false });
    try {
      const c = client(t);
      const a = connect(t, { id: 'warm', capacity: 1 });
      await agentsOnline(t, 1);
      await c.done(await c.submit({ script: 'echo', workspace_id: 'roams', persistent: true }));
      const b = connect(t, { id: 'cold', capacity: 3 });
      await agentsOnline(t, 2);
      const again = await c.submit({ script: 'echo', workspace_id: 'roams' });
      await c.done(again);
      assert.ok(
        a.starts.some((s) => s.jobId === again),
        'the warm copy is preferred over more free capacity',
      );
      await fill(c, a, [a, b]);
      assert.ok(b.running.size < 3, 'the other agent still has room');
      const elsewhere = await c.submit({ script: 'echo', workspace_id: 'roams' });
      assert.equal((await c.done(elsewhere)).status, 'sleeping');
      assert.ok(b.starts.some((s) => s.jobId === elsewhere));
      for (const agent of [a, b])
        for (const id of [...agent.running.keys()]) await c.call('POST', `/api/v1/mags-jobs/${id}/stop`);
    } finally {
      await t.close();
    }
  });

  test('a queued job stopped, and a job whose agent disconnects, release their workspace', async () => {
    const t = await startTestServer({ agent: false });
    try {
      const c = client(t);
      const queued = await c.submit({ script: 'echo', workspace_id: 'rel' });
      errorBody(
        await c.call('POST', '/api/v1/mags-jobs', { script: 'echo', workspace_id: 'rel' }),
        409,
        'workspace_busy',
      );
      assert.equal((await c.call('POST', `/api/v1/mags-jobs/${queued}/stop`)).json().status, 'stopped');
      const running = await c.submit({ script: 'hang', workspace_id: 'rel', persistent: true });
      const agent = connect(t, { id: 'flaky' });
      await agent.until(() => agent.running.has(running));
      agent.link.close();
      assert.equal((await c.done(running)).status, 'error');
      assert.equal((await c.workspace('rel')).in_use_by, null);
      const next = await c.submit({ script: 'echo', workspace_id: 'rel' });
      assert.equal((await c.call('GET', `/api/v1/mags-jobs/${next}/status`)).json().status, 'accepted');
    } finally {
      await t.close();
    }
  });

  test('agent orders: a refusal is passed on with its status and sentence; silence is 504; a disconnect is 503', async () => {
    let mode: 'refuse' | 'silent' | 'normal' | 'long' = 'normal';
    const t = await startTestServer({
      workspaceTimeouts: { orderMs: 200, syncMs: 200 },
      agent: {
        onOrder: () => {
          if (mode === 'refuse')
            return {
              ok: false,
              status: 507,
              code: 'insufficient_storage',
              error: 'the host has no room to grow this disk',
            };
          if (mode === 'long')
            return {
              ok: false,
              status: 422,
              code: 'unsupported_option',
              error: `the workspace holds a path that is too long: ${'d/'.repeat(5000)}`,
            };
          if (mode === 'silent') return 'silent';
          return undefined;
        },
      },
    });
    try {
      const c = client(t);
      await c.done(await c.submit({ script: 'echo', workspace_id: 'ordered', persistent: true }));
      mode = 'refuse';
      const refused = errorBody(
        await c.call('POST', '/api/v1/mags-workspaces/ordered/resize', { disk_gb: 9 }),
        507,
        'insufficient_storage',
      );
      assert.equal(refused.error, 'the host has no room to grow this disk');
      assert.equal((await c.workspace('ordered')).disk_gb, 2, 'a failed resize changes nothing');
      const deleteRefused = await c.call('DELETE', '/api/v1/mags-workspaces/ordered');
      assert.equal(deleteRefused.statusCode, 507);
      assert.match(deleteRefused.json().error, /could not be removed: the host has no room/);
      assert.equal((await c.workspace('ordered')).in_use_by, null, 'a failed delete leaves the workspace usable');

      // An agent's long error is cut and passed on, not dropped (which left the request waiting for its timeout).
      mode = 'long';
      const long = errorBody(await c.call('POST', '/api/v1/mags-workspaces/ordered/sync'), 422, 'unsupported_option');
      assert.match(long.error, /^the workspace holds a path that is too long: d\/d\//);
      assert.ok(long.error.length <= 4096, `cut to 4096 characters (got ${long.error.length})`);

      mode = 'silent';
      const slow = errorBody(await c.call('POST', '/api/v1/mags-workspaces/ordered/sync'), 504, 'timeout');
      assert.match(slow.error, /did not finish the sync of workspace ordered within/);

      const pending = c.call('POST', '/api/v1/mags-workspaces/ordered/sync');
      await t.agent!.until(() => t.agent!.orders.length >= 5);
      t.agent!.link.close();
      errorBody(await pending, 503, 'agent_unavailable');
      // With the agent gone, sync answers from the store.
      assert.deepEqual((await c.call('POST', '/api/v1/mags-workspaces/ordered/sync')).json(), {
        success: true,
        name: 'ordered',
        version: null,
        changed: false,
      });
    } finally {
      await t.close();
    }
  });
});

describe('server restart', () => {
  test('workspaces held by jobs that were running, or by work the server left unfinished, are free again', async () => {
    const dir = tempDir();
    const config = resolveServerConfig({ dataDir: dir.path, port: 0 }, {});
    const logger = pino({ level: 'silent' });
    try {
      const first = await createServer(config, { logger });
      const auth = { authorization: `Bearer ${first.localToken}` };
      const link = createInProcessLink();
      first.attachAgent(link.server);
      const agent = new FakeAgent(link.agent, {});
      const submit = async (body: Record<string, unknown>) => {
        const res = await first.app.inject({ method: 'POST', url: '/api/v1/mags-jobs', headers: auth, payload: body });
        assert.equal(res.statusCode, 202, res.body);
        return res.json().request_id as string;
      };
      const running = await submit({ script: 'hang', workspace_id: 'was-running', persistent: true });
      await agent.until(() => agent.running.has(running));
      const created = await first.app.inject({
        method: 'POST',
        url: '/api/v1/mags-workspaces',
        headers: auth,
        payload: { name: 'was-reserved' },
      });
      assert.equal(created.statusCode, 201);
      // A crash in the middle of a delete leaves its reservation behind.
      const owner = (await first.app.inject({ method: 'GET', url: '/api/v1/status', headers: auth })).json().user.id;
      const reserved = (await first.store.workspaces.get(owner, 'was-reserved'))!;
      assert.equal(await first.store.workspaces.reserve(reserved.id, 'op:delete:crashed'), true);
      // Simulate the crash: the database as the dead process left it (a job still running, a reservation held).
      const store = await Store.open(config.database);
      await first.close();
      const ws = await store.workspaces.get(owner, 'was-running');
      await store.db
        .updateTable('jobs')
        .set({ status: 'running', completed_at: null, error_message: null })
        .where('id', '=', running)
        .execute();
      await store.db.updateTable('workspaces').set({ active_job_id: running }).where('id', '=', ws!.id).execute();
      await store.db
        .updateTable('workspaces')
        .set({ active_job_id: 'op:delete:crashed' })
        .where('id', '=', reserved.id)
        .execute();
      await store.close();

      const second = await createServer(config, { logger });
      try {
        const get = async (name: string) =>
          (await second.app.inject({ method: 'GET', url: `/api/v1/mags-workspaces/${name}`, headers: auth })).json();
        assert.equal(
          (await second.app.inject({ method: 'GET', url: `/api/v1/mags-jobs/${running}/status`, headers: auth })).json()
            .status,
          'error',
        );
        assert.equal((await get('was-running')).in_use_by, null);
        assert.equal((await second.store.workspaces.get(owner, 'was-reserved'))?.active_job_id, null);
        const again = await second.app.inject({
          method: 'POST',
          url: '/api/v1/mags-jobs',
          headers: auth,
          payload: { script: 'echo', workspace_id: 'was-running' },
        });
        assert.equal(again.statusCode, 202, again.body);
        const del = await second.app.inject({
          method: 'DELETE',
          url: '/api/v1/mags-workspaces/was-reserved',
          headers: auth,
        });
        assert.equal(del.statusCode, 200, del.body);
      } finally {
        await second.close();
      }
    } finally {
      dir.remove();
    }
  });
});

describe('disk admission', () => {
  const GB = 1024 ** 3;
  // Reserve max(5 GB, 5 % of 100 GB) = 5 GB; disks held may still grow by 3 GB: 20 - 5 - 3 = 12 GB of room.
  const storage = { totalBytes: 100 * GB, freeBytes: 20 * GB, promisedBytes: 4 * GB, growableBytes: 3 * GB };

  test('a disk larger than the host has room for is 507 with a sentence, at submit, mags new and resize; normal sizes pass', async () => {
    const t = await startTestServer({ agent: { storage } });
    try {
      const c = client(t);
      const tooBig = errorBody(
        await c.call('POST', '/api/v1/mags-jobs', { script: 'echo', disk_gb: 13 }),
        507,
        'insufficient_storage',
      );
      assert.match(tooBig.error, /^a 13 GB disk does not fit: this server has 12 GB free for workspaces/);
      assert.equal(
        (await c.done(await c.submit({ script: 'echo', disk_gb: 12 }))).status,
        'completed',
        'what fits runs',
      );

      const created = errorBody(
        await c.call('POST', '/api/v1/mags-workspaces', { name: 'huge', disk_gb: 500 }),
        507,
        'insufficient_storage',
      );
      assert.match(created.error, /a 500 GB disk does not fit: this server has 12 GB free/);
      errorBody(
        await c.call('POST', '/api/v1/mags-jobs', { script: 'echo', workspace_id: 'huge', disk_gb: 500 }),
        507,
        'insufficient_storage',
      );
      errorBody(await c.call('GET', '/api/v1/mags-workspaces/huge'), 404, 'not_found');
      assert.equal(
        t.agent!.starts.some((s) => s.diskGb === 500 || s.diskGb === 13),
        false,
        'nothing refused reached the agent',
      );

      assert.equal((await c.call('POST', '/api/v1/mags-workspaces', { name: 'fits', disk_gb: 2 })).statusCode, 201);
      const grow = errorBody(
        await c.call('POST', '/api/v1/mags-workspaces/fits/resize', { disk_gb: 20 }),
        507,
        'insufficient_storage',
      );
      assert.match(grow.error, /growing workspace fits's disk by 18 GB does not fit: this server has 12 GB free/);
      assert.equal((await c.workspace('fits')).disk_gb, 2, 'a refused resize changes nothing');
      const grown = await c.call('POST', '/api/v1/mags-workspaces/fits/resize', { disk_gb: 14 });
      assert.equal(grown.statusCode, 200, 'growth of 12 GB fits');

      // The host filled up meanwhile: what fitted before no longer does.
      t.agent!.reportStorage({ ...storage, freeBytes: 6 * GB });
      await waitFor(
        async () => (await c.call('POST', '/api/v1/mags-jobs', { script: 'echo', disk_gb: 1 })).statusCode === 507,
        'the new figures',
      );
      const full = errorBody(
        await c.call('POST', '/api/v1/mags-jobs', { script: 'echo' }),
        507,
        'insufficient_storage',
      );
      assert.match(full.error, /a 2 GB disk does not fit: this server has 0 GB free/);
      // An existing workspace's disk was admitted when it was made: its runs go on.
      assert.equal((await c.done(await c.submit({ script: 'echo', workspace_id: 'fits' }))).status, 'completed');
    } finally {
      await t.close();
    }
  });

  test("a user's workspace disks together are limited (--max-disk-gb-per-user): over it is 422 naming the total and the limit", async () => {
    const t = await startTestServer({ config: { maxDiskGbPerUser: 10 } });
    try {
      const c = client(t);
      assert.equal((await c.call('POST', '/api/v1/mags-workspaces', { name: 'one', disk_gb: 6 })).statusCode, 201);
      const second = errorBody(
        await c.call('POST', '/api/v1/mags-workspaces', { name: 'two', disk_gb: 5 }),
        422,
        'disk_quota_exceeded',
      );
      assert.match(
        second.error,
        /would bring your workspaces' disks to 11 GB in total, over this server's limit of 10 GB per user/,
      );
      errorBody(
        await c.call('POST', '/api/v1/mags-jobs', { script: 'echo', workspace_id: 'two', disk_gb: 5 }),
        422,
        'disk_quota_exceeded',
      );
      errorBody(
        await c.call('POST', '/api/v1/mags-workspaces/one/resize', { disk_gb: 11 }),
        422,
        'disk_quota_exceeded',
      );
      assert.equal(
        (await c.call('POST', '/api/v1/mags-workspaces/one/resize', { disk_gb: 8 })).statusCode,
        200,
        'up to the limit is fine',
      );
      assert.equal(
        (await c.done(await c.submit({ script: 'echo', workspace_id: 'two', disk_gb: 2 }))).status,
        'completed',
      );
      // Ephemeral disks are not workspaces, and another user's workspaces are their own.
      assert.equal((await c.done(await c.submit({ script: 'echo', disk_gb: 9 }))).status, 'completed');
      const other = await t.server.store.users.create('other');
      const o = client(t, { authorization: `Bearer ${await t.server.auth.createToken(other.id, 'test')}` });
      assert.equal((await o.call('POST', '/api/v1/mags-workspaces', { name: 'one', disk_gb: 10 })).statusCode, 201);
      await c.call('DELETE', '/api/v1/mags-workspaces/one');
      assert.equal(
        (await c.call('POST', '/api/v1/mags-workspaces', { name: 'three', disk_gb: 8 })).statusCode,
        201,
        'a deleted workspace frees its share',
      );
    } finally {
      await t.close();
    }
  });

  test('with several agents, a disk goes to one with room for it; the refusal names the roomiest host', async () => {
    const t = await startTestServer({ agent: false });
    try {
      const c = client(t);
      const small = connect(t, { id: 'small', capacity: 4, storage: { ...storage, freeBytes: 9 * GB } });
      const roomy = connect(t, { id: 'roomy', capacity: 1, storage: { ...storage, freeBytes: 58 * GB } });
      await agentsOnline(t, 2);
      const job = await c.submit({ script: 'echo', disk_gb: 30 });
      assert.equal((await c.done(job)).status, 'completed');
      assert.ok(
        roomy.starts.some((s) => s.jobId === job),
        'the 30 GB disk went to the agent with room, not the one with more slots',
      );
      assert.ok(!small.starts.some((s) => s.jobId === job));
      const refused = errorBody(
        await c.call('POST', '/api/v1/mags-jobs', { script: 'echo', disk_gb: 51 }),
        507,
        'insufficient_storage',
      );
      assert.match(refused.error, /the roomiest host of this server has 50 GB free/);
    } finally {
      await t.close();
    }
  });

  test('malformed storage figures from an agent are dropped, not trusted', async () => {
    const t = await startTestServer();
    try {
      const c = client(t);
      t.agent!.sendUnchecked({
        type: 'pool',
        pool: t.agent!.info.pool,
        storage: { totalBytes: -1, freeBytes: 0, promisedBytes: 0, growableBytes: 0 },
      });
      await waitFor(() => t.logs.some((r) => /malformed/.test(r.msg)), 'the warning');
      assert.equal((await c.done(await c.submit({ script: 'echo', disk_gb: 100 }))).status, 'completed');
    } finally {
      await t.close();
    }
  });
});
