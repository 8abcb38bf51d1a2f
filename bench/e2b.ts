// E2B compatibility (issue 14, "Benchmark"), measured with the official `e2b` SDK against its own `mags server`
// started with `--e2b-port` (the SDK given apiUrl and sandboxUrl on that port: plain HTTP, envd routed by the
// E2b-Sandbox-Id header, as a local set-up without DNS would run it):
//   1. time to interactive: `Sandbox.create()` → the first `commands.run('echo ok')` returned, p50/p99 over
//      BENCH_E2B_SEQ (100) one after another (each sandbox killed before the next, untimed), and over
//      BENCH_E2B_CONC (100) started at once (ComputeSDK's figure: E2B's cloud ~491 ms median, Daytona ~186 ms;
//      target p50 ≤ 60 ms sequential);
//   2. `files.write` + `files.read` of 1 MB (random bytes) in one sandbox, BENCH_E2B_FILES (50) rounds, p50/p99 of
//      each and of the pair.
//   3. the same time to interactive through the router, as a user with only E2B_DOMAIN set meets it: HTTPS with a
//      wildcard certificate for *.e2b.test, names from Debian's dnsmasq (test/e2b-tls.ts), create at api.e2b.test and
//      the command at 49983-<id>.e2b.test, alternating sample by sample with the direct path in one process
//      (BENCH_E2B_ROUTER (50) of each), so both see the same machine.
// Load averages are printed beside the figures: the machine is shared, compare figures of one run only.
// BENCH_E2B_BEFORE_CLI=<other tree>/packages/cli/dist/main.js adds another build's server to part 1, its samples
// alternating with this build's.
//
// Run as root on a set-up machine: bench/e2b [--only seq|files|router|conc]...
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Sandbox } from 'e2b';
import { DOMAIN, makeCertificates, startDnsmasq, withResolvConf } from '../test/e2b-tls.js';
import { freePort, ROOT, startServer, type TestServer } from '../test/harness.js';
import { fmt, loadavg, summary } from './stats.js';

const SEQ = Number(process.env.BENCH_E2B_SEQ ?? 100);
const CONC = Number(process.env.BENCH_E2B_CONC ?? 100);
const FILES = Number(process.env.BENCH_E2B_FILES ?? 50);
const ROUTER = Number(process.env.BENCH_E2B_ROUTER ?? 50);
const WARMUP = 3;
/** Another build to compare with in part 1: the path of its packages/cli/dist/main.js (built). */
const BEFORE_CLI = process.env.BENCH_E2B_BEFORE_CLI;
const MB = 1024 * 1024;

const parts = (() => {
  const only = process.argv.flatMap((a, i) => (process.argv[i - 1] === '--only' ? a.split(',') : []));
  return new Set(only.length ? only : ['seq', 'files', 'router', 'conc']);
})();

type Summary = ReturnType<typeof summary>;
const line = (s: Summary) => `p50 ${fmt(s.p50)}  p99 ${fmt(s.p99)}  (min ${fmt(s.min)}, max ${fmt(s.max)}, n=${s.n})`;
const rows: Array<{ what: string; figure: string }> = [];

interface Opts {
  apiKey: string;
  apiUrl: string;
  sandboxUrl: string;
}

/** One time-to-interactive sample: create → `echo ok` answered. Returns ms and the sandbox (killed by the caller). */
async function interactive(opts: Opts): Promise<{ ms: number; createMs: number; sandbox: Sandbox }> {
  const t0 = performance.now();
  const sandbox = await Sandbox.create({ ...opts, timeoutMs: 600_000 });
  const createMs = performance.now() - t0;
  try {
    const r = await sandbox.commands.run('echo ok');
    const ms = performance.now() - t0;
    if (r.stdout !== 'ok\n') throw new Error(`echo ok answered ${JSON.stringify(r.stdout)}`);
    return { ms, createMs, sandbox };
  } catch (err) {
    await sandbox.kill().catch(() => undefined);
    const result = (err as { result?: { exitCode: number; stderr: string } }).result;
    throw new Error(result ? `echo ok exited ${result.exitCode}: ${result.stderr.trim()}` : String(err));
  }
}

/** The two halves of the samples: create answered, then the command. */
const halves = (r: Array<{ ms: number; createMs: number }>) =>
  `  of which Sandbox.create ${line(summary(r.map((x) => x.createMs)))}\n  and commands.run('echo ok') ${line(summary(r.map((x) => x.ms - x.createMs)))}`;

/** One sample, or its failure counted (a failed sample is not a time): the run goes on. */
async function sample(opts: Opts, failures: string[]): Promise<{ ms: number; createMs: number } | undefined> {
  try {
    const { ms, createMs, sandbox } = await interactive(opts);
    await sandbox.kill();
    return { ms, createMs };
  } catch (err) {
    failures.push((err as Error).message);
    return undefined;
  }
}

const failedNote = (failures: string[]) =>
  failures.length ? `  ${failures.length} failed (not timed), e.g. ${failures[0]}` : '';

/**
 * Part 1. With `before` (another build's server, BENCH_E2B_BEFORE_CLI), its samples alternate with this build's, one
 * by one, so that both meet the same machine.
 */
async function sequential(opts: Opts, before?: Opts): Promise<void> {
  const sides = [{ name: 'this build', opts }, ...(before ? [{ name: 'before', opts: before }] : [])].map((x) => ({
    ...x,
    failures: [] as string[],
    samples: [] as Array<{ ms: number; createMs: number }>,
  }));
  for (let i = 0; i < WARMUP; i++) for (const side of sides) await sample(side.opts, side.failures);
  const load0 = loadavg();
  for (let i = 0; i < SEQ; i++) {
    for (const side of i % 2 ? [...sides].reverse() : sides) {
      const got = await sample(side.opts, side.failures);
      if (got) side.samples.push(got);
    }
  }
  const load1 = loadavg();
  for (const side of sides) {
    const s = summary(side.samples.map((x) => x.ms));
    const who = before ? ` (${side.name})` : '';
    console.log(`create → first commands.run, sequential${who}: ${line(s)}  load ${load0} → ${load1}`);
    console.log(halves(side.samples));
    if (side.failures.length) console.log(failedNote(side.failures));
    rows.push({
      what: `create → echo ok, ${SEQ} sequential${who}`,
      figure: `p50 ${fmt(s.p50)}, p99 ${fmt(s.p99)}${side.failures.length ? ` (${side.failures.length} failed)` : ''}`,
    });
  }
}

async function concurrent(opts: Opts): Promise<void> {
  const load0 = loadavg();
  const t0 = performance.now();
  const results = await Promise.allSettled(Array.from({ length: CONC }, () => interactive(opts)));
  const wall = performance.now() - t0;
  const ok = results.flatMap((r) => (r.status === 'fulfilled' ? [r.value] : []));
  const failed = results.flatMap((r) =>
    r.status === 'rejected' ? [String((r.reason as Error)?.message ?? r.reason)] : [],
  );
  const s = summary(ok.map((r) => r.ms));
  console.log(
    `create → first commands.run, ${CONC} concurrent: ${line(s)}  all done in ${fmt(wall)}  load ${load0} → ${loadavg()}`,
  );
  if (ok.length) console.log(halves(ok));
  if (failed.length) console.log(`  ${failed.length} failed, e.g. ${failed[0]}`);
  rows.push({
    what: `create → echo ok, ${CONC} concurrent`,
    figure: `p50 ${fmt(s.p50)}, p99 ${fmt(s.p99)}${failed.length ? ` (${failed.length} failed)` : ''}`,
  });
  // Killed a few at a time: the kills are not measured.
  for (let i = 0; i < ok.length; i += 10) await Promise.all(ok.slice(i, i + 10).map((r) => r.sandbox.kill()));
}

async function files(opts: Opts): Promise<void> {
  const sandbox = await Sandbox.create({ ...opts, timeoutMs: 600_000 });
  try {
    const data = randomBytes(MB);
    const bytes = data.buffer.slice(data.byteOffset, data.byteOffset + data.byteLength) as ArrayBuffer;
    const writes: number[] = [];
    const reads: number[] = [];
    const pairs: number[] = [];
    const load0 = loadavg();
    for (let i = 0; i < WARMUP + FILES; i++) {
      const t0 = performance.now();
      await sandbox.files.write('/tmp/bench.bin', bytes);
      const t1 = performance.now();
      const back = await sandbox.files.read('/tmp/bench.bin', { format: 'bytes' });
      const t2 = performance.now();
      if (!Buffer.from(back).equals(data)) throw new Error('files.read gave other bytes than files.write wrote');
      if (i < WARMUP) continue;
      writes.push(t1 - t0);
      reads.push(t2 - t1);
      pairs.push(t2 - t0);
    }
    const load1 = loadavg();
    console.log(`files.write 1 MB: ${line(summary(writes))}`);
    console.log(`files.read 1 MB:  ${line(summary(reads))}`);
    console.log(`write + read:     ${line(summary(pairs))}  load ${load0} → ${load1}`);
    const p = summary(pairs);
    rows.push({ what: 'files.write + files.read, 1 MB', figure: `p50 ${fmt(p.p50)}, p99 ${fmt(p.p99)}` });
  } finally {
    await sandbox.kill();
  }
}

interface ChildJob {
  direct: Opts;
  apiKey: string;
  n: number;
}

/**
 * The SDK's side of part 3, in a process whose resolv.conf names the bench's dnsmasq (E2B_DOMAIN in its environment):
 * alternates a direct sample and one through the router, and prints the samples as one JSON line.
 */
async function childMain(): Promise<void> {
  const job = JSON.parse(process.env.BENCH_E2B_CHILD ?? '{}') as ChildJob;
  const out: Record<'direct' | 'router', Array<{ ms: number; createMs: number }>> = { direct: [], router: [] };
  const modes = { direct: job.direct, router: { apiKey: job.apiKey } } as const;
  const failures: string[] = [];
  for (let i = 0; i < WARMUP + job.n; i++) {
    const order = i % 2 ? (['router', 'direct'] as const) : (['direct', 'router'] as const);
    for (const mode of order) {
      const got = await sample(modes[mode] as Opts, failures);
      if (got && i >= WARMUP) out[mode].push(got);
    }
  }
  process.stdout.write(`${JSON.stringify({ ...out, failures })}\n`);
}

async function viaRouter(server: TestServer, opts: Opts, tls: { dir: string; ca: string }): Promise<void> {
  if (!['/usr/sbin/dnsmasq', '/usr/bin/dnsmasq'].some((p) => existsSync(p))) {
    console.log('through the router: skipped (dnsmasq is not installed: scripts/install-host-packages.sh --test)');
    return;
  }
  const dns = await startDnsmasq(tls.dir);
  try {
    const resolv = path.join(tls.dir, 'resolv.conf');
    writeFileSync(resolv, `nameserver ${dns.address}\n`);
    const env: NodeJS.ProcessEnv = {
      ...process.env,
      E2B_DOMAIN: `${DOMAIN}:${server.routerPort}`,
      NODE_EXTRA_CA_CERTS: tls.ca,
      BENCH_E2B_CHILD: JSON.stringify({ direct: opts, apiKey: opts.apiKey, n: ROUTER } satisfies ChildJob),
    };
    for (const k of ['E2B_API_URL', 'E2B_SANDBOX_URL', 'E2B_API_KEY']) delete env[k];
    const load0 = loadavg();
    const child = spawn(
      'unshare',
      withResolvConf(resolv, [process.execPath, '--import', 'tsx', path.join(ROOT, 'bench/e2b.ts'), '--sdk-child']),
      { cwd: ROOT, env, stdio: ['ignore', 'pipe', 'inherit'] },
    );
    let text = '';
    child.stdout.on('data', (b: Buffer) => {
      text += b.toString();
    });
    const code = await new Promise<number | null>((r) => child.once('exit', r));
    if (code !== 0) throw new Error(`the router part's SDK process exited ${code}`);
    const got = JSON.parse(text.trim().split('\n').pop() ?? '{}') as Record<
      'direct' | 'router',
      Array<{ ms: number; createMs: number }>
    > & { failures: string[] };
    const d = summary(got.direct.map((x) => x.ms));
    const r = summary(got.router.map((x) => x.ms));
    console.log(`create → first commands.run, alternating, load ${load0} → ${loadavg()}`);
    console.log(` direct (apiUrl/sandboxUrl, plain HTTP): ${line(d)}\n${halves(got.direct)}`);
    console.log(` through the router (E2B_DOMAIN, HTTPS): ${line(r)}\n${halves(got.router)}`);
    if (got.failures.length) console.log(failedNote(got.failures));
    rows.push({
      what: `create → echo ok through the router (HTTPS, E2B_DOMAIN), ${ROUTER} alternating with direct`,
      figure: `p50 ${fmt(r.p50)} (direct ${fmt(d.p50)}), p99 ${fmt(r.p99)} (direct ${fmt(d.p99)})`,
    });
  } finally {
    await dns.stop();
  }
}

/** The flags of a bench server: room for every concurrent sandbox (the agent's slots, one user's disk quota, 1 GB
 * sandbox disks; the host's free space still admits each disk). */
function capacityArgs(): string[] {
  return ['--capacity', String(Math.max(16, CONC + 4)), '--max-disk-gb-per-user', '100000', '--sandbox-disk-gb', '1'];
}

async function main(): Promise<void> {
  const e2bPort = await freePort();
  const dir = mkdtempSync(path.join(tmpdir(), 'mags-bench-e2b-'));
  let server: TestServer | undefined;
  let other: TestServer | undefined;
  try {
    // The router serves HTTPS for *.e2b.test (part 3); the other parts use the E2B port directly.
    const tls = { dir, ...makeCertificates(dir) };
    server = await startServer([
      '--apps-domain',
      DOMAIN,
      '--tls-cert',
      tls.cert,
      '--tls-key',
      tls.key,
      '--e2b-port',
      String(e2bPort),
      ...capacityArgs(),
    ]);
    const url = `http://127.0.0.1:${e2bPort}`;
    const opts: Opts = { apiKey: server.token, apiUrl: url, sandboxUrl: url };
    console.log(`mags server ${server.url}, E2B API and envd on ${url}; load ${loadavg()}`);
    let before: Opts | undefined;
    if (BEFORE_CLI) {
      // Another build's server beside it (an older build may not know every flag: only the E2B port).
      const port = await freePort();
      other = await startServer(['--e2b-port', String(port)], undefined, BEFORE_CLI);
      const otherUrl = `http://127.0.0.1:${port}`;
      before = { apiKey: other.token, apiUrl: otherUrl, sandboxUrl: otherUrl };
      console.log(`before: ${BEFORE_CLI}, E2B API and envd on ${otherUrl}`);
    }
    if (parts.has('seq')) await sequential(opts, before);
    await other?.stop();
    other = undefined;
    if (parts.has('files')) await files(opts);
    if (parts.has('router')) await viaRouter(server, opts, tls);
    // Last: sandboxes whose create the SDK gave up on may still come up and hold slots until the server stops.
    if (parts.has('conc')) await concurrent(opts);
    console.log('\n| what | figure |\n|---|---|');
    for (const r of rows) console.log(`| ${r.what} | ${r.figure} |`);
    console.log(`\nload average at the end: ${loadavg()}`);
  } finally {
    await other?.stop();
    await server?.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}

if (process.argv.includes('--sdk-child')) await childMain();
else await main();
