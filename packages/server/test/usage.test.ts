// Usage: the figures an agent reports for a job's sandbox (cumulative, so repeats add nothing) are summed per user and
// UTC day; storage is what the user's workspaces and files hold; another user's usage is never theirs.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { generateToken } from '../src/http/auth.js';
import { errorBody, freshPostgres, PG_HELP, startTestServer, type TestServer } from './helpers.js';

for (const backend of ['SQLite', 'PostgreSQL'] as const)
  describe(`usage (${backend})`, () => {
    let t: TestServer;
    let mallory: { authorization: string };
    let drop = async () => {};
    before(async () => {
      let database: string | undefined;
      if (backend === 'PostgreSQL') {
        if (!process.env.MAGS_TEST_PG_URL) assert.fail(PG_HELP);
        const pg = await freshPostgres();
        database = pg.url;
        drop = pg.drop;
      }
      t = await startTestServer({ database });
      const user = await t.server.store.users.create('mallory');
      const secret = generateToken();
      await t.server.store.users.insertToken(user.id, { hash: secret.hash, prefix: secret.prefix, name: 't' });
      mallory = { authorization: `Bearer ${secret.token}` };
    });
    after(async () => {
      await t?.close();
      await drop();
    });

    const get = (url: string, auth = t.auth) => t.server.app.inject({ method: 'GET', url, headers: auth });
    const run = async (script: string) => {
      const res = await t.server.app.inject({
        method: 'POST',
        url: '/api/v1/mags-jobs',
        headers: t.auth,
        payload: { script },
      });
      assert.equal(res.statusCode, 202, res.body);
      const id = res.json().request_id as string;
      const status = (await get(`/api/v1/mags-jobs/${id}/status?wait=30`)).json().status;
      assert.equal(status, 'completed');
      return id;
    };

    test('a job that reported 2 s of CPU, 0.05 GiB·s of memory and 1 MB out shows exactly so for today, once', async () => {
      const empty = (await get('/api/v1/mags-usage?window_days=7')).json();
      assert.equal(empty.window_days, 7);
      assert.equal(empty.days.length, 7);
      assert.equal(empty.days.at(-1).date, new Date().toISOString().slice(0, 10), 'the last day is today (UTC)');
      assert.equal(empty.totals.jobs, 0);

      // 51,200 MiB·ms = 51.2 MiB·s = 0.05 GiB·s. `report` sends the same figures twice (a periodic and the final one).
      await run('meter 2000 51200 1000000\nreport\necho done');
      const usage = (await get('/api/v1/mags-usage?window_days=7')).json();
      const today = usage.days.at(-1);
      assert.equal(today.jobs, 1);
      assert.equal(today.cpu_seconds, 2);
      assert.equal(today.memory_gb_seconds, 0.05);
      assert.equal(today.egress_bytes, 1_000_000);
      assert.ok(today.sandbox_seconds >= 0 && today.sandbox_seconds < 30, `sandbox seconds: ${today.sandbox_seconds}`);
      assert.deepEqual(
        usage.days.slice(0, 6).map((d: { jobs: number }) => d.jobs),
        [0, 0, 0, 0, 0, 0],
      );
      assert.equal(usage.totals.cpu_seconds, 2);

      await run('meter 1000 0 500\necho again');
      const more = (await get('/api/v1/mags-usage?window_days=1')).json();
      assert.equal(more.days.length, 1);
      assert.equal(more.days[0].jobs, 2);
      assert.equal(more.days[0].cpu_seconds, 3);
      assert.equal(more.days[0].egress_bytes, 1_000_500);
      assert.deepEqual(t.errors(), []);
    });

    test('storage held is what the files and workspaces hold; another user sees none of it', async () => {
      const size = 300_000;
      const up = await t.server.app.inject({
        method: 'POST',
        url: '/api/v1/mags-files?name=known.bin',
        payload: Buffer.alloc(size, 7),
        headers: { ...t.auth, 'content-type': 'application/octet-stream' },
      });
      assert.equal(up.statusCode, 201, up.body);
      const usage = (await get('/api/v1/mags-usage')).json();
      assert.equal(usage.window_days, 30, 'the default window');
      assert.equal(usage.days.length, 30);
      assert.equal(usage.totals.storage_bytes, size);
      assert.equal(usage.days.at(-1).storage_bytes, size);

      const theirs = (await get('/api/v1/mags-usage', mallory)).json();
      assert.equal(theirs.totals.jobs, 0);
      assert.equal(theirs.totals.cpu_seconds, 0);
      assert.equal(theirs.totals.storage_bytes, 0);
      assert.equal(theirs.days.at(-1).egress_bytes, 0);
    });

    test('the window is checked: a sentence for 0, too many days, or not a number', async () => {
      for (const bad of ['0', '367', 'week', '1.5']) {
        const body = errorBody(await get(`/api/v1/mags-usage?window_days=${bad}`), 400, 'invalid_request');
        assert.match(body.error, /window_days/);
      }
      errorBody(await get('/api/v1/mags-usage?days=3'), 400, 'invalid_request');
      const anonymous = await t.server.app.inject({ method: 'GET', url: '/api/v1/mags-usage' });
      assert.equal(anonymous.statusCode, 401);
    });
  });
