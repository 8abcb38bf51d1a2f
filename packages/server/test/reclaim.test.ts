// Storage reclaim: the gc settings, the owner-only admin route, and the service's schedule, one-run-at-a-time rule,
// failures and shutdown. What gc deletes in a real store, with syncs and forks, is test/gc.test.ts (end to end).
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { utimes } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { GcReport } from '@mags/api';
import {
  blobKey,
  DEFAULT_GC_GRACE_MS,
  LocalObjectStore,
  manifestKey,
  ObjectNotFoundError,
  type ObjectStore,
  packKey,
} from '@mags/objects';
import { pino } from 'pino';
import { resolveServerConfig } from '../src/config.js';
import { StorageReclaim } from '../src/workspaces/reclaim.js';
import { errorBody, freshPostgres, startTestServer, type TestServer, tempDir, waitFor } from './helpers.js';

const sha = (b: Buffer): string => createHash('sha256').update(b).digest('hex');
const HOUR = 3_600_000;

describe('gc settings', () => {
  test('default to hourly with the library grace period; take durations from flags or the environment', () => {
    const d = resolveServerConfig({}, {});
    assert.equal(d.gcIntervalMs, HOUR);
    assert.equal(d.gcGraceMs, DEFAULT_GC_GRACE_MS);
    assert.equal(resolveServerConfig({ gcIntervalMs: 'off' }, {}).gcIntervalMs, 0);
    assert.equal(resolveServerConfig({ gcIntervalMs: '0' }, {}).gcIntervalMs, 0);
    assert.equal(resolveServerConfig({ gcIntervalMs: '1h30m' }, {}).gcIntervalMs, 90 * 60_000);
    assert.equal(resolveServerConfig({ gcIntervalMs: '90' }, {}).gcIntervalMs, 90_000, 'a bare number is seconds');
    assert.equal(resolveServerConfig({}, { MAGS_GC_INTERVAL: '15m', MAGS_GC_GRACE: '3h' }).gcIntervalMs, 15 * 60_000);
    assert.equal(resolveServerConfig({}, { MAGS_GC_GRACE: '3h' }).gcGraceMs, 3 * HOUR);
    assert.equal(resolveServerConfig({ gcGraceMs: '4s' }, { MAGS_GC_GRACE: '3h' }).gcGraceMs, 4000, 'the flag wins');
  });

  test('a value that is not a duration in range is refused with a sentence naming the setting', () => {
    for (const [input, setting] of [
      [{ gcIntervalMs: '5x' }, 'gcInterval'],
      [{ gcIntervalMs: '500ms' }, 'gcInterval'],
      [{ gcIntervalMs: '31d' }, 'gcInterval'],
      [{ gcGraceMs: '0' }, 'gcGrace'],
      [{ gcGraceMs: 'off' }, 'gcGrace'],
      [{ gcGraceMs: '-1h' }, 'gcGrace'],
    ] as const) {
      assert.throws(
        () => resolveServerConfig(input, {}),
        (e: { status?: number; message?: string }) =>
          e.status === 400 && e.message!.startsWith(`${setting}: "`) && /such as 90s, 15m or 2h/.test(e.message!),
        JSON.stringify(input),
      );
    }
  });
});

for (const db of ['SQLite', 'PostgreSQL'] as const)
  describe(`POST /api/v1/admin/gc (${db})`, () => {
    let t: TestServer;
    let dropSchema: (() => Promise<void>) | undefined;
    before(async () => {
      const pg = db === 'PostgreSQL' ? await freshPostgres() : undefined;
      dropSchema = pg?.drop;
      t = await startTestServer({ agent: false, database: pg?.url, config: { gcIntervalMs: 'off', gcGraceMs: '30m' } });
    });
    after(async () => {
      await t?.close();
      await dropSchema?.();
    });

    /** Puts an object into the server's (local) store, dated `ageMs` ago. */
    const put = async (key: string, body: Buffer, ageMs: number): Promise<void> => {
      await t.server.objects.put(key, body);
      const when = new Date(Date.now() - ageMs);
      await utimes(join(t.server.config.dataDir, 'objects', key), when, when);
    };

    test('the owner gets what was freed: old unreferenced blobs and packs and uncommitted versions go, young ones stay', async () => {
      const old = [randomBytes(3000), randomBytes(5000)];
      const pack = randomBytes(7000);
      const young = randomBytes(100);
      for (const b of old) await put(blobKey(sha(b)), b, HOUR);
      await put(packKey(sha(pack)), pack, HOUR);
      await put(blobKey(sha(young)), young, 60_000);
      // A version no head keeps (its workspace was deleted, or its sync lost): gc deletes it once it is old.
      await put(manifestKey({ owner: 'u1', name: 'gone' }, 1), randomBytes(10), HOUR);

      const res = await t.server.app.inject({ method: 'POST', url: '/api/v1/admin/gc', headers: t.auth });
      assert.equal(res.statusCode, 200, res.body);
      const r = res.json() as GcReport;
      assert.equal(r.blobs_deleted, 2);
      assert.equal(r.packs_deleted, 1);
      assert.equal(r.manifests_deleted, 1);
      assert.equal(r.bytes_deleted, 3000 + 5000 + 7000, 'bytes of the blobs and packs');
      assert.equal(r.blobs_spared, 1, 'the young blob is kept');
      assert.equal(r.grace_ms, 30 * 60_000);
      assert.ok(Date.parse(r.started_at) > 0);
      for (const b of old) assert.equal(await t.server.objects.head(blobKey(sha(b))), undefined);
      assert.equal(await t.server.objects.head(packKey(sha(pack))), undefined);
      assert.ok(await t.server.objects.head(blobKey(sha(young))));
    });

    test('another user gets 403 and nothing is deleted; no token is 401', async () => {
      const stale = randomBytes(64);
      await put(blobKey(sha(stale)), stale, HOUR);
      const mallory = await t.server.store.users.create('mallory');
      const token = await t.server.auth.createToken(mallory.id, 'test');
      const res = await t.server.app.inject({
        method: 'POST',
        url: '/api/v1/admin/gc',
        headers: { authorization: `Bearer ${token}` },
      });
      assert.match(errorBody(res, 403, 'forbidden').error, /only the server's owner may run garbage collection/);
      assert.ok(await t.server.objects.head(blobKey(sha(stale))), 'refused before anything was deleted');
      errorBody(await t.server.app.inject({ method: 'POST', url: '/api/v1/admin/gc' }), 401, 'unauthorized');
    });

    test('is described in the OpenAPI document with its report', async () => {
      const doc = (await t.server.app.inject({ method: 'GET', url: '/api/v1/openapi.json' })).json();
      const op = doc.paths['/api/v1/admin/gc'].post;
      assert.deepEqual(op.tags, ['admin']);
      assert.ok(op.responses['200'] && op.responses['403']);
      assert.ok(op.responses['200'].content['application/json'].schema.properties.bytes_deleted);
    });
  });

describe('the gc service', () => {
  /** A local store whose methods can be replaced, and a logger whose records the test can wait for. */
  const setup = (hooksOf: (inner: ObjectStore) => Partial<ObjectStore> = () => ({})) => {
    const dir = tempDir();
    const inner = new LocalObjectStore(dir.path);
    const hooks = hooksOf(inner);
    const objects = new Proxy(inner, {
      get(target, prop) {
        const hook = (hooks as Record<PropertyKey, unknown>)[prop];
        if (hook) return hook;
        const v = Reflect.get(target, prop, target);
        return typeof v === 'function' ? v.bind(target) : v;
      },
    }) as ObjectStore;
    const logs: Array<{ level: number; msg: string; trigger?: string; blobsDeleted?: number }> = [];
    const logger = pino({ level: 'debug' }, { write: (line: string) => void logs.push(JSON.parse(line)) });
    const finished = (trigger: string) =>
      logs.filter((l) => l.msg === 'object store gc finished' && l.trigger === trigger);
    return { dir, inner, objects, logs, logger, finished };
  };

  /** A promise and the function that settles it. */
  const gate = () => {
    let open!: () => void;
    const opened = new Promise<void>((r) => (open = r));
    return { open, opened };
  };

  test('runs by itself every interval and logs what each run freed', async () => {
    const s = setup();
    const stale = randomBytes(100);
    await s.inner.put(blobKey(sha(stale)), stale);
    const when = new Date(Date.now() - HOUR);
    await utimes(join(s.dir.path, blobKey(sha(stale))), when, when);
    const reclaim = new StorageReclaim({ objects: s.objects, logger: s.logger, intervalMs: 20, graceMs: 60_000 });
    try {
      reclaim.start();
      await waitFor(() => s.finished('schedule').length >= 2, 'two scheduled runs');
      assert.equal(s.finished('schedule')[0].blobsDeleted, 1, 'the first run logged the blob it deleted');
      assert.equal(await s.inner.head(blobKey(sha(stale))), undefined);
    } finally {
      await reclaim.close();
      s.dir.remove();
    }
  });

  test('one run at a time: requests during a run wait for it and share the next one', async () => {
    const g = gate();
    let markers = 0;
    const s = setup((inner) => ({
      put: async (key, body, opts) => {
        if (key === 'gc/started') markers++;
        return inner.put(key, body, opts);
      },
      list: (prefix, opts) =>
        (async function* () {
          if (markers === 1) await g.opened; // the first run stops at its first listing
          yield* inner.list(prefix, opts);
        })(),
    }));
    const reclaim = new StorageReclaim({ objects: s.objects, logger: s.logger, intervalMs: 0, graceMs: 60_000 });
    try {
      const first = reclaim.collect();
      await waitFor(() => markers === 1, 'the first run to start');
      const second = reclaim.collect();
      const third = reclaim.collect();
      await new Promise((r) => setImmediate(r));
      assert.equal(markers, 1, 'no second run starts while one runs');
      g.open();
      const [a, b, c] = await Promise.all([first, second, third]);
      assert.equal(markers, 2, 'the two waiting requests shared one run');
      assert.equal(b, c);
      assert.notEqual(a, b);
      assert.ok(Date.parse(b.started_at) >= Date.parse(a.started_at));
    } finally {
      await reclaim.close();
      s.dir.remove();
    }
  });

  test('a run that keeps losing manifests to syncs answers 409 and the schedule goes on; other failures are logged as errors', async () => {
    const s = setup(() => ({
      // Every manifest vanishes between gc's listing and its read, as when syncs prune versions meanwhile.
      getBuffer: async (key) => {
        throw new ObjectNotFoundError(key, 'the test store');
      },
    }));
    await s.inner.put(manifestKey({ owner: 'u1', name: 'busy' }, 1), randomBytes(10));
    const reclaim = new StorageReclaim({ objects: s.objects, logger: s.logger, intervalMs: 20, graceMs: 60_000 });
    try {
      await assert.rejects(
        reclaim.collect(),
        (e: { status?: number; message?: string }) => e.status === 409 && /run gc again/.test(e.message!),
      );
      reclaim.start();
      const gaveUp = () => s.logs.filter((l) => l.level === 40 && /gave up/.test(l.msg) && l.trigger === 'schedule');
      await waitFor(() => gaveUp().length >= 2, 'two scheduled runs that gave up');
    } finally {
      await reclaim.close();
      s.dir.remove();
    }

    const broken = setup(() => ({
      list: () => {
        throw new Error('the disk is on fire');
      },
    }));
    const again = new StorageReclaim({
      objects: broken.objects,
      logger: broken.logger,
      intervalMs: 0,
      graceMs: 60_000,
    });
    try {
      await assert.rejects(again.collect(), /on fire/);
      assert.ok(broken.logs.some((l) => l.level === 50 && /gc failed; the next run tries again/.test(l.msg)));
    } finally {
      await again.close();
      broken.dir.remove();
    }
  });

  test('closing stops a run under way before it deletes anything, and refuses new runs', async () => {
    const g = gate();
    let listing = false;
    let deletes = 0;
    const s = setup((inner) => ({
      list: (prefix, opts) =>
        (async function* () {
          listing = true;
          await g.opened;
          yield* inner.list(prefix, opts);
        })(),
      deleteIfOlder: async (key, cutoff) => {
        deletes++;
        return inner.deleteIfOlder(key, cutoff);
      },
    }));
    const stale = randomBytes(100);
    await s.inner.put(blobKey(sha(stale)), stale);
    const when = new Date(Date.now() - HOUR);
    await utimes(join(s.dir.path, blobKey(sha(stale))), when, when);
    const reclaim = new StorageReclaim({ objects: s.objects, logger: s.logger, intervalMs: 0, graceMs: 60_000 });
    try {
      const run = reclaim.collect();
      await waitFor(() => listing, 'the run to list');
      const closed = reclaim.close();
      g.open();
      await assert.rejects(
        run,
        (e: { status?: number; message?: string }) => e.status === 503 && /shutting down/.test(e.message!),
      );
      await closed;
      assert.equal(deletes, 0, 'nothing was deleted after the abort');
      assert.ok(await s.inner.head(blobKey(sha(stale))));
      await assert.rejects(reclaim.collect(), (e: { status?: number }) => e.status === 503);
    } finally {
      s.dir.remove();
    }
  });
});
