// Sandbox latency through the whole stack, with the runtime's floor measured in the same run for comparison.
//   p50/p99 of runAndWait('true') (sequential), time to first output after submit, runs/s at concurrency 8,
//   and the floor: `crun run` of /bin/true on an already-mounted overlay, without and with a user namespace
//   (on the uid-shifted image, as sandboxes run).
import { randomBytes } from 'node:crypto';
import { Mags } from '@mags/sdk';
import { startServer } from '../test/harness.js';
import { floor } from './floor.js';
import { fmt, loadavg, summary } from './stats.js';

const SEQUENTIAL = Number(process.env.BENCH_RUNS ?? 200);
const CONCURRENCY = 8;

async function main() {
  console.log(`load average before: ${loadavg()}  (2 cores; figures are noisy above ~1)`);
  const floorTimes = summary(floor(50, false).times);
  const floorUserns = summary(floor(50, true).times);
  const server = await startServer(['--instance', `b${randomBytes(2).toString('hex')}`]);
  try {
    const mags = new Mags({ apiUrl: server.url, apiToken: server.token });
    for (let i = 0; i < 10; i++) await mags.runAndWait('true'); // warm-up

    const seq: number[] = [];
    for (let i = 0; i < SEQUENTIAL; i++) {
      const t = performance.now();
      const r = await mags.runAndWait('true');
      seq.push(performance.now() - t);
      if (r.status !== 'completed') throw new Error(`run ${i} ended ${r.status}`);
    }

    const first: number[] = [];
    for (let i = 0; i < 50; i++) {
      const t = performance.now();
      const job = await mags.run('echo first');
      for await (const _entry of mags.stream(job.requestId)) {
        first.push(performance.now() - t);
        break;
      }
      await mags.runAndWait('true'); // let the streamed job finish before the next sample
    }

    const total = Math.max(SEQUENTIAL, 200);
    let next = 0;
    const t0 = performance.now();
    await Promise.all(
      Array.from({ length: CONCURRENCY }, async () => {
        while (next < total) {
          next++;
          const r = await mags.runAndWait('true');
          if (r.status !== 'completed') throw new Error(`concurrent run ended ${r.status}`);
        }
      }),
    );
    const rps = total / ((performance.now() - t0) / 1000);

    const s = summary(seq);
    const f = summary(first);
    console.log('');
    console.log(
      `runAndWait('true'), sequential, n=${s.n}:   p50 ${fmt(s.p50)}   p99 ${fmt(s.p99)}   (min ${fmt(s.min)}, max ${fmt(s.max)})   target p50 <= 25 ms, p99 <= 80 ms`,
    );
    console.log(`first output after submit, n=${f.n}:        p50 ${fmt(f.p50)}   p99 ${fmt(f.p99)}`);
    console.log(
      `throughput at concurrency ${CONCURRENCY}, ${total} runs:  ${rps.toFixed(1)} runs/s   target >= 40 runs/s`,
    );
    console.log(
      `floor: crun run /bin/true on a mounted overlay, n=${floorTimes.n}:  p50 ${fmt(floorTimes.p50)}   p99 ${fmt(floorTimes.p99)}`,
    );
    console.log(
      `floor with a user namespace (uid-shifted image), n=${floorUserns.n}:  p50 ${fmt(floorUserns.p50)}   p99 ${fmt(floorUserns.p99)}`,
    );
    console.log(`load average after: ${loadavg()}`);
  } finally {
    await server.stop();
  }
}

await main();
