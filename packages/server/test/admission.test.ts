// Admission under a burst: submits that arrive together are stored together (one transaction), yet each is judged
// alone: an invalid one fails with its own 4xx and sentence, one workspace still has exactly one winner. On SQLite
// and PostgreSQL alike.
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { errorBody, freshPostgres, PG_HELP, startTestServer, type TestServer, tempDir, waitFor } from './helpers.js';

const backends = [
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

test('the PostgreSQL test database is configured (MAGS_TEST_PG_URL)', () => {
  if (!process.env.MAGS_TEST_PG_URL) assert.fail(PG_HELP);
});

for (const backend of backends) {
  describe(`admission under a burst on ${backend.name}`, () => {
    let t: TestServer;
    let cleanup: () => Promise<void> = async () => undefined;
    before(async () => {
      const opened = await backend.open();
      cleanup = opened.cleanup;
      t = await startTestServer({ database: opened.database, agent: { capacity: 200 } });
    });
    after(async () => {
      const errors = t?.errors() ?? [];
      await t?.close();
      await cleanup();
      assert.deepEqual(errors, [], 'no request failed inside the server (a 500 is a bug)');
    });

    const submit = (body: Record<string, unknown>) =>
      t.server.app.inject({ method: 'POST', url: '/api/v1/mags-jobs', headers: t.auth, payload: body });

    test('of 80 submits at once, the invalid ones fail alone with their 4xx; every other is stored and started', async () => {
      const bodies: Array<Record<string, unknown>> = Array.from({ length: 80 }, () => ({ script: 'manual' }));
      bodies[17] = { script: 'echo bad', environment: { '1BAD': 'x' } };
      bodies[42] = { script: 'echo missing', file_ids: ['no-such-file'] };
      bodies[63] = { script: 'echo big', disk_gb: 100_000 };
      const answers = await Promise.all(bodies.map(submit));
      assert.match(errorBody(answers[17], 400, 'invalid_request').error, /"1BAD" is not a valid variable name/);
      assert.match(errorBody(answers[42], 404, 'not_found').error, /file "no-such-file" not found/);
      assert.ok([400, 422, 507].includes(answers[63].statusCode), answers[63].body);
      const accepted = answers.filter((_, i) => ![17, 42, 63].includes(i));
      for (const a of accepted) assert.equal(a.statusCode, 202, a.body);
      const ids = accepted.map((a) => a.json().request_id as string);
      assert.equal(new Set(ids).size, ids.length, 'each submit has its own job');
      for (const [i, id] of ids.entries()) {
        const res = await t.server.app.inject({ url: `/api/v1/mags-jobs/${id}/status`, headers: t.auth });
        assert.equal(res.statusCode, 200, `answered submit ${i} is stored`);
      }
      const agent = t.agent!;
      await waitFor(() => ids.every((id) => agent.running.has(id)), 'every accepted job to start');
      for (const id of ids) agent.exit(id, 0);
    });

    test('submits at once on one workspace, among others: exactly one takes it, the rest are 409 naming it', async () => {
      const onWorkspace = Array.from({ length: 12 }, () => submit({ script: 'manual', workspace_id: 'contended' }));
      const others = Array.from({ length: 20 }, () => submit({ script: 'manual' }));
      const [ws, plain] = await Promise.all([Promise.all(onWorkspace), Promise.all(others)]);
      const winners = ws.filter((r) => r.statusCode === 202);
      assert.equal(winners.length, 1, ws.map((r) => r.body).join(' | '));
      const holder = winners[0].json().request_id;
      for (const r of ws.filter((x) => x.statusCode !== 202)) {
        assert.match(errorBody(r, 409, 'workspace_busy').error, new RegExp(`in use by job ${holder}`));
      }
      for (const r of plain) assert.equal(r.statusCode, 202, r.body);
      const agent = t.agent!;
      await waitFor(() => agent.running.has(holder), 'the winner to start');
      agent.exit(holder, 0);
      for (const r of plain) {
        const id = r.json().request_id;
        await waitFor(() => agent.running.has(id), 'the other jobs to start');
        agent.exit(id, 0);
      }
    });
  });
}
