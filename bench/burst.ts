// Throughput under a burst, through the API as users submit (issue 12), with the runtime's floor in the same run:
//   - a burst of 100 concurrent submit-and-wait (`echo ok`, the SDK's long-poll): p50/p99/max submit→end and the
//     stages: admission (submit answered), queue (stored → dispatched), sandbox start (dispatched → started),
//     run (started → exited), report (exited → status seen by the client), logs read;
//   - machine CPU per job from /proc/stat across a 500-job run (and the server's process tree's own), PIDs used per
//     job (/proc/loadavg's last pid), runs/s at concurrency 16 and 32;
//   - programs spawned per job (strace -f of execve on the server, which holds the agent in embedded mode);
//   - RSS of the server process (the agent runs inside it) before and after 2,000 jobs.
// Give `--build NAME=DIR` twice to compare two builds (each a checkout with `npm run build` done) in one run; they
// alternate (A B, then B A with --rounds 2).
import { execFileSync, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readdirSync, readFileSync, rmSync } from 'node:fs';
import path from 'node:path';
import { Mags } from '@mags/sdk';
import { CLI, startServer, type TestServer } from '../test/harness.js';
import { type Floor, floor, procTimes } from './floor.js';
import { fmt, loadavg, summary } from './stats.js';

const BURST = Number(process.env.BENCH_BURST ?? 100);
const BURSTS = Number(process.env.BENCH_BURSTS ?? 3);
const CPU_JOBS = Number(process.env.BENCH_CPU_JOBS ?? 500);
const LEAK_JOBS = Number(process.env.BENCH_LEAK_JOBS ?? 2000);
const STRACE_JOBS = Number(process.env.BENCH_TRACED ?? 20);
const SEQUENTIAL = Number(process.env.BENCH_RUNS ?? 100);
const CLK_TCK = 100;

interface Build {
  name: string;
  cli: string;
}

function parseArgs(): { builds: Build[]; rounds: number } {
  const builds: Build[] = [];
  let rounds = 1;
  const argv = process.argv.slice(2);
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] === '--build') {
      const [name, dir] = (argv[++i] ?? '').split('=');
      if (!name || !dir) throw new Error('--build takes NAME=DIR (a built checkout)');
      builds.push({ name, cli: path.resolve(dir, 'packages/cli/dist/main.js') });
    } else if (argv[i] === '--rounds') {
      rounds = Number(argv[++i]);
    } else {
      throw new Error(`unknown argument ${argv[i]} (bench/burst [--build NAME=DIR]... [--rounds N])`);
    }
  }
  if (builds.length === 0) builds.push({ name: 'this tree', cli: CLI });
  return { builds, rounds };
}

/** Busy and total jiffies of the whole machine. */
function machineJiffies(): { busy: number; total: number } {
  const cpu = readFileSync('/proc/stat', 'utf8').split('\n')[0].trim().split(/\s+/).slice(1).map(Number);
  const total = cpu.slice(0, 8).reduce((a, b) => a + b, 0);
  return { busy: total - cpu[3] - cpu[4], total };
}

/** CPU (jiffies) of the server's process tree, split by who used it. */
interface TreeCpu {
  /** The server process itself (all its threads: the event loop, libuv's pool, V8's). */
  self: number;
  /** What its reaped children used: `crun run` and, through it, the sandboxes' processes. */
  reaped: number;
  /** The host helpers (mags-hostd, mags-spawn), live children. */
  hostd: number;
  /** Its other live descendants: runtimes (with their sandboxes) still running. */
  live: number;
}

function treeCpu(pid: number, top = true, into: TreeCpu = { self: 0, reaped: 0, hostd: 0, live: 0 }): TreeCpu {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const comm = stat.slice(stat.indexOf('(') + 1, stat.lastIndexOf(')'));
    const f = stat
      .slice(stat.lastIndexOf(')') + 2)
      .split(' ')
      .map(Number);
    if (top) into.self += f[11] + f[12];
    else if (comm === 'mags-hostd' || comm === 'mags-spawn') into.hostd += f[11] + f[12];
    else into.live += f[11] + f[12];
    into.reaped += f[13] + f[14];
    for (const task of readdirSync(`/proc/${pid}/task`)) {
      const kids = readFileSync(`/proc/${pid}/task/${task}/children`, 'utf8').trim().split(' ').filter(Boolean);
      for (const k of kids) treeCpu(Number(k), false, into);
    }
  } catch {
    /* gone meanwhile */
  }
  return into;
}

/** CPU used inside every sandbox of an instance so far (their parent cgroup's cpuacct), in jiffies. */
function sandboxesCpu(instance: string): number {
  for (const dir of ['cpuacct', 'cpu,cpuacct']) {
    try {
      return Number(readFileSync(`/sys/fs/cgroup/${dir}/mags${instance}/cpuacct.usage`, 'utf8')) / 1e7;
    } catch {
      /* not this hierarchy */
    }
  }
  return NaN;
}

function rssMb(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) / 1024 : NaN;
}

function lastPid(): number {
  return Number(readFileSync('/proc/loadavg', 'utf8').trim().split(/\s+/)[4]);
}

/** Runs that did not complete, by their error (they are counted, not thrown: a figure must say how many failed). */
const failures = new Map<string, number>();
function failed(status: string, message: string | null): void {
  const key = `${status}: ${message ?? ''}`.slice(0, 160);
  failures.set(key, (failures.get(key) ?? 0) + 1);
}

function pidMax(): number {
  return Number(readFileSync('/proc/sys/kernel/pid_max', 'utf8').trim());
}

async function runMany(mags: Mags, total: number, concurrency: number): Promise<number> {
  let next = 0;
  const t0 = performance.now();
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (next < total) {
        next++;
        const r = await mags.runAndWait('echo ok').catch((err: Error) => failed('client error', err.message));
        if (r && r.status !== 'completed') failed(r.status, r.errorMessage);
      }
    }),
  );
  return total / ((performance.now() - t0) / 1000);
}

type Stage = 'admission' | 'stored' | 'queue' | 'start' | 'run' | 'report' | 'recorded' | 'told' | 'logs' | 'end';
const STAGES: Array<[Stage, string]> = [
  ['end', 'submit→end (the whole runAndWait)'],
  ['admission', 'admission: submit answered (client)'],
  ['stored', '  request sent → created_at'],
  ['queue', 'queue: stored → dispatched'],
  ['start', 'sandbox start: dispatched → started'],
  ['run', 'run: started → exited'],
  ['report', 'report: exited → status seen'],
  ['recorded', '  exited → recorded (server log)'],
  ['told', '  recorded → seen by the client'],
  ['logs', 'logs read after the status'],
];

/** One burst of `n` clients submitting at once; per job, each stage's time in ms. */
async function burst(server: TestServer, mags: Mags, n: number): Promise<Record<Stage, number>[]> {
  const results = await Promise.all(
    Array.from({ length: n }, async () => {
      try {
        const t0 = Date.now();
        const { requestId } = await mags.run('echo ok');
        const t1 = Date.now();
        const job = await mags.wait(requestId);
        const t2 = Date.now();
        await mags.logs(requestId);
        const t3 = Date.now();
        if (job.status !== 'completed') failed(job.status, job.errorMessage);
        return { requestId, job, t0, t1, t2, t3 };
      } catch (err) {
        // A client that failed (a connect timeout on a starved machine) is counted, not timed.
        failed('client error', (err as Error).message);
        return undefined;
      }
    }),
  );
  const out: Record<Stage, number>[] = [];
  for (const result of results) {
    if (!result) continue;
    const { requestId, job, t0, t1, t2, t3 } = result;
    const dispatched = await server.waitForLog(
      (r) => r.jobId === requestId && r.msg === 'job dispatched',
      `dispatch of ${requestId}`,
      5000,
    );
    // When the server recorded the end (and told the waiters): its 'sandbox ended' line.
    const recorded = await server.waitForLog(
      (r) => r.jobId === requestId && r.msg === 'sandbox ended',
      `end of ${requestId}`,
      5000,
    );
    const created = Date.parse(job.createdAt);
    const started = Date.parse(job.startedAt ?? '');
    const completed = Date.parse(job.completedAt ?? '');
    const at = Number(dispatched.time);
    out.push({
      end: t3 - t0,
      admission: t1 - t0,
      stored: created - t0,
      queue: at - created,
      start: started - at,
      run: completed - started,
      report: t2 - completed,
      recorded: Number(recorded.time) - completed,
      told: t2 - Number(recorded.time),
      logs: t3 - t2,
    });
  }
  return out;
}

/** Programs (successful execve) and processes made while `jobs` run one after another, from strace on the server. */
async function traceSpawns(
  server: TestServer,
  mags: Mags,
  jobs: number,
): Promise<{ programs: number; failed: number; pids: number; top: string }> {
  const out = `/tmp/mags-bench-strace-${process.pid}-${randomBytes(3).toString('hex')}`;
  // The server and its live descendants (the host helpers and the runtime spawner fork too).
  const tree = (pid: number): number[] => {
    const kids: number[] = [];
    try {
      for (const task of readdirSync(`/proc/${pid}/task`))
        kids.push(
          ...readFileSync(`/proc/${pid}/task/${task}/children`, 'utf8').trim().split(' ').filter(Boolean).map(Number),
        );
    } catch {
      /* gone */
    }
    return [pid, ...kids.flatMap(tree)];
  };
  const attach = tree(server.pid).flatMap((pid) => ['-p', String(pid)]);
  const tracer = spawn('strace', ['-f', '-qq', '-e', 'trace=execve', '-e', 'signal=none', '-o', out, ...attach], {
    stdio: 'ignore',
  });
  await new Promise((r) => setTimeout(r, 1000)); // attached to every thread
  await runMany(mags, jobs, 1);
  await new Promise((r) => setTimeout(r, 1500)); // teardown off the critical path counts too
  const exited = new Promise((r) => tracer.once('exit', r));
  tracer.kill('SIGINT');
  await exited;
  const lines = readFileSync(out, 'utf8').split('\n').filter(Boolean);
  rmSync(out, { force: true });
  // With -f, a call another process interrupts is split: `PID execve("…" <unfinished ...>`, then
  // `PID <... execve resumed>… = 0`.
  const pids = new Set<string>();
  const names = new Map<string, number>();
  const unfinished = new Map<string, string>();
  let ok = 0;
  let failed = 0;
  for (const line of lines) {
    let pid: string;
    let file: string | undefined;
    const m = /^(\d+)\s+execve\("([^"]*)"/.exec(line);
    if (m) {
      [, pid, file] = m;
      pids.add(pid);
      if (line.endsWith('<unfinished ...>')) {
        unfinished.set(pid, file);
        continue;
      }
    } else {
      const r = /^(\d+)\s+<\.\.\. execve resumed>/.exec(line);
      if (!r) continue;
      pid = r[1];
      file = unfinished.get(pid);
      unfinished.delete(pid);
      if (!file) continue;
    }
    if (/= -1 /.test(line)) {
      failed++;
      continue;
    }
    if (!/= 0$/.test(line)) continue;
    ok++;
    const name = path.basename(file);
    names.set(name, (names.get(name) ?? 0) + 1);
  }
  const top = [...names.entries()]
    .sort((a, b) => b[1] - a[1])
    .map(([k, v]) => `${k} ×${(v / jobs).toFixed(1)}`)
    .join(', ');
  return { programs: ok / jobs, failed: failed / jobs, pids: pids.size / jobs, top };
}

interface BuildFigures {
  burstEnd: number[];
  stages: Record<Stage, number>[];
  perBurst: string[];
  cpuMachineMs: number;
  cpuBackgroundMs: number;
  /** Per job, ms: the server process, crun and the sandboxes (reaped and live), of which inside the sandboxes, hostd, this benchmark. */
  split: { server: number; runtime: number; sandboxes: number; hostd: number; bench: number };
  single: { p50: number; p99: number };
  pidsPerJob: number;
  rps16: number;
  rps32: number;
  rssBefore: number;
  rssAfter: number;
  jobsForRss: number;
  spawns: { programs: number; failed: number; pids: number; top: string } | undefined;
}

async function measure(build: Build): Promise<BuildFigures> {
  const instance = `b${randomBytes(2).toString('hex')}`;
  const server = await startServer(['--instance', instance], undefined, build.cli);
  try {
    const mags = new Mags({ apiUrl: server.url, apiToken: server.token });
    for (let i = 0; i < 10; i++) await mags.runAndWait('echo ok'); // warm-up
    await new Promise((r) => setTimeout(r, 2000)); // the pool refilled
    const rssBefore = rssMb(server.pid);
    let jobs = 0;

    const stages: Record<Stage, number>[] = [];
    const perBurst: string[] = [];
    for (let b = 0; b < BURSTS; b++) {
      const one = await burst(server, mags, BURST);
      jobs += BURST;
      stages.push(...one);
      const s = summary(one.map((x) => x.end));
      const a = summary(one.map((x) => x.admission));
      perBurst.push(
        `burst ${b + 1}: submit→end p50 ${fmt(s.p50)} p99 ${fmt(s.p99)} max ${fmt(s.max)}; submit answered p99 ${fmt(a.p99)}`,
      );
      await new Promise((r) => setTimeout(r, 3000)); // the pool refilled
    }

    // The machine's background (other work on it) over 3 s, subtracted from the CPU run's figure.
    const idle0 = machineJiffies();
    const tIdle = performance.now();
    await new Promise((r) => setTimeout(r, 3000));
    const idle1 = machineJiffies();
    const backgroundPerS = (idle1.busy - idle0.busy) / ((performance.now() - tIdle) / 1000);

    const m0 = machineJiffies();
    const t0 = treeCpu(server.pid);
    const s0 = sandboxesCpu(instance);
    const b0 = procTimes('self').self;
    const pid0 = lastPid();
    const tCpu = performance.now();
    const rps16 = await runMany(mags, CPU_JOBS, 16);
    const cpuS = (performance.now() - tCpu) / 1000;
    const m1 = machineJiffies();
    const t1 = treeCpu(server.pid);
    const s1 = sandboxesCpu(instance);
    const b1 = procTimes('self').self;
    const pid1 = lastPid();
    jobs += CPU_JOBS;
    const toMs = (jiffies: number) => ((jiffies / CLK_TCK) * 1000) / CPU_JOBS;

    const rps32 = await runMany(mags, CPU_JOBS, 32);
    jobs += CPU_JOBS;
    if (jobs < LEAK_JOBS) {
      await runMany(mags, LEAK_JOBS - jobs, 16);
      jobs = LEAK_JOBS;
    }
    await new Promise((r) => setTimeout(r, 3000));
    const rssAfter = rssMb(server.pid);

    const single: number[] = [];
    for (let i = 0; i < SEQUENTIAL; i++) {
      const s = performance.now();
      const r = await mags.runAndWait('true');
      single.push(performance.now() - s);
      if (r.status !== 'completed') failed(r.status, r.errorMessage);
    }
    jobs += SEQUENTIAL;

    let spawns: BuildFigures['spawns'];
    try {
      spawns = await traceSpawns(server, mags, STRACE_JOBS);
    } catch (err) {
      console.log(`(strace failed: ${(err as Error).message})`);
    }
    return {
      burstEnd: stages.map((x) => x.end),
      stages,
      perBurst,
      cpuMachineMs: toMs(m1.busy - m0.busy),
      cpuBackgroundMs: toMs(m1.busy - m0.busy - backgroundPerS * cpuS),
      split: {
        server: toMs(t1.self - t0.self),
        runtime: toMs(t1.reaped + t1.live - (t0.reaped + t0.live)),
        sandboxes: toMs(s1 - s0),
        hostd: toMs(t1.hostd - t0.hostd),
        bench: toMs(b1 - b0),
      },
      single: summary(single),
      // PIDs wrap at pid_max.
      pidsPerJob: (pid1 - pid0 + (pid1 < pid0 ? pidMax() : 0)) / CPU_JOBS,
      rps16,
      rps32,
      rssBefore,
      rssAfter,
      jobsForRss: jobs,
      spawns,
    };
  } finally {
    await server.stop();
  }
}

function report(name: string, f: BuildFigures, floorP50: number, fl: Floor): void {
  console.log(`\n== ${name}`);
  for (const line of f.perBurst) console.log(`  ${line}`);
  const end = summary(f.burstEnd);
  console.log(
    `  bursts of ${BURST} (n=${end.n}): submit→end p50 ${fmt(end.p50)} (goal <= 350, ${(end.p50 / floorP50).toFixed(0)}× floor)   p99 ${fmt(end.p99)} (goal <= 800)   max ${fmt(end.max)}`,
  );
  for (const [stage, label] of STAGES) {
    const s = summary(f.stages.map((x) => x[stage]));
    console.log(
      `    ${label.padEnd(40)} p50 ${fmt(s.p50).padStart(10)}   p99 ${fmt(s.p99).padStart(10)}   max ${fmt(s.max)}`,
    );
  }
  const { split: c } = f;
  const rest = f.cpuMachineMs - c.server - c.runtime - c.hostd - c.bench;
  console.log(
    `  CPU per job over ${CPU_JOBS} jobs at concurrency 16: machine ${f.cpuMachineMs.toFixed(1)} ms (less the background measured before: ${f.cpuBackgroundMs.toFixed(1)} ms; goal <= 15 ms; the floor, crun run /bin/true: ${fl.cpuMs.toFixed(1)} ms)`,
  );
  console.log(
    `    server process ${c.server.toFixed(1)} ms | crun and the sandboxes ${c.runtime.toFixed(1)} ms (inside the sandboxes ${c.sandboxes.toFixed(1)}, crun itself ${(c.runtime - c.sandboxes).toFixed(1)}) | host helpers (mags-hostd, mags-spawn) ${c.hostd.toFixed(1)} ms | this benchmark's clients ${c.bench.toFixed(1)} ms | the rest of the machine ${rest.toFixed(1)} ms`,
  );
  console.log(`  PIDs used per job (last pid, whole machine): ${f.pidsPerJob.toFixed(1)}`);
  if (f.spawns) {
    console.log(
      `  programs spawned per job (strace of the server, ${STRACE_JOBS} jobs): ${f.spawns.programs.toFixed(1)} (+ ${f.spawns.failed.toFixed(1)} failed execve), processes ${f.spawns.pids.toFixed(1)}: ${f.spawns.top}`,
    );
  }
  console.log(
    `  single run, sequential runAndWait('true') n=${SEQUENTIAL}: p50 ${fmt(f.single.p50)} p99 ${fmt(f.single.p99)} (floor p50 ${fmt(floorP50)})`,
  );
  console.log(
    `  runs/s: concurrency 16 ${f.rps16.toFixed(1)} (goal >= 120)   concurrency 32 ${f.rps32.toFixed(1)}   (floor: ${(1000 / floorP50).toFixed(0)} runs/s on one core)`,
  );
  if (failures.size > 0) {
    console.log('  runs that did not complete:');
    for (const [what, n] of failures) console.log(`    ${n} × ${what}`);
    failures.clear();
  }
  console.log(
    `  RSS of the server (agent in-process): ${f.rssBefore.toFixed(0)} MB before, ${f.rssAfter.toFixed(0)} MB after ${f.jobsForRss} jobs`,
  );
}

async function main() {
  const { builds, rounds } = parseArgs();
  console.log(`load average before: ${loadavg()}  (2 cores; figures are noisy above ~1)`);
  try {
    execFileSync('strace', ['-V'], { stdio: 'ignore' });
  } catch {
    console.log('strace is not installed: programs per job are not counted (scripts/install-host-packages.sh --test)');
  }
  const plain = floor(50, false);
  const fl = floor(50, true);
  const floorTimes = summary(plain.times);
  const floorUserns = summary(fl.times);
  console.log(
    `floor: crun run /bin/true on a mounted overlay, n=${floorTimes.n}: p50 ${fmt(floorTimes.p50)} p99 ${fmt(floorTimes.p99)}; with a user namespace p50 ${fmt(floorUserns.p50)} p99 ${fmt(floorUserns.p99)}`,
  );
  console.log(
    `floor CPU per run (crun and the container, reaped): ${plain.cpuMs.toFixed(1)} ms; with a user namespace ${fl.cpuMs.toFixed(1)} ms (machine busy per run ${fl.machineMs.toFixed(1)} ms)${fl.cpuMs > 15 ? ': the runtime alone costs more than the 15 ms goal' : ''}`,
  );
  for (let r = 0; r < rounds; r++) {
    const order = r % 2 === 0 ? builds : [...builds].reverse();
    for (const build of order) {
      console.log(`\nmeasuring ${build.name} (round ${r + 1}), load average ${loadavg()}`);
      const figures = await measure(build);
      report(`${build.name}, round ${r + 1}`, figures, floorUserns.p50, fl);
      console.log(`  load average after: ${loadavg()}`);
    }
  }
  const last = floor(50, true);
  const again = summary(last.times);
  console.log(
    `\nfloor again at the end (user namespace): p50 ${fmt(again.p50)} p99 ${fmt(again.p99)}, CPU ${last.cpuMs.toFixed(1)} ms per run`,
  );
  console.log(`load average after: ${loadavg()}`);
}

await main();
