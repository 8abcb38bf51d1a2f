// Host preparation at agent start, and removal of what a crashed predecessor left behind.
import {
  chmodSync,
  chownSync,
  copyFileSync,
  existsSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import path from 'node:path';
import type { Logger } from 'pino';
import { removeAllUnder } from './cgroups.js';
import { type AgentConfig, checkImage, hostNames } from './config.js';
import { layerTemplatesDir } from './disks.js';
import { HOSTD_BINARY } from './hostd.js';
import { run, sh } from './process.js';
import { SPAWN_BINARY } from './spawner.js';

/** crun refuses hybrid cgroup hosts whose v2 hierarchy still holds a controller; hugetlb is the one left there. */
async function ensureCgroupLayout(logger: Logger): Promise<void> {
  const unified = '/sys/fs/cgroup/unified/cgroup.controllers';
  if (!existsSync(unified) || readFileSync(unified, 'utf8').trim() === '') return;
  if (!readFileSync(unified, 'utf8').split(/\s+/).includes('hugetlb')) return;
  await sh(
    'mkdir -p /sys/fs/cgroup/hugetlb && (mountpoint -q /sys/fs/cgroup/hugetlb || mount -t cgroup -o hugetlb cgroup /sys/fs/cgroup/hugetlb)',
    { logger },
  );
  logger.info('mounted the hugetlb cgroup controller as a v1 hierarchy (crun needs it on hybrid hosts)');
}

export async function runtimeVersion(config: AgentConfig): Promise<string> {
  const { stdout } = await run(config.runtime, ['--version']);
  const m = stdout.match(/version\s+(\S+)/);
  return `${path.basename(config.runtime)} ${m ? m[1] : 'unknown'}`;
}

/**
 * Caps all of this agent's sandboxes together, below the host's memory and process limits, so that however many
 * sandboxes run at once, the kernel reclaims from them and never from the host's own services.
 */
function capSandboxesTogether(config: AgentConfig, logger: Logger): void {
  const parent = hostNames(config).cgroupParent;
  const memTotal = Number(/MemTotal:\s+(\d+)/.exec(readFileSync('/proc/meminfo', 'utf8'))?.[1] ?? 0) * 1024;
  const reserve = Math.max(1024 ** 3, memTotal * 0.1);
  const memLimit = String(Math.max(256 * 1024 ** 2, Math.floor(memTotal - reserve)));
  const pidMax = Number(readFileSync('/proc/sys/kernel/pid_max', 'utf8'));
  const writes: Array<[string, string, string]> = [
    // memory first: memsw may never be set below it.
    ['memory', 'memory.limit_in_bytes', memLimit],
    ['memory', 'memory.memsw.limit_in_bytes', memLimit],
    ['pids', 'pids.max', String(Math.floor(pidMax / 2))],
  ];
  for (const [controller, file, value] of writes) {
    const dir = path.join('/sys/fs/cgroup', controller, parent);
    if (!existsSync(path.join('/sys/fs/cgroup', controller))) continue;
    mkdirSync(dir, { recursive: true });
    try {
      writeFileSync(path.join(dir, file), value);
    } catch (err) {
      logger.warn({ err, file }, 'could not set the limit for all sandboxes together');
    }
  }
}

/**
 * One live agent per instance per host: a second one would remove the first one's sandboxes as "stale".
 * The pid file is taken over when its owner is gone.
 */
function claimInstance(config: AgentConfig): void {
  const file = path.join(config.runtimeRoot, 'agent.pid');
  // /run/mags (the default's parent, shared by instances) too; never a parent the agent does not own, like /run.
  if (path.basename(path.dirname(config.runtimeRoot)) === 'mags') privateDir(path.dirname(config.runtimeRoot));
  privateDir(config.runtimeRoot);
  if (existsSync(file)) {
    const pid = Number(readFileSync(file, 'utf8').trim());
    if (pid && pid !== process.pid && isAlive(pid)) {
      throw new Error(
        `another Mags agent (pid ${pid}) already runs instance "${config.instance}" on this host: stop it, or start this one with a different --instance`,
      );
    }
  }
  writeFileSync(file, `${process.pid}\n`);
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

export function releaseInstance(config: AgentConfig): void {
  const file = path.join(config.runtimeRoot, 'agent.pid');
  try {
    if (Number(readFileSync(file, 'utf8').trim()) === process.pid) rmSync(file);
  } catch {
    /* already gone */
  }
}

export async function prepareHost(config: AgentConfig, logger: Logger): Promise<void> {
  if (process.getuid?.() !== 0)
    throw new Error('the Mags agent must run as root: it creates namespaces, mounts and cgroups');
  claimInstance(config);
  checkImage(config);
  if (!existsSync(config.initBinary))
    throw new Error(
      `the sandbox init ${config.initBinary} is missing: install the catatonit package (./setup.sh does this)`,
    );
  if (!existsSync(config.toolBinary))
    throw new Error(
      `the sandbox tool ${config.toolBinary} is missing: build it with scripts/build-tool.sh (npm run build does)`,
    );
  if (!existsSync(HOSTD_BINARY))
    throw new Error(
      `the host helper ${HOSTD_BINARY} is missing: build it with scripts/build-tool.sh (npm run build does)`,
    );
  if (!existsSync(SPAWN_BINARY))
    throw new Error(
      `the runtime spawner ${SPAWN_BINARY} is missing: build it with scripts/build-tool.sh (npm run build does)`,
    );
  checkUserNamespaces();
  await ensureCgroupLayout(logger);
  secureStateDirs(config);
  capSandboxesTogether(config, logger);
}

/** Every sandbox runs in a user namespace: a host that forbids them can run none. */
function checkUserNamespaces(): void {
  const file = '/proc/sys/user/max_user_namespaces';
  if (existsSync(file) && Number(readFileSync(file, 'utf8').trim()) === 0) {
    throw new Error(
      'user namespaces are disabled on this host (user.max_user_namespaces = 0): sandboxes run in one; enable them with sysctl -w user.max_user_namespaces=15000',
    );
  }
}

/** Creates a directory with `mode` (parents too) or, when it exists, corrects its mode and owner to root:gid. */
function privateDir(dir: string, mode = 0o700, gid = 0): void {
  mkdirSync(dir, { recursive: true, mode });
  const st = statSync(dir);
  if (st.uid !== 0 || st.gid !== gid) chownSync(dir, 0, gid);
  if ((st.mode & 0o7777) !== mode) chmodSync(dir, mode);
}

/**
 * The agent's state is its own: sandboxes' layers, workspace disks, bases and the blob cache hold what sandboxes
 * wrote (setuid files, capabilities, secrets), so no host user may enter these directories: 0700, root's. The path to
 * the sandboxes' directories is 0710 with the sandboxes' root as group: crun, already inside the user namespace,
 * must reach each sandbox's rootfs/ and bind sources, and no host account has that gid. Made so, and corrected at
 * every start.
 */
function secureStateDirs(config: AgentConfig): void {
  const root = config.userns.hostId;
  const { sandboxesDir } = hostNames(config);
  privateDir(config.stateDir, 0o710, root);
  privateDir(path.dirname(sandboxesDir), 0o710, root);
  privateDir(sandboxesDir, 0o710, root);
  const under = (p: string) => p.startsWith(`${config.stateDir}/`);
  for (const dir of [config.imagesDir, config.workspacesDir, config.basesDir, config.cacheDir]) {
    // The parent too (workspaces/, bases/, cache/ hold every instance's); not a directory outside the state dir.
    if (under(path.dirname(dir)) && path.dirname(dir) !== config.stateDir) privateDir(path.dirname(dir));
    privateDir(dir);
  }
  // A local object store under the state directory (the default) holds every workspace's files.
  const objects = config.objects.startsWith('file://') ? config.objects.slice(7) : config.objects;
  if (path.isAbsolute(objects) && under(objects) && existsSync(objects)) privateDir(objects);
}

/**
 * Removes sandboxes of a previous agent process that died without cleaning up: containers, mounts, network
 * namespaces, veths, cgroups and directories. Only names this agent creates are touched.
 */
export async function cleanupStale(config: AgentConfig, logger: Logger): Promise<number> {
  let removed = 0;
  const {
    sandboxPrefix: NETNS_PREFIX,
    vethPrefix: VETH_PREFIX,
    cgroupParent: CGROUP_PARENT,
    sandboxesDir,
    filesDir,
  } = hostNames(config);
  const list = await run(config.runtime, ['--root', config.runtimeRoot, 'list', '-q'], { allowFailure: true });
  for (const id of list.stdout
    .split('\n')
    .map((s) => s.trim())
    .filter((s) => s.startsWith(NETNS_PREFIX))) {
    await run(config.runtime, ['--root', config.runtimeRoot, 'delete', '-f', id], { allowFailure: true });
    removed++;
  }
  // Deepest mounts first.
  const mounts = readFileSync('/proc/self/mountinfo', 'utf8')
    .split('\n')
    .map((l) => l.split(' ')[4])
    .filter((m): m is string => !!m && (m.startsWith(`${sandboxesDir}/`) || m === filesDir))
    .sort((a, b) => b.length - a.length);
  for (const m of mounts) await run('umount', ['-l', m], { allowFailure: true });
  // Ephemeral layers' loop devices detach when unmounted (autoclear); one left attached (its image deleted, or its
  // mount lazily gone) would keep its image's space taken, so detach every one whose image lies in sandboxesDir.
  const loops = await run('losetup', ['--list', '--noheadings', '--raw', '--output', 'NAME,BACK-FILE'], {
    allowFailure: true,
  });
  for (const line of loops.stdout.split('\n')) {
    const [device, ...file] = line.trim().split(' ');
    if (device && file.join(' ').startsWith(`${sandboxesDir}/`))
      await run('losetup', ['-d', device], { allowFailure: true });
  }
  rmSync(filesDir, { recursive: true, force: true });
  if (existsSync(sandboxesDir)) {
    for (const entry of readdirSync(sandboxesDir)) {
      rmSync(path.join(sandboxesDir, entry), { recursive: true, force: true });
      removed++;
    }
  }
  const netns = await run('ip', ['netns', 'list'], { allowFailure: true });
  for (const name of netns.stdout.split('\n').map((l) => l.split(' ')[0])) {
    if (name.startsWith(NETNS_PREFIX)) await run('ip', ['netns', 'del', name], { allowFailure: true });
  }
  const links = await run('ip', ['-o', 'link', 'show'], { allowFailure: true });
  for (const m of links.stdout.matchAll(new RegExp(`^\\d+: (${VETH_PREFIX}\\d+)@`, 'gm'))) {
    await run('ip', ['link', 'del', m[1]], { allowFailure: true });
  }
  removeAllUnder(CGROUP_PARENT);
  rmSync(layerTemplatesDir(config), { recursive: true, force: true }); // remade when next needed
  if (removed) logger.info({ removed }, 'removed sandboxes left by a previous agent');
  return removed;
}

/**
 * Mounts the tmpfs of files bound into sandboxes (see hostNames().filesDir) and copies the init and the tool into it. After
 * cleanupStale, which unmounts it again when the agent stops.
 */
export async function prepareSandboxFiles(config: AgentConfig, logger: Logger): Promise<void> {
  const { filesDir } = hostNames(config);
  mkdirSync(filesDir, { recursive: true });
  await run('mount', ['-t', 'tmpfs', '-o', 'size=16m,mode=0755,nosuid,nodev', 'mags-files', filesDir], { logger });
  copyFileSync(config.initBinary, path.join(filesDir, 'init'));
  chmodSync(path.join(filesDir, 'init'), 0o755);
  copyFileSync(config.toolBinary, path.join(filesDir, 'tool'));
  chmodSync(path.join(filesDir, 'tool'), 0o755);
}
