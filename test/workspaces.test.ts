// Workspaces end to end, through the REST API of a real `mags server` (control plane + agent + crun):
// persistence of the whole filesystem on the local store and on Ceph RGW, deletions, local expiry, conflicts,
// bases and forks, quotas and resize, uploads, crash safety and a storage outage.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, describe, test } from 'node:test';
import { Mags } from '@mags/sdk';
import { api, leftovers, ok, ROOT, runScript, startServer, type TestServer } from './harness.js';

const S3_URL = process.env.MAGS_TEST_S3_URL;
const servers: TestServer[] = [];
const instances: string[] = [];

function newInstance(prefix: string): string {
  const instance = `${prefix}${randomBytes(2).toString('hex')}`;
  instances.push(instance);
  return instance;
}

async function start(args: string[], home?: string): Promise<TestServer> {
  const s = await startServer(args, home);
  servers.push(s);
  return s;
}

after(async () => {
  for (const s of servers) await s.stop().catch(() => {});
  for (const instance of instances) {
    const left = leftovers(instance);
    assert.deepEqual(left.mounts, [], `no sandbox mounts of ${instance} remain`);
    assert.deepEqual(left.loops, [], `no loop devices of ${instance}'s sandbox layers remain`);
    const wsMounts = readFileSync('/proc/self/mountinfo', 'utf8')
      .split('\n')
      .map((l) => l.split(' ')[4])
      .filter((m) => m?.startsWith(`/var/lib/mags/workspaces/${instance}/`));
    assert.deepEqual(wsMounts, [], `no workspace disks of ${instance} stay mounted after the server stops`);
    for (const dir of ['workspaces', 'bases', 'cache'])
      rmSync(`/var/lib/mags/${dir}/${instance}`, { recursive: true, force: true });
  }
});

// A fingerprint of everything the persistence test writes: names, types, modes, owners, sizes, link targets and
// contents, so "round-trips byte for byte" is one comparison. (A directory's size depends on the order its entries
// were made in, so it is left out.)
const FINGERPRINT = String.raw`
cd /
{ find /root /opt /etc/myapp.conf ! -type d -printf '%p %y %m %U:%G %s %l\n'; find /root /opt -type d -printf '%p %y %m %U:%G\n'; } 2>/dev/null | LC_ALL=C sort | sha256sum | cut -c1-64
find /root /opt -type f -print0 | LC_ALL=C sort -z | xargs -0 sha256sum | sha256sum | cut -c1-64
`;

// For the crash test: files only (names, types, modes, owners, sizes, link targets) and contents.
const FILES_FINGERPRINT = String.raw`
cd /
find /root /opt ! -type d -printf '%p %y %m %U:%G %s %l\n' 2>/dev/null | LC_ALL=C sort | sha256sum | cut -c1-64
find /root /opt -type f -print0 | LC_ALL=C sort -z | xargs -0 sha256sum | sha256sum | cut -c1-64
`;

function persistenceSuite(label: string, objects: () => string | undefined) {
  describe(`persistent workspaces on ${label}`, () => {
    let server: TestServer;
    let before: string;

    test('start a server that keeps no warm copy, so every run restores from the store', async () => {
      const store = objects();
      server = await start(['--instance', newInstance('w'), '--warm', '0', ...(store ? ['--objects', store] : [])]);
    });

    test('run 1 installs a Debian package and writes files of every kind anywhere in the tree', {
      timeout: 300_000,
    }, async () => {
      before = await ok(
        server,
        `set -e
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq >/dev/null && apt-get install -y -qq --no-install-recommends jq >/dev/null
mkdir -p /opt/app/empty /root/many
echo hello > /root/hello.txt && chmod 640 /root/hello.txt
echo conf > /etc/myapp.conf
ln -s /root/hello.txt /root/link
ln /root/hello.txt /root/hard
printf x > /opt/app/setuid && chmod 4755 /opt/app/setuid
chown 1000:1000 /opt/app/empty && chmod 700 /opt/app/empty
head -c 200M /dev/urandom > /root/big.bin
python3 -c "
for i in range(10000):
    open(f'/root/many/f{i}', 'w').write(str(i) * (i % 50 + 1))
"
rm /etc/issue.net
${FINGERPRINT}`,
        { workspace_id: 'data', persistent: true },
      );
      assert.match(before, /^[0-9a-f]{64}\n[0-9a-f]{64}\n$/);
    });

    test('run 2 (restored on an empty host copy) has it all, byte for byte, and deletes some of it', {
      timeout: 300_000,
    }, async () => {
      const out = await ok(
        server,
        `set -e
${FINGERPRINT}
echo '{"a":42}' | jq .a
test ! -e /etc/issue.net && echo image-file-still-deleted
[ "$(stat -c %i /root/hello.txt)" = "$(stat -c %i /root/hard)" ] && echo hard-link-kept
rm /root/hello.txt /root/many/f5
rm -r /opt/app/empty`,
        { workspace_id: 'data', persistent: true },
      );
      assert.equal(out, `${before}42\nimage-file-still-deleted\nhard-link-kept\n`);
    });

    test('run 3 sees the deletions of run 2', { timeout: 120_000 }, async () => {
      const out = await ok(
        server,
        'test ! -e /root/hello.txt && test ! -e /root/many/f5 && test ! -e /opt/app/empty && test -L /root/link && cat /root/hard && ls /root/many | wc -l',
        { workspace_id: 'data', persistent: true },
      );
      assert.equal(out, 'hello\n9999\n');
      const list = await api(server, 'GET', '/api/v1/mags-workspaces');
      const ws = list.body.workspaces.find((w: any) => w.name === 'data');
      assert.equal(ws.mode, 'persistent');
      assert.ok(ws.versions >= 2, `versions are kept: ${JSON.stringify(ws)}`);
    });
  });
}

persistenceSuite('the local store', () => undefined);
persistenceSuite('Ceph RGW (S3)', () => {
  assert.ok(S3_URL, 'MAGS_TEST_S3_URL is set by scripts/test.sh');
  // Its own prefix in the shared test bucket.
  const u = S3_URL.replace(/^(s3:\/\/[^?]*?)(\?|$)/, `$1/ws-${randomBytes(3).toString('hex')}$2`);
  return u;
});

describe('local workspaces, conflicts, bases, quotas and uploads', () => {
  let server: TestServer;

  test('start', async () => {
    server = await start(['--instance', newInstance('l'), '--workspace-ttl', '3', '--warm', '1']);
  });

  test('a local workspace keeps files between runs, then is deleted after its time to live', {
    timeout: 60_000,
  }, async () => {
    await ok(server, 'echo kept > /root/a; apt-get --version >/dev/null', { workspace_id: 'scratch' });
    assert.equal(await ok(server, 'cat /root/a', { workspace_id: 'scratch' }), 'kept\n');
    const info = await api(server, 'GET', '/api/v1/mags-workspaces/scratch');
    assert.equal(info.status, 200);
    assert.equal(info.body.mode, 'local');
    assert.equal(info.body.versions, 0);
    await new Promise((r) => setTimeout(r, 5000));
    assert.equal(
      await ok(server, 'test -e /root/a && echo still || echo fresh', { workspace_id: 'scratch' }),
      'fresh\n',
    );
  });

  test('two runs on one workspace at once: the second gets 409, never a silent overwrite', {
    timeout: 60_000,
  }, async () => {
    const headers = { authorization: `Bearer ${server.token}`, 'content-type': 'application/json' };
    const first = await fetch(`${server.url}/api/v1/mags-jobs`, {
      method: 'POST',
      headers,
      body: JSON.stringify({ script: 'sleep 2; echo first > /root/owner', workspace_id: 'shared', persistent: true }),
    });
    assert.equal(first.status, 202);
    const second = await api(server, 'POST', '/api/v1/mags-jobs', {
      script: 'echo second > /root/owner',
      workspace_id: 'shared',
      persistent: true,
    });
    assert.equal(second.status, 409);
    assert.equal(second.body.code, 'workspace_busy');
    assert.match(second.body.error, /in use/);
    const { request_id } = (await first.json()) as { request_id: string };
    await api(server, 'GET', `/api/v1/mags-jobs/${request_id}/status?wait=30`);
    assert.equal(await ok(server, 'cat /root/owner', { workspace_id: 'shared', persistent: true }), 'first\n');
  });

  test('--base stacks a persistent workspace read-only; forks keep their own changes, deletions included', {
    timeout: 120_000,
  }, async () => {
    await ok(
      server,
      'mkdir -p /opt/g && echo v1 > /opt/g/base.txt && echo keep > /opt/g/keep.txt && echo other > /opt/g/other.txt',
      {
        workspace_id: 'golden',
        persistent: true,
      },
    );
    // Ephemeral on the base: sees it, changes it only in its own layer.
    const eph = await ok(
      server,
      'cat /opt/g/base.txt; echo changed > /opt/g/base.txt; rm /opt/g/keep.txt; cat /opt/g/base.txt',
      {
        base_workspace_id: 'golden',
      },
    );
    assert.equal(eph, 'v1\nchanged\n');
    assert.equal(
      await ok(server, 'cat /opt/g/base.txt /opt/g/keep.txt', { workspace_id: 'golden', persistent: true }),
      'v1\nkeep\n',
    );

    const created = await api(server, 'POST', '/api/v1/mags-workspaces', {
      name: 'fork',
      persistent: true,
      base: 'golden',
    });
    assert.equal(created.status, 201, JSON.stringify(created.body));
    assert.match(created.body.base, /^golden@\d+$/);
    await ok(server, 'echo forked > /opt/g/base.txt; rm /opt/g/keep.txt', { workspace_id: 'fork', persistent: true });
    await ok(server, 'echo v2 > /opt/g/base.txt; echo new > /opt/g/new.txt', {
      workspace_id: 'golden',
      persistent: true,
    });
    // Wait past the warm period so the fork is restored from the store over its base.
    await new Promise((r) => setTimeout(r, 2500));
    const fork = await ok(
      server,
      'cat /opt/g/base.txt /opt/g/other.txt; test -e /opt/g/keep.txt || echo keep-deleted; test -e /opt/g/new.txt || echo no-new',
      {
        workspace_id: 'fork',
        persistent: true,
      },
    );
    assert.equal(fork, 'forked\nother\nkeep-deleted\nno-new\n');
    // The base can't be written through: golden is unchanged by all of the above.
    assert.equal(
      await ok(server, 'cat /opt/g/base.txt /opt/g/keep.txt', { workspace_id: 'golden', persistent: true }),
      'v2\nkeep\n',
    );
  });

  test('filling the workspace disk gives ENOSPC inside only; resize then allows more', {
    timeout: 180_000,
  }, async () => {
    const hostFree = Number(
      execFileSync('df', ['-B1', '--output=avail', '/var/lib/mags']).toString().trim().split('\n')[1],
    );
    const full = await runScript(server, 'dd if=/dev/zero of=/root/fill bs=1M count=1400 2>&1; echo rc=$?', {
      workspace_id: 'quota',
      disk_gb: 1,
    });
    assert.match(full.stdout, /No space left on device/);
    assert.match(full.stdout, /rc=1/);
    const hostFreeAfter = Number(
      execFileSync('df', ['-B1', '--output=avail', '/var/lib/mags']).toString().trim().split('\n')[1],
    );
    assert.ok(hostFree - hostFreeAfter < 1.2 * 1024 ** 3, 'the host lost no more than the workspace disk');
    const small = await api(server, 'POST', '/api/v1/mags-workspaces/quota/resize', { disk_gb: 1 });
    assert.equal(small.status, 200);
    const shrink = await api(server, 'POST', '/api/v1/mags-workspaces/quota/resize', { disk_gb: 0 });
    assert.equal(shrink.status, 400);
    const grown = await api(server, 'POST', '/api/v1/mags-workspaces/quota/resize', { disk_gb: 3 });
    assert.equal(grown.status, 200, JSON.stringify(grown.body));
    assert.equal(grown.body.disk_gb, 3);
    const out = await ok(
      server,
      'ls -la /root/fill >/dev/null && dd if=/dev/zero of=/root/fill2 bs=1M count=1200 2>/dev/null && echo wrote-more',
      { workspace_id: 'quota' },
    );
    assert.equal(out, 'wrote-more\n');
  });

  test('writing past the disk gives ENOSPC and the script lives on: on a --base, and in a persistent workspace', {
    timeout: 180_000,
  }, async () => {
    // Memory 1024 MB, disk 1 GB, 1.5 GB written: the disk's size stops the writes, never the memory limit.
    const fill = 'dd if=/dev/zero of=/root/big bs=1M count=1500 2>&1; echo rc=$?; rm -f /root/big; echo alive';
    for (const options of [
      { base_workspace_id: 'golden', disk_gb: 1, memory_mb: 1024 },
      { workspace_id: 'full-p', persistent: true, disk_gb: 1, memory_mb: 1024 },
    ]) {
      const r = await runScript(server, fill, options);
      assert.match(r.stdout, /No space left on device/, JSON.stringify(options));
      assert.match(r.stdout, /rc=1\nalive\n/);
      assert.equal(r.exitCode, 0, `${JSON.stringify(options)}: the script lives on (${r.errorMessage ?? ''})`);
    }
    assert.equal(
      await ok(server, 'test -e /root/big || echo synced-without-it', { workspace_id: 'full-p' }),
      'synced-without-it\n',
    );
  });

  test('uploads appear in /uploads before the script starts, also through a workspace that made /uploads a link', {
    timeout: 60_000,
  }, async () => {
    const data = randomBytes(3 * 1024 * 1024 + 17);
    const up = await fetch(`${server.url}/api/v1/mags-files?name=data.bin`, {
      method: 'POST',
      headers: { authorization: `Bearer ${server.token}`, 'content-type': 'application/octet-stream' },
      body: data,
    });
    assert.equal(up.status, 201);
    const file = (await up.json()) as { file_id: string; sha256: string };
    const sha = createHash('sha256').update(data).digest('hex');
    assert.equal(file.sha256, sha);
    assert.equal(
      await ok(server, 'sha256sum /uploads/data.bin | cut -c1-64', { file_ids: [file.file_id] }),
      `${sha}\n`,
    );

    // A workspace may hold /uploads as a symlink to a path that exists on the host: nothing may be written there.
    const probe = mkdtempSync(path.join(tmpdir(), 'mags-upload-probe-'));
    try {
      await ok(server, `rm -rf /uploads; ln -s ${probe} /uploads`, { workspace_id: 'linky', persistent: true });
      const out = await ok(
        server,
        'test -d /uploads && test ! -L /uploads && sha256sum /uploads/data.bin | cut -c1-64',
        {
          workspace_id: 'linky',
          persistent: true,
          file_ids: [file.file_id],
        },
      );
      assert.equal(out, `${sha}\n`);
      assert.deepEqual(readdirSync(probe), [], 'nothing was written through the link on the host');
    } finally {
      rmSync(probe, { recursive: true, force: true });
    }
  });

  test('versions are listed and a rollback becomes the current version', { timeout: 60_000 }, async () => {
    await ok(server, 'echo one > /root/v', { workspace_id: 'hist', persistent: true });
    await ok(server, 'echo two > /root/v', { workspace_id: 'hist', persistent: true });
    const versions = await api(server, 'GET', '/api/v1/mags-workspaces/hist/versions');
    assert.equal(versions.status, 200);
    const numbers = versions.body.versions.map((v: any) => v.version);
    assert.ok(numbers.length >= 2);
    const first = numbers[0];
    const restored = await api(server, 'POST', '/api/v1/mags-workspaces/hist/restore', { version: first });
    assert.equal(restored.status, 200, JSON.stringify(restored.body));
    assert.equal(restored.body.restored_from, first);
    assert.equal(await ok(server, 'cat /root/v', { workspace_id: 'hist', persistent: true }), 'one\n');
  });

  test('deleting a workspace removes it; a delete while in use is refused', { timeout: 60_000 }, async () => {
    const headers = { authorization: `Bearer ${server.token}`, 'content-type': 'application/json' };
    const busy = await fetch(`${server.url}/api/v1/mags-jobs`, {
      method: 'POST',
      headers,
      body: JSON.stringify({ script: 'sleep 3', workspace_id: 'hist', persistent: true }),
    });
    const { request_id } = (await busy.json()) as { request_id: string };
    const refused = await api(server, 'DELETE', '/api/v1/mags-workspaces/hist');
    assert.equal(refused.status, 409);
    await api(server, 'GET', `/api/v1/mags-jobs/${request_id}/status?wait=30`);
    const deleted = await api(server, 'DELETE', '/api/v1/mags-workspaces/hist');
    assert.equal(deleted.status, 200, JSON.stringify(deleted.body));
    assert.equal((await api(server, 'GET', '/api/v1/mags-workspaces/hist')).status, 404);
    assert.equal(
      await ok(server, 'test -e /root/v && echo old || echo empty', { workspace_id: 'hist', persistent: true }),
      'empty\n',
    );
  });
});

describe('a sandbox racing the sync', () => {
  test('swapping a file and a directory for symlinks to host paths during 200 syncs never gets a host file into the workspace', {
    timeout: 900_000,
  }, async () => {
    // A secret on the host, in a file and in a directory, that the sandbox names by absolute path.
    const token = `host-secret-${randomBytes(12).toString('hex')}`;
    const secretDir = mkdtempSync('/root/mags-race-secret-');
    writeFileSync(path.join(secretDir, 'secret'), `${token}\n`);
    mkdirSync(path.join(secretDir, 'dir'));
    writeFileSync(path.join(secretDir, 'dir', 'file'), `${token}\n`);
    const objects = mkdtempSync(path.join(tmpdir(), 'mags-test-objects-'));
    const instance = newInstance('r');
    try {
      let server = await start(['--instance', instance, '--objects', objects, '--warm', '0', '--sync-interval', '0']);
      const home = server.home;
      // The swap loops of the issue: a file replaced by a symlink to the host file, and a directory replaced by a
      // symlink to a host directory (so that d/file would be the host's file), both as fast as they can go.
      const script = `mkdir -p /w && cd /w
( while :; do echo decoy >.t; mv -f .t f; ln -sfn ${secretDir}/secret .s; mv -fT .s f; done ) &
( while :; do mkdir -p .d; echo decoy >.d/file; rm -rf d; mv -T .d d; rm -f d; ln -s ${secretDir}/dir d; done ) &
echo LOOPING
sleep 3600`;
      const headers = { authorization: `Bearer ${server.token}`, 'content-type': 'application/json' };
      const submit = await fetch(`${server.url}/api/v1/mags-jobs`, {
        method: 'POST',
        headers,
        body: JSON.stringify({ script, workspace_id: 'race', persistent: true }),
      });
      assert.equal(submit.status, 202);
      const { request_id } = (await submit.json()) as { request_id: string };
      for (let t = 0; t < 600; t++) {
        const logs = await api(server, 'GET', `/api/v1/mags-jobs/${request_id}/logs`);
        if ((logs.body.logs as Array<{ message: string }>).some((l) => l.message === 'LOOPING')) break;
        await new Promise((r) => setTimeout(r, 100));
      }
      let synced = 0;
      const failed: string[] = [];
      for (let i = 0; i < 200; i++) {
        const r = await api(server, 'POST', '/api/v1/mags-workspaces/race/sync');
        if (r.status !== 200) failed.push(`sync ${i}: ${r.status} ${JSON.stringify(r.body)}`);
        else if (r.body.changed) synced++;
      }
      await api(server, 'POST', `/api/v1/mags-jobs/${request_id}/stop`);
      await api(server, 'GET', `/api/v1/mags-jobs/${request_id}/status?wait=60`);
      await server.stop({ keepHome: true });

      // Nothing the sync stored (every blob and pack of every version) nor the host's cache holds the secret.
      const holders = (dir: string): string => {
        try {
          return execFileSync('grep', ['-rl', '--', token, dir]).toString();
        } catch (e) {
          if ((e as { status?: number }).status === 1) return ''; // no match
          throw e;
        }
      };
      assert.equal(holders(objects), '', 'no object in the store holds the host secret');
      assert.equal(holders(`/var/lib/mags/cache/${instance}`), '', "no blob in the host's cache holds the host secret");

      // And a fresh host copy (another instance restoring from the store) has no file holding it.
      server = await start(['--instance', newInstance('r'), '--objects', objects, '--warm', '0'], home);
      const out = await ok(server, `grep -rl ${token} /w; ls -A /w | sort | tr '\n' ' '; echo`, {
        workspace_id: 'race',
        persistent: true,
      });
      assert.doesNotMatch(out, /^\/w/m, `no workspace file holds the secret: ${out}`);
      await server.stop();
      // Files vanish and change type all the time here: no sync may fail for it.
      assert.deepEqual(failed.slice(0, 3), [], `${failed.length} of 200 syncs failed`);
      assert.ok(synced >= 150, `the syncs ran while the loops changed the workspace (${synced} new versions)`);
    } finally {
      rmSync(secretDir, { recursive: true, force: true });
      rmSync(objects, { recursive: true, force: true });
    }
  });
});

describe('crash safety and storage outages', () => {
  test('kill -9 during syncs: every restore is the old or the new version, complete', {
    timeout: 300_000,
  }, async () => {
    const instance = newInstance('k');
    const objects = mkdtempSync(path.join(tmpdir(), 'mags-test-objects-'));
    const args = ['--instance', instance, '--objects', objects, '--warm', '0'];
    let server = await start(args);
    const home = server.home;
    const known = new Set<string>([
      await ok(server, `${FILES_FINGERPRINT}`, { workspace_id: 'crash', persistent: true }),
    ]);
    for (let i = 1; i <= 6; i++) {
      const headers = { authorization: `Bearer ${server.token}`, 'content-type': 'application/json' };
      const script = `set -e
mkdir -p /root/gen
python3 -c "
import os
for j in range(400):
    open(f'/root/gen/f{j}', 'wb').write(os.urandom(2048))
open('/root/big', 'wb').write(os.urandom(8 * 1024 * 1024))
"
${FILES_FINGERPRINT}
echo DONE`;
      const submit = await fetch(`${server.url}/api/v1/mags-jobs`, {
        method: 'POST',
        headers,
        body: JSON.stringify({ script, workspace_id: 'crash', persistent: true }),
      });
      assert.equal(submit.status, 202);
      const { request_id } = (await submit.json()) as { request_id: string };
      // Once the script has printed its fingerprint (followed live, up to its DONE line), the sync is running: kill
      // the server somewhere in it.
      const lines: string[] = [];
      const follower = new Mags({ apiUrl: server.url, apiToken: server.token }).stream(request_id);
      for await (const line of follower) {
        lines.push(line.message);
        if (line.message === 'DONE') break;
      }
      if (lines.at(-1) !== 'DONE')
        assert.fail(`round ${i}: the script ended (${follower.status?.status}) without DONE: ${lines.join('\n')}`);
      known.add(`${lines.slice(-3, -1).join('\n')}\n`);
      await new Promise((r) => setTimeout(r, Math.floor(Math.random() * 400)));
      await server.kill();
      server = await start(args, home);
      const now = await ok(server, `${FILES_FINGERPRINT}`, { workspace_id: 'crash', persistent: true });
      assert.ok(
        known.has(now),
        `round ${i}: the workspace is one of the versions written, complete (got ${now}; known ${[...known].join(' | ')})`,
      );
    }
    // And the store alone (a host with no copy: another instance) restores the same.
    const last = await ok(server, `${FILES_FINGERPRINT}`, { workspace_id: 'crash', persistent: true });
    await server.stop({ keepHome: true });
    const fresh = await start(['--instance', newInstance('k'), '--objects', objects, '--warm', '0'], home);
    assert.equal(await ok(fresh, `${FILES_FINGERPRINT}`, { workspace_id: 'crash', persistent: true }), last);
    await fresh.stop();
    rmSync(objects, { recursive: true, force: true });
  });

  test('RGW stops during a run: the sync is retried and completes when it returns; nothing is lost', {
    timeout: 420_000,
  }, async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'mags-test-rgw-outage-'));
    const env = {
      ...process.env,
      MAGS_TEST_RGW_PORT: '47780',
      MAGS_TEST_RGW_MON_PORT: '47089',
      MAGS_TEST_RGW_BUCKET: 'outage',
    };
    const endpoint = execFileSync('bash', [path.join(ROOT, 'scripts/start-rgw.sh'), dir], { env })
      .toString()
      .trim();
    const gatewayPid = () => Number(readFileSync(path.join(dir, 'run/client.rgw.a.pid'), 'utf8').trim());
    try {
      const objects = `s3://TESTACCESSKEY:TESTSECRETKEY@outage?endpoint=${endpoint}`;
      const instance = newInstance('o');
      const server = await start(['--instance', instance, '--objects', objects, '--warm', '600']);
      await ok(server, 'echo v1 > /root/f', { workspace_id: 'out', persistent: true });
      const headers = { authorization: `Bearer ${server.token}`, 'content-type': 'application/json' };
      const submit = await fetch(`${server.url}/api/v1/mags-jobs`, {
        method: 'POST',
        headers,
        body: JSON.stringify({
          script: 'echo v2 > /root/f; head -c 3M /dev/urandom > /root/blob; sha256sum /root/blob | cut -c1-64; sleep 3',
          workspace_id: 'out',
          persistent: true,
        }),
      });
      const { request_id } = (await submit.json()) as { request_id: string };
      await new Promise((r) => setTimeout(r, 1500));
      process.kill(gatewayPid(), 'SIGTERM'); // the S3 gateway only: the data stays in the OSD
      const status = await api(server, 'GET', `/api/v1/mags-jobs/${request_id}/status?wait=60`);
      assert.equal(status.body.status, 'sleeping', 'a persistent run sleeps once its script ends');
      assert.match(status.body.error_message ?? '', /could not be synced yet/);
      const logs = await api(server, 'GET', `/api/v1/mags-jobs/${request_id}/logs`);
      const blobSha = logs.body.logs.find((l: any) => /^[0-9a-f]{64}$/.test(l.message)).message;

      execFileSync('radosgw', ['-c', path.join(dir, 'ceph.conf'), '-n', 'client.rgw.a']);
      // The gateway must answer again before the wait for the retried sync starts (radosgw forks and then starts up).
      let answering = false;
      for (let t = 0; t < 120 && !answering; t++) {
        answering = await fetch(endpoint).then(
          () => true,
          () => false,
        );
        if (!answering) await new Promise((r) => setTimeout(r, 500));
      }
      assert.ok(answering, `the restarted S3 gateway answers on ${endpoint}`);
      // Retries back off to 30 s apart, and one may be in flight against the gateway while it starts: allow several.
      let version = 0;
      for (let t = 0; t < 300 && version < 2; t++) {
        await new Promise((r) => setTimeout(r, 500));
        const v = await api(server, 'GET', '/api/v1/mags-workspaces/out/versions');
        if (v.status === 200) version = Math.max(0, ...v.body.versions.map((x: any) => x.version));
      }
      // On failure, what the agent logged about its syncs (collected from the server's records, none awaited).
      const retried: string[] = [];
      if (version < 2)
        await server
          .waitForLog(
            (r) => {
              if (/workspace sync/.test(r.msg)) retried.push(`${r.msg}: ${String(r.err ?? r.version ?? '')}`);
              return false;
            },
            'sync records',
            1,
          )
          .catch(() => {});
      assert.ok(version >= 2, `the retried sync wrote the run as a new version (sync records: ${retried.join(' | ')})`);
      await server.stop({ keepHome: true });
      // Another host (instance) restores it from the store alone.
      const other = await start(['--instance', newInstance('o'), '--objects', objects], server.home);
      assert.equal(
        await ok(other, 'cat /root/f; sha256sum /root/blob | cut -c1-64', { workspace_id: 'out', persistent: true }),
        `v2\n${blobSha}\n`,
      );
      await other.stop();
    } finally {
      execFileSync('bash', [path.join(ROOT, 'scripts/stop-rgw.sh'), dir], { env });
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
