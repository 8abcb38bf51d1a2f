// E2B time to interactive, two builds A/B in one run: `Sandbox.create()` → first `commands.run('echo ok')` returned,
// with the official `e2b` SDK, against two `mags server --e2b-port` started side by side (the build in this tree,
// "after", and another, "before": BENCH_E2B_BEFORE_CLI, the path of its packages/cli/dist/main.js), alternating
// sample by sample so both meet the same machine. BENCH_E2B_AB (50) samples of each after 3 warm-ups; each sandbox
// is killed (untimed) before the next. Then, unless BENCH_E2B_AB_CONC=0, BENCH_E2B_AB_CONC (100) creates at once
// against each build in turn (after first), both with `--capacity <n + 4>`; BENCH_E2B_AFTER_ARGS adds flags to the
// "after" server (`--sandbox-disk-gb 1`).
// Load averages are printed beside the figures: the machine is shared.
//
// Run as root on a set-up machine, after `npm run build` here and in the other tree:
//   BENCH_E2B_BEFORE_CLI=/path/to/other/packages/cli/dist/main.js node --import tsx bench/e2b-ab.ts
import { Sandbox } from 'e2b';
import { CLI, freePort, startServer, type TestServer } from '../test/harness.js';
import { fmt, loadavg, summary } from './stats.js';

const N = Number(process.env.BENCH_E2B_AB ?? 50);
const CONC = Number(process.env.BENCH_E2B_AB_CONC ?? 100);
const BEFORE = process.env.BENCH_E2B_BEFORE_CLI;
const WARMUP = 3;
/** More flags for the "after" server only (BENCH_E2B_AFTER_ARGS, space-separated: `--sandbox-disk-gb 1`). */
const AFTER_ARGS = (process.env.BENCH_E2B_AFTER_ARGS ?? '').split(' ').filter(Boolean);

interface Side {
  name: string;
  server: TestServer;
  opts: { apiKey: string; apiUrl: string; sandboxUrl: string };
  samples: Array<{ ms: number; createMs: number }>;
  failures: string[];
}

async function start(name: string, cli: string): Promise<Side> {
  const e2bPort = await freePort();
  const server = await startServer(
    [
      '--e2b-port',
      String(e2bPort),
      '--capacity',
      String(Math.max(16, CONC + 4)),
      '--max-disk-gb-per-user',
      '100000',
      ...(name === 'after' ? AFTER_ARGS : []),
    ],
    undefined,
    cli,
  );
  const url = `http://127.0.0.1:${e2bPort}`;
  return { name, server, opts: { apiKey: server.token, apiUrl: url, sandboxUrl: url }, samples: [], failures: [] };
}

async function interactive(side: Side): Promise<{ ms: number; createMs: number; sandbox: Sandbox }> {
  const t0 = performance.now();
  const sandbox = await Sandbox.create({ ...side.opts, timeoutMs: 600_000 });
  const createMs = performance.now() - t0;
  try {
    const r = await sandbox.commands.run('echo ok');
    const ms = performance.now() - t0;
    if (r.stdout !== 'ok\n') throw new Error(`echo ok answered ${JSON.stringify(r.stdout)}`);
    return { ms, createMs, sandbox };
  } catch (err) {
    await sandbox.kill().catch(() => undefined);
    throw err;
  }
}

async function sample(side: Side, keep: boolean): Promise<void> {
  try {
    const { ms, createMs, sandbox } = await interactive(side);
    await sandbox.kill();
    if (keep) side.samples.push({ ms, createMs });
  } catch (err) {
    side.failures.push((err as Error).message);
  }
}

const line = (xs: number[]) => {
  const s = summary(xs);
  return `p50 ${fmt(s.p50)}  p99 ${fmt(s.p99)}  (min ${fmt(s.min)}, max ${fmt(s.max)}, n=${s.n})`;
};

async function concurrent(side: Side): Promise<string> {
  const load0 = loadavg();
  const t0 = performance.now();
  const results = await Promise.allSettled(Array.from({ length: CONC }, () => interactive(side)));
  const wall = performance.now() - t0;
  const ok = results.flatMap((r) => (r.status === 'fulfilled' ? [r.value] : []));
  const failed = results.flatMap((r) => (r.status === 'rejected' ? [String((r.reason as Error)?.message)] : []));
  for (let i = 0; i < ok.length; i += 10) await Promise.all(ok.slice(i, i + 10).map((r) => r.sandbox.kill()));
  const text = `${side.name}: ${CONC} concurrent: ${ok.length ? line(ok.map((r) => r.ms)) : 'none succeeded'}  all done in ${fmt(wall)}${failed.length ? `  ${failed.length} failed, e.g. ${failed[0]}` : ''}  load ${load0} → ${loadavg()}`;
  console.log(text);
  return text;
}

async function main(): Promise<void> {
  const sides: Side[] = [];
  try {
    sides.push(await start('after', CLI));
    if (BEFORE) sides.push(await start('before', BEFORE));
    console.log(`builds: after ${CLI}${BEFORE ? `, before ${BEFORE}` : ''}; load ${loadavg()}`);
    for (let i = 0; i < WARMUP; i++) for (const side of sides) await sample(side, false);
    const load0 = loadavg();
    if (N > 0) {
      for (let i = 0; i < N; i++) {
        // Alternating, and which goes first alternates too.
        const order = i % 2 === 0 ? sides : [...sides].reverse();
        for (const side of order) await sample(side, true);
      }
      console.log(
        `\ncreate → first commands.run('echo ok'), ${N} sequential each, alternating; load ${load0} → ${loadavg()}`,
      );
      for (const side of sides) {
        console.log(`${side.name}: ${line(side.samples.map((s) => s.ms))}`);
        console.log(`  of which Sandbox.create ${line(side.samples.map((s) => s.createMs))}`);
        console.log(`  and commands.run ${line(side.samples.map((s) => s.ms - s.createMs))}`);
        if (side.failures.length) console.log(`  ${side.failures.length} failed (not timed), e.g. ${side.failures[0]}`);
      }
    }
    if (CONC > 0) {
      console.log('');
      for (const side of sides) await concurrent(side);
    }
    console.log(`\nload average at the end: ${loadavg()}`);
  } finally {
    for (const side of sides) await side.server.stop().catch(() => undefined);
  }
}

await main();
