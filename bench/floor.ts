// The runtime's floor, measured in the benchmark's own run to read its figures against: `crun run` of /bin/true on
// an already-mounted overlay, without or with a user namespace (on the uid-shifted image, as sandboxes run).
import { execFileSync } from 'node:child_process';
import { chmodSync, chownSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';

const IMAGE = '/var/lib/mags/images/debian-12-v3';
const SHIFTED_IMAGE = `${IMAGE}-u100000`;
const USERNS_HOST_ID = 100000;

/** Wall time of each of `runs` runs of `crun run /bin/true`, in ms. */
export function floor(runs: number, userns: boolean): number[] {
  const dir = mkdtempSync(path.join(tmpdir(), 'mags-bench-floor-'));
  const root = `/run/mags-bench-floor-${process.pid}`;
  const times: number[] = [];
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
    for (let i = 0; i < runs; i++) {
      const t = performance.now();
      execFileSync('crun', ['--root', root, 'run', '--bundle', dir, `floor-${i}`], { stdio: 'ignore' });
      times.push(performance.now() - t);
    }
  } finally {
    execFileSync('umount', [`${dir}/rootfs`], { stdio: 'ignore' });
    rmSync(dir, { recursive: true, force: true });
    rmSync(root, { recursive: true, force: true });
  }
  return times;
}
