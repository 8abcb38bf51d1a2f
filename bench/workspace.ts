// Workspace figures through the whole stack, with the ephemeral figure measured in the same run for comparison:
//   warm re-run p50/p99 of a persistent workspace (runAndWait('true') on it, sequential; includes its sync),
//   the same for a local workspace and for an ephemeral sandbox; then the storage figures (cold restore from
//   RGW, incremental sync, sync throughput) from workspace-storage.ts.
import { randomBytes } from 'node:crypto';
import { rmSync } from 'node:fs';
import { Mags } from '@mags/sdk';
import { startServer } from '../test/harness.js';
import { fmt, loadavg, summary } from './stats.js';
import { storageFigures } from './workspace-storage.js';

const RUNS = Number(process.env.BENCH_RUNS ?? 100);

async function timed(n: number, fn: () => Promise<{ status: string }>): Promise<number[]> {
  const times: number[] = [];
  for (let i = 0; i < n; i++) {
    const t = performance.now();
    const r = await fn();
    times.push(performance.now() - t);
    if (r.status !== 'completed') throw new Error(`run ${i} ended ${r.status}`);
  }
  return times;
}

async function main() {
  console.log(`load average before: ${loadavg()}  (2 cores; figures are noisy above ~1)`);
  const instance = `b${randomBytes(2).toString('hex')}`;
  const server = await startServer(['--instance', instance]);
  try {
    const mags = new Mags({ apiUrl: server.url, apiToken: server.token });
    // Give the workspace some content, so its sync walks something.
    await mags.runAndWait('mkdir -p /root/app && for i in $(seq 1 200); do echo $i > /root/app/f$i; done', {
      workspaceId: 'bench',
      persistent: true,
    });
    for (let i = 0; i < 5; i++) {
      await mags.runAndWait('true');
      await mags.runAndWait('true', { workspaceId: 'bench', persistent: true });
      await mags.runAndWait('true', { workspaceId: 'bench-local' });
    }
    const eph = summary(await timed(RUNS, () => mags.runAndWait('true')));
    const pers = summary(await timed(RUNS, () => mags.runAndWait('true', { workspaceId: 'bench', persistent: true })));
    const local = summary(await timed(RUNS, () => mags.runAndWait('true', { workspaceId: 'bench-local' })));
    const changed = summary(
      await timed(Math.min(RUNS, 50), () =>
        mags.runAndWait('date > /root/app/f1', { workspaceId: 'bench', persistent: true }),
      ),
    );
    console.log('');
    console.log(`ephemeral runAndWait('true'), n=${eph.n}:                 p50 ${fmt(eph.p50)}   p99 ${fmt(eph.p99)}`);
    console.log(
      `warm re-run, persistent workspace (200 files), n=${pers.n}:  p50 ${fmt(pers.p50)}   p99 ${fmt(pers.p99)}   target p50 <= 40 ms`,
    );
    console.log(
      `warm re-run, persistent, one file changed, n=${changed.n}:    p50 ${fmt(changed.p50)}   p99 ${fmt(changed.p99)}`,
    );
    console.log(
      `warm re-run, local workspace, n=${local.n}:                 p50 ${fmt(local.p50)}   p99 ${fmt(local.p99)}`,
    );
  } finally {
    await server.stop();
    for (const dir of ['workspaces', 'bases', 'cache'])
      rmSync(`/var/lib/mags/${dir}/${instance}`, { recursive: true, force: true });
  }
  if (process.env.BENCH_SKIP_STORAGE !== '1') await storageFigures();
  console.log(`load average after: ${loadavg()}`);
}

await main();
