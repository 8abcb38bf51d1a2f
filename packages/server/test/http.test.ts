// The REST API as a client sees it (through app.inject), with a fake agent peer on the real agent protocol:
// the wire format field by field, auth, and every kind of bad input answered with 4xx { error, code }.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { JobStatus, LogEntry } from '@mags/api';
import type { TestServer } from './helpers.js';
import { errorBody, startTestServer } from './helpers.js';

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;
const ISO = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/;
const JOB_STATUS_KEYS = [
  'completed_at',
  'created_at',
  'error_message',
  'exit_code',
  'long_lived',
  'name',
  'no_sleep',
  'request_id',
  'script',
  'script_duration_ms',
  'started_at',
  'status',
  'subdomain',
  'url',
  'vm_id',
  'workspace_id',
];

describe('REST API', () => {
  let t: TestServer;
  before(async () => {
    t = await startTestServer();
  });
  after(async () => {
    const errors = t?.errors() ?? [];
    await t?.close();
    assert.deepEqual(errors, [], 'no request failed inside the server (a 500 is a bug)');
  });

  const inject = (
    method: 'GET' | 'POST' | 'PUT' | 'DELETE',
    url: string,
    payload?: unknown,
    headers: Record<string, string> = t.auth,
  ) => t.server.app.inject({ method, url, headers, ...(payload === undefined ? {} : { payload: payload as string }) });

  async function submit(body: Record<string, unknown>): Promise<string> {
    const res = await inject('POST', '/api/v1/mags-jobs', body);
    assert.equal(res.statusCode, 202, res.body);
    return res.json().request_id;
  }
  async function waitDone(ref: string): Promise<JobStatus> {
    for (;;) {
      const res = await inject('GET', `/api/v1/mags-jobs/${encodeURIComponent(ref)}/status?wait=30`);
      assert.equal(res.statusCode, 200, res.body);
      const job = res.json() as JobStatus;
      if (!['accepted', 'running'].includes(job.status)) return job;
    }
  }

  test('health answers without a token', async () => {
    const res = await inject('GET', '/api/v1/health', undefined, {});
    assert.equal(res.statusCode, 200);
    assert.deepEqual(res.json(), { ok: true, version: '0.1.0' });
  });

  test('the OpenAPI document is served without a token and covers every route', async () => {
    const res = await inject('GET', '/api/v1/openapi.json', undefined, {});
    assert.equal(res.statusCode, 200);
    assert.match(String(res.headers['content-type']), /application\/json/);
    const doc = res.json();
    assert.match(doc.openapi, /^3\./);
    const routes = t.server.app.printRoutes({ commonPrefix: false });
    for (const [path, method] of [
      ['/api/v1/health', 'get'],
      ['/api/v1/openapi.json', 'get'],
      ['/api/v1/status', 'get'],
      ['/api/v1/mags-jobs', 'post'],
      ['/api/v1/mags-jobs', 'get'],
      ['/api/v1/mags-jobs/pool-status', 'get'],
      ['/api/v1/mags-jobs/{id}/status', 'get'],
      ['/api/v1/mags-jobs/{id}/logs', 'get'],
      ['/api/v1/mags-jobs/{id}/stop', 'post'],
    ]) {
      assert.ok(doc.paths[path]?.[method], `${method.toUpperCase()} ${path} is documented`);
    }
    assert.ok(routes.includes('mags-jobs'));
    assert.equal(doc.components.securitySchemes.bearer.scheme, 'bearer');
    assert.ok(doc.components.schemas.JobStatus, 'JobStatus is a named component');
    assert.deepEqual(doc.paths['/api/v1/health'].get.security, []);
    assert.ok(doc.paths['/api/v1/mags-jobs'].post.responses['202']);
    assert.ok(doc.paths['/api/v1/mags-jobs'].post.responses['422']);
  });

  test('status reports the server, its agents with their runtime, and the caller', async () => {
    const res = await inject('GET', '/api/v1/status');
    assert.equal(res.statusCode, 200);
    const body = res.json();
    assert.equal(body.server.version, '0.1.0');
    assert.equal(body.server.mode, 'embedded');
    assert.equal(body.server.store, 'sqlite');
    assert.match(body.server.started_at, ISO);
    assert.equal(body.agents.length, 1);
    const [agent] = body.agents;
    assert.deepEqual(
      { ...agent, last_seen_at: undefined },
      {
        id: 'agent-1',
        name: 'fake',
        runtime: 'fake-runtime 1.0',
        version: '0.1.0',
        status: 'online',
        running: 0,
        capacity: 4,
        last_seen_at: undefined,
      },
    );
    assert.match(agent.last_seen_at, ISO);
    assert.equal(body.user.name, 'owner');
    assert.equal(typeof body.user.id, 'string');
  });

  test('submit answers 202 with the request id, and the job runs to completed with every status field', async () => {
    const res = await inject('POST', '/api/v1/mags-jobs', { script: 'echo Hello World', name: 'hello' });
    assert.equal(res.statusCode, 202);
    const accepted = res.json();
    assert.deepEqual(Object.keys(accepted).sort(), ['message', 'request_id', 'status']);
    assert.match(accepted.request_id, UUID);
    assert.equal(accepted.status, 'accepted');
    assert.equal(typeof accepted.message, 'string');

    const job = await waitDone(accepted.request_id);
    assert.deepEqual(Object.keys(job).sort(), JOB_STATUS_KEYS);
    assert.equal(job.request_id, accepted.request_id);
    assert.equal(job.name, 'hello');
    assert.equal(job.status, 'completed');
    assert.equal(job.exit_code, 0);
    assert.equal(job.error_message, null);
    assert.equal(job.workspace_id, null);
    assert.equal(job.subdomain, null);
    assert.equal(job.url, null);
    assert.equal(job.script, 'echo Hello World');
    assert.equal(job.vm_id, `sbx-${accepted.request_id.slice(0, 8)}`);
    assert.match(job.created_at, ISO);
    assert.match(String(job.started_at), ISO);
    assert.match(String(job.completed_at), ISO);
    assert.ok(Number.isInteger(job.script_duration_ms) && (job.script_duration_ms as number) >= 0);
    assert.equal(job.script_duration_ms, Date.parse(String(job.completed_at)) - Date.parse(String(job.started_at)));

    const logs = await inject('GET', `/api/v1/mags-jobs/${accepted.request_id}/logs`);
    assert.equal(logs.statusCode, 200);
    const entries = logs.json().logs as LogEntry[];
    assert.equal(entries.length, 1);
    assert.deepEqual(Object.keys(entries[0]).sort(), ['level', 'message', 'seq', 'stream', 'timestamp']);
    assert.deepEqual(
      { ...entries[0], timestamp: 'x' },
      { seq: 1, timestamp: 'x', level: 'info', stream: 'stdout', message: 'Hello World' },
    );
    assert.match(entries[0].timestamp, ISO);
  });

  test('the agent receives the defaults: 1 vcpu, 1024 MB, 3600 s, internet, 2 GB, no environment', async () => {
    const id = await submit({ script: 'echo defaults' });
    await waitDone(id);
    const start = t.agent!.starts.find((s) => s.jobId === id);
    assert.deepEqual(start, {
      jobId: id,
      script: 'echo defaults',
      environment: {},
      vcpus: 1,
      memoryMb: 1024,
      timeoutS: 3600,
      network: 'internet',
      diskGb: 2,
      uploads: [],
    });
  });

  test('limits, network and environment given by the client reach the agent', async () => {
    const id = await submit({
      script: 'echo custom',
      type: 'inline',
      ephemeral: true,
      vcpus: 0.5,
      memory_mb: 256,
      timeout_s: 30,
      network: 'none',
      disk_gb: 4,
      environment: { GREETING: 'hi there', _X1: '' },
      persistent: false,
      file_ids: [],
    });
    await waitDone(id);
    const start = t.agent!.starts.find((s) => s.jobId === id);
    assert.deepEqual(
      { ...start, jobId: undefined, script: undefined },
      {
        jobId: undefined,
        script: undefined,
        environment: { GREETING: 'hi there', _X1: '' },
        vcpus: 0.5,
        memoryMb: 256,
        timeoutS: 30,
        network: 'none',
        diskGb: 4,
        uploads: [],
      },
    );
  });

  test('logs come in order with levels by stream; ?after and ?limit select lines', async () => {
    const id = await submit({ script: 'echo one\nerr two\necho three\nlines 3' });
    await waitDone(id);
    const all = (await inject('GET', `/api/v1/mags-jobs/${id}/logs`)).json().logs as LogEntry[];
    assert.deepEqual(
      all.map((l) => [l.seq, l.level, l.stream, l.message]),
      [
        [1, 'info', 'stdout', 'one'],
        [2, 'error', 'stderr', 'two'],
        [3, 'info', 'stdout', 'three'],
        [4, 'info', 'stdout', 'line 1'],
        [5, 'info', 'stdout', 'line 2'],
        [6, 'info', 'stdout', 'line 3'],
      ],
    );
    const later = (await inject('GET', `/api/v1/mags-jobs/${id}/logs?after=4`)).json().logs as LogEntry[];
    assert.deepEqual(
      later.map((l) => l.seq),
      [5, 6],
    );
    const limited = (await inject('GET', `/api/v1/mags-jobs/${id}/logs?after=1&limit=2`)).json().logs as LogEntry[];
    assert.deepEqual(
      limited.map((l) => l.seq),
      [2, 3],
    );
    const none = (await inject('GET', `/api/v1/mags-jobs/${id}/logs?after=6`)).json();
    assert.deepEqual(none, { logs: [] });
  });

  test('a non-zero exit is failed with its code; a timeout is failed with a sentence; a sandbox failure is error', async () => {
    const failed = await waitDone(await submit({ script: 'echo x\nexit 3' }));
    assert.equal(failed.status, 'failed');
    assert.equal(failed.exit_code, 3);
    assert.equal(failed.error_message, null);

    const timedOut = await waitDone(await submit({ script: 'timeout', timeout_s: 5 }));
    assert.equal(timedOut.status, 'failed');
    assert.equal(timedOut.exit_code, 137);
    assert.equal(timedOut.error_message, 'the script ran longer than its 5 s timeout and was killed');

    const crashed = await waitDone(await submit({ script: 'crash cannot mount the root image' }));
    assert.equal(crashed.status, 'error');
    assert.equal(crashed.error_message, 'cannot mount the root image');
    assert.equal(crashed.started_at, null);
    assert.equal(crashed.script_duration_ms, null);
  });

  test('a job is found by its name (the newest with that name) for status and logs', async () => {
    const first = await submit({ script: 'echo first', name: 'named-job' });
    await waitDone(first);
    const second = await submit({ script: 'echo second', name: 'named-job' });
    await waitDone(second);
    const byName = await waitDone('named-job');
    assert.equal(byName.request_id, second);
    const logs = (await inject('GET', '/api/v1/mags-jobs/named-job/logs')).json().logs as LogEntry[];
    assert.deepEqual(
      logs.map((l) => l.message),
      ['second'],
    );
    const byUpperId = await inject('GET', `/api/v1/mags-jobs/${first.toUpperCase()}/status`);
    assert.equal(byUpperId.json().request_id, first);
  });

  test('?wait answers with the running job when the wait passes first', async () => {
    const id = await submit({ script: 'hang' });
    await t.agent!.until(() => t.agent!.running.has(id));
    const res = await inject('GET', `/api/v1/mags-jobs/${id}/status?wait=0.05`);
    assert.equal(res.statusCode, 200);
    assert.equal(res.json().status, 'running');
    const stop = await inject('POST', `/api/v1/mags-jobs/${id}/stop`);
    assert.equal(stop.statusCode, 200);
  });

  test('?wait answers as soon as the job ends', async () => {
    const id = await submit({ script: 'manual' });
    await t.agent!.until(() => t.agent!.running.has(id));
    const pending = inject('GET', `/api/v1/mags-jobs/${id}/status?wait=60`);
    await new Promise((r) => setImmediate(r));
    t.agent!.exit(id, 0);
    const res = await pending;
    assert.equal(res.json().status, 'completed');
  });

  test('stop ends a running job as stopped (the agent is told), and a second stop is 409', async () => {
    const id = await submit({ script: 'echo started\nhang' });
    await t.agent!.until(() => t.agent!.running.has(id));
    const res = await inject('POST', `/api/v1/mags-jobs/${id}/stop`);
    assert.equal(res.statusCode, 200);
    assert.deepEqual(res.json(), { success: true, request_id: id, status: 'stopped' });
    assert.ok(t.agent!.stops.includes(id));
    const job = await waitDone(id);
    assert.equal(job.status, 'stopped');
    assert.equal(job.exit_code, 143);

    const again = await inject('POST', `/api/v1/mags-jobs/${id}/stop`);
    const body = errorBody(again, 409, 'conflict');
    assert.match(body.error, /already finished/);
  });

  test('stopping a completed job is 409 conflict', async () => {
    const id = await submit({ script: 'echo done' });
    await waitDone(id);
    const res = await inject('POST', `/api/v1/mags-jobs/${id}/stop`, undefined, {
      ...t.auth,
      'content-type': 'application/json',
    });
    errorBody(res, 409, 'conflict');
  });

  test("the list is newest first, paged, with the total, and only the caller's jobs", async () => {
    const all = (await inject('GET', '/api/v1/mags-jobs?page=1&page_size=100')).json();
    assert.deepEqual(Object.keys(all).sort(), ['jobs', 'page', 'page_size', 'total']);
    assert.equal(all.page, 1);
    assert.equal(all.page_size, 100);
    assert.equal(all.total, all.jobs.length);
    assert.ok(all.total >= 10);
    const created = all.jobs.map((j: JobStatus) => j.created_at);
    assert.deepEqual(created, [...created].sort().reverse(), 'newest first');
    assert.deepEqual(Object.keys(all.jobs[0]).sort(), JOB_STATUS_KEYS);

    const p1 = (await inject('GET', '/api/v1/mags-jobs?page=1&page_size=3')).json();
    const p2 = (await inject('GET', '/api/v1/mags-jobs?page=2&page_size=3')).json();
    assert.equal(p1.jobs.length, 3);
    assert.equal(p1.total, all.total);
    assert.deepEqual(
      [...p1.jobs, ...p2.jobs].map((j: JobStatus) => j.request_id),
      all.jobs.slice(0, 6).map((j: JobStatus) => j.request_id),
    );
    const beyond = (await inject('GET', '/api/v1/mags-jobs?page=1000')).json();
    assert.deepEqual(beyond.jobs, []);
    const defaults = (await inject('GET', '/api/v1/mags-jobs')).json();
    assert.equal(defaults.page, 1);
    assert.equal(defaults.page_size, 20);
  });

  test('pool status sums the pools the agents report', async () => {
    const res = await inject('GET', '/api/v1/mags-jobs/pool-status');
    assert.equal(res.statusCode, 200);
    assert.deepEqual(res.json(), {
      idle_vms: 2,
      busy_vms: 0,
      sleeping_vms: 0,
      total_vms: 2,
      min_pool_size: 2,
      max_pool_size: 8,
    });
    t.agent!.send({ type: 'pool', pool: { idle: 1, busy: 3, sleeping: 2, min: 2, max: 8 } });
    await new Promise((r) => setTimeout(r, 10));
    const after = (await inject('GET', '/api/v1/mags-jobs/pool-status')).json();
    assert.deepEqual(after, {
      idle_vms: 1,
      busy_vms: 3,
      sleeping_vms: 2,
      total_vms: 4,
      min_pool_size: 2,
      max_pool_size: 8,
    });
    t.agent!.send({ type: 'pool', pool: { idle: 2, busy: 0, sleeping: 0, min: 2, max: 8 } });
  });

  test('following the logs of a finished job sends every line, then the end event (SSE)', async () => {
    const id = await submit({ script: 'echo a\nerr b\necho c' });
    await waitDone(id);
    const res = await inject('GET', `/api/v1/mags-jobs/${id}/logs?follow=true`);
    assert.equal(res.statusCode, 200);
    assert.match(String(res.headers['content-type']), /^text\/event-stream/);
    const events = parseSse(res.body);
    assert.deepEqual(
      events.map((e) => e.event),
      ['log', 'log', 'log', 'end'],
    );
    assert.deepEqual(
      events.slice(0, 3).map((e) => [e.id, JSON.parse(e.data).message]),
      [
        ['1', 'a'],
        ['2', 'b'],
        ['3', 'c'],
      ],
    );
    const end = JSON.parse(events[3].data) as JobStatus;
    assert.equal(end.status, 'completed');
    assert.equal(end.request_id, id);

    const viaAccept = await inject('GET', `/api/v1/mags-jobs/${id}/logs?after=2`, undefined, {
      ...t.auth,
      accept: 'text/event-stream',
    });
    assert.deepEqual(
      parseSse(viaAccept.body).map((e) => e.event + (e.id ?? '')),
      ['log3', 'end'],
    );
    const resumed = await inject('GET', `/api/v1/mags-jobs/${id}/logs?follow=true`, undefined, {
      ...t.auth,
      'last-event-id': '1',
    });
    assert.deepEqual(
      parseSse(resumed.body).map((e) => e.event + (e.id ?? '')),
      ['log2', 'log3', 'end'],
    );
  });

  describe('authentication', () => {
    const routes: Array<['GET' | 'POST', string]> = [
      ['GET', '/api/v1/status'],
      ['POST', '/api/v1/mags-jobs'],
      ['GET', '/api/v1/mags-jobs'],
      ['GET', '/api/v1/mags-jobs/pool-status'],
      ['GET', '/api/v1/mags-jobs/x/status'],
      ['GET', '/api/v1/mags-jobs/x/logs'],
      ['POST', '/api/v1/mags-jobs/x/stop'],
    ];
    const cases: Array<[string, Record<string, string>]> = [
      ['no Authorization header', {}],
      ['an empty header', { authorization: '' }],
      ['the wrong scheme', { authorization: `Basic ${Buffer.from('a:b').toString('base64')}` }],
      ['a well-formed unknown token', { authorization: `Bearer mags_${'x'.repeat(43)}` }],
      ['a malformed token', { authorization: 'Bearer not-a-token' }],
      ['a bearer without a token', { authorization: 'Bearer' }],
    ];
    for (const [what, headers] of cases) {
      test(`${what} is 401 unauthorized on every protected route`, async () => {
        for (const [method, url] of routes) {
          const res = await inject(method, url, method === 'POST' ? { script: 'echo x' } : undefined, headers);
          errorBody(res, 401, 'unauthorized');
        }
      });
    }

    test('the scheme is case-insensitive', async () => {
      const res = await inject('GET', '/api/v1/status', undefined, { authorization: `bearer ${t.token}` });
      assert.equal(res.statusCode, 200);
    });
  });

  describe("another user's jobs", () => {
    let otherAuth: Record<string, string>;
    let mine: string;
    before(async () => {
      const other = await t.server.store.users.create('mallory');
      otherAuth = { authorization: `Bearer ${await t.server.auth.createToken(other.id, 'test')}` };
      mine = await submit({ script: 'echo private', name: 'private-job' });
      await waitDone(mine);
    });

    test('are 404 not_found by id and by name, for status, logs and stop', async () => {
      for (const ref of [mine, 'private-job']) {
        for (const [method, url] of [
          ['GET', `/api/v1/mags-jobs/${ref}/status`],
          ['GET', `/api/v1/mags-jobs/${ref}/logs`],
          ['GET', `/api/v1/mags-jobs/${ref}/logs?follow=true`],
          ['POST', `/api/v1/mags-jobs/${ref}/stop`],
        ] as const) {
          const body = errorBody(await inject(method, url, undefined, otherAuth), 404, 'not_found');
          assert.equal(body.error, `job "${ref}" not found`);
        }
      }
    });

    test('are not listed, and status names the caller', async () => {
      const list = (await inject('GET', '/api/v1/mags-jobs?page_size=100', undefined, otherAuth)).json();
      assert.deepEqual(list, { jobs: [], page: 1, page_size: 100, total: 0 });
      const status = (await inject('GET', '/api/v1/status', undefined, otherAuth)).json();
      assert.equal(status.user.name, 'mallory');
    });
  });

  describe('bad input is a 4xx with a sentence, never a 500', () => {
    const bad: Array<[string, unknown, number, string, RegExp?]> = [
      ['script missing', {}, 400, 'invalid_request', /^script: /],
      ['script not a string', { script: 42 }, 400, 'invalid_request', /^script: must be a string/],
      ['script empty', { script: '' }, 400, 'invalid_request', /^script: must be a non-empty string/],
      ['script null', { script: null }, 400, 'invalid_request', /^script: /],
      ['script with a NUL', { script: 'echo \u0000' }, 400, 'invalid_request', /^script: /],
      [
        'script over 256 KiB',
        { script: 'x'.repeat(256 * 1024 + 1) },
        400,
        'invalid_request',
        /^script: must be at most/,
      ],
      ['negative timeout_s', { script: 'x', timeout_s: -1 }, 400, 'invalid_request', /^timeout_s: must be at least 1/],
      [
        'fractional timeout_s',
        { script: 'x', timeout_s: 1.5 },
        400,
        'invalid_request',
        /^timeout_s: must be an integer/,
      ],
      ['timeout_s as a string', { script: 'x', timeout_s: '10' }, 400, 'invalid_request', /^timeout_s: /],
      ['an unknown field', { script: 'x', colour: 'blue' }, 400, 'invalid_request', /^colour: is not a known field/],
      [
        'environment with a non-string value',
        { script: 'x', environment: { A: 1 } },
        400,
        'invalid_request',
        /^environment\.A: must be a string/,
      ],
      ['environment not an object', { script: 'x', environment: ['A=1'] }, 400, 'invalid_request', /^environment: /],
      [
        'environment with a bad name',
        { script: 'x', environment: { '1A': 'x' } },
        400,
        'invalid_request',
        /^environment: /,
      ],
      [
        'an unknown network',
        { script: 'x', network: 'intranet' },
        400,
        'invalid_request',
        /^network: must be one of "internet", "none"/,
      ],
      ['an unknown type', { script: 'x', type: 'file' }, 400, 'invalid_request', /^type: /],
      ['a bad name', { script: 'x', name: '../etc' }, 400, 'invalid_request', /^name: /],
      ['memory below the minimum', { script: 'x', memory_mb: 1 }, 400, 'invalid_request', /^memory_mb: /],
      ['a body that is an array', [], 400, 'invalid_request', /JSON object/],
      ['a body that is a string', 'echo hi', 400, 'invalid_request'],
      [
        'no_sleep without persistent',
        { script: 'x', no_sleep: true },
        400,
        'invalid_request',
        /--no-sleep requires -p/,
      ],
      ['url without persistent', { script: 'x', url: true }, 400, 'invalid_request', /--url requires -p/],
      ['port without url', { script: 'x', port: 8080 }, 400, 'invalid_request', /--port goes with --url/],
      ['ephemeral with persistent', { script: 'x', ephemeral: true, persistent: true }, 400, 'invalid_request'],
      ['persistent without workspace_id', { script: 'x', persistent: true }, 400, 'invalid_request', /-p goes with -w/],
      [
        'no_sleep with persistent but no workspace',
        { script: 'x', persistent: true, no_sleep: true },
        400,
        'invalid_request',
        /-p goes with -w/,
      ],
      [
        'ephemeral with workspace_id',
        { script: 'x', ephemeral: true, workspace_id: 'w' },
        400,
        'invalid_request',
        /-e cannot be combined with -w/,
      ],
      ['a bad workspace name', { script: 'x', workspace_id: '../w' }, 400, 'invalid_request', /^workspace_id: /],
      [
        'url with network none',
        { script: 'x', workspace_id: 'url', persistent: true, url: true, network: 'none' },
        400,
        'invalid_request',
        /network none/,
      ],
      [
        'an unknown base',
        { script: 'x', base_workspace_id: 'no-such-base' },
        404,
        'not_found',
        /base workspace "no-such-base" not found/,
      ],
      ['an unknown file', { script: 'x', file_ids: ['f1'] }, 404, 'not_found', /file "f1" not found/],
      [
        'startup_command without a workspace',
        { script: 'x', startup_command: 'npm start' },
        400,
        'invalid_request',
        /startup_command requires workspace_id/,
      ],
      [
        'an empty startup_command',
        { script: 'x', workspace_id: 'w', startup_command: '  ' },
        400,
        'invalid_request',
        /startup_command: must not be empty/,
      ],
    ];
    for (const [what, body, status, code, message] of bad) {
      test(`submit with ${what} → ${status} ${code}`, async () => {
        const res = await inject('POST', '/api/v1/mags-jobs', typeof body === 'string' ? JSON.stringify(body) : body, {
          ...t.auth,
          'content-type': 'application/json',
        });
        const err = errorBody(res, status, code);
        if (message) assert.match(err.error, message);
      });
    }

    const raw: Array<[string, string | Buffer, Record<string, string>, number, string]> = [
      ['malformed JSON', '{"script": "echo', { 'content-type': 'application/json' }, 400, 'invalid_request'],
      [
        'a 2 MiB body',
        JSON.stringify({ script: 'x'.repeat(2 * 1024 * 1024) }),
        { 'content-type': 'application/json' },
        413,
        'payload_too_large',
      ],
      [
        'a form body',
        'script=echo',
        { 'content-type': 'application/x-www-form-urlencoded' },
        415,
        'unsupported_media_type',
      ],
      [
        'a prototype-poisoning body',
        '{"script":"x","__proto__":{"admin":true}}',
        { 'content-type': 'application/json' },
        400,
        'invalid_request',
      ],
      ['an empty body', '', { 'content-type': 'application/json' }, 400, 'invalid_request'],
      [
        'invalid UTF-8',
        Buffer.from([0x7b, 0x22, 0x73, 0xff, 0xfe, 0x22, 0x7d]),
        { 'content-type': 'application/json' },
        400,
        'invalid_request',
      ],
    ];
    for (const [what, payload, headers, status, code] of raw) {
      test(`submit with ${what} → ${status} ${code}`, async () => {
        const res = await t.server.app.inject({
          method: 'POST',
          url: '/api/v1/mags-jobs',
          payload,
          headers: { ...t.auth, ...headers },
        });
        errorBody(res, status, code);
      });
    }

    const queries: Array<[string, number, string]> = [
      ['/api/v1/mags-jobs?page=0', 400, 'invalid_request'],
      ['/api/v1/mags-jobs?page=-1', 400, 'invalid_request'],
      ['/api/v1/mags-jobs?page=abc', 400, 'invalid_request'],
      ['/api/v1/mags-jobs?page_size=1000', 400, 'invalid_request'],
      ['/api/v1/mags-jobs?page_size=0', 400, 'invalid_request'],
      ['/api/v1/mags-jobs?page=1.5', 400, 'invalid_request'],
      ['/api/v1/mags-jobs/x/status?wait=61', 400, 'invalid_request'],
      ['/api/v1/mags-jobs/x/status?wait=-1', 400, 'invalid_request'],
      ['/api/v1/mags-jobs/x/status?wait=soon', 400, 'invalid_request'],
      ['/api/v1/mags-jobs/x/logs?after=-1', 400, 'invalid_request'],
      ['/api/v1/mags-jobs/x/logs?limit=0', 400, 'invalid_request'],
      ['/api/v1/mags-jobs/x/logs?limit=50001', 400, 'invalid_request'],
      ['/api/v1/mags-jobs/x/logs?follow=maybe', 400, 'invalid_request'],
      ['/api/v1/mags-jobs/no-such-job/status', 404, 'not_found'],
      ['/api/v1/mags-jobs/no-such-job/logs', 404, 'not_found'],
      ['/api/v1/mags-jobs/00000000-0000-7000-8000-000000000000/status', 404, 'not_found'],
      [`/api/v1/mags-jobs/${'x'.repeat(300)}/status`, 400, 'invalid_request'],
      ['/api/v1/no-such-route', 404, 'not_found'],
      ['/api/v2/mags-jobs', 404, 'not_found'],
    ];
    for (const [url, status, code] of queries) {
      test(`GET ${url.slice(0, 70)} → ${status} ${code}`, async () => {
        const res = await inject('GET', url);
        const body = errorBody(res, status, code);
        if (url.includes('page=0')) assert.match(body.error, /^page: /);
        if (url.includes('page_size=1000')) assert.match(body.error, /^page_size: must be at most 100/);
        if (url.endsWith('no-such-job/status')) assert.equal(body.error, 'job "no-such-job" not found');
      });
    }

    test('stopping an unknown job is 404, and unknown methods are 404 JSON', async () => {
      errorBody(await inject('POST', '/api/v1/mags-jobs/nope/stop'), 404, 'not_found');
      errorBody(await inject('DELETE', '/api/v1/mags-jobs'), 404, 'not_found');
      errorBody(await inject('PUT', '/api/v1/health', {}), 404, 'not_found');
    });

    test('a barrage of odd inputs never produces a 500', async () => {
      const bodies: unknown[] = [
        null,
        0,
        true,
        'x',
        [],
        [1, 2],
        {},
        { script: {} },
        { script: [] },
        { script: 'x', environment: null },
        { script: 'x', environment: { A: { B: 'c' } } },
        { script: 'x', file_ids: 'f' },
        { script: 'x', file_ids: [1] },
        { script: 'x', vcpus: 1e308 },
        { script: 'x', vcpus: -0 },
        { script: 'x', memory_mb: 2 ** 53 },
        { script: 'x', port: 0 },
        { script: 'x', disk_gb: 0 },
        { script: '\ud800' },
        { script: 'x', name: '' },
        { script: 'x', name: 'a'.repeat(64) },
        { script: 'x', constructor: { prototype: {} } },
        JSON.parse(`{"script":"x","a":${'['.repeat(2000)}${']'.repeat(2000)}}`),
      ];
      for (const body of bodies) {
        const res = await inject('POST', '/api/v1/mags-jobs', JSON.stringify(body), {
          ...t.auth,
          'content-type': 'application/json',
        });
        assert.ok(
          res.statusCode >= 400 && res.statusCode < 500,
          `${JSON.stringify(body).slice(0, 60)} → ${res.statusCode} ${res.body.slice(0, 200)}`,
        );
        errorBody(res, res.statusCode, res.json().code);
      }
      const urls = [
        '/api/v1/mags-jobs/%00/status',
        '/api/v1/mags-jobs/%E0%A4%A/status',
        '/api/v1/mags-jobs/..%2F..%2Fetc/logs',
        '/api/v1/mags-jobs?page=1e3',
        '/api/v1/mags-jobs?page=99999999999999999999',
        '/api/v1/mags-jobs?page=1&page=2',
        '/api/v1/mags-jobs/x/logs?after=1e400',
        '/api/v1/mags-jobs/x/status?wait=NaN',
        "/api/v1/mags-jobs/' OR 1=1 --/status",
        '/api/v1/mags-jobs/%F0%9F%92%A9/logs?follow=true',
      ];
      for (const url of urls) {
        const res = await inject('GET', url);
        assert.ok(
          res.statusCode >= 400 && res.statusCode < 500,
          `${url} → ${res.statusCode} ${res.body.slice(0, 200)}`,
        );
        errorBody(res, res.statusCode, res.json().code);
      }
      // Unknown query parameters are ignored, as clients add their own (cache busters, tracing).
      assert.equal((await inject('GET', '/api/v1/mags-jobs?page[]=1&_=123')).statusCode, 200);
    });
  });
});

export function parseSse(text: string): Array<{ event?: string; id?: string; data: string }> {
  const out: Array<{ event?: string; id?: string; data: string }> = [];
  for (const block of text.split('\n\n')) {
    if (!block.trim() || block.startsWith(':')) continue;
    const e: { event?: string; id?: string; data: string } = { data: '' };
    for (const line of block.split('\n')) {
      const i = line.indexOf(':');
      if (i <= 0) continue;
      const field = line.slice(0, i);
      const value = line.slice(i + 1).replace(/^ /, '');
      if (field === 'event') e.event = value;
      else if (field === 'id') e.id = value;
      else if (field === 'data') e.data += value;
    }
    out.push(e);
  }
  return out;
}
