// The runtime's floor, measured in the benchmark's own run to read its figures against: `crun run` of /bin/true on
// an already-mounted overlay, without or with a user namespace (on the uid-shifted image, as sandboxes run): its wall
// time per run, and its CPU: what crun and the container's processes used (this process's reaped children), and the
// whole machine's busy time over the runs (anything else running counts there too).
import { execFileSync } from 'node:child_process';
import { chmodSync, chownSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';

const IMAGE = '/var/lib/mags/images/debian-12-v3';
const SHIFTED_IMAGE = `${IMAGE}-u100000`;
const USERNS_HOST_ID = 100000;

const CLK_TCK = 100;

/** Busy jiffies of the whole machine. */
export function machineBusy(): number {
  const cpu = readFileSync('/proc/stat', 'utf8').split('\n')[0].trim().split(/\s+/).slice(1).map(Number);
  return cpu.slice(0, 8).reduce((a, b) => a + b, 0) - cpu[3] - cpu[4];
}

/** utime, stime, cutime, cstime of a process (jiffies): its own CPU and what the children it waited for used. */
export function procTimes(pid: number | 'self'): { self: number; reaped: number } {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const f = stat
    .slice(stat.lastIndexOf(')') + 2)
    .split(' ')
    .map(Number);
  return { self: f[11] + f[12], reaped: f[13] + f[14] };
}

export interface Floor {
  /** Wall time of each run, ms. */
  times: number[];
  /** CPU per run of crun and the container it ran (this process's reaped children), ms. */
  cpuMs: number;
  /** Busy time of the whole machine per run, ms. */
  machineMs: number;
}

/** `runs` runs of `crun run /bin/true`: wall time of each, and CPU per run. */
export function floor(runs: number, userns: boolean): Floor {
  const dir = mkdtempSync(path.join(tmpdir(), 'mags-bench-floor-'));
  const root = `/run/mags-bench-floor-${process.pid}`;
  const times: number[] = [];
  let cpuMs = 0;
  let machineMs = 0;
  const ids = [{ containerID: 0, hostID: USERNS_HOST_ID, size: 65536 }];
  try {
    for (const d of ['upper', 'work', 'rootfs']) mkdirSync(path.join(dir, d));
    if (userns) {
      // crun, inside the namespace, must reach rootfs/; the layer's root is the sandbox root's.
      chownSync(dir, 0, USERNS_HOST_ID);
      chmodSync(dir, 0o710);
      chownSync(path.join(dir, 'upper'), USERNS_HOST_ID, USERNS_HOST_ID);
    }
    const lower = userns ? SHIFTED_IMAGE : IMAGE;
    execFileSync('mount', [
      '-t',
      'overlay',
      '-o',
      `lowerdir=${lower},upperdir=${dir}/upper,workdir=${dir}/work`,
      'bench-floor',
      `${dir}/rootfs`,
    ]);
    writeFileSync(
      path.join(dir, 'config.json'),
      JSON.stringify({
        ociVersion: '1.0.2',
        process: {
          terminal: false,
          user: { uid: 0, gid: 0 },
          args: ['/bin/true'],
          env: ['PATH=/usr/bin:/bin'],
          cwd: '/',
        },
        root: { path: `${dir}/rootfs` },
        hostname: 'floor',
        mounts: [{ destination: '/proc', type: 'proc', source: 'proc' }],
        linux: {
          namespaces: [...(userns ? ['user'] : []), 'pid', 'ipc', 'uts', 'mount', 'network'].map((type) => ({ type })),
          ...(userns ? { uidMappings: ids, gidMappings: ids } : {}),
        },
      }),
    );
    const crun = execFileSync('sh', ['-c', 'command -v crun']).toString().trim();
    const m0 = machineBusy();
    const c0 = procTimes('self').reaped;
    for (let i = 0; i < runs; i++) {
      const t = performance.now();
      execFileSync(crun, ['--root', root, 'run', '--bundle', dir, `floor-${i}`], { stdio: 'ignore' });
      times.push(performance.now() - t);
    }
    cpuMs = (((procTimes('self').reaped - c0) / CLK_TCK) * 1000) / runs;
    machineMs = (((machineBusy() - m0) / CLK_TCK) * 1000) / runs;
  } finally {
    execFileSync('umount', [`${dir}/rootfs`], { stdio: 'ignore' });
    rmSync(dir, { recursive: true, force: true });
    rmSync(root, { recursive: true, force: true });
  }
  return { times, cpuMs, machineMs };
}
