// The usage meter: what a sandbox used since its job started (its counters minus their values at the start, so a
// warm sandbox's past is not the job's), memory integrated over time, reported cumulatively and once at the end.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { AgentToServer } from '@mags/api';
import { type Metered, UsageMeter } from '../src/meter.js';

type Usage = Extract<AgentToServer, { type: 'usage' }>;

describe('usage meter', () => {
  test('counts CPU from the start of the job, integrates memory over the time it ran, and reports the end once', async () => {
    let cpuNs = 5_000_000_000; // the warm sandbox used 5 s before the job
    const sandbox: Metered = {
      id: 'magsa1b2c3',
      cgroup: { totalCpuNs: () => cpuNs, memoryUsageBytes: () => 100 * 1024 * 1024 },
      link: undefined,
    };
    const sent: Usage[] = [];
    const meter = new UsageMeter('job-1', sandbox, (m) => sent.push(m), 200);
    cpuNs += 1_500_000_000;
    await new Promise((r) => setTimeout(r, 650));
    meter.end();
    meter.end();
    const final = sent.filter((m) => m.final);
    assert.equal(final.length, 1, 'one final report');
    assert.ok(sent.length >= 2, 'periodic reports came before it');
    const last = final[0]!;
    assert.equal(last.jobId, 'job-1');
    assert.equal(last.sandboxId, 'magsa1b2c3');
    assert.equal(last.cpuMs, 1500, "only the job's CPU time");
    assert.equal(last.egressBytes, 0, 'no network link, nothing sent');
    // 100 MiB held the whole time: the integral is 100 MiB × the time it ran (to the millisecond of the report).
    assert.ok(Math.abs(last.memoryMibMs - 100 * last.sandboxMs) <= 100, `${last.memoryMibMs} vs ${last.sandboxMs} ms`);
    for (let i = 1; i < sent.length; i++) {
      assert.ok(sent[i]!.sandboxMs >= sent[i - 1]!.sandboxMs, 'cumulative');
      assert.ok(sent[i]!.memoryMibMs >= sent[i - 1]!.memoryMibMs, 'cumulative');
    }
    const count = sent.length;
    await new Promise((r) => setTimeout(r, 300));
    assert.equal(sent.length, count, 'nothing after the end');
  });

  test('a cgroup that is gone keeps the last figures instead of going back to zero', () => {
    let cpu: number | undefined = 1_000_000;
    const sent: Usage[] = [];
    const meter = new UsageMeter(
      'job-2',
      {
        id: 's',
        cgroup: { totalCpuNs: () => cpu, memoryUsageBytes: () => undefined },
        link: { hostIf: 'nonexistent0' },
      },
      (m) => sent.push(m),
    );
    cpu = 301_000_000;
    (meter as unknown as { sample(): void }).sample();
    cpu = undefined;
    meter.end();
    assert.equal(sent.at(-1)!.cpuMs, 300);
    assert.equal(sent.at(-1)!.memoryMibMs, 0);
    assert.equal(sent.at(-1)!.egressBytes, 0);
  });
});
