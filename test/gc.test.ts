// Storage reclaimed, end to end through a real `mags server` (control plane + agent + crun): a deleted workspace's
// versions, blobs and packs leave the object store (counted in the local directory store and in Ceph RGW), what a
// fork or a kept version references stays and restores, gc racing syncs deletes nothing they commit, and the server
// collects by itself every --gc-interval.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import {
  BLOBS_PREFIX,
  baseKey,
  decodeManifest,
  listVersions,
  type Manifest,
  type ObjectStore,
  openObjectStore,
  PACKS_PREFIX,
  readManifest,
  restore,
  restoreManifest,
} from '@mags/objects';
import { api, CLI, freePort, leftovers, ok, runCli, startServer, type TestServer } from './harness.js';

const S3_URL = process.env.MAGS_TEST_S3_URL;
const servers: TestServer[] = [];
const instances: string[] = [];
const scratch: string[] = [];

function newInstance(prefix: string): string {
  const instance = `${prefix}${randomBytes(2).toString('hex')}`;
  instances.push(instance);
  return instance;
}

function tempDir(what: string): string {
  const dir = mkdtempSync(path.join(tmpdir(), `mags-gc-test-${what}-`));
  scratch.push(dir);
  return dir;
}

async function start(args: string[]): Promise<TestServer> {
  const s = await startServer(args);
  servers.push(s);
  return s;
}

/** A server of its own instance on `objects`, with no warm sandboxes, the given grace and gc interval. */
function startGcServer(prefix: string, o: { objects: string; graceMs: number; interval: string }): Promise<TestServer> {
  const args = ['--instance', newInstance(prefix), '--warm', '0', '--gc-interval', o.interval];
  return start([...args, '--gc-grace', `${o.graceMs / 1000}s`, '--objects', o.objects]);
}

after(async () => {
  for (const s of servers) await s.stop().catch(() => {});
  for (const instance of instances) {
    const left = leftovers(instance);
    assert.deepEqual(left.mounts, [], `no sandbox mounts of ${instance} remain`);
    for (const dir of ['workspaces', 'bases', 'cache'])
      rmSync(`/var/lib/mags/${dir}/${instance}`, { recursive: true, force: true });
  }
  for (const dir of scratch) rmSync(dir, { recursive: true, force: true });
});

/** `mags server gc --json` through the CLI, as the owner runs it. */
async function gcNow(server: TestServer): Promise<Record<string, number>> {
  const r = await runCli(server, ['server', 'gc', '--json']);
  assert.equal(r.code, 0, r.stderr);
  return JSON.parse(r.stdout) as Record<string, number>;
}

async function ownerId(server: TestServer): Promise<string> {
  return (await api(server, 'GET', '/api/v1/status')).body.user.id as string;
}

/** Every object under a prefix: key → size and date. */
async function objectsUnder(
  store: ObjectStore,
  prefix: string,
): Promise<Map<string, { size: number; lastModified: Date }>> {
  const out = new Map<string, { size: number; lastModified: Date }>();
  for await (const o of store.list(prefix)) out.set(o.key, { size: o.size, lastModified: o.lastModified });
  return out;
}

/** The blob and pack keys a manifest references. */
function refsOf(m: Manifest): Set<string> {
  const keys = new Set<string>();
  for (const e of m.entries) {
    if (e.pack) keys.add(PACKS_PREFIX + e.pack.sha256);
    else if (e.sha256 && e.size) keys.add(BLOBS_PREFIX + e.sha256);
  }
  return keys;
}

/** What every kept version of a workspace references (its manifests are read before anything is deleted). */
async function refsOfWorkspace(store: ObjectStore, ws: { owner: string; name: string }): Promise<Set<string>> {
  const keys = new Set<string>();
  for (const v of await listVersions(store, ws))
    for (const k of refsOf(await readManifest(store, ws, v.version))) keys.add(k);
  return keys;
}

// Random content written in the sandbox: a large file (its own blob) and small ones (packed).
const WRITE = (dir: string, big: number, small: number) =>
  `mkdir -p ${dir}/small && head -c ${big} /dev/urandom > ${dir}/big && for i in $(seq 1 ${small}); do head -c 300 /dev/urandom > ${dir}/small/$i; done`;
const DIGEST = (dir: string) => `cd ${dir} && find . -type f | LC_ALL=C sort | xargs sha256sum`;

function reclaimSuite(label: string, objects: () => string | undefined) {
  describe(`gc on ${label}`, () => {
    const grace = 20_000;
    let server: TestServer;
    let store: ObjectStore;
    let owner: string;
    const ws = (name: string) => ({ owner, name });

    before(async () => {
      const url = objects();
      const dataDir = tempDir('home');
      const objectsUrl = url ?? path.join(dataDir, 'objects');
      // Syncs must commit within a quarter of the grace period: 5 s is ample for these small workspaces.
      server = await startGcServer('g', { objects: objectsUrl, graceMs: grace, interval: 'off' });
      store = openObjectStore(objectsUrl);
      owner = await ownerId(server);
    });
    after(() => store?.close());

    test("a deleted workspace's versions, blobs and packs are gone after the grace period; a fork's base and kept versions stay and restore", async () => {
      // doomed: two versions of its own. golden: forked at version 1, then changed, then deleted. keeper: version 1
      // has files that version 2 deleted.
      await ok(server, WRITE('/root/d', 300_000, 30), { workspace_id: 'doomed', persistent: true });
      await ok(server, `${WRITE('/root/d2', 200_000, 10)} && rm /root/d/big`, {
        workspace_id: 'doomed',
        persistent: true,
      });
      await ok(server, WRITE('/root/g', 250_000, 20), { workspace_id: 'golden', persistent: true });
      const goldenDigest = await ok(server, DIGEST('/root/g'), { workspace_id: 'golden', persistent: true });
      assert.equal(
        (await api(server, 'POST', '/api/v1/mags-workspaces', { name: 'fork', persistent: true, base: 'golden' }))
          .status,
        201,
      );
      await ok(server, `rm -r /root/g && ${WRITE('/root/g2', 150_000, 5)}`, {
        workspace_id: 'golden',
        persistent: true,
      });
      await ok(server, WRITE('/root/k', 220_000, 15), { workspace_id: 'keeper', persistent: true });
      const keeperDigest = await ok(server, DIGEST('/root/k'), { workspace_id: 'keeper', persistent: true });
      const keeperV1 = (await api(server, 'GET', '/api/v1/mags-workspaces/keeper')).body.current_version as number;
      await ok(server, 'rm -r /root/k && echo later > /root/later', { workspace_id: 'keeper', persistent: true });

      // What is referenced by what is going, and by what stays.
      const forkBase = decodeManifest(await store.getBuffer(baseKey(ws('fork'))), 'fork base');
      const kept = new Set([
        ...refsOf(forkBase),
        ...(await refsOfWorkspace(store, ws('keeper'))),
        ...(await refsOfWorkspace(store, ws('fork'))),
      ]);
      const going = new Set(
        [...(await refsOfWorkspace(store, ws('doomed'))), ...(await refsOfWorkspace(store, ws('golden')))].filter(
          (k) => !kept.has(k),
        ),
      );
      const goingBlobs = [...going].filter((k) => k.startsWith(BLOBS_PREFIX));
      const goingPacks = [...going].filter((k) => k.startsWith(PACKS_PREFIX));
      assert.ok(
        goingBlobs.length >= 2 && goingPacks.length >= 2,
        `the deleted workspaces have blobs and packs of their own (${goingBlobs.length}, ${goingPacks.length})`,
      );
      assert.ok(refsOf(forkBase).size >= 2, "the fork's base references golden's version 1");
      const blobsBefore = await objectsUnder(store, BLOBS_PREFIX);
      const packsBefore = await objectsUnder(store, PACKS_PREFIX);
      for (const k of going) assert.ok(blobsBefore.has(k) || packsBefore.has(k), `${k} is in the store`);

      for (const name of ['doomed', 'golden'])
        assert.equal((await api(server, 'DELETE', `/api/v1/mags-workspaces/${name}`)).status, 200);
      for (const name of ['doomed', 'golden']) {
        assert.equal(
          (await objectsUnder(store, `workspaces/${owner}/${name}/`)).size,
          0,
          `${name}'s head and manifests are deleted with it`,
        );
      }

      // Within the grace period nothing is deleted: the deleted workspaces' content is counted as young.
      const early = await gcNow(server);
      assert.equal(early.blobsDeleted + early.packsDeleted, 0);
      assert.ok(
        early.blobsSpared >= goingBlobs.length && early.packsSpared >= goingPacks.length,
        JSON.stringify(early),
      );
      assert.equal((await objectsUnder(store, BLOBS_PREFIX)).size, blobsBefore.size);

      // Once the newest of it is older than the grace period (plus the store's 1 s date resolution), it goes.
      const newest = Math.max(
        ...[...going].map((k) => (blobsBefore.get(k) ?? packsBefore.get(k))!.lastModified.getTime()),
      );
      await sleep(Math.max(0, newest + grace + 2000 - Date.now()));
      const r = await gcNow(server);
      assert.equal(r.blobsDeleted, goingBlobs.length, JSON.stringify(r));
      assert.equal(r.packsDeleted, goingPacks.length, JSON.stringify(r));
      const bytes = [...going].reduce((sum, k) => sum + (blobsBefore.get(k) ?? packsBefore.get(k))!.size, 0);
      assert.equal(r.bytesDeleted, bytes);
      assert.ok(r.bases >= 1);
      const blobsAfter = await objectsUnder(store, BLOBS_PREFIX);
      const packsAfter = await objectsUnder(store, PACKS_PREFIX);
      assert.equal(
        blobsAfter.size,
        blobsBefore.size - goingBlobs.length,
        "exactly the deleted workspaces' blobs are gone",
      );
      assert.equal(
        packsAfter.size,
        packsBefore.size - goingPacks.length,
        "exactly the deleted workspaces' packs are gone",
      );
      for (const k of going) assert.ok(!blobsAfter.has(k) && !packsAfter.has(k), `${k} is deleted`);
      for (const k of kept)
        assert.ok(blobsAfter.has(k) || packsAfter.has(k), `${k}, referenced by the fork or a kept version, stays`);

      // Both restore from the store alone (a fresh cache, every blob checked against its hash) ...
      const fromStore = tempDir('restore');
      await restoreManifest(store, forkBase, path.join(fromStore, 'fork'), { cacheDir: tempDir('cache') });
      await restore(store, { ...ws('keeper'), version: keeperV1 }, path.join(fromStore, 'keeper'), {
        cacheDir: tempDir('cache'),
      });
      const sha = (file: string) => createHash('sha256').update(readFileSync(file)).digest('hex');
      assert.ok(goldenDigest.includes(`${sha(path.join(fromStore, 'fork/root/g/big'))}  ./big`));
      assert.ok(keeperDigest.includes(`${sha(path.join(fromStore, 'keeper/root/k/big'))}  ./big`));
      // ... and in a sandbox: the fork runs on golden's version 1, and keeper rolls back to its version 1.
      assert.equal(await ok(server, DIGEST('/root/g'), { workspace_id: 'fork', persistent: true }), goldenDigest);
      assert.equal(
        (await api(server, 'POST', '/api/v1/mags-workspaces/keeper/restore', { version: keeperV1 })).status,
        200,
      );
      assert.equal(await ok(server, DIGEST('/root/k'), { workspace_id: 'keeper', persistent: true }), keeperDigest);

      // Nothing is left to free; the CLI says so in words.
      const again = await runCli(server, ['server', 'gc']);
      assert.equal(again.code, 0, again.stderr);
      assert.match(
        again.stdout,
        /^freed 0 B: 0 versions, 0 blobs and 0 packs deleted\nkept \d+ blobs? and \d+ packs? in use \(\d+ fork bases?\)\n/,
      );
    });
  });
}

reclaimSuite('the local store', () => undefined);
reclaimSuite('Ceph RGW (S3)', () => {
  assert.ok(S3_URL, 'MAGS_TEST_S3_URL is set by scripts/test.sh');
  // Its own prefix in the shared test bucket.
  return S3_URL.replace(/^(s3:\/\/[^?]*?)(\?|$)/, `$1/gc-${randomBytes(3).toString('hex')}$2`);
});

describe('gc racing syncs', () => {
  test('gc run over and over while syncs commit deletes nothing a committed version references', async () => {
    // Each sync must commit within a quarter of the grace period (else it gives up and commits nothing): 5 s, so that
    // a loaded machine with gc running back to back still commits every round.
    const grace = 20_000;
    const objectsDir = tempDir('objects');
    const server = await startGcServer('x', { objects: objectsDir, graceMs: grace, interval: 'off' });
    const store = openObjectStore(objectsDir);
    const owner = await ownerId(server);
    try {
      // Six contents, each a large file (a blob) and small ones (packed), that the workspaces below write again; a
      // deleted workspace held them all first. Every other round writes variant 0-2; the rounds between write variant 3
      // while the seed's copy is younger than a sixth of the grace period, 4 until two thirds, then 5: a sync finds
      // them unreferenced in the store, young enough to reuse, too old to reuse (it must upload again), or being
      // deleted by gc.
      const variant = (k: number) =>
        `mkdir -p /root/c && yes variant-${k} | head -c 200000 > /root/c/big && for i in 1 2 3 4 5 6; do echo small-${k}-$i > /root/c/s$i; done`;
      const seed = [0, 1, 2, 3, 4, 5].map((k) => `${variant(k)} && mv /root/c /root/a${k}`).join(' && ');
      await ok(server, seed, { workspace_id: 'seed', persistent: true });
      assert.equal((await api(server, 'DELETE', '/api/v1/mags-workspaces/seed')).status, 200);
      const seedDeleted = Date.now();

      // gc as fast as it goes, until the syncs are done.
      let syncing = true;
      const runs: Array<Record<string, number>> = [];
      let conflicts = 0;
      const collector = (async () => {
        while (syncing) {
          const r = await api(server, 'POST', '/api/v1/admin/gc');
          if (r.status === 409) conflicts++;
          else assert.equal(r.status, 200, JSON.stringify(r.body));
          if (r.status === 200) runs.push(r.body);
        }
      })();

      // Three workspaces commit version after version, mixing the shared contents, until the seed's objects have
      // been past the grace period for a while (so gc deletes them while syncs may still reuse them). Past 20
      // versions each sync prunes the oldest, so gc also races manifests vanishing under it (then it answers 409).
      const expected = new Map<string, Map<number, { k: number; round: number }>>();
      await Promise.all(
        ['r0', 'r1', 'r2'].map(async (name, i) => {
          const versions = new Map<number, { k: number; round: number }>();
          expected.set(name, versions);
          for (let round = 0; round < 4 || Date.now() < seedDeleted + 2 * grace; round++) {
            const age = Date.now() - seedDeleted;
            const k = round % 2 === 0 ? (i + round) % 3 : age < grace / 6 ? 3 : age < (2 * grace) / 3 ? 4 : 5;
            await ok(server, `rm -rf /root/c && ${variant(k)} && echo ${name}-${round} > /root/round`, {
              workspace_id: name,
              persistent: true,
            });
            const v = (await api(server, 'GET', `/api/v1/mags-workspaces/${name}`)).body.current_version as number;
            assert.ok(v, `${name} round ${round} committed a version`);
            versions.set(v, { k, round });
          }
        }),
      );
      syncing = false;
      await collector;
      assert.ok(runs.length >= 3, `gc ran ${runs.length} times during the syncs`);
      assert.ok(
        runs.some((r) => r.blobs_deleted + r.packs_deleted > 0),
        `gc deleted the seed's unreferenced objects while the syncs ran (${conflicts} runs answered 409)`,
      );

      // Every committed version restores from the store alone, byte for byte.
      const contentOf = (k: number) =>
        Buffer.from(`variant-${k}\n`.repeat(200000 / `variant-${k}\n`.length + 1).slice(0, 200000));
      for (const [name, versions] of expected) {
        const kept = (await listVersions(store, { owner, name })).map((v) => v.version).sort((a, b) => a - b);
        const committed = [...versions.keys()].sort((a, b) => a - b);
        assert.deepEqual(kept, committed.slice(-20), `${name} keeps the last 20 versions it committed`);
        for (const version of kept) {
          const { k, round } = versions.get(version)!;
          const dir = path.join(tempDir('race'), 'u');
          await restore(store, { owner, name, version }, dir, { cacheDir: tempDir('cache') });
          assert.ok(readFileSync(path.join(dir, 'root/c/big')).equals(contentOf(k)), `${name} v${version}: big`);
          for (let i = 1; i <= 6; i++)
            assert.equal(readFileSync(path.join(dir, `root/c/s${i}`), 'utf8'), `small-${k}-${i}\n`);
          assert.equal(readFileSync(path.join(dir, 'root/round'), 'utf8'), `${name}-${round}\n`);
        }
      }
    } finally {
      await store.close();
    }
  });
});

describe("syncs keep to the server's --gc-grace", () => {
  test('content a deleted workspace left, older than a quarter of the grace period, is uploaded again rather than reused', async () => {
    // gc may delete unreferenced content older than the grace period at any moment, so a sync may reuse it without
    // uploading only while it is younger than a quarter of that (gc-policy.ts): the embedded agent must use the
    // server's --gc-grace, not the library default of two hours.
    const grace = 8000;
    const objectsDir = tempDir('objects');
    const server = await startGcServer('q', { objects: objectsDir, graceMs: grace, interval: 'off' });
    const store = openObjectStore(objectsDir);
    try {
      const token = randomBytes(8).toString('hex');
      const write = `yes ${token} | head -c 200000 > /root/x`;
      const content = Buffer.from(`${token}\n`.repeat(200000 / (token.length + 1) + 1).slice(0, 200000));
      const key = BLOBS_PREFIX + createHash('sha256').update(content).digest('hex');
      await ok(server, write, { workspace_id: 'first', persistent: true });
      const written = (await store.head(key))?.lastModified.getTime();
      assert.ok(written, 'the content is a blob in the store');
      assert.equal((await api(server, 'DELETE', '/api/v1/mags-workspaces/first')).status, 200);
      await sleep(Math.max(0, written + grace / 4 + 1500 - Date.now()));
      await ok(server, write, { workspace_id: 'second', persistent: true });
      assert.ok(
        (await store.head(key))!.lastModified.getTime() > written,
        'the sync uploaded the old blob again, renewing its date',
      );
    } finally {
      await store.close();
    }
  });
});

describe('scheduled gc', () => {
  test('runs every --gc-interval by itself and logs what it freed', async () => {
    const objectsDir = tempDir('objects');
    const grace = 8000;
    const server = await startGcServer('s', { objects: objectsDir, graceMs: grace, interval: '1s' });
    const store = openObjectStore(objectsDir);
    try {
      const owner = await ownerId(server);
      await ok(server, WRITE('/root/t', 100_000, 5), { workspace_id: 'temp', persistent: true });
      const refs = await refsOfWorkspace(store, { owner, name: 'temp' });
      assert.equal((await api(server, 'DELETE', '/api/v1/mags-workspaces/temp')).status, 200);
      assert.ok(refs.size >= 2, 'a blob and a pack');
      // Its blob and pack may be freed by two runs (they were written a second apart): wait for the runs' total.
      let deleted = 0;
      let bytes = 0;
      await server.waitForLog((r) => {
        if (r.msg !== 'object store gc finished' || r.trigger !== 'schedule') return false;
        deleted += (r.blobsDeleted as number) + (r.packsDeleted as number);
        bytes += r.bytesDeleted as number;
        return deleted >= refs.size;
      }, "scheduled runs that deleted the workspace's blob and pack");
      assert.equal(deleted, refs.size);
      assert.ok(bytes >= 100_000);
      for (const k of refs) assert.equal(await store.head(k), undefined, `${k} is gone`);
    } finally {
      await store.close();
    }
  });
});

describe('mags server gc and the gc flags', () => {
  const mags = (args: string[], env: NodeJS.ProcessEnv = {}) => {
    const home = tempDir('cli-home');
    const r = spawnSync(process.execPath, [CLI, ...args], {
      env: { ...process.env, MAGS_HOME: home, ...env },
      encoding: 'utf8',
    });
    return { code: r.status, stdout: r.stdout, stderr: r.stderr };
  };

  test('--help explains it with an example; a bad duration is a usage error naming the flag', () => {
    const help = mags(['server', 'gc', '--help']);
    assert.equal(help.code, 0);
    assert.match(help.stdout, /Usage: mags server gc/);
    assert.match(help.stdout, /Examples:\n\s+\$ mags server gc/);
    for (const [flag, value] of [
      ['--gc-interval', '5x'],
      ['--gc-interval', '500ms'],
      ['--gc-grace', '0'],
      ['--gc-grace', 'off'],
    ]) {
      const r = mags(['server', flag, value]);
      assert.equal(r.code, 2, `${flag} ${value}`);
      assert.match(r.stderr, new RegExp(`^mags: .*${flag} takes a duration from 1s to 30d such as 90s, 15m or 2h`));
      assert.equal(r.stderr.trim().split('\n').length, 1, 'one sentence');
    }
  });

  test('a server that does not answer is one sentence on stderr and exit 1', async () => {
    const r = mags(['server', 'gc'], {
      MAGS_API_URL: `http://127.0.0.1:${await freePort()}`,
      MAGS_API_TOKEN: `mags_${'a'.repeat(43)}`,
    });
    assert.equal(r.code, 1);
    assert.equal(r.stdout, '');
    assert.match(r.stderr, /^mags: cannot reach the Mags server at http:\/\/127\.0\.0\.1:\d+/);
  });
});
