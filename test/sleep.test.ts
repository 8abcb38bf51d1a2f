// Sleep and wake, startup commands and always-on sandboxes as users see them, against a real `mags server` with
// shortened timers: an idle sandbox freezes and an exec wakes it with its processes and memory; one asleep long
// enough is stopped, and an exec starts it again on its workspace with its startup command and its files; a busy
// one does not sleep; a persistent run sleeps when its script ends and a run on its workspace takes it over; an
// always-on sandbox comes back after its init is killed and after the server is killed.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { after, before, describe, test } from 'node:test';
import { Mags } from '@mags/sdk';
import { api, removeInstance, runCli, startServer, type TestServer, waitJob } from './harness.js';

const unique = (prefix: string) => `${prefix}-${randomBytes(3).toString('hex')}`;

/** Whether a sandbox's processes are frozen (its runtime cgroup in the freezer hierarchy says FROZEN). */
function freezerState(instance: string, sandboxId: string): string {
  return readFileSync(`/sys/fs/cgroup/freezer/mags${instance}/${sandboxId}/c/freezer.state`, 'utf8').trim();
}

/** The host pid of a sandbox's init (its first process). */
function initPid(instance: string, sandboxId: string): number {
  const procs = readFileSync(`/sys/fs/cgroup/pids/mags${instance}/${sandboxId}/c/cgroup.procs`, 'utf8')
    .trim()
    .split('\n')
    .map(Number);
  // The init is the process whose pid in its own namespace is 1.
  for (const pid of procs) {
    const nspid = /^NSpid:\s+(.*)$/m
      .exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1]
      .trim()
      .split(/\s+/);
    if (nspid?.at(-1) === '1') return pid;
  }
  throw new Error(`no init found in sandbox ${sandboxId}`);
}

describe('sleep and wake', () => {
  const instance = `s${randomBytes(2).toString('hex')}`;
  let server: TestServer;
  let mags: Mags;
  before(async () => {
    server = await startServer(['--instance', instance, '--sleep-after', '2s', '--stop-after', '6s']);
    mags = new Mags({ apiUrl: server.url, apiToken: server.token });
  });
  after(async () => {
    await server?.stop();
    removeInstance(instance);
  });

  test('an idle sandbox freezes (memory and processes kept) and an exec wakes it at once', async () => {
    const name = unique('idle');
    const job = await mags.new(name);
    // A process started now must still be there after the sleep: a frozen sandbox keeps its memory.
    await mags.exec(
      name,
      'nohup sleep 100000 >/dev/null 2>&1 & echo $! > /tmp/pid; head -c 1000000 /dev/urandom | sha256sum > /tmp/sum',
    );
    const asleep = await waitJob(mags, name, (j) => j.status === 'sleeping', 'to sleep', 15_000);
    assert.equal(asleep.vmId, job.vmId, 'the same sandbox sleeps (frozen, not stopped)');
    assert.equal(freezerState(instance, job.vmId!), 'FROZEN');
    const pool = await mags.poolStatus();
    assert.ok(pool.sleepingVms >= 1, `pool-status counts the sleeping sandbox: ${JSON.stringify(pool)}`);
    const t0 = Date.now();
    const r = await mags.exec(name, 'kill -0 $(cat /tmp/pid) && echo alive; cat /tmp/sum | wc -c');
    const wakeMs = Date.now() - t0;
    assert.equal(r.exitCode, 0, r.stderr);
    assert.equal(r.stdout, 'alive\n68\n');
    assert.ok(wakeMs < 2000, `woken and run in ${wakeMs} ms`);
    assert.equal(freezerState(instance, job.vmId!), 'THAWED');
    const awake = await mags.status(job.requestId);
    assert.equal(awake.status, 'running');
    await mags.stop(name);
  });

  test('a sandbox whose background job uses CPU does not sleep', async () => {
    const name = unique('busy');
    await mags.new(name);
    await mags.exec(name, "nohup sh -c 'while :; do :; done' >/dev/null 2>&1 &");
    await new Promise((r) => setTimeout(r, 5000));
    assert.equal((await mags.status(name)).status, 'running', 'busy for 5 s with --sleep-after 2s: still running');
    await mags.exec(name, 'pkill -f "while :"; true');
    await waitJob(mags, name, (j) => j.status === 'sleeping', 'to sleep once idle', 15_000);
    await mags.stop(name);
  });

  test('asleep long enough it is stopped; SSH starts it again with its startup command and its files', async () => {
    const name = unique('svc');
    const r = await runCli(server, [
      'new',
      name,
      '-p',
      '--startup-command',
      'echo "boot $(date +%s%N)" >> /root/boots; echo startup-ran; sleep 100000',
    ]);
    assert.equal(r.code, 0, r.stderr);
    const job = await mags.findJob(name);
    await mags.exec(name, 'echo kept > /root/file');
    const stopped = await waitJob(mags, name, (j) => j.status === 'sleeping' && j.vmId === null, 'stopped', 30_000);
    assert.equal(stopped.requestId, job!.requestId);
    // The workspace was synced when it was stopped: it is in the store.
    const ws = (await mags.listWorkspaces()).workspaces.find((w) => w.name === name);
    assert.ok(ws?.currentVersion && ws.currentVersion >= 1, `the workspace is synced: ${JSON.stringify(ws)}`);
    // Woken by SSH (the OpenSSH client through the gateway, as `mags ssh NAME -- CMD` runs it).
    const t0 = Date.now();
    const woken = await runCli(server, [
      'ssh',
      name,
      '--',
      'sleep 1; cat /root/file; wc -l < /root/boots; pgrep -c -x sleep',
    ]);
    const wakeMs = Date.now() - t0;
    assert.equal(woken.code, 0, woken.stderr);
    assert.equal(woken.stdout, 'kept\n2\n1\n', 'files kept, the startup command ran at both starts and runs now');
    assert.ok(wakeMs < 15_000, `started again in ${wakeMs} ms`);
    const again = await mags.status(job!.requestId);
    assert.equal(again.status, 'running');
    assert.notEqual(again.vmId, job!.vmId, 'a new sandbox');
    const logs = await mags.logs(job!.requestId);
    assert.equal(logs.filter((l) => l.message === 'startup-ran').length, 2, 'the startup output is in the job logs');
    const seqs = logs.map((l) => l.seq);
    assert.deepEqual(
      seqs,
      [...new Set(seqs)].sort((a, b) => a - b),
      'the output continues its numbering',
    );
    await mags.stop(name);
  });

  test('a persistent run sleeps when its script ends; exec wakes it; a run on its workspace takes it over', async () => {
    const name = unique('prun');
    const first = await runCli(server, ['run', '-w', name, '-p', 'echo data > /root/f; exit 3']);
    assert.equal(first.code, 3, 'mags run returns the exit code as soon as the script ends');
    const slept = (await mags.findJob(name))!;
    assert.equal(slept.status, 'sleeping');
    assert.equal(slept.exitCode, 3);
    const r = await mags.exec(name, 'cat /root/f');
    assert.equal(r.stdout, 'data\n');
    const woken = await mags.status(slept.requestId);
    assert.equal(woken.status, 'running');
    assert.equal(woken.exitCode, 3, 'the exit code is kept');
    // A run while it runs is refused; once it sleeps again, a run takes the workspace over.
    const busy = await api(server, 'POST', '/api/v1/mags-jobs', {
      script: 'true',
      workspace_id: name,
      persistent: true,
    });
    assert.equal(busy.status, 409);
    assert.match(busy.body.error, /mags exec/);
    await waitJob(mags, slept.requestId, (j) => j.status === 'sleeping', 'to sleep again', 15_000);
    const second = await mags.runAndWait('cat /root/f; exit 0', { workspaceId: name, persistent: true });
    assert.equal(second.status, 'sleeping');
    assert.equal(second.exitCode, 0);
    assert.deepEqual(
      second.logs.map((l) => l.message),
      ['data'],
    );
    const ended = await mags.status(slept.requestId);
    assert.equal(ended.status, 'completed', 'the sleeping job ended when the run took its workspace over');
    assert.equal(ended.exitCode, 3);
  });

  test('a warm re-run on a sleeping persistent workspace stays fast', async () => {
    const name = unique('warm');
    await mags.runAndWait('true', { workspaceId: name, persistent: true });
    const times: number[] = [];
    for (let i = 0; i < 5; i++) {
      const t0 = Date.now();
      const r = await mags.runAndWait('echo $((1+1))', { workspaceId: name, persistent: true });
      times.push(Date.now() - t0);
      assert.equal(r.status, 'sleeping');
      assert.equal(r.logs[0]?.message, '2');
    }
    times.sort((a, b) => a - b);
    // Not a benchmark: only that a re-run does not pay a cold start every time (the bench has the figures).
    assert.ok(times[2] < 3000, `median warm re-run ${times[2]} ms`);
  });
});

describe('always-on sandboxes', () => {
  const instance = `a${randomBytes(2).toString('hex')}`;
  let server: TestServer;
  let mags: Mags;
  const args = ['--instance', instance, '--sleep-after', '2s', '--stop-after', '1h'];
  before(async () => {
    server = await startServer(args);
    mags = new Mags({ apiUrl: server.url, apiToken: server.token });
  });
  after(async () => {
    await server?.stop();
    removeInstance(instance);
  });

  test('--no-sleep needs -p, as a usage error before anything is sent', async () => {
    const r = await runCli(server, ['new', unique('x'), '--no-sleep']);
    assert.equal(r.code, 2);
    assert.match(r.stderr, /--no-sleep requires -p/);
    const set = await api(server, 'POST', '/api/v1/mags-jobs', { long_lived: true, workspace_id: 'x', no_sleep: true });
    assert.equal(set.status, 400);
    assert.match(set.body.error, /no_sleep requires persistent/);
  });

  test('it does not sleep; its init killed from the host, it is back within 60 s with its startup command', async () => {
    const name = unique('ao');
    const r = await runCli(server, ['new', name, '-p', '--no-sleep', '--startup-command', 'echo up; sleep 100000']);
    assert.equal(r.code, 0, r.stderr);
    const job = (await mags.findJob(name))!;
    await mags.exec(name, 'echo persisted > /root/f');
    await new Promise((res) => setTimeout(res, 4000));
    assert.equal((await mags.status(job.requestId)).status, 'running', 'idle for twice --sleep-after: still running');
    const t0 = Date.now();
    process.kill(initPid(instance, job.vmId!), 'SIGKILL');
    const back = await waitJob(
      mags,
      job.requestId,
      (j) => j.status === 'running' && j.vmId !== job.vmId,
      'back',
      60_000,
    );
    const backMs = Date.now() - t0;
    assert.ok(backMs < 60_000, `back in ${backMs} ms`);
    const out = await mags.exec(name, 'cat /root/f; sleep 0.3; pgrep -c -x sleep');
    assert.equal(out.stdout, 'persisted\n1\n');
    const logs = await mags.logs(back.requestId);
    assert.equal(logs.filter((l) => l.message === 'up').length, 2, 'the startup command ran at both starts');

    // mags set --sleep: it sleeps again when idle; --no-sleep wakes it.
    const set = await runCli(server, ['set', name, '--sleep']);
    assert.equal(set.code, 0, set.stderr);
    await waitJob(mags, job.requestId, (j) => j.status === 'sleeping', 'to sleep after set --sleep', 15_000);
    const on = await runCli(server, ['set', name, '--no-sleep', '--json']);
    assert.equal(on.code, 0, on.stderr);
    assert.equal(JSON.parse(on.stdout).status, 'running', 'set --no-sleep wakes it');
  });

  test('after kill -9 of the server (and its agent) the always-on sandbox is back within 60 s', async () => {
    const name = unique('ao9');
    const r = await runCli(server, ['new', name, '-p', '--no-sleep', '--startup-command', 'echo up9']);
    assert.equal(r.code, 0, r.stderr);
    const job = (await mags.findJob(name))!;
    await mags.exec(name, 'echo before > /root/f; sync');
    await mags.syncWorkspace(name);
    await server.kill();
    const t0 = Date.now();
    server = await startServer(args, server.home);
    mags = new Mags({ apiUrl: server.url, apiToken: server.token });
    const back = await waitJob(mags, job.requestId, (j) => j.status === 'running', 'back', 60_000);
    assert.ok(Date.now() - t0 < 60_000);
    assert.notEqual(back.vmId, job.vmId);
    const out = await mags.exec(name, 'cat /root/f');
    assert.equal(out.stdout, 'before\n');
    await mags.stop(name);
    assert.equal((await mags.status(job.requestId)).status, 'stopped');
  });
});
