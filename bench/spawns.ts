import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);

// What making and tearing down a sandbox costs the host, per job: the programs the server's process tree runs
// (strace of execve over N sequential jobs, pool refills and teardowns included), the PIDs it consumes, and the
// machine's CPU per job (from /proc/stat, across a run at concurrency 16, no strace), with runs/s and the
// sequential single-run latency. Given BENCH_BASE=<another checkout, built>, the same figures for that build,
// alternating A/B in one run (BENCH_ROUNDS rounds), so the two are read against the same machine noise.
import { type ChildProcess, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Mags } from '@mags/sdk';
import { CLI, startServer } from '../test/harness.js';
import { fmt, loadavg, summary } from './stats.js';

const TRACED = Number(process.env.BENCH_TRACED ?? 50);
const CONCURRENT = Number(process.env.BENCH_CONCURRENT ?? 300);
const SEQUENTIAL = Number(process.env.BENCH_RUNS ?? 100);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 1);
const CONCURRENCY = 16;

/** Busy and total jiffies of the whole machine, and the count of processes ever forked. */
function procStat(): { busy: number; total: number; forks: number } {
  const text = readFileSync('/proc/stat', 'utf8');
  const cpu = text.split('\n')[0].trim().split(/\s+/).slice(1).map(Number);
  const total = cpu.slice(0, 8).reduce((a, b) => a + b, 0);
  const idle = cpu[3] + cpu[4];
  return { busy: total - idle, total, forks: Number(/^processes (\d+)/m.exec(text)?.[1]) };
}

const HZ = 100; // USER_HZ on Linux
const perJob = (jiffies: number) => ((jiffies / HZ) * 1000) / CONCURRENT;

/** The server process's own CPU (jiffies), what its reaped children used, and its live descendants' own. */
interface TreeCpu {
  self: number;
  reaped: number;
  live: number;
}

/**
 * CPU time of the server's process tree: the process itself, what its reaped children used (cutime, cstime: the
 * runtime processes and, through them, the sandboxes' own), and its live descendants (the host helpers, runtimes
 * still running).
 */
function treeCpu(pid: number, top = true, into: TreeCpu = { self: 0, reaped: 0, live: 0 }): TreeCpu {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const f = stat
      .slice(stat.lastIndexOf(')') + 2)
      .split(' ')
      .map(Number);
    if (top) into.self += f[11] + f[12];
    else into.live += f[11] + f[12];
    into.reaped += f[13] + f[14];
    for (const task of readdirSync(`/proc/${pid}/task`)) {
      const kids = readFileSync(`/proc/${pid}/task/${task}/children`, 'utf8').trim().split(' ').filter(Boolean);
      for (const k of kids) treeCpu(Number(k), false, into);
    }
  } catch {
    /* gone */
  }
  return into;
}

interface Figures {
  programs: number;
  pids: number;
  failedExecs: number;
  byProgram: Array<[string, number]>;
  cpuMs: number;
  treeCpuMs: number;
  splitMs: { self: number; reaped: number; live: number };
  forks: number;
  rps: number;
  p50: number;
  p99: number;
}

async function traced(pid: number, jobs: () => Promise<void>) {
  const out = path.join(tmpdir(), `mags-bench-strace-${process.pid}-${randomBytes(3).toString('hex')}`);
  const strace: ChildProcess = spawn(
    'strace',
    ['-f', '-qq', '-e', 'trace=execve', '-e', 'signal=none', '-o', out, '-p', String(pid)],
    {
      stdio: 'ignore',
    },
  );
  await new Promise((r) => setTimeout(r, 1000)); // attached
  await jobs();
  await new Promise((r) => setTimeout(r, 2000)); // teardowns and refills settle
  const exited = new Promise((r) => strace.once('exit', r));
  strace.kill('SIGINT');
  await exited;
  const lines = readFileSync(out, 'utf8').split('\n').filter(Boolean);
  const pids = new Set<string>();
  const programs = new Map<string, number>();
  let failed = 0;
  const unfinished = new Map<string, string>();
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
    const name = path.basename(file);
    programs.set(name, (programs.get(name) ?? 0) + 1);
  }
  const all = [...programs.values()].reduce((a, b) => a + b, 0);
  return { programs: all, pidsSeen: pids.size, failed, byProgram: [...programs.entries()].sort((a, b) => b[1] - a[1]) };
}

async function measure(label: string, cli: string): Promise<Figures> {
  const inst = `s${randomBytes(2).toString('hex')}`;
  const server = await startServer(['--instance', inst], undefined, cli);
  try {
    const mags = new Mags({ apiUrl: server.url, apiToken: server.token });
    server
      .waitForLog((r) => r.level >= 40, 'error', 20000)
      .then(
        (r) => console.log('ERR', JSON.stringify(r).slice(0, 1500)),
        () => {},
      );
    for (let i = 0; i < 10; i++) await mags.runAndWait('echo ok');
    await new Promise((r) => setTimeout(r, 1000));
    const forks0 = procStat().forks;
    const t = await traced(server.pid, async () => {
      for (let i = 0; i < TRACED; i++) {
        const r = await mags.runAndWait('echo ok').catch((e) => {
          console.log(
            i,
            require('node:child_process')
              .execSync(`ls -la /var/lib/mags/sandboxes/${inst}/ | head; df -B1G /var/lib/mags`)
              .toString(),
          );
          throw e;
        });
        if (r.status !== 'completed') throw new Error(`${label}: a run ended ${r.status}`);
      }
    });
    // PIDs: every fork on the machine in the window (noisy with other work); the traced tree's own count is below.
    const tracedForks = procStat().forks - forks0;

    const seq: number[] = [];
    for (let i = 0; i < SEQUENTIAL; i++) {
      const s = performance.now();
      const r = await mags.runAndWait('true');
      seq.push(performance.now() - s);
      if (r.status !== 'completed') throw new Error(`${label}: a run ended ${r.status}`);
    }
    await new Promise((r) => setTimeout(r, 1000));

    let next = 0;
    const before = procStat();
    const tree0 = treeCpu(server.pid);
    const t0 = performance.now();
    await Promise.all(
      Array.from({ length: CONCURRENCY }, async () => {
        while (next < CONCURRENT) {
          next++;
          const r = await mags.runAndWait('echo ok');
          if (r.status !== 'completed')
            throw new Error(`${label}: a concurrent run ended ${r.status}: ${JSON.stringify(r.logs).slice(0, 600)}`);
        }
      }),
    );
    const seconds = (performance.now() - t0) / 1000;
    await new Promise((r) => setTimeout(r, 1500)); // the last teardowns are part of the cost
    const after = procStat();
    const tree1 = treeCpu(server.pid);
    const s = summary(seq);
    return {
      programs: t.programs / TRACED,
      pids: t.pidsSeen / TRACED,
      failedExecs: t.failed / TRACED,
      byProgram: t.byProgram.map(([n, c]) => [n, c / TRACED]),
      cpuMs: (((after.busy - before.busy) / HZ) * 1000) / CONCURRENT,
      treeCpuMs: perJob(tree1.self + tree1.reaped + tree1.live - (tree0.self + tree0.reaped + tree0.live)),
      splitMs: {
        self: perJob(tree1.self - tree0.self),
        reaped: perJob(tree1.reaped - tree0.reaped),
        live: perJob(tree1.live - tree0.live),
      },
      forks: Math.max(tracedForks / TRACED, (after.forks - before.forks) / CONCURRENT),
      rps: CONCURRENT / seconds,
      p50: s.p50,
      p99: s.p99,
    };
  } finally {
    await server.stop();
  }
}

function print(label: string, f: Figures): void {
  console.log(
    `${label}: programs/job ${f.programs.toFixed(1)} (failed execs ${f.failedExecs.toFixed(1)}), PIDs/job ${f.pids.toFixed(1)} exec'd, ${f.forks.toFixed(1)} forked (machine-wide)`,
  );
  console.log(`    ${f.byProgram.map(([n, c]) => `${n} ×${c.toFixed(2)}`).join(', ') || 'no programs'}`);
  console.log(
    `    CPU/job ${f.treeCpuMs.toFixed(1)} ms of the server's process tree, ${f.cpuMs.toFixed(1)} ms of the whole machine (/proc/stat: anything else running counts), ${CONCURRENT} jobs at concurrency ${CONCURRENCY}: ${f.rps.toFixed(1)} runs/s`,
  );
  console.log(
    `      of which the server process ${f.splitMs.self.toFixed(1)} ms, its reaped children (crun and the sandboxes) ${f.splitMs.reaped.toFixed(1)} ms, its live ones (host helpers) ${f.splitMs.live.toFixed(1)} ms`,
  );
  console.log(`    runAndWait('true') sequential n=${SEQUENTIAL}: p50 ${fmt(f.p50)}  p99 ${fmt(f.p99)}`);
}

async function main() {
  const base = process.env.BENCH_BASE;
  console.log(`load average before: ${loadavg()}  (2 cores; figures are noisy above ~1)`);
  for (let round = 0; round < ROUNDS; round++) {
    if (base) print(`A (${base})`, await measure('A', path.join(base, 'packages/cli/dist/main.js')));
    print(base ? 'B (this checkout)' : 'this checkout', await measure('B', CLI));
    console.log(`load average: ${loadavg()}`);
  }
}

await main();
