// Cron: the next-run computation (UTC, a time zone across both DST changes), the REST resource (validation
// sentences, per user), and the scheduler on a clock the test moves: firings on time, skipped while the previous one
// still runs on the workspace, no replay after downtime, and one firing however many servers claim it at once.
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import { pino } from 'pino';
import { nextRun, nextRuns } from '../src/cron/schedule.js';
import { CronService } from '../src/cron/service.js';
import { generateToken } from '../src/http/auth.js';
import { type Job, Store } from '../src/store/index.js';
import { errorBody, freshPostgres, PG_HELP, startTestServer, type TestServer, waitFor } from './helpers.js';

const at = (iso: string) => Date.parse(iso);
const isoOf = (ms: number | null) => (ms === null ? null : new Date(ms).toISOString());

describe('next-run computation', () => {
  test('UTC by default: */5 fires on the next multiple of five minutes, strictly after the given time', () => {
    assert.equal(isoOf(nextRun('*/5 * * * *', null, at('2026-01-10T10:02:30Z'))), '2026-01-10T10:05:00.000Z');
    assert.equal(isoOf(nextRun('*/5 * * * *', null, at('2026-01-10T10:05:00Z'))), '2026-01-10T10:10:00.000Z');
    assert.equal(isoOf(nextRun('0 0 * * *', null, at('2026-01-10T23:59:59Z'))), '2026-01-11T00:00:00.000Z');
    // Monday 03:00 (2026-01-12 is a Monday).
    assert.equal(isoOf(nextRun('0 3 * * 1', null, at('2026-01-10T00:00:00Z'))), '2026-01-12T03:00:00.000Z');
  });

  test('in Europe/Berlin, 09:00 local is 08:00Z in winter and 07:00Z once summer time starts (and back in October)', () => {
    const runs = nextRuns('0 9 * * *', 'Europe/Berlin', at('2026-03-27T12:00:00Z'), 4).map(isoOf);
    assert.deepEqual(runs, [
      '2026-03-28T08:00:00.000Z', // CET, UTC+1
      '2026-03-29T07:00:00.000Z', // CEST from 02:00 on 29 March, UTC+2
      '2026-03-30T07:00:00.000Z',
      '2026-03-31T07:00:00.000Z',
    ]);
    const autumn = nextRuns('0 9 * * *', 'Europe/Berlin', at('2026-10-24T12:00:00Z'), 2).map(isoOf);
    assert.deepEqual(autumn, ['2026-10-25T08:00:00.000Z', '2026-10-26T08:00:00.000Z']); // CET again from 25 October
  });

  test('a time the spring change skips fires once, just after the gap; a time the autumn change repeats fires once', () => {
    // 02:30 does not exist in Berlin on 29 March 2026 (02:00 → 03:00): fired at 03:00 CEST = 01:00Z.
    const spring = nextRuns('30 2 * * *', 'Europe/Berlin', at('2026-03-28T00:00:00Z'), 3).map(isoOf);
    assert.deepEqual(spring, ['2026-03-28T01:30:00.000Z', '2026-03-29T01:00:00.000Z', '2026-03-30T00:30:00.000Z']);
    // 02:30 happens twice on 25 October 2026 (03:00 → 02:00): once.
    const autumn = nextRuns('30 2 * * *', 'Europe/Berlin', at('2026-10-24T12:00:00Z'), 2).map(isoOf);
    assert.equal(autumn.length, 2);
    assert.equal(autumn.filter((r) => r!.startsWith('2026-10-25')).length, 1, autumn.join(', '));
    assert.equal(autumn[1], '2026-10-26T01:30:00.000Z');
  });

  test('in America/New_York the same expression follows its own (different) change date', () => {
    // New York changes on 8 March 2026: 12:00 local is 17:00Z before, 16:00Z after.
    const runs = nextRuns('0 12 * * *', 'America/New_York', at('2026-03-07T00:00:00Z'), 2).map(isoOf);
    assert.deepEqual(runs, ['2026-03-07T17:00:00.000Z', '2026-03-08T16:00:00.000Z']);
  });
});

for (const backend of ['SQLite', 'PostgreSQL'] as const)
  describe(`cron jobs through the API (${backend})`, () => {
    let t: TestServer;
    /** The scheduler's clock, moved by the tests. */
    let now = at('2026-01-10T10:02:00Z');
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
      t = await startTestServer({ database, cron: { tickMs: 3_600_000, now: () => now } });
      const user = await t.server.store.users.create('mallory');
      const secret = generateToken();
      await t.server.store.users.insertToken(user.id, { hash: secret.hash, prefix: secret.prefix, name: 't' });
      mallory = { authorization: `Bearer ${secret.token}` };
    });
    after(async () => {
      await t?.close();
      await drop();
    });

    const call = (
      method: 'GET' | 'POST' | 'PATCH' | 'DELETE',
      url: string,
      payload?: Record<string, unknown>,
      auth = t.auth,
    ) => t.server.app.inject({ method, url, headers: auth, ...(payload ? { payload } : {}) });
    const jobStatus = async (id: string) =>
      (await call('GET', `/api/v1/mags-jobs/${id}/status?wait=30`)).json().status as string;

    test('create, list, get, update and delete with the reference field names; bad input is a sentence', async () => {
      const created = await call('POST', '/api/v1/mags-cron', {
        name: 'backup',
        cron_expression: '0  3 * * *',
        script: 'echo backup',
        workspace_id: 'backups',
        timezone: 'Europe/Berlin',
      });
      assert.equal(created.statusCode, 201, created.body);
      const job = created.json();
      assert.equal(job.name, 'backup');
      assert.equal(job.cron_expression, '0 3 * * *');
      assert.equal(job.script, 'echo backup');
      assert.equal(job.workspace_id, 'backups');
      assert.equal(job.persistent, false);
      assert.equal(job.enabled, true);
      assert.equal(job.timezone, 'Europe/Berlin');
      assert.equal(job.next_run_at, '2026-01-11T02:00:00.000Z'); // 03:00 CET
      assert.equal(job.last_run_at, null);
      assert.equal(job.last_job_id, null);

      const list = (await call('GET', '/api/v1/mags-cron')).json().cron_jobs;
      assert.deepEqual(
        list.map((c: { id: string }) => c.id),
        [job.id],
      );
      assert.equal((await call('GET', `/api/v1/mags-cron/${job.id}`)).json().name, 'backup');
      assert.equal((await call('GET', '/api/v1/mags-cron/backup')).json().id, job.id, 'found by name too');

      const disabled = await call('PATCH', `/api/v1/mags-cron/${job.id}`, { enabled: false });
      assert.equal(disabled.statusCode, 200, disabled.body);
      assert.equal(disabled.json().enabled, false);
      assert.equal(disabled.json().next_run_at, null);
      const enabled = (await call('PATCH', `/api/v1/mags-cron/${job.id}`, { enabled: true, timezone: null })).json();
      assert.equal(enabled.next_run_at, '2026-01-11T03:00:00.000Z', 'UTC once the time zone is removed');

      errorBody(
        await call('POST', '/api/v1/mags-cron', { name: 'backup', cron_expression: '* * * * *', script: 'x' }),
        409,
        'conflict',
      );
      const fields = errorBody(
        await call('POST', '/api/v1/mags-cron', { name: 'a', cron_expression: '* * * * * *', script: 'x' }),
        400,
        'invalid_request',
      );
      assert.match(fields.error, /has 6 fields; it needs 5: minute hour day-of-month month day-of-week/);
      const range = errorBody(
        await call('POST', '/api/v1/mags-cron', { name: 'a', cron_expression: '61 * * * *', script: 'x' }),
        400,
        'invalid_request',
      );
      assert.match(range.error, /cron expression "61 \* \* \* \*" is not valid \(.*minute.*\)/);
      const zone = errorBody(
        await call('POST', '/api/v1/mags-cron', {
          name: 'a',
          cron_expression: '* * * * *',
          script: 'x',
          timezone: 'Mars/Olympus',
        }),
        400,
        'invalid_request',
      );
      assert.match(zone.error, /unknown time zone "Mars\/Olympus": give an IANA name such as Europe\/Berlin/);
      const persistent = errorBody(
        await call('POST', '/api/v1/mags-cron', {
          name: 'a',
          cron_expression: '* * * * *',
          script: 'x',
          persistent: true,
        }),
        400,
        'invalid_request',
      );
      assert.match(persistent.error, /persistent needs a workspace/);
      errorBody(
        await call('POST', '/api/v1/mags-cron', { name: 'a', cron_expression: '* * * * *' }),
        400,
        'invalid_request',
      );
      errorBody(
        await call('PATCH', `/api/v1/mags-cron/${job.id}`, { cron_expression: 'often' }),
        400,
        'invalid_request',
      );
      errorBody(await call('GET', '/api/v1/mags-cron/nope'), 404, 'not_found');
      const other = (
        await call('POST', '/api/v1/mags-cron', { name: 'other', cron_expression: '* * * * *', script: 'x' })
      ).json();
      const clash = errorBody(
        await call('PATCH', `/api/v1/mags-cron/${other.id}`, { name: 'backup' }),
        409,
        'conflict',
      );
      assert.match(clash.error, /you have a cron job named backup already/);
      assert.equal((await call('PATCH', `/api/v1/mags-cron/${other.id}`, { name: 'other2' })).json().name, 'other2');
      assert.equal((await call('DELETE', '/api/v1/mags-cron/other2')).statusCode, 204);

      assert.equal((await call('DELETE', `/api/v1/mags-cron/${job.id}`)).statusCode, 204);
      errorBody(await call('GET', `/api/v1/mags-cron/${job.id}`), 404, 'not_found');
      assert.deepEqual(t.errors(), []);
    });

    test("another user's cron job is not found by id or name, not listed, and its name is free for them", async () => {
      const mine = (
        await call('POST', '/api/v1/mags-cron', { name: 'nightly', cron_expression: '0 0 * * *', script: 'echo mine' })
      ).json();
      for (const ref of [mine.id, 'nightly']) {
        errorBody(await call('GET', `/api/v1/mags-cron/${ref}`, undefined, mallory), 404, 'not_found');
        errorBody(await call('PATCH', `/api/v1/mags-cron/${ref}`, { enabled: false }, mallory), 404, 'not_found');
        errorBody(await call('DELETE', `/api/v1/mags-cron/${ref}`, undefined, mallory), 404, 'not_found');
      }
      assert.deepEqual((await call('GET', '/api/v1/mags-cron', undefined, mallory)).json().cron_jobs, []);
      const theirs = await call(
        'POST',
        '/api/v1/mags-cron',
        { name: 'nightly', cron_expression: '0 1 * * *', script: 'echo theirs' },
        mallory,
      );
      assert.equal(theirs.statusCode, 201, theirs.body);
      const still = (await call('GET', `/api/v1/mags-cron/${mine.id}`)).json();
      assert.equal(still.enabled, true);
      assert.equal(still.script, 'echo mine');
      assert.equal((await call('DELETE', '/api/v1/mags-cron/nightly')).statusCode, 204);
      assert.equal((await call('GET', '/api/v1/mags-cron/nightly', undefined, mallory)).json().script, 'echo theirs');
      assert.equal((await call('DELETE', '/api/v1/mags-cron/nightly', undefined, mallory)).statusCode, 204);
    });

    test('it fires on time as an ordinary job named after it, linked by last_job_id, in UTC and in a time zone', async () => {
      now = at('2026-01-10T10:02:00Z');
      const utc = (
        await call('POST', '/api/v1/mags-cron', { name: 'tick', cron_expression: '*/5 * * * *', script: 'echo fired' })
      ).json();
      // 11:05 in Berlin (CET) is 10:05Z too in winter; 06:05 in New York is 11:05Z.
      const ny = (
        await call('POST', '/api/v1/mags-cron', {
          name: 'ny',
          cron_expression: '5 6 * * *',
          script: 'echo ny',
          timezone: 'America/New_York',
        })
      ).json();
      assert.equal(utc.next_run_at, '2026-01-10T10:05:00.000Z');
      assert.equal(ny.next_run_at, '2026-01-10T11:05:00.000Z');

      now = at('2026-01-10T10:04:59.900Z');
      await t.server.cron.tick();
      assert.equal((await call('GET', '/api/v1/mags-cron/tick')).json().last_job_id, null, 'not before its time');

      now = at('2026-01-10T10:05:00.300Z');
      await t.server.cron.tick();
      const fired = (await call('GET', '/api/v1/mags-cron/tick')).json();
      assert.equal(fired.last_status, 'fired');
      assert.equal(fired.last_run_at, '2026-01-10T10:05:00.000Z');
      assert.equal(fired.next_run_at, '2026-01-10T10:10:00.000Z');
      assert.ok(fired.last_job_id);
      assert.deepEqual(fired.runs, [
        { scheduled_at: '2026-01-10T10:05:00.000Z', status: 'fired', job_id: fired.last_job_id, reason: null },
      ]);
      assert.equal(await jobStatus(fired.last_job_id), 'completed');
      const job = (await call('GET', `/api/v1/mags-jobs/${fired.last_job_id}/status`)).json();
      assert.equal(job.name, 'tick', 'the job is named after its cron job');
      const logs = (await call('GET', `/api/v1/mags-jobs/${fired.last_job_id}/logs`)).json().logs;
      assert.deepEqual(
        logs.map((l: { message: string }) => l.message),
        ['fired'],
      );
      await t.server.cron.tick();
      assert.equal((await call('GET', '/api/v1/mags-cron/tick')).json().runs.length, 1, 'a firing happens once');

      now = at('2026-01-10T11:05:00.100Z');
      await t.server.cron.tick();
      const nyFired = (await call('GET', '/api/v1/mags-cron/ny')).json();
      assert.equal(nyFired.last_run_at, '2026-01-10T11:05:00.000Z');
      assert.equal(await jobStatus(nyFired.last_job_id), 'completed');
      // The UTC one missed 10:10 … 11:00 while the test's clock jumped an hour: none of those replayed.
      const utcAfter = (await call('GET', '/api/v1/mags-cron/tick')).json();
      assert.equal(utcAfter.runs.length, 1, 'no replay of firings missed by more than a minute');
      assert.equal(utcAfter.next_run_at, '2026-01-10T11:10:00.000Z');
      for (const name of ['tick', 'ny']) await call('DELETE', `/api/v1/mags-cron/${name}`);
      assert.deepEqual(t.errors(), []);
    });

    test('a firing is skipped, and recorded so, while the previous one still runs on the workspace; a sleeping one counts as ended', async () => {
      now = at('2026-01-11T00:00:30Z');
      const cron = (
        await call('POST', '/api/v1/mags-cron', {
          name: 'busy',
          cron_expression: '* * * * *',
          script: 'hang',
          workspace_id: 'crondata',
          persistent: true,
        })
      ).json();
      now = at('2026-01-11T00:01:00.200Z');
      await t.server.cron.tick();
      const first = (await call('GET', '/api/v1/mags-cron/busy')).json();
      assert.equal(first.last_status, 'fired');
      await t.agent!.until(() => t.agent!.running.has(first.last_job_id));

      now = at('2026-01-11T00:02:00.200Z');
      await t.server.cron.tick();
      const skipped = (await call('GET', '/api/v1/mags-cron/busy')).json();
      assert.equal(skipped.last_status, 'skipped');
      assert.equal(skipped.last_job_id, first.last_job_id, 'still the job that runs');
      assert.equal(skipped.runs[0].status, 'skipped');
      assert.equal(skipped.runs[0].scheduled_at, '2026-01-11T00:02:00.000Z');
      assert.match(skipped.runs[0].reason, /the previous firing still runs on workspace crondata/);
      assert.equal(skipped.next_run_at, '2026-01-11T00:03:00.000Z');

      // The script ends: a persistent run is then `sleeping` (the script ended), and the next firing runs.
      await call('PATCH', `/api/v1/mags-cron/${cron.id}`, { script: 'echo done' });
      t.agent!.exit(first.last_job_id, 0);
      await waitFor(async () => (await jobStatus(first.last_job_id)) === 'sleeping', 'the first firing to sleep');
      now = at('2026-01-11T00:03:00.200Z');
      await t.server.cron.tick();
      const third = (await call('GET', '/api/v1/mags-cron/busy')).json();
      assert.equal(third.last_status, 'fired');
      assert.notEqual(third.last_job_id, first.last_job_id);
      assert.equal(await jobStatus(third.last_job_id), 'sleeping');
      assert.deepEqual(
        third.runs.map((r: { status: string }) => r.status),
        ['fired', 'skipped', 'fired'],
      );
      await call('DELETE', '/api/v1/mags-cron/busy');
      assert.deepEqual(t.errors(), []);
    });

    test('a disabled cron job does not fire, and enabling it does not replay what it missed', async () => {
      now = at('2026-01-12T00:00:10Z');
      const cron = (
        await call('POST', '/api/v1/mags-cron', {
          name: 'paused',
          cron_expression: '* * * * *',
          script: 'echo x',
          enabled: false,
        })
      ).json();
      now = at('2026-01-12T00:05:10Z');
      await t.server.cron.tick();
      const enabled = (await call('PATCH', `/api/v1/mags-cron/${cron.id}`, { enabled: true })).json();
      assert.equal(enabled.next_run_at, '2026-01-12T00:06:00.000Z');
      await t.server.cron.tick();
      assert.deepEqual((await call('GET', `/api/v1/mags-cron/${cron.id}`)).json().runs, []);
      await call('DELETE', `/api/v1/mags-cron/${cron.id}`);
    });
  });

describe('one firing, however many servers claim it', () => {
  test('two concurrent claims of each firing on one PostgreSQL run it once', async () => {
    if (!process.env.MAGS_TEST_PG_URL) assert.fail(PG_HELP);
    const pg = await freshPostgres();
    const logger = pino({ level: 'silent' });
    const a = await Store.open(pg.url, logger);
    const b = await Store.open(pg.url, logger);
    try {
      const user = await a.users.create('owner');
      let now = at('2026-02-01T00:00:30Z');
      const submitted: string[] = [];
      const servers = [a, b].map(
        (store, i) =>
          new CronService({
            store,
            logger,
            now: () => now,
            submit: async (_userId, body) => {
              submitted.push(`${i}:${body.name}`);
              return { id: randomUUID() } as Job;
            },
          }),
      );
      await servers[0]!.create(user.id, { name: 'every-minute', cron_expression: '* * * * *', script: 'echo 1' });
      const rounds = 20;
      for (let i = 1; i <= rounds; i++) {
        now = at('2026-02-01T00:00:00Z') + i * 60_000 + 100;
        await Promise.all(servers.map((s) => s.tick()));
      }
      assert.equal(submitted.length, rounds, `each of ${rounds} firings ran once: ${submitted.join(' ')}`);
      const row = (await a.cron.list(user.id))[0]!;
      assert.equal(await a.cron.countRuns(row.id), rounds);

      // The claim itself: two at once for one due time, one wins.
      const due = row.next_run_at!;
      const claims = await Promise.all([
        a.cron.claim(row.id, due, due + 60_000, randomUUID()),
        b.cron.claim(row.id, due, due + 60_000, randomUUID()),
      ]);
      assert.deepEqual(claims.filter(Boolean).length, 1, `one claim wins: ${claims}`);
    } finally {
      await a.close();
      await b.close();
      await pg.drop();
    }
  });
});
