// Every route of the OpenAPI document, attacked by a second user: on the first user's resources, by id and by name,
// it answers 404 (or 403 for owner-only routes), lists never show them, and creating the same names changes nothing
// the first user sees. The table below must name every route: a route added later fails this test until it is
// classified here.
import assert from 'node:assert/strict';
import net from 'node:net';
import { after, before, describe, test } from 'node:test';
import { ed25519Pair } from '../src/ssh/keys.js';
import type { TestServer } from './helpers.js';
import { startTestServer, waitFor } from './helpers.js';

type Method = 'GET' | 'POST' | 'PUT' | 'PATCH' | 'DELETE';

/**
 * How each route is attacked:
 * - `owned`: its path parameter names a resource; Bob asks for each of Alice's (by id and by name): 404 or 403.
 * - `list`: Bob's answer holds none of Alice's ids or names.
 * - `create`: Bob creates the same names as Alice; afterwards Alice sees exactly what she saw before.
 * - `owner`: only the server's owner may call it: 403 for Bob.
 * - `self`: about the caller alone (Bob's answer is Bob's).
 * - `public`: no user and no resource (health, the document, sign-in, the login flow).
 */
type Kind = 'owned' | 'list' | 'create' | 'owner' | 'self' | 'public';
const ROUTES: Record<
  string,
  {
    kind: Kind;
    resource?: 'job' | 'workspace' | 'file' | 'key' | 'token' | 'user' | 'alias' | 'cron';
    body?: unknown;
  }
> = {
  'GET /api/v1/health': { kind: 'public' },
  'GET /api/v1/openapi.json': { kind: 'public' },
  'POST /api/v1/session': { kind: 'public' },
  'POST /api/v1/auth/device': { kind: 'public' },
  'POST /api/v1/auth/device/token': { kind: 'public' },
  'GET /api/v1/status': { kind: 'list' },
  'GET /api/v1/mags-jobs/pool-status': { kind: 'list' },
  'POST /api/v1/mags-jobs': { kind: 'create' },
  'GET /api/v1/mags-jobs': { kind: 'list' },
  'GET /api/v1/mags-jobs/{id}/status': { kind: 'owned', resource: 'job' },
  'GET /api/v1/mags-jobs/{id}/logs': { kind: 'owned', resource: 'job' },
  'POST /api/v1/mags-jobs/{id}/stop': { kind: 'owned', resource: 'job' },
  'POST /api/v1/mags-jobs/{id}/exec': { kind: 'owned', resource: 'job', body: { command: 'echo hi' } },
  'PATCH /api/v1/mags-jobs/{id}': { kind: 'owned', resource: 'job', body: { no_sleep: false } },
  'DELETE /api/v1/mags-jobs/{id}': { kind: 'owned', resource: 'job' },
  'POST /api/v1/mags-jobs/{id}/sync': { kind: 'owned', resource: 'job' },
  'POST /api/v1/mags-jobs/{id}/access': { kind: 'owned', resource: 'job', body: { port: 22 } },
  'GET /api/v1/mags-workspaces': { kind: 'list' },
  'POST /api/v1/mags-workspaces': { kind: 'create' },
  'GET /api/v1/mags-workspaces/{name}': { kind: 'owned', resource: 'workspace' },
  'DELETE /api/v1/mags-workspaces/{name}': { kind: 'owned', resource: 'workspace' },
  'GET /api/v1/mags-workspaces/{name}/versions': { kind: 'owned', resource: 'workspace' },
  'POST /api/v1/mags-workspaces/{name}/restore': { kind: 'owned', resource: 'workspace', body: { version: 1 } },
  'POST /api/v1/mags-workspaces/{name}/sync': { kind: 'owned', resource: 'workspace' },
  'POST /api/v1/mags-workspaces/{name}/resize': { kind: 'owned', resource: 'workspace', body: { disk_gb: 5 } },
  'GET /api/v1/mags-files': { kind: 'list' },
  'POST /api/v1/mags-files': { kind: 'create' },
  'DELETE /api/v1/mags-files/{id}': { kind: 'owned', resource: 'file' },
  'POST /api/v1/admin/gc': { kind: 'owner' },
  'GET /api/v1/me': { kind: 'self' },
  'PUT /api/v1/me/password': { kind: 'self' },
  'GET /api/v1/users': { kind: 'owner' },
  'POST /api/v1/users': { kind: 'owner' },
  'DELETE /api/v1/users/{name}': { kind: 'owned', resource: 'user' },
  'GET /api/v1/tokens': { kind: 'list' },
  'POST /api/v1/tokens': { kind: 'create' },
  'DELETE /api/v1/tokens/{id}': { kind: 'owned', resource: 'token' },
  'DELETE /api/v1/session': { kind: 'self' },
  'GET /api/v1/ssh-keys': { kind: 'list' },
  'POST /api/v1/ssh-keys': { kind: 'create' },
  'DELETE /api/v1/ssh-keys/{id}': { kind: 'owned', resource: 'key' },
  'POST /api/v1/mags-url-aliases': { kind: 'create' },
  'GET /api/v1/mags-url-aliases': { kind: 'list' },
  'DELETE /api/v1/mags-url-aliases/{subdomain}': { kind: 'owned', resource: 'alias' },
  'POST /api/v1/mags-cron': { kind: 'create' },
  'GET /api/v1/mags-cron': { kind: 'list' },
  'GET /api/v1/mags-cron/{id}': { kind: 'owned', resource: 'cron' },
  'PATCH /api/v1/mags-cron/{id}': { kind: 'owned', resource: 'cron', body: { enabled: false } },
  'DELETE /api/v1/mags-cron/{id}': { kind: 'owned', resource: 'cron' },
  'GET /api/v1/mags-usage': { kind: 'list' },
};

describe('cross-user: every route keeps one user out of another’s resources', () => {
  let t: TestServer;
  let alice: string;
  let bob: string;
  /** Alice's resources: for each kind, the references (ids and names) Bob will try. */
  const refs: Record<string, string[]> = {};
  /** Everything that would betray Alice's resources in a listing. */
  let secrets: string[] = [];
  const aliceKey = ed25519Pair('alice@laptop').public;

  const as = (token: string, method: Method, url: string, payload?: unknown, headers: Record<string, string> = {}) =>
    t.server.app.inject({
      method,
      url,
      headers: { authorization: `Bearer ${token}`, ...headers },
      payload: payload as object,
    });

  /** What Alice sees of her own resources (compared before and after Bob's attempts). */
  async function aliceView(): Promise<unknown> {
    const job = (await as(alice, 'GET', '/api/v1/mags-jobs/alice-job/status')).json();
    const ws = (await as(alice, 'GET', '/api/v1/mags-workspaces/alice-ws')).json();
    const files = (await as(alice, 'GET', '/api/v1/mags-files')).json();
    const keys = (await as(alice, 'GET', '/api/v1/ssh-keys')).json();
    const tokens = (await as(alice, 'GET', '/api/v1/tokens')).json();
    const jobs = (await as(alice, 'GET', '/api/v1/mags-jobs')).json();
    const aliases = (await as(alice, 'GET', '/api/v1/mags-url-aliases')).json();
    const crons = (await as(alice, 'GET', '/api/v1/mags-cron')).json();
    const strip = (v: { tokens: Array<Record<string, unknown>> }) => v.tokens.map(({ last_used_at: _, ...x }) => x);
    return {
      job: { id: job.request_id, status: job.status, name: job.name },
      ws: { name: ws.name, size: ws.size_bytes },
      files,
      keys,
      tokens: strip(tokens),
      jobs: jobs.jobs.map((j: { request_id: string }) => j.request_id),
      aliases,
      crons,
    };
  }

  before(async () => {
    // An SSH gateway of its own, so that the access route reaches its ownership check.
    const port = await new Promise<number>((resolve) => {
      const s = net.createServer().listen(0, '127.0.0.1', () => {
        const p = (s.address() as net.AddressInfo).port;
        s.close(() => resolve(p));
      });
    });
    t = await startTestServer({ config: { sshPort: port, host: '127.0.0.1' } });
    await t.server.listen();
    const add = async (name: string) => (await as(t.token, 'POST', '/api/v1/users', { name })).json().token as string;
    alice = await add('alice');
    bob = await add('bob');

    const job = await as(alice, 'POST', '/api/v1/mags-jobs', {
      script: 'hang',
      name: 'alice-job',
      workspace_id: 'alice-ws',
    });
    assert.equal(job.statusCode, 202, job.body);
    const jobId = job.json().request_id as string;
    await waitFor(
      async () => (await as(alice, 'GET', `/api/v1/mags-jobs/${jobId}/status`)).json().status === 'running',
    );
    const ws = (await as(alice, 'GET', '/api/v1/mags-workspaces/alice-ws')).json();
    const file = await as(alice, 'POST', '/api/v1/mags-files?name=alice.txt', 'secret', {
      'content-type': 'application/octet-stream',
    });
    assert.equal(file.statusCode, 201, file.body);
    const key = await as(alice, 'POST', '/api/v1/ssh-keys', { public_key: aliceKey, name: 'alice-key' });
    assert.equal(key.statusCode, 201, key.body);
    const token = (await as(alice, 'POST', '/api/v1/tokens', { name: 'alice-token' })).json();
    const aliceId = (await as(alice, 'GET', '/api/v1/me')).json().user_id as string;
    const alias = await as(alice, 'POST', '/api/v1/mags-url-aliases', {
      subdomain: 'alice-alias',
      workspace_id: 'alice-ws',
    });
    assert.equal(alias.statusCode, 201, alias.body);
    const cron = await as(alice, 'POST', '/api/v1/mags-cron', {
      name: 'alice-cron',
      cron_expression: '0 0 1 1 *',
      script: 'echo alice',
    });
    assert.equal(cron.statusCode, 201, cron.body);

    refs.job = [jobId, 'alice-job'];
    refs.workspace = ['alice-ws', ...(ws.workspace_id ? [ws.workspace_id] : [])];
    refs.file = [file.json().file_id];
    refs.key = [key.json().id];
    refs.token = [token.id];
    refs.user = ['alice', aliceId];
    refs.alias = ['alice-alias'];
    refs.cron = [cron.json().id, 'alice-cron'];
    secrets = [
      jobId,
      'alice-job',
      'alice-ws',
      file.json().file_id,
      'alice.txt',
      key.json().id,
      'alice-key',
      token.id,
      'alice-token',
      'alice-alias',
      'alice-cron',
      cron.json().id,
    ];
  });
  after(async () => {
    const errors = t?.errors() ?? [];
    await t?.close();
    assert.deepEqual(errors, [], 'no request failed inside the server (a 500 is a bug)');
  });

  test('the table names every route of the OpenAPI document', async () => {
    const doc = (await t.server.app.inject({ method: 'GET', url: '/api/v1/openapi.json' })).json();
    const routes = Object.entries(doc.paths as Record<string, Record<string, unknown>>).flatMap(([p, ops]) =>
      Object.keys(ops).map((m) => `${m.toUpperCase()} ${p}`),
    );
    const missing = routes.filter((r) => !(r in ROUTES));
    assert.deepEqual(missing, [], 'classify each new route in ROUTES (cross-user.test.ts)');
    const gone = Object.keys(ROUTES).filter((r) => !routes.includes(r));
    assert.deepEqual(gone, [], 'routes in the table that the document no longer has');
  });

  test('Bob gets 404 (or 403) on each of Alice’s resources by id and by name, and Alice sees no change', async () => {
    const before = await aliceView();
    for (const [route, spec] of Object.entries(ROUTES)) {
      const [method, path] = route.split(' ') as [Method, string];
      if (spec.kind === 'owned') {
        for (const ref of refs[spec.resource!]!) {
          const url = path.replace(/\{[^}]+\}/, encodeURIComponent(ref));
          const res = await as(bob, method, url, spec.body);
          assert.ok(
            [403, 404].includes(res.statusCode),
            `${route} as Bob on Alice's ${ref}: ${res.statusCode} ${res.body}`,
          );
          for (const s of secrets) assert.ok(!res.body.includes(s) || s === ref, `${route} leaks ${s}`);
        }
      } else if (spec.kind === 'owner') {
        const res = await as(
          bob,
          method,
          path,
          method === 'POST' && path.endsWith('/users') ? { name: 'carol' } : undefined,
        );
        assert.equal(res.statusCode, 403, `${route} is the owner's: ${res.body}`);
      } else if (spec.kind === 'list') {
        const res = await as(bob, method, path);
        assert.equal(res.statusCode, 200, `${route}: ${res.body}`);
        for (const s of secrets) assert.ok(!res.body.includes(s), `${route} shows Bob Alice's ${s}`);
      } else if (spec.kind === 'self' && method === 'GET') {
        assert.equal((await as(bob, method, path)).json().name, 'bob');
      }
    }
    assert.deepEqual(await aliceView(), before, 'nothing Bob tried changed what Alice sees');
  });

  test('Bob creating the same names changes nothing Alice sees', async () => {
    const before = await aliceView();
    const created: Record<string, number> = {};
    for (const [route, spec] of Object.entries(ROUTES)) {
      if (spec.kind !== 'create') continue;
      const [, path] = route.split(' ') as [Method, string];
      let res: Awaited<ReturnType<typeof as>>;
      if (path === '/api/v1/mags-jobs')
        res = await as(bob, 'POST', path, { script: 'echo bob', name: 'alice-job', workspace_id: 'alice-ws' });
      else if (path === '/api/v1/mags-workspaces') res = await as(bob, 'POST', path, { name: 'alice-ws' });
      else if (path === '/api/v1/mags-files')
        res = await as(bob, 'POST', `${path}?name=alice.txt`, 'bob', { 'content-type': 'application/octet-stream' });
      else if (path === '/api/v1/ssh-keys')
        res = await as(bob, 'POST', path, { public_key: aliceKey, name: 'alice-key' });
      else if (path === '/api/v1/tokens') res = await as(bob, 'POST', path, { name: 'alice-token' });
      else if (path === '/api/v1/mags-url-aliases')
        res = await as(bob, 'POST', path, { subdomain: 'alice-alias', workspace_id: 'alice-ws' });
      else if (path === '/api/v1/mags-cron')
        res = await as(bob, 'POST', path, { name: 'alice-cron', cron_expression: '0 0 1 1 *', script: 'echo bob' });
      else throw new Error(`no name-clash attempt for ${route}: add one`);
      created[path] = res.statusCode;
      assert.ok(res.statusCode < 500, `${route}: ${res.body}`);
    }
    // Alice's key opens Alice's sandboxes: nobody else may register it (a clash refused, not taken over).
    assert.equal(created['/api/v1/ssh-keys'], 409);
    // Alias names are the server's (they are host names): Bob cannot take Alice's.
    assert.equal(created['/api/v1/mags-url-aliases'], 409);
    // Cron names are per user: Bob's "alice-cron" is his own.
    assert.equal(created['/api/v1/mags-cron'], 201);
    // Bob's own job on his own "alice-ws" runs.
    assert.equal(created['/api/v1/mags-jobs'], 202);
    assert.deepEqual(await aliceView(), before, 'Alice still finds exactly her own resources by her names');
    const bobs = (await as(bob, 'GET', '/api/v1/mags-jobs/alice-job/status')).json();
    assert.notEqual(bobs.request_id, refs.job![0]);
  });
});
