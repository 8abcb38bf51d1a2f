// A sandbox's limits as the kernel holds them (cgroup v1, as the agent runs on): memory with memory+swap, the CPU
// quota for its vcpus, the pids cap; changed in both directions, as a warm sandbox is when a job asks for other limits.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, rmdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { after, describe, test } from 'node:test';
import { SandboxCgroup } from '../src/cgroups.js';

const ROOT = '/sys/fs/cgroup';
const parent = `magstest${randomBytes(3).toString('hex')}`;
const cgroup = new SandboxCgroup(parent, 's1');
const read = (controller: string, file: string) =>
  Number(readFileSync(path.join(ROOT, controller, parent, 's1', file), 'utf8'));
const swapAccounting = existsSync(path.join(ROOT, 'memory', 'memory.memsw.limit_in_bytes'));
const MB = 1024 * 1024;

after(() => {
  cgroup.remove();
  for (const c of ['memory', 'cpu', 'pids', 'unified'])
    if (existsSync(path.join(ROOT, c, parent))) rmdirSync(path.join(ROOT, c, parent));
});

function limits(): Record<string, number> {
  return {
    memory: read('memory', 'memory.limit_in_bytes') / MB,
    ...(swapAccounting ? { memsw: read('memory', 'memory.memsw.limit_in_bytes') / MB } : {}),
    period: read('cpu', 'cpu.cfs_period_us'),
    quota: read('cpu', 'cpu.cfs_quota_us'),
    pids: read('pids', 'pids.max'),
  };
}
const expect = (memory: number, quota: number, pids: number) => ({
  memory,
  ...(swapAccounting ? { memsw: memory } : {}),
  period: 100_000,
  quota,
  pids,
});

describe("a sandbox's cgroup", () => {
  test('holds the limits it was made with: memory (no swap beyond it), vcpus as a quota of the period, pids', () => {
    cgroup.create({ memoryMb: 256, vcpus: 0.5, pids: 100 });
    assert.deepEqual(limits(), expect(256, 50_000, 100));
    assert.equal(cgroup.runtimePath, `/${parent}/s1/c`);
  });

  test('limits can be raised and lowered again (memory+swap may never sit below memory on the way)', () => {
    cgroup.setLimits({ memoryMb: 2048, vcpus: 2, pids: 1024 });
    assert.deepEqual(limits(), expect(2048, 200_000, 1024));
    cgroup.setLimits({ memoryMb: 128, vcpus: 0.25, pids: 64 });
    assert.deepEqual(limits(), expect(128, 25_000, 64));
  });

  test('a sandbox that used little memory has not hit its limit', () => {
    assert.equal(cgroup.hitMemoryLimit(), false);
  });

  test('remove takes it out of every hierarchy, the v2 one of a hybrid host too', () => {
    // The runtime makes the sandbox's cgroup in every hierarchy, `unified` (cgroup v2 on a hybrid host) included.
    const unified = existsSync(path.join(ROOT, 'unified', 'cgroup.procs'));
    if (unified) mkdirSync(path.join(ROOT, 'unified', parent, 's1', 'c'), { recursive: true });
    cgroup.remove();
    for (const c of ['memory', 'cpu', 'pids', ...(unified ? ['unified'] : [])])
      assert.ok(!existsSync(path.join(ROOT, c, parent, 's1')), c);
  });
});

describe('the freezer', () => {
  test('a thaw asked for while a freeze is settling wins: the sandbox ends up thawed and its processes run', async () => {
    const box = new SandboxCgroup(parent, 's2');
    const leaf = path.join(ROOT, 'freezer', parent, 's2', 'c');
    mkdirSync(leaf, { recursive: true });
    const child = spawn('/bin/sh', ['-c', 'while :; do :; done'], { stdio: 'ignore' });
    try {
      writeFileSync(path.join(leaf, 'cgroup.procs'), String(child.pid));
      const ticks = () => Number(readFileSync(`/proc/${child.pid}/stat`, 'utf8').split(') ')[1].split(' ')[11]);
      for (let i = 0; i < 20; i++) {
        let wanted = true;
        const freezing = box.setFrozen(true, () => wanted);
        // The thaw comes in at once, as an exec arriving while the kernel freezes the sandbox.
        wanted = false;
        assert.equal(await box.setFrozen(false), true);
        await freezing; // it settles (false: it gave way to the thaw)
        assert.equal(readFileSync(path.join(leaf, 'freezer.state'), 'utf8').trim(), 'THAWED', `round ${i}`);
      }
      const before = ticks();
      await new Promise((r) => setTimeout(r, 300));
      assert.ok(ticks() > before, 'the process runs');
      // A freeze left alone settles, and the process stops using CPU.
      assert.equal(await box.setFrozen(true), true);
      const frozenAt = ticks();
      await new Promise((r) => setTimeout(r, 300));
      assert.equal(ticks(), frozenAt, 'a frozen process uses no CPU');
      assert.equal(await box.setFrozen(false), true);
    } finally {
      child.kill('SIGKILL');
      await new Promise((r) => child.once('exit', r));
      rmdirSync(leaf);
      rmdirSync(path.join(ROOT, 'freezer', parent, 's2'));
      rmdirSync(path.join(ROOT, 'freezer', parent));
    }
  });
});
