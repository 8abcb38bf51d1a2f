// The store behaves the same on SQLite and PostgreSQL: the same tests run on both.
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { OutputLine } from '@mags/api';
import { hashToken } from '../src/http/auth.js';
import { uuidv7 } from '../src/ids.js';
import { Store } from '../src/store/index.js';
import { freshPostgres, PG_HELP, tempDir } from './helpers.js';

interface Backend {
  name: string;
  open(): Promise<{ database: string; cleanup(): Promise<void> }>;
}

const backends: Backend[] = [
  {
    name: 'SQLite',
    async open() {
      const dir = tempDir();
      return { database: join(dir.path, 'mags.db'), cleanup: async () => dir.remove() };
    },
  },
  {
    name: 'PostgreSQL',
    async open() {
      const pg = await freshPostgres();
      return { database: pg.url, cleanup: () => pg.drop() };
    },
  },
];

const spec = { vcpus: 1, memory_mb: 1024, timeout_s: 60, network: 'internet' as const, disk_gb: 2, environment: {} };

test('the PostgreSQL test database is configured (MAGS_TEST_PG_URL)', () => {
  if (!process.env.MAGS_TEST_PG_URL) assert.fail(PG_HELP);
});

for (const backend of backends) {
  describe(`store on ${backend.name}`, () => {
    let store: Store;
    let database: string;
    let cleanup: () => Promise<void> = async () => undefined;
    let alice: string;
    let bob: string;

    before(async () => {
      const opened = await backend.open();
      database = opened.database;
      cleanup = opened.cleanup;
      store = await Store.open(database);
      alice = (await store.users.create('alice')).id;
      bob = (await store.users.create('bob')).id;
    });
    after(async () => {
      await store?.close();
      await cleanup();
    });

    const newJob = (userId: string, name: string | null = null, createdAt = Date.now()) =>
      store.jobs.insert({
        id: uuidv7(),
        user_id: userId,
        name,
        script: 'echo hi',
        status: 'accepted',
        spec,
        created_at: createdAt,
      });

    test('E2B sandboxes: a row per job, the unfinished ones per user, a deadline that moves, gone with the job', async () => {
      const row = (jobId: string, userId: string, createdAt: number) => ({
        job_id: jobId,
        user_id: userId,
        template_id: 'base',
        workspace: `e2b-${jobId.slice(-12)}`,
        metadata: JSON.stringify({ k: 'v' }),
        env_vars: '{}',
        envd_token: 'tok',
        traffic_token: null,
        auto_pause: 0,
        paused: 0,
        end_at: createdAt + 300_000,
        created_at: createdAt,
      });
      const t = Date.now();
      const [a1, a2, b1] = [await newJob(alice), await newJob(alice), await newJob(bob)];
      await store.e2b.insert(row(a2.id, alice, t + 1));
      await store.e2b.insert(row(a1.id, alice, t));
      await store.e2b.insert({ ...row(b1.id, bob, t), traffic_token: 'traffic' });
      await assert.rejects(store.e2b.insert(row(a1.id, alice, t)), 'one row per job');
      assert.deepEqual(
        (await store.e2b.unfinishedOf(alice)).map((r) => r.job_id),
        [a1.id, a2.id],
        "alice's, oldest first; not bob's",
      );
      const got = await store.e2b.get(b1.id);
      assert.deepEqual([got?.traffic_token, got?.end_at, typeof got?.end_at], ['traffic', t + 300_000, 'number']);
      assert.equal(await store.e2b.setEndAt(a1.id, t + 5), true);
      assert.equal((await store.e2b.get(a1.id))?.end_at, t + 5);
      assert.equal(await store.e2b.setEndAt(randomUUID(), t), false);
      assert.equal(await store.e2b.setPaused(a1.id, true), true);
      assert.equal((await store.e2b.get(a1.id))?.paused, 1);
      await store.e2b.resume(a1.id, t + 9);
      assert.deepEqual([(await store.e2b.get(a1.id))?.paused, (await store.e2b.get(a1.id))?.end_at], [0, t + 9]);
      await store.jobs.stopQueued(a2.id);
      assert.deepEqual(
        (await store.e2b.unfinishedOf(alice)).map((r) => r.job_id),
        [a1.id],
        'an ended job is no live sandbox',
      );
      assert.ok((await store.e2b.unfinished()).some((r) => r.job_id === b1.id));
      await store.e2b.delete(b1.id);
      assert.equal(await store.e2b.get(b1.id), undefined);
    });

    test('URLs: a subdomain is kept, unique and found by the router; the address comes with started', async () => {
      const job = await newJob(alice, 'web');
      const opened = await store.jobs.openUrl(job.id, 'aaaaaaaaaaaa', 3000, false);
      assert.equal(opened?.subdomain, 'aaaaaaaaaaaa');
      const moved = await store.jobs.openUrl(job.id, 'bbbbbbbbbbbb', 8080, true);
      assert.deepEqual([moved?.subdomain, moved?.url_port, moved?.url_private], ['aaaaaaaaaaaa', 8080, 1]);
      assert.equal((await store.jobs.bySubdomain('aaaaaaaaaaaa'))?.id, job.id);
      assert.equal(await store.jobs.bySubdomain('bbbbbbbbbbbb'), undefined);
      await assert.rejects(
        store.jobs.insert({
          id: uuidv7(),
          user_id: bob,
          name: null,
          script: 'x',
          status: 'accepted',
          spec,
          created_at: Date.now(),
          subdomain: 'aaaaaaaaaaaa',
        }),
        'a subdomain belongs to one job',
      );
      await store.jobs.claim(job.id, 'agent-1');
      const running = await store.jobs.markRunning(job.id, 'agent-1', 'sbx', Date.now(), '10.99.0.2');
      assert.equal(running?.sandbox_address, '10.99.0.2');
    });

    test('jobs submitted at once are stored together; a row the database refuses fails only its own submit', async () => {
      const taken = await newJob(alice);
      const row = (id: string, subdomain?: string) => ({
        id,
        user_id: alice,
        name: 'batch',
        script: 'echo batch',
        status: 'accepted',
        spec,
        created_at: Date.now(),
        ...(subdomain ? { subdomain } : {}),
      });
      const ids = Array.from({ length: 40 }, () => uuidv7());
      // In one tick: one batch. Two rows are refused (an id already stored, a subdomain already another job's).
      const outcomes = await Promise.allSettled([
        ...ids.slice(0, 20).map((id) => store.jobs.insert(row(id))),
        store.jobs.insert(row(taken.id)),
        store.jobs.insert(row(uuidv7(), 'cccccccccccc')),
        store.jobs.insert(row(uuidv7(), 'cccccccccccc')),
        ...ids.slice(20).map((id) => store.jobs.insert(row(id))),
      ]);
      const refused = outcomes.filter((o) => o.status === 'rejected');
      assert.equal(refused.length, 2, 'the duplicate id and the second holder of the subdomain fail, nothing else');
      assert.equal(outcomes[20].status, 'rejected', 'a duplicate id is refused');
      for (const id of ids) assert.equal((await store.jobs.get(id))?.script, 'echo batch', 'every valid row is stored');
      assert.equal((await store.jobs.bySubdomain('cccccccccccc'))?.name, 'batch');
      assert.equal((await store.jobs.get(taken.id))?.script, 'echo hi', 'the stored job is not overwritten');
      // Dispatch claims a burst in one statement: only the jobs still queued become the agent's.
      assert.equal(await store.jobs.claim(taken.id, 'agent-a'), true);
      const claimed = await store.jobs.claimMany([ids[0], ids[1], taken.id], 'agent-b');
      assert.deepEqual([...claimed].sort(), [ids[0], ids[1]].sort());
      assert.equal((await store.jobs.get(taken.id))?.agent_id, 'agent-a', 'a claimed job stays with its agent');
    });

    test('URL aliases: unique across users, listed and removed by their owner only', async () => {
      const row = (user: string, sub: string) => ({
        id: uuidv7(),
        subdomain: sub,
        user_id: user,
        workspace_id: 'site',
        created_at: Date.now(),
      });
      assert.equal(await store.urlAliases.insert(row(alice, 'shop')), true);
      assert.equal(await store.urlAliases.insert(row(bob, 'shop')), false, 'taken by another user');
      assert.equal(await store.urlAliases.insert(row(alice, 'shop')), false, 'taken');
      assert.equal((await store.urlAliases.bySubdomain('shop'))?.user_id, alice);
      assert.deepEqual((await store.urlAliases.list(bob)).length, 0);
      assert.equal(await store.urlAliases.delete(bob, 'shop'), false, "bob cannot remove alice's alias");
      assert.deepEqual(
        (await store.urlAliases.list(alice)).map((a) => a.subdomain),
        ['shop'],
      );
      assert.equal(await store.urlAliases.delete(alice, 'shop'), true);
      assert.equal(await store.urlAliases.bySubdomain('shop'), undefined);
    });

    test('migrations apply again harmlessly, from the same and from a second connection', async () => {
      assert.equal(store.kind, backend.name === 'SQLite' ? 'sqlite' : 'postgres');
      assert.deepEqual(await store.migrate(), []);
      const second = await Store.open(database);
      assert.deepEqual(await second.migrate(), []);
      assert.equal(await second.users.count(), 2);
      await second.close();
    });

    test('a job goes accepted → running → completed, and a terminal status never changes again', async () => {
      const job = await newJob(alice);
      assert.equal(typeof job.created_at, 'number');
      assert.equal(
        await store.jobs.markRunning(job.id, 'agent-a', 'sbx', 1000),
        undefined,
        'an unclaimed job cannot start',
      );
      assert.equal(await store.jobs.claim(job.id, 'agent-a'), true);
      assert.equal((await store.jobs.get(job.id))?.agent_id, 'agent-a');
      assert.equal(await store.jobs.claim(job.id, 'agent-b'), false, 'a job is handed to one agent only');
      assert.equal(
        await store.jobs.markRunning(job.id, 'agent-b', 'sbx', 1000),
        undefined,
        'only its agent may start it',
      );
      const running = await store.jobs.markRunning(job.id, 'agent-a', 'sbx-1', 1_700_000_000_000);
      assert.equal(running?.status, 'running');
      assert.equal(running?.sandbox_id, 'sbx-1');
      assert.equal(running?.started_at, 1_700_000_000_000);
      assert.equal(typeof running?.started_at, 'number');

      const done = await store.jobs.finish(job.id, {
        status: 'completed',
        exitCode: 0,
        errorMessage: null,
        completedAt: 1_700_000_000_500,
      });
      assert.equal(done?.status, 'completed');
      assert.equal(done?.exit_code, 0);

      assert.equal(
        await store.jobs.finish(job.id, { status: 'error', exitCode: null, errorMessage: 'late', completedAt: 1 }),
        undefined,
      );
      assert.equal(await store.jobs.stopQueued(job.id), undefined);
      assert.equal(await store.jobs.markRunning(job.id, 'agent-a', 'sbx-2', 1), undefined);
      assert.equal(
        (await store.jobs.onAgents('agent-a')).some((j) => j.id === job.id),
        false,
        'a finished job is on no agent',
      );
      const after = await store.jobs.get(job.id);
      assert.equal(after?.status, 'completed');
      assert.equal(after?.exit_code, 0);
      assert.equal(after?.error_message, null);
      assert.equal(after?.completed_at, 1_700_000_000_500);
    });

    test('a queued job can be stopped; a dispatched one only through its agent', async () => {
      const queued = await newJob(alice);
      const stopped = await store.jobs.stopQueued(queued.id);
      assert.equal(stopped?.status, 'stopped');
      assert.equal(await store.jobs.claim(queued.id, 'agent-a'), false, 'a stopped job is never dispatched');

      const dispatched = await newJob(alice);
      await store.jobs.claim(dispatched.id, 'agent-a');
      assert.equal(await store.jobs.stopQueued(dispatched.id), undefined);
      const lost = await store.jobs.onAgents('agent-a');
      assert.ok(lost.some((j) => j.id === dispatched.id));
      await store.jobs.finish(
        dispatched.id,
        {
          status: 'error',
          exitCode: null,
          errorMessage: 'the agent running this job disconnected',
          completedAt: Date.now(),
        },
        'agent-a',
      );
      const row = await store.jobs.get(dispatched.id);
      assert.equal(row?.status, 'error');
      assert.equal(row?.error_message, 'the agent running this job disconnected');
    });

    test('the queue is oldest first and holds only undispatched accepted jobs', async () => {
      const fresh = await Store.open(database); // same data, separate connection
      const before = (await fresh.jobs.queued(1000)).map((j) => j.id);
      const a = await newJob(bob);
      const b = await newJob(bob);
      const c = await newJob(bob);
      await store.jobs.claim(b.id, 'agent-a');
      const queue = (await fresh.jobs.queued(1000)).map((j) => j.id).filter((id) => !before.includes(id));
      assert.deepEqual(queue, [a.id, c.id]);
      await fresh.close();
      await store.jobs.stopQueued(a.id);
      await store.jobs.stopQueued(c.id);
      await store.jobs.finish(b.id, {
        status: 'error',
        exitCode: null,
        errorMessage: 'cleanup',
        completedAt: Date.now(),
      });
    });

    test('log lines: a resent seq is ignored, reads are ordered and resume after a seq', async () => {
      const job = await newJob(alice);
      const line = (seq: number, message: string, stream: OutputLine['stream'] = 'stdout'): OutputLine => ({
        seq,
        ts: 1000 + seq,
        stream,
        message,
      });
      const first = await store.logs.append(job.id, [line(2, 'two'), line(1, 'one'), line(3, 'three', 'stderr')]);
      assert.deepEqual(
        first.map((l) => l.seq),
        [1, 2, 3],
      );
      const again = await store.logs.append(job.id, [line(3, 'THREE AGAIN'), line(4, 'four ✓ "quoted"\ttab')]);
      assert.deepEqual(
        again.map((l) => l.seq),
        [4],
        'only the new line is reported',
      );

      const all = await store.logs.read(job.id);
      assert.deepEqual(
        all.map((l) => [l.seq, l.stream, l.message, l.ts]),
        [
          [1, 'stdout', 'one', 1001],
          [2, 'stdout', 'two', 1002],
          [3, 'stderr', 'three', 1003],
          [4, 'stdout', 'four ✓ "quoted"\ttab', 1004],
        ],
      );
      assert.deepEqual(
        (await store.logs.read(job.id, 2)).map((l) => l.seq),
        [3, 4],
      );
      assert.deepEqual(
        (await store.logs.read(job.id, 1, 2)).map((l) => l.seq),
        [2, 3],
      );
      assert.deepEqual(await store.logs.read(job.id, 4), []);

      const many = Array.from({ length: 2500 }, (_, i) => line(10 + i, `m${i}`));
      assert.equal((await store.logs.append(job.id, many)).length, 2500, 'big batches are stored in chunks');
      assert.equal((await store.logs.read(job.id, 0, 50_000)).length, 2504);
    });

    test('a finished job is deleted with all its lines (in slices); an unfinished one is not; expired ones are found by end time', async () => {
      const line = (seq: number): OutputLine => ({ seq, ts: 1000 + seq, stream: 'stdout', message: `l${seq}` });
      const done = await newJob(alice);
      await store.logs.append(
        done.id,
        Array.from({ length: 12_345 }, (_, i) => line(i + 1)),
      );
      const other = await newJob(alice);
      await store.logs.append(other.id, [line(1)]);
      assert.equal(await store.jobs.deleteFinished(done.id), 'unfinished', 'an accepted job is not deleted');
      assert.equal((await store.logs.read(done.id, 0, 50_000)).length, 12_345, 'nor are its lines');
      await store.jobs.stopQueued(done.id, 5_000);
      await store.jobs.stopQueued(other.id, 9_000);
      assert.deepEqual(await store.jobs.finishedBefore(6_000, 10), [done.id]);
      assert.equal(await store.jobs.deleteFinished(done.id), 'deleted');
      assert.equal(await store.jobs.get(done.id), undefined);
      assert.deepEqual(await store.logs.read(done.id), []);
      assert.equal(await store.jobs.deleteFinished(done.id), 'not_found');
      assert.deepEqual(await store.jobs.finishedBefore(6_000, 10), []);
      assert.equal((await store.logs.read(other.id)).length, 1, "another job's lines stay");
      assert.equal(await store.jobs.deleteFinished(other.id), 'deleted');
    });

    test("paging lists only the caller's jobs, newest first, with the total", async () => {
      const carol = (await store.users.create('carol')).id;
      const ids: string[] = [];
      for (let i = 0; i < 25; i++) ids.push((await newJob(carol, null, 2_000_000_000_000 + i)).id);
      await newJob(alice, null, 3_000_000_000_000);
      const p1 = await store.jobs.list(carol, 1, 10);
      const p2 = await store.jobs.list(carol, 2, 10);
      const p3 = await store.jobs.list(carol, 3, 10);
      const p4 = await store.jobs.list(carol, 4, 10);
      assert.equal(p1.total, 25);
      assert.deepEqual([p1.jobs.length, p2.jobs.length, p3.jobs.length, p4.jobs.length], [10, 10, 5, 0]);
      assert.deepEqual(
        [...p1.jobs, ...p2.jobs, ...p3.jobs].map((j) => j.id),
        [...ids].reverse(),
      );
      assert.ok([...p1.jobs, ...p2.jobs, ...p3.jobs].every((j) => j.user_id === carol));
    });

    test('a job is found by id or by name (the newest of that name), and only by its owner', async () => {
      const older = await newJob(alice, 'build', 1_000);
      const newer = await newJob(alice, 'build', 2_000);
      await newJob(bob, 'build', 3_000);
      assert.equal((await store.jobs.find(alice, 'build'))?.id, newer.id);
      assert.equal((await store.jobs.find(alice, older.id))?.id, older.id);
      assert.equal((await store.jobs.find(alice, older.id.toUpperCase()))?.id, older.id, 'ids are case-insensitive');
      assert.equal(await store.jobs.find(bob, older.id), undefined, "another user's job is not found");
      assert.notEqual((await store.jobs.find(bob, 'build'))?.user_id, alice);
      assert.equal(await store.jobs.find(alice, 'no-such-job'), undefined);
      assert.equal(await store.jobs.find(alice, "'; drop table jobs; --"), undefined);
    });

    test('what exec and stop run in: the job by id, else the newest unfinished one by name or workspace', async () => {
      const row = (id: string, status: string, name: string | null, workspace: string | null, at: number) =>
        store.jobs.insert({
          id,
          user_id: alice,
          name,
          script: '',
          status,
          workspace_id: workspace,
          created_at: at,
          spec: { vcpus: 1, memory_mb: 64, timeout_s: 10, network: 'none', disk_gb: 1, environment: {} },
        });
      const sandbox = await row('0190a0c2-0000-7000-8000-0000000000a1', 'running', 'box', 'box', 5_000);
      await row('0190a0c2-0000-7000-8000-0000000000a2', 'stopped', 'box', 'box', 6_000);
      const onWorkspace = await row('0190a0c2-0000-7000-8000-0000000000a3', 'running', null, 'ws', 7_000);
      const ended = await row('0190a0c2-0000-7000-8000-0000000000a4', 'completed', 'done', 'other', 8_000);
      assert.equal((await store.jobs.findLive(alice, 'box'))?.id, sandbox.id, 'the running one, not the newer stopped');
      assert.equal((await store.jobs.findLive(alice, 'ws'))?.id, onWorkspace.id, 'by workspace name');
      assert.equal((await store.jobs.findLive(alice, 'done'))?.id, ended.id, 'a finished one when nothing runs');
      assert.equal((await store.jobs.findLive(alice, ended.id.toUpperCase()))?.id, ended.id);
      assert.equal(await store.jobs.findLive(bob, 'box'), undefined, "another user's is not found");
      assert.equal(await store.jobs.findLive(bob, sandbox.id), undefined);
    });

    test('tokens are found by their hash, not once revoked; the first user is created only once', async () => {
      const token = `mags_${'A'.repeat(43)}`;
      await store.users.insertToken(alice, { hash: hashToken(token), prefix: token.slice(0, 12), name: 'test' });
      const found = await store.users.findByTokenHash(hashToken(token));
      assert.equal(found?.user.id, alice);
      assert.equal(found?.token.prefix, 'mags_AAAAAAA');
      assert.equal(await store.users.findByTokenHash(hashToken(`${token}x`)), undefined);
      await store.db.updateTable('tokens').set({ revoked_at: Date.now() }).where('id', '=', found!.token.id).execute();
      assert.equal(await store.users.findByTokenHash(hashToken(token)), undefined);
      const rows = await store.db.selectFrom('tokens').select('token_hash').execute();
      assert.ok(
        rows.every((r) => !r.token_hash.includes('mags_')),
        'the token itself is never stored',
      );

      assert.equal(
        await store.users.createFirst('owner', { hash: 'h', prefix: 'p', name: 'n' }),
        undefined,
        'users exist already',
      );
    });

    const newWorkspace = (
      userId: string,
      name: string,
      extra: { persistent?: boolean; active?: string; expires?: number } = {},
    ) =>
      store.workspaces.insert({
        id: randomUUID(),
        user_id: userId,
        name,
        persistent: extra.persistent ?? false,
        disk_gb: 2,
        active_job_id: extra.active ?? null,
        created_at: 1_000,
        expires_at: extra.expires ?? null,
      });
    const jobFor = (userId: string, workspace: string) => ({
      id: uuidv7(),
      user_id: userId,
      name: null,
      script: 'echo',
      status: 'accepted',
      spec,
      workspace_id: workspace,
      created_at: Date.now(),
    });
    const finish = { status: 'completed' as const, exitCode: 0, errorMessage: null, completedAt: 5_000 };

    test('workspaces: one per user and name, numbers come back as numbers, another user has their own', async () => {
      const ws = await newWorkspace(alice, 'ws-a');
      assert.ok(ws);
      assert.deepEqual(
        [
          ws.persistent,
          ws.disk_gb,
          ws.versions,
          ws.size_bytes,
          ws.file_count,
          ws.head_version,
          ws.agent_id,
          ws.active_job_id,
          ws.created_at,
        ],
        [0, 2, 0, 0, 0, null, null, null, 1_000],
      );
      assert.equal(await newWorkspace(alice, 'ws-a'), undefined, 'the name is taken');
      const bobs = await newWorkspace(bob, 'ws-a');
      assert.ok(bobs && bobs.id !== ws.id);
      assert.equal((await store.workspaces.get(alice, 'ws-a'))?.id, ws.id);
      assert.equal((await store.workspaces.get(bob, 'ws-a'))?.id, bobs.id);
      assert.equal(await store.workspaces.get(alice, 'no-such'), undefined);
      assert.ok((await store.workspaces.list(bob)).every((w) => w.user_id === bob));
      const big = await store.workspaces.update(ws.id, {
        size_bytes: 6 * 1024 ** 3,
        file_count: 12,
        head_version: 3,
        versions: 3,
        agent_id: 'agent-a',
      });
      assert.deepEqual([big?.size_bytes, big?.file_count, big?.head_version, big?.versions], [6 * 1024 ** 3, 12, 3, 3]);
      assert.equal(typeof (await store.workspaces.get(alice, 'ws-a'))?.size_bytes, 'number');
      await store.workspaces.forgetCopy(ws.id, 'agent-b');
      assert.equal(
        (await store.workspaces.getById(ws.id))?.agent_id,
        'agent-a',
        "another agent's report does not clear the holder",
      );
      await store.workspaces.forgetCopy(ws.id, 'agent-a');
      assert.equal((await store.workspaces.getById(ws.id))?.agent_id, null);
    });

    test('a workspace is taken by one job at a time, with the job stored in the same step', async () => {
      const ws = (await newWorkspace(alice, 'ws-take'))!;
      const results = await Promise.all(
        [1, 2, 3, 4, 5].map(() => store.jobs.insertOnWorkspace(jobFor(alice, 'ws-take'), ws.id)),
      );
      const won = results.filter((r) => r.ok);
      assert.equal(won.length, 1);
      const winner = won[0].ok ? won[0].job : undefined;
      for (const r of results) if (!r.ok) assert.equal(r.heldBy, winner?.id);
      const stored = await store.db.selectFrom('jobs').select('id').where('workspace_id', '=', 'ws-take').execute();
      assert.deepEqual(
        stored.map((j) => j.id),
        [winner?.id],
        'refused jobs are not stored',
      );
      assert.equal((await store.workspaces.getById(ws.id))?.active_job_id, winner?.id);
      assert.equal(await store.workspaces.reserve(ws.id, 'op:test:1'), false, 'a workspace in use cannot be reserved');
      await store.jobs.finish(winner!.id, finish);
      const freed = await store.workspaces.getById(ws.id);
      assert.equal(freed?.active_job_id, null);
      assert.equal(freed?.last_used_at, 5_000);
      assert.equal(freed?.expires_at, 5_000 + 600_000, 'a local workspace lives 10 minutes unused');
    });

    test('every way a job ends releases its workspace: finished, stopped while queued, failed with its agent', async () => {
      const a = (await newWorkspace(alice, 'ws-rel-a'))!;
      const b = (await newWorkspace(alice, 'ws-rel-b', { persistent: true }))!;
      const c = (await newWorkspace(alice, 'ws-rel-c'))!;
      const ja = await store.jobs.insertOnWorkspace(jobFor(alice, 'ws-rel-a'), a.id);
      const jb = await store.jobs.insertOnWorkspace(jobFor(alice, 'ws-rel-b'), b.id, { persistent: true });
      const jc = await store.jobs.insertOnWorkspace(jobFor(alice, 'ws-rel-c'), c.id);
      assert.ok(ja.ok && jb.ok && jc.ok);
      await store.jobs.stopQueued(ja.job.id, 7_000);
      await store.jobs.claim(jb.job.id, 'agent-r');
      await store.jobs.claim(jc.job.id, 'agent-r');
      assert.equal(
        await store.jobs.finish(jc.job.id, finish, 'agent-other'),
        undefined,
        'not on that agent: nothing changes',
      );
      assert.equal((await store.workspaces.getById(c.id))?.active_job_id, jc.job.id);
      for (const j of [jb.job, jc.job]) {
        await store.jobs.finish(
          j.id,
          { status: 'error', exitCode: null, errorMessage: 'gone', completedAt: 8_000 },
          'agent-r',
        );
      }
      const [ra, rb, rc] = await Promise.all([a, b, c].map((w) => store.workspaces.getById(w.id)));
      assert.deepEqual([ra?.active_job_id, rb?.active_job_id, rc?.active_job_id], [null, null, null]);
      assert.deepEqual([ra?.last_used_at, rb?.last_used_at, rc?.last_used_at], [7_000, 8_000, 8_000]);
      assert.equal(rb?.persistent, 1, 'taken with persistent: true made it persistent');
      assert.equal(rb?.expires_at, null, 'a persistent workspace never expires');
    });

    test('sleeping: frozen on its agent, or without a sandbox (workspace released); woken by requeue; taken over', async () => {
      const ws = (await newWorkspace(alice, 'ws-nap', { persistent: true }))!;
      const persistentSpec = { ...spec, workspace: { id: ws.id, name: 'ws-nap', persistent: true } };
      const first = await store.jobs.insertOnWorkspace({ ...jobFor(alice, 'ws-nap'), spec: persistentSpec }, ws.id);
      assert.ok(first.ok);
      const id = first.job.id;
      await store.jobs.claim(id, 'agent-s');
      await store.jobs.markRunning(id, 'agent-s', 'sbx-1', 1_000);
      assert.equal(await store.jobs.markSleeping(id, 'agent-other'), undefined, 'only from its agent');
      assert.equal((await store.jobs.markSleeping(id, 'agent-s'))?.status, 'sleeping');
      assert.equal((await store.jobs.markAwake(id, 'agent-s'))?.status, 'running');
      // The script ended: it sleeps without a sandbox, its exit code kept, its workspace free.
      const slept = await store.jobs.sleepWithoutSandbox(id, { agentId: 'agent-s', exitCode: 3, endedAt: 2_000 });
      assert.deepEqual(
        [slept?.status, slept?.agent_id, slept?.sandbox_id, slept?.exit_code, slept?.completed_at],
        ['sleeping', null, null, 3, 2_000],
      );
      assert.equal((await store.workspaces.getById(ws.id))?.active_job_id, null);
      assert.deepEqual(await store.jobs.requeue(id, 'agent-s'), { ok: false, heldBy: null }, 'not on that agent now');
      // Woken: queued again as a sandbox that stays up, holding its workspace again.
      const woken = await store.jobs.requeue(id);
      assert.ok(woken.ok);
      assert.deepEqual([woken.job.status, woken.job.agent_id, woken.job.spec?.long_lived], ['accepted', null, true]);
      assert.equal((await store.workspaces.getById(ws.id))?.active_job_id, id);
      assert.equal(
        (await store.jobs.queued(1000)).some((j) => j.id === id),
        true,
      );
      await store.jobs.claim(id, 'agent-s');
      await store.jobs.markRunning(id, 'agent-s', 'sbx-2', 3_000);
      // An always-on sandbox that died is queued again from its agent, keeping its workspace.
      const again = await store.jobs.requeue(id, 'agent-s');
      assert.ok(again.ok);
      await store.jobs.claim(id, 'agent-s');
      await store.jobs.markRunning(id, 'agent-s', 'sbx-3', 4_000);
      await store.jobs.sleepWithoutSandbox(id, { agentId: 'agent-s' });
      // A new job on the workspace ends the one sleeping without a sandbox, keeping its exit code.
      const next = await store.jobs.insertOnWorkspace({ ...jobFor(alice, 'ws-nap'), spec: persistentSpec }, ws.id);
      assert.ok(next.ok);
      assert.deepEqual(
        next.ended.map((j) => [j.id, j.status, j.exit_code]),
        [[id, 'completed', 3]],
      );
      assert.deepEqual(await store.jobs.requeue(id), { ok: false, heldBy: null }, 'an ended job is not woken');
      await store.jobs.finish(next.job.id, finish);
    });

    test('reservations hold a workspace; at start, holds of finished or missing jobs are released', async () => {
      const ws = (await newWorkspace(alice, 'ws-res'))!;
      assert.equal(await store.workspaces.reserve(ws.id, 'op:delete:x'), true);
      const refused = await store.jobs.insertOnWorkspace(jobFor(alice, 'ws-res'), ws.id);
      assert.deepEqual(refused, { ok: false, heldBy: 'op:delete:x' });
      await store.workspaces.releaseReservation(ws.id, 'op:other');
      assert.equal(
        (await store.workspaces.getById(ws.id))?.active_job_id,
        'op:delete:x',
        'only its own token releases it',
      );
      const live = (await newWorkspace(alice, 'ws-live'))!;
      const taken = await store.jobs.insertOnWorkspace(jobFor(alice, 'ws-live'), live.id);
      assert.ok(taken.ok);
      const ended = (await newWorkspace(alice, 'ws-ended', { active: 'not-a-job' }))!;
      assert.ok((await store.workspaces.releaseOrphaned()) >= 2);
      assert.equal((await store.workspaces.getById(ws.id))?.active_job_id, null);
      assert.equal((await store.workspaces.getById(ended.id))?.active_job_id, null);
      assert.equal(
        (await store.workspaces.getById(live.id))?.active_job_id,
        taken.job.id,
        'an unfinished job keeps its workspace',
      );
      assert.equal(await store.workspaces.reserve(ws.id, 'op:delete:y'), true);
      assert.equal(await store.workspaces.delete(ws.id, 'op:delete:other'), false);
      assert.equal(await store.workspaces.delete(ws.id, 'op:delete:y'), true);
      assert.equal(await store.workspaces.getById(ws.id), undefined);
      await store.jobs.finish(taken.job.id, finish);
    });

    test('expired local workspaces no host holds are listed for their owner only', async () => {
      const old = (await newWorkspace(alice, 'ws-old', { expires: 2_000 }))!;
      await newWorkspace(alice, 'ws-fresh', { expires: 9_000 });
      await newWorkspace(alice, 'ws-old-persistent', { persistent: true, expires: 2_000 });
      const held = (await newWorkspace(alice, 'ws-old-held', { expires: 2_000 }))!;
      await store.workspaces.setAgent(held.id, 'agent-h');
      await newWorkspace(bob, 'ws-old-bob', { expires: 2_000 });
      const expired = (await store.workspaces.expiredLocal(alice, 5_000)).map((w) => w.name);
      assert.deepEqual(expired, ['ws-old']);
      assert.equal(old.name, 'ws-old');
    });

    test('files: stored per user, listed newest first, deleted by their owner only', async () => {
      const file = (userId: string, name: string, createdAt: number) => ({
        id: uuidv7(),
        user_id: userId,
        name,
        size: 6 * 1024 ** 3,
        sha256: 'ab'.repeat(32),
        object_key: `files/${userId}/${name}`,
        created_at: createdAt,
      });
      const f1 = await store.files.insert(file(alice, 'a.csv', 1_000));
      const f2 = await store.files.insert(file(alice, 'b.csv', 2_000));
      const fb = await store.files.insert(file(bob, 'a.csv', 3_000));
      assert.deepEqual(
        (await store.files.list(alice)).map((f) => f.id),
        [f2.id, f1.id],
      );
      assert.equal((await store.files.get(alice, f1.id))?.size, 6 * 1024 ** 3);
      assert.equal(await store.files.get(alice, fb.id), undefined);
      assert.equal(await store.files.delete(alice, fb.id), undefined, "another user's file is not deleted");
      assert.equal((await store.files.get(bob, fb.id))?.name, 'a.csv');
      assert.equal((await store.files.delete(alice, f1.id))?.id, f1.id);
      assert.deepEqual(
        (await store.files.list(alice)).map((f) => f.id),
        [f2.id],
      );
    });

    test('deleting a user deletes their workspaces and files', async () => {
      const dave = (await store.users.create('dave')).id;
      await newWorkspace(dave, 'ws-d');
      await store.files.insert({
        id: uuidv7(),
        user_id: dave,
        name: 'x',
        size: 1,
        sha256: 'x',
        object_key: 'files/x',
        created_at: 1,
      });
      await store.db.deleteFrom('users').where('id', '=', dave).execute();
      assert.deepEqual(await store.workspaces.list(dave), []);
      assert.deepEqual(await store.files.list(dave), []);
    });

    test('agents are recorded, and marked offline', async () => {
      const info = {
        id: 'agent-z',
        name: 'z',
        runtime: 'crun 1.8.1',
        version: '0.1.0',
        capacity: 3,
        pool: { idle: 0, busy: 0, sleeping: 0, min: 0, max: 0 },
      };
      await store.agents.upsert(info, 5000);
      await store.agents.upsert({ ...info, capacity: 5 }, 6000);
      let row = (await store.agents.list()).find((a) => a.id === 'agent-z');
      assert.deepEqual([row?.capacity, row?.status, row?.last_seen_at, row?.first_seen_at], [5, 'online', 6000, 5000]);
      await store.agents.markOffline('agent-z', 7000);
      row = (await store.agents.list()).find((a) => a.id === 'agent-z');
      assert.deepEqual([row?.status, row?.last_seen_at], ['offline', 7000]);
    });
  });
}

describe('store on a fresh SQLite file', () => {
  test('the first user is created once, atomically', async () => {
    const dir = tempDir();
    const store = await Store.open(join(dir.path, 'sub', 'dir', 'mags.db'));
    try {
      const results = await Promise.all(
        [1, 2, 3].map((i) => store.users.createFirst('owner', { hash: `h${i}`, prefix: 'p', name: 'n' })),
      );
      assert.equal(results.filter(Boolean).length, 1);
      assert.equal(await store.users.count(), 1);
    } finally {
      await store.close();
      dir.remove();
    }
  });
});
