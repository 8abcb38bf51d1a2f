// Long-lived sandboxes through the whole stack (issue 9, "Benchmark"), each part against its own `mags server`:
//   1. exec `true` into a running sandbox through the API (SDK `mags.exec`), p50/p99, and in the same run the floor:
//      `crun exec` of /bin/true (and of `/bin/sh -c true`) into the same container, straight from this process;
//   2. wake from frozen: a sandbox the server froze (--sleep-after) → first byte of an exec's output (`execStream`);
//   3. wake from stopped (asleep past --stop-after: `sleeping`, vmId null; persistent workspace) → first byte;
//   4. memory per frozen sandbox with 200 of them: host MemAvailable before/after, the sandboxes' cgroup usage, the
//      RSS/PSS of their processes and of the runtime (`crun run`) holding each one, per sandbox.
// Then a summary table with the targets. Every sandbox is stopped and every server stopped at the end.
//
// Run as root on a set-up machine: bench/long-lived [--only exec|frozen|stopped|memory]...
//   BENCH_EXECS (default 300) execs `true`, BENCH_FROZEN (20) and BENCH_STOPPED (12) wakes, BENCH_SANDBOXES (200).
//   BENCH_STATE_FS=host keeps the memory part on /var/lib/mags (its disk admission may refuse 200 sandboxes; see below).
import { execFileSync, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import path from 'node:path';
import { type Job, Mags } from '@mags/sdk';
import { startServer, type TestServer } from '../test/harness.js';
import { fmt, loadavg, summary } from './stats.js';

const EXECS = Number(process.env.BENCH_EXECS ?? 300);
const WARMUP = 20;
const FROZEN_WAKES = Number(process.env.BENCH_FROZEN ?? 20);
const STOPPED_WAKES = Number(process.env.BENCH_STOPPED ?? 12);
const SANDBOXES = Number(process.env.BENCH_SANDBOXES ?? 200);
/** Sandboxes made (or stopped) at once in the memory part. */
const PARALLEL = 8;
const MB = 1024 * 1024;

const parts = (() => {
  const only = process.argv.flatMap((a, i) => (process.argv[i - 1] === '--only' ? a.split(',') : []));
  return new Set(only.length ? only : ['exec', 'frozen', 'stopped', 'memory']);
})();

const tag = () => randomBytes(2).toString('hex');
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
type Summary = ReturnType<typeof summary>;
const rows: Array<{ what: string; figure: string; target: string; met: string }> = [];
const line = (s: Summary) => `p50 ${fmt(s.p50)}  p99 ${fmt(s.p99)}  (min ${fmt(s.min)}, max ${fmt(s.max)}, n=${s.n})`;

/** Polls a job until `until` holds. */
async function waitJob(mags: Mags, ref: string, until: (j: Job) => boolean, what: string, timeoutMs = 60_000) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const job = await mags.status(ref);
    if (until(job)) return job;
    if (Date.now() > deadline) throw new Error(`job ${ref} did not get ${what} within ${timeoutMs} ms (${job.status})`);
    await sleep(25);
  }
}

function freezerState(instance: string, vmId: string): string {
  return readFileSync(`/sys/fs/cgroup/freezer/mags${instance}/${vmId}/c/freezer.state`, 'utf8').trim();
}

/** ms from the start of an exec to the first byte of its output, and the whole output. */
async function firstByte(mags: Mags, ref: string, command: string): Promise<{ ms: number; out: string }> {
  const t0 = performance.now();
  let ms: number | undefined;
  const out: Buffer[] = [];
  const run = mags.execStream(ref, command);
  for await (const { data } of run) {
    ms ??= performance.now() - t0;
    out.push(data);
  }
  const end = await run.done;
  if (end.exitCode !== 0 || ms === undefined) throw new Error(`exec in ${ref} ended ${end.exitCode} (${end.reason})`);
  return { ms, out: Buffer.concat(out).toString() };
}

/** Runs `fn` over `items`, `n` at a time. */
async function pool<T>(items: T[], n: number, fn: (item: T, i: number) => Promise<void>): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: n }, async () => {
      while (next < items.length) {
        const i = next++;
        await fn(items[i]!, i);
      }
    }),
  );
}

function startBenchServer(instance: string, args: string[], stateDir?: string): Promise<TestServer> {
  console.log(`(mags server --instance ${instance} ${args.join(' ')}${stateDir ? ` --state-dir ${stateDir}` : ''})`);
  return startServer([
    '--instance',
    instance,
    '--pool-size',
    '0',
    '--log-level',
    'warn',
    ...(stateDir ? ['--state-dir', stateDir] : []),
    ...args,
  ]);
}

/** Removes what an instance leaves under a state directory once its server has stopped (as the tests do). */
function removeInstanceDirs(instance: string, stateDir = '/var/lib/mags'): void {
  for (const sub of ['workspaces', 'bases', 'cache'])
    rmSync(`${stateDir}/${sub}/${instance}`, { recursive: true, force: true });
  // What the stopped server leaves empty: its sandboxes' directory and its cgroup parents (rmdir: only if empty).
  const empty = [`${stateDir}/sandboxes/${instance}`];
  for (const c of readdirSync('/sys/fs/cgroup')) empty.push(`/sys/fs/cgroup/${c}/mags${instance}`);
  for (const dir of empty) spawnSync('rmdir', [dir], { stdio: 'ignore' });
}

// ── 1. exec into a running sandbox, and the runtime's floor ──────────────────────────────────────────────────────

async function benchExec(): Promise<void> {
  const instance = `e${tag()}`;
  const server = await startBenchServer(instance, ['--sleep-after', '1h']);
  try {
    const mags = new Mags({ apiUrl: server.url, apiToken: server.token });
    const name = `exec-${tag()}`;
    const job = await mags.new(name, { diskGb: 1 });
    const vmId = job.vmId!;
    const crun = (args: string[]) => {
      const t = performance.now();
      const r = spawnSync('crun', ['--root', `/run/mags/${instance}`, 'exec', vmId, ...args], { stdio: 'ignore' });
      if (r.status !== 0) throw new Error(`crun exec ${args.join(' ')} exited ${r.status}`);
      return performance.now() - t;
    };
    for (let i = 0; i < WARMUP; i++) {
      await mags.exec(name, 'true');
      crun(['/bin/true']);
    }
    // Alternated, so that both see the same machine.
    const api: number[] = [];
    const floor: number[] = [];
    const floorSh: number[] = [];
    for (let i = 0; i < EXECS; i++) {
      const t = performance.now();
      const r = await mags.exec(name, 'true');
      api.push(performance.now() - t);
      if (r.exitCode !== 0) throw new Error(`exec ${i} exited ${r.exitCode}`);
      floor.push(crun(['/bin/true']));
      if (i % 3 === 0) floorSh.push(crun(['/bin/sh', '-c', 'true']));
    }
    const a = summary(api);
    const f = summary(floor);
    const fs = summary(floorSh);
    console.log(`exec 'true' through the API (SDK mags.exec), sequential:  ${line(a)}`);
    console.log(`  floor: crun exec /bin/true into the same container:  ${line(f)}`);
    console.log(`  floor: crun exec /bin/sh -c true into it:             ${line(fs)}`);
    // Paired differences (each API exec and the floor right after it) cancel most of the machine's noise.
    const over = summary(api.map((t, i) => t - floor[i]!));
    console.log(`  the stack above the floor (API exec - the crun exec after it):  p50 ${fmt(over.p50)}`);
    rows.push({
      what: 'exec true via API, p50 / p99',
      figure: `${fmt(a.p50)} / ${fmt(a.p99)}`,
      target: 'p50 <= 15 ms',
      met: a.p50 <= 15 ? 'yes' : 'no',
    });
    rows.push({ what: '  above the floor (paired), p50', figure: fmt(over.p50), target: '', met: '' });
    rows.push({
      what: '  floor: crun exec /bin/true, p50 / p99',
      figure: `${fmt(f.p50)} / ${fmt(f.p99)}`,
      target: '',
      met: '',
    });
    await mags.stop(name);
  } finally {
    await server.stop();
    removeInstanceDirs(instance);
  }
}

// ── 2. wake from frozen ─────────────────────────────────────────────────────────────────────────────────────────

async function benchFrozen(): Promise<void> {
  const instance = `f${tag()}`;
  const server = await startBenchServer(instance, ['--sleep-after', '1s', '--stop-after', '1h']);
  try {
    const mags = new Mags({ apiUrl: server.url, apiToken: server.token });
    const name = `frozen-${tag()}`;
    const job = await mags.new(name, { diskGb: 1 });
    await mags.exec(name, 'echo ready > /root/ready');
    const wakes: number[] = [];
    // A wake that fails (the SDK gives up on an exec not started within 30 s) is counted and reported, not fatal.
    const failed: string[] = [];
    for (let i = 0; i < FROZEN_WAKES + 1 + failed.length && failed.length < 3; i++) {
      const asleep = await waitJob(mags, job.requestId, (j) => j.status === 'sleeping', 'to sleep', 30_000);
      if (asleep.vmId !== job.vmId || freezerState(instance, job.vmId!) !== 'FROZEN')
        throw new Error(`the sandbox is not frozen: ${asleep.vmId} ${freezerState(instance, job.vmId!)}`);
      const at = new Date().toISOString();
      try {
        const { ms, out } = await firstByte(mags, name, 'cat /root/ready');
        if (out !== 'ready\n') throw new Error(`woken, the sandbox answered ${JSON.stringify(out)}`);
        if (i > 0) wakes.push(ms); // the first one is a warm-up
      } catch (err) {
        failed.push(`${at}: ${err instanceof Error ? err.message : err}`);
        console.log(`wake from frozen ${i} failed at ${at}: ${err}`);
      }
    }
    const s = summary(wakes);
    console.log(`wake from frozen → first byte of exec output:  ${line(s)}; failed: ${failed.length}`);
    rows.push({
      what: 'wake from frozen -> first byte, p50 / p99',
      figure: `${fmt(s.p50)} / ${fmt(s.p99)}${failed.length ? ` (${failed.length} failed)` : ''}`,
      target: '<= 50 ms',
      met: failed.length ? 'no: wakes failed' : s.p50 <= 50 ? (s.p99 <= 50 ? 'yes' : 'p50 yes, p99 no') : 'no',
    });
    await mags.stop(name);
  } finally {
    await server.stop();
    removeInstanceDirs(instance);
  }
}

// ── 3. wake from stopped ────────────────────────────────────────────────────────────────────────────────────────

/**
 * `warm`: the server's default --warm (300 s), so a stopped sandbox's workspace stays mounted with a fresh sandbox
 * parked on it for that long, and a wake within it takes that sandbox; cold (--warm 0): the copy is unmounted when
 * the sandbox stops, and a wake mounts it and makes a sandbox.
 */
async function benchStopped(warm: boolean): Promise<void> {
  const instance = `t${tag()}`;
  const server = await startBenchServer(instance, [
    '--sleep-after',
    '1s',
    '--stop-after',
    '1s',
    '--capacity',
    String(STOPPED_WAKES + 4),
    ...(warm ? [] : ['--warm', '0']),
  ]);
  try {
    const mags = new Mags({ apiUrl: server.url, apiToken: server.token });
    const names = Array.from({ length: STOPPED_WAKES + 1 }, (_, i) => `stopped-${i}-${tag()}`);
    await pool(names, 4, async (name) => {
      await mags.new(name, { persistent: true, diskGb: 1 });
      await mags.exec(name, `echo ${name} > /root/kept`);
    });
    const wakes: number[] = [];
    // One at a time: each is stopped (synced) before it is woken, and stopped again after, so that no sync runs
    // in the background during the next measurement.
    for (const [i, name] of names.entries()) {
      await waitJob(mags, name, (j) => j.status === 'sleeping' && j.vmId === null, 'stopped', 60_000);
      const { ms, out } = await firstByte(mags, name, 'cat /root/kept');
      if (out !== `${name}\n`) throw new Error(`woken, ${name} answered ${JSON.stringify(out)}`);
      if (i > 0) wakes.push(ms); // the first one is a warm-up
      await mags.stop(name);
    }
    const s = summary(wakes);
    const how = warm ? 'within --warm: a sandbox parked on the copy' : 'cold, --warm 0: copy mounted, sandbox made';
    console.log(`wake from stopped (persistent; ${how}) → first byte of exec output:  ${line(s)}`);
    rows.push({
      what: `wake from stopped${warm ? ' (warm copy)' : ' (cold)'} -> first byte, p50 / p99`,
      figure: `${fmt(s.p50)} / ${fmt(s.p99)}`,
      target: '<= 1 s',
      met: s.p50 <= 1000 ? (s.p99 <= 1000 ? 'yes' : 'p50 yes, p99 no') : 'no',
    });
  } finally {
    await server.stop();
    removeInstanceDirs(instance);
  }
}

// ── 4. memory per frozen sandbox ────────────────────────────────────────────────────────────────────────────────

function meminfo(): { totalKb: number; availableKb: number } {
  const info = readFileSync('/proc/meminfo', 'utf8');
  const kb = (k: string) => Number(new RegExp(`^${k}:\\s+(\\d+)`, 'm').exec(info)?.[1]);
  return { totalKb: kb('MemTotal'), availableKb: kb('MemAvailable') };
}

/** Resident and proportional set size of a process, in bytes (0 when gone). */
function procMem(pid: number): { rss: number; pss: number } {
  try {
    const t = readFileSync(`/proc/${pid}/smaps_rollup`, 'utf8');
    const kb = (k: string) => Number(new RegExp(`^${k}:\\s+(\\d+)`, 'm').exec(t)?.[1] ?? 0) * 1024;
    return { rss: kb('Rss'), pss: kb('Pss') };
  } catch {
    return { rss: 0, pss: 0 };
  }
}

/** The `crun run` process holding each container, by container id. */
function runtimes(): Map<string, number> {
  const out = new Map<string, number>();
  for (const d of readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    try {
      const args = readFileSync(`/proc/${d}/cmdline`, 'utf8').split('\0').filter(Boolean);
      if (path.basename(args[0] ?? '') === 'crun' && args.includes('run')) out.set(args.at(-1)!, Number(d));
    } catch {
      /* gone */
    }
  }
  return out;
}

/**
 * A filesystem for the memory part's state directory: a sparse 1 TB ext4 image, loop-mounted, with the root images
 * bound into it. Disk admission counts every workspace disk at its full size (sparse files may grow into it), so
 * 200 sandboxes of 1 GB do not fit the ~60 GB this host has free, though each writes only a few MB. Not a way around
 * a limit users meet: only a roomier disk for the benchmark.
 */
function sparseStateDir(instance: string): { dir: string; remove(): void } {
  const image = `/var/tmp/mags-bench-${instance}.img`;
  const dir = `/var/tmp/mags-bench-${instance}`;
  execFileSync('truncate', ['-s', '1T', image]);
  // Few inodes (one per 4 MB) and no background zeroing of the inode tables, so the image stays small.
  execFileSync('mkfs.ext4', ['-q', '-F', '-T', 'largefile4', '-m', '0', image]);
  mkdirSync(dir, { recursive: true });
  execFileSync('mount', ['-o', 'loop,noinit_itable', image, dir]);
  mkdirSync(path.join(dir, 'images'));
  execFileSync('mount', ['--bind', '/var/lib/mags/images', path.join(dir, 'images')]);
  return {
    dir,
    remove() {
      spawnSync('umount', [path.join(dir, 'images')], { stdio: 'ignore' });
      // The workspaces' loop devices let go of their disks a moment after they are unmounted: retry for 5 s.
      for (let i = 0; i < 20 && spawnSync('umount', [dir], { stdio: 'ignore' }).status !== 0; i++)
        execFileSync('sleep', ['0.25']);
      const left = readFileSync('/proc/self/mountinfo', 'utf8')
        .split('\n')
        .map((l) => l.split(' ')[4])
        .filter((m) => m?.startsWith(dir));
      if (left.length) {
        console.log(`warning: still mounted under ${dir}: ${left.join(' ')}; unmounting lazily`);
        for (const m of left.reverse()) spawnSync('umount', ['-l', m!], { stdio: 'ignore' });
      }
      rmSync(dir, { recursive: true, force: true });
      rmSync(image, { force: true });
    },
  };
}

async function benchMemory(): Promise<void> {
  const instance = `m${tag()}`;
  const state = process.env.BENCH_STATE_FS === 'host' ? undefined : sparseStateDir(instance);
  const server = await startBenchServer(
    instance,
    ['--sleep-after', '2s', '--stop-after', '1h', '--capacity', String(SANDBOXES + 10), '--warm', '0'],
    state?.dir,
  ).catch((err) => {
    state?.remove();
    throw err;
  });
  const mags = new Mags({ apiUrl: server.url, apiToken: server.token });
  const names = Array.from({ length: SANDBOXES }, (_, i) => `mem-${i}-${tag()}`);
  const made: string[] = [];
  try {
    await sleep(3000);
    const before = meminfo();
    const serverBefore = procMem(server.pid);
    const t0 = performance.now();
    await pool(names, PARALLEL, async (name) => {
      await mags.new(name, { diskGb: 1 });
      made.push(name);
      const r = await mags.exec(name, `echo ${name} > /root/hello; cat /root/hello`);
      if (r.stdout !== `${name}\n`) throw new Error(`${name}: ${JSON.stringify(r)}`);
    });
    const madeS = (performance.now() - t0) / 1000;
    console.log(
      `made ${SANDBOXES} sandboxes (mags new + one small exec each, ${PARALLEL} at a time) in ${madeS.toFixed(1)} s`,
    );
    const jobs: Job[] = [];
    for (const name of names) jobs.push(await waitJob(mags, name, (j) => j.status === 'sleeping', 'to sleep', 120_000));
    const notFrozen = jobs.filter((j) => !j.vmId || freezerState(instance, j.vmId) !== 'FROZEN');
    if (notFrozen.length) throw new Error(`${notFrozen.length} sandboxes are sleeping but not frozen`);
    await sleep(2000);
    const after = meminfo();
    const serverAfter = procMem(server.pid);
    const rt = runtimes();
    let cgroupUsage = 0;
    let cgroupRss = 0;
    let cgroupCache = 0;
    let procRss = 0;
    let procPss = 0;
    let procs = 0;
    let runtimeRss = 0;
    let runtimePss = 0;
    for (const j of jobs) {
      const cg = `/sys/fs/cgroup/memory/mags${instance}/${j.vmId}`;
      cgroupUsage += Number(readFileSync(`${cg}/memory.usage_in_bytes`, 'utf8'));
      const stat = readFileSync(`${cg}/memory.stat`, 'utf8');
      cgroupRss += Number(/^total_rss (\d+)/m.exec(stat)?.[1] ?? 0);
      cgroupCache += Number(/^total_cache (\d+)/m.exec(stat)?.[1] ?? 0);
      for (const pid of readFileSync(`${cg}/c/cgroup.procs`, 'utf8').trim().split('\n').filter(Boolean)) {
        const m = procMem(Number(pid));
        procRss += m.rss;
        procPss += m.pss;
        procs++;
      }
      const runtime = rt.get(j.vmId!);
      if (runtime) {
        const m = procMem(runtime);
        runtimeRss += m.rss;
        runtimePss += m.pss;
      }
    }
    const n = jobs.length;
    const usedBefore = (before.totalKb - before.availableKb) * 1024;
    const usedAfter = (after.totalKb - after.availableKb) * 1024;
    const hostDelta = usedAfter - usedBefore;
    const per = (b: number) => `${(b / n / MB).toFixed(2)} MB`;
    const tot = (b: number) => `${(b / MB).toFixed(0)} MB`;
    console.log(`memory with ${n} frozen sandboxes (each: mags new, one exec, then idle until frozen):`);
    console.log(
      `  host MemAvailable: ${tot(before.availableKb * 1024)} before, ${tot(after.availableKb * 1024)} after; used (MemTotal - MemAvailable) +${tot(hostDelta)} = ${per(hostDelta)} per sandbox (the whole machine: others' work moves it too)`,
    );
    console.log(
      `  sandboxes' cgroups: memory.usage_in_bytes ${tot(cgroupUsage)} = ${per(cgroupUsage)} per sandbox (rss ${per(cgroupRss)}, page cache ${per(cgroupCache)}; the rest is kernel memory)`,
    );
    console.log(
      `  the sandboxes' own processes (${procs}, ${(procs / n).toFixed(1)} each): RSS ${tot(procRss)} = ${per(procRss)} per sandbox, PSS ${per(procPss)}`,
    );
    console.log(
      `  the runtime holding each (crun run, on the host, outside the sandbox): RSS ${per(runtimeRss)}, PSS ${per(runtimePss)} per sandbox`,
    );
    console.log(
      `  the server (control plane and agent, one process): RSS ${tot(serverBefore.rss)} before, ${tot(serverAfter.rss)} after = ${per(serverAfter.rss - serverBefore.rss)} per sandbox`,
    );
    // PSS, not RSS: the static init's pages are shared by every sandbox, and RSS would count them 400 times.
    const beyond = hostDelta - procPss;
    console.log(
      `  beyond what the sandboxes' own processes hold: host used delta - their PSS = ${per(beyond)} per sandbox (target <= 10 MB; with their RSS instead: ${per(hostDelta - procRss)})`,
    );
    rows.push({
      what: `memory per frozen sandbox (${n}) beyond its processes`,
      figure: per(beyond),
      target: '<= 10 MB',
      met: beyond / n / MB <= 10 ? 'yes' : 'no',
    });
    rows.push({
      what: '  its own processes: PSS / RSS / cgroup usage',
      figure: `${per(procPss)} / ${per(procRss)} / ${per(cgroupUsage)}`,
      target: '',
      met: '',
    });
  } finally {
    // Stopped through the API first: stopping 200 sandboxes at the server's SIGTERM could outlast its grace time.
    const t = performance.now();
    await pool(made, PARALLEL, async (name) => {
      await mags.stop(name).catch((err) => console.log(`could not stop ${name}: ${err}`));
    });
    console.log(`stopped ${made.length} sandboxes in ${((performance.now() - t) / 1000).toFixed(1)} s`);
    await server.stop();
    removeInstanceDirs(instance, state?.dir);
    state?.remove();
  }
}

async function main() {
  if (process.getuid?.() !== 0) throw new Error('bench/long-lived needs root (it starts its own mags server)');
  if (!existsSync('/var/lib/mags/images')) throw new Error('the machine is not set up (./setup.sh)');
  console.log(`load average before: ${loadavg()}  (2 cores; figures are noisy above ~1)`);
  if (parts.has('exec')) await benchExec();
  console.log(`load average: ${loadavg()}`);
  if (parts.has('frozen')) await benchFrozen();
  console.log(`load average: ${loadavg()}`);
  if (parts.has('stopped')) {
    await benchStopped(false);
    await benchStopped(true);
  }
  console.log(`load average: ${loadavg()}`);
  if (parts.has('memory')) await benchMemory();
  console.log('');
  const w = [
    Math.max(...rows.map((r) => r.what.length), 4),
    Math.max(...rows.map((r) => r.figure.length), 6),
    Math.max(...rows.map((r) => r.target.length), 6),
  ];
  const row = (a: string, b: string, c: string, d: string) =>
    `${a.padEnd(w[0]!)}  ${b.padEnd(w[1]!)}  ${c.padEnd(w[2]!)}  ${d}`;
  console.log(row('what', 'figure', 'target', 'met'));
  for (const r of rows) console.log(row(r.what, r.figure, r.target, r.met));
  console.log(`load average after: ${loadavg()}`);
}

await main();
