// A server killed with -9 leaves sandboxes behind; the next start on the host must remove them all
// and must not leave the killed run's jobs "running" forever.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { existsSync, readdirSync } from 'node:fs';
import { test } from 'node:test';
import { leftovers, runScript, startServer } from './harness.js';

function hostObjects(instance: string) {
  const prefix = `mags${instance}-`;
  const netns = existsSync('/run/netns') ? readdirSync('/run/netns').filter((n) => n.startsWith(prefix)) : [];
  const dir = `/var/lib/mags/sandboxes/${instance}`;
  const dirs = existsSync(dir) ? readdirSync(dir) : [];
  const cg = `/sys/fs/cgroup/memory/mags${instance}`;
  const cgroups = existsSync(cg)
    ? readdirSync(cg, { withFileTypes: true })
        .filter((d) => d.isDirectory())
        .map((d) => d.name)
    : [];
  return { netns, dirs, cgroups, loops: leftovers(instance).loops };
}

test('a restarted server cleans up what a killed predecessor left, and fails its orphaned jobs clearly', async () => {
  const instance = `r${randomBytes(2).toString('hex')}`;
  const first = await startServer(['--instance', instance]);
  const headers = { authorization: `Bearer ${first.token}`, 'content-type': 'application/json' };
  const submit = await fetch(`${first.url}/api/v1/mags-jobs`, {
    method: 'POST',
    headers,
    body: JSON.stringify({ script: 'echo up; sleep 600' }),
  });
  const { request_id: id } = (await submit.json()) as { request_id: string };
  for (let i = 0; i < 100; i++) {
    const s = (await (await fetch(`${first.url}/api/v1/mags-jobs/${id}/status`, { headers })).json()) as {
      status: string;
    };
    if (s.status === 'running') break;
    await new Promise((r) => setTimeout(r, 100));
  }
  const before = hostObjects(instance);
  assert.ok(before.netns.length >= 1, 'the running sandbox has a network namespace');
  assert.ok(before.dirs.length >= 1, 'and a directory');
  assert.ok(before.loops.length >= 1, 'and a loop device for its layer');

  process.kill(first.pid, 'SIGKILL');
  await new Promise((r) => setTimeout(r, 300));
  assert.ok(hostObjects(instance).netns.length >= 1, 'a killed server leaves its sandboxes behind');

  // Same home and instance: the same installation coming back.
  const second = await startServer(['--instance', instance], first.home);
  try {
    const after = hostObjects(instance);
    for (const old of before.netns) assert.ok(!after.netns.includes(old), `namespace ${old} of the killed run is gone`);
    for (const old of before.dirs) assert.ok(!after.dirs.includes(old), `directory ${old} of the killed run is gone`);
    for (const old of before.cgroups)
      assert.ok(!after.cgroups.includes(old), `cgroup ${old} of the killed run is gone`);
    for (const old of before.loops)
      assert.ok(!after.loops.some((l) => l.startsWith(old)), `the loop device of ${old} (killed run) is detached`);
    const h2 = { authorization: `Bearer ${second.token}` };
    const orphan = (await (await fetch(`${second.url}/api/v1/mags-jobs/${id}/status`, { headers: h2 })).json()) as {
      status: string;
      error_message: string | null;
    };
    assert.equal(orphan.status, 'error');
    assert.ok(orphan.error_message && orphan.error_message.length > 10, 'the orphaned job says what happened');
    const r = await runScript(second, 'echo works');
    assert.equal(r.stdout, 'works\n');
  } finally {
    await second.stop();
  }
  const final = hostObjects(instance);
  assert.deepEqual(final.netns, []);
  assert.deepEqual(final.dirs, []);
  assert.deepEqual(final.loops, []);
});

test('a submit that was answered survives a kill -9 right after the answer, with the others of its burst', async () => {
  const instance = `r${randomBytes(2).toString('hex')}`;
  const first = await startServer(['--instance', instance]);
  const headers = { authorization: `Bearer ${first.token}`, 'content-type': 'application/json' };
  const answered: string[] = [];
  let killed = false;
  // 60 at once (stored in batches); the server is killed the moment the 30th answer arrives.
  await Promise.allSettled(
    Array.from({ length: 60 }, async (_, i) => {
      const res = await fetch(`${first.url}/api/v1/mags-jobs`, {
        method: 'POST',
        headers,
        body: JSON.stringify({ script: `echo kept ${i}` }),
      });
      if (res.status !== 202 || killed) return;
      answered.push(((await res.json()) as { request_id: string }).request_id);
      if (answered.length === 30) {
        killed = true;
        process.kill(first.pid, 'SIGKILL');
      }
    }),
  );
  assert.ok(killed, 'the server answered 30 submits before it was killed');
  await first.kill();
  const second = await startServer(['--instance', instance], first.home);
  try {
    const h2 = { authorization: `Bearer ${second.token}` };
    for (const id of answered.slice(0, 30)) {
      const res = await fetch(`${second.url}/api/v1/mags-jobs/${id}/status`, { headers: h2 });
      assert.equal(res.status, 200, `answered job ${id} is still there after the crash`);
      const job = (await res.json()) as { script: string };
      assert.match(job.script, /^echo kept \d+$/);
    }
  } finally {
    await second.stop();
  }
});
