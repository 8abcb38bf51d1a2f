// The OCI config.json every sandbox starts from: the walls docs/security.md promises, read off the real output of
// ociConfig (the seccomp filter in it has its own test, seccomp.test.ts; the attacks are in test/isolation.test.ts).
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { type BundleInput, LAUNCHER, ociConfig } from '../src/bundle.js';

const input: BundleInput = {
  rootfs: '/var/lib/mags/sandboxes/0/s1/rootfs',
  netnsPath: '/var/run/netns/mags0-s1',
  cgroupsPath: '/mags0/s1/c',
  hostsFile: '/var/lib/mags/sandboxes/0.files/s1/hosts',
  resolvFile: '/var/lib/mags/sandboxes/0.files/s1/resolv.conf',
  initBinary: '/var/lib/mags/sandboxes/0.files/init',
  toolBinary: '/var/lib/mags/sandboxes/0.files/tool',
  userns: { hostId: 200_000, size: 70_000 },
};
const config = ociConfig(input);
/** A list of names written as words. */
const names = (words: string) => words.split(/\s+/);
const mount = (destination: string) => {
  const m = config.mounts.find((x) => x.destination === destination);
  assert.ok(m, `a mount at ${destination}`);
  return m;
};

describe('the OCI bundle', () => {
  test('namespaces: a new user namespace first, then pid, ipc, uts, mount and cgroup; the network one is joined', () => {
    assert.deepEqual(config.linux.namespaces, [
      { type: 'user' },
      { type: 'pid' },
      { type: 'ipc' },
      { type: 'uts' },
      { type: 'mount' },
      { type: 'cgroup' },
      { type: 'network', path: input.netnsPath },
    ]);
    assert.equal(config.hostname, 'sandbox');
  });

  test('root inside is the unprivileged host id of the configured range, for users and groups alike', () => {
    const mapping = [{ containerID: 0, hostID: 200_000, size: 70_000 }];
    assert.deepEqual(config.linux.uidMappings, mapping);
    assert.deepEqual(config.linux.gidMappings, mapping);
    assert.deepEqual(config.process.user, { uid: 0, gid: 0, additionalGids: [0] });
  });

  test('the root is the overlay it is given; the only host files bound in are hosts, resolv.conf, the init and the tool, read-only', () => {
    assert.deepEqual(config.root, { path: input.rootfs, readonly: false });
    const binds = config.mounts.filter((m) => m.type === 'bind');
    assert.deepEqual(
      binds.map((m) => [m.destination, m.source]),
      [
        ['/etc/hosts', input.hostsFile],
        ['/etc/resolv.conf', input.resolvFile],
        ['/.mags/init', input.initBinary],
        ['/.mags/tool', input.toolBinary],
      ],
    );
    for (const m of binds) assert.ok(m.options.includes('ro'), `${m.destination} is read-only`);
    // Every other mount is a fresh kernel file system, never a host path.
    for (const m of config.mounts.filter((x) => x.type !== 'bind'))
      assert.doesNotMatch(m.source, /\//, `${m.destination} from ${m.source}`);
  });

  test('every mount is nosuid; all but /dev and its pts are nodev; only the init and the tool are executable among the binds', () => {
    for (const m of config.mounts) assert.ok(m.options.includes('nosuid'), `${m.destination} is nosuid`);
    const withDevices = config.mounts.filter((m) => !m.options.includes('nodev')).map((m) => m.destination);
    assert.deepEqual(withDevices, ['/dev', '/dev/pts']);
    const executable = config.mounts
      .filter((m) => m.type === 'bind' && !m.options.includes('noexec'))
      .map((m) => m.destination);
    assert.deepEqual(executable, ['/.mags/init', '/.mags/tool']);
    assert.ok(mount('/proc').options.includes('noexec'));
    assert.ok(mount('/dev/shm').options.includes('noexec'));
  });

  test("/sys is an empty read-only tmpfs, never sysfs (which would be the host's)", () => {
    const sys = mount('/sys');
    assert.equal(sys.type, 'tmpfs');
    assert.ok(sys.options.includes('ro'));
    assert.ok(!config.mounts.some((m) => m.type === 'sysfs' || m.type === 'cgroup'), 'no sysfs or cgroupfs mount');
  });

  test('the process keeps a reduced capability set, the same in every set, and nothing inheritable or ambient', () => {
    const caps = config.process.capabilities;
    const expected = names(`CAP_CHOWN CAP_DAC_OVERRIDE CAP_FOWNER CAP_FSETID CAP_KILL CAP_NET_BIND_SERVICE CAP_SETFCAP
      CAP_SETGID CAP_SETPCAP CAP_SETUID CAP_SYS_CHROOT`);
    for (const set of ['bounding', 'effective', 'permitted'] as const)
      assert.deepEqual([...caps[set]].sort(), expected, set);
    assert.deepEqual(caps.inheritable, []);
    assert.deepEqual(caps.ambient, []);
    // Those docs/security.md names as withheld, spelled out so that a careless addition fails here.
    const withheld = names(
      'CAP_SYS_ADMIN CAP_NET_ADMIN CAP_NET_RAW CAP_SYS_MODULE CAP_MKNOD CAP_SYS_PTRACE CAP_AUDIT_WRITE',
    );
    for (const cap of withheld) assert.ok(!caps.bounding.includes(cap), `${cap} is withheld`);
  });

  test("no new privileges, first in line for the OOM killer, open files capped below the host's hard limit", () => {
    assert.equal(config.process.noNewPrivileges, true);
    assert.equal(config.process.oomScoreAdj, 1000);
    assert.deepEqual(config.process.rlimits, [{ type: 'RLIMIT_NOFILE', hard: 16384, soft: 16384 }]);
    assert.equal(config.process.terminal, false);
  });

  test('PID 1 is the bound init, reaping for the launcher, which waits for the job on its stdin', () => {
    assert.deepEqual(config.process.args, ['/.mags/init', '--', '/bin/sh', '-c', LAUNCHER]);
    assert.equal(config.process.cwd, '/');
    const env = new Map(config.process.env.map((e) => [e.slice(0, e.indexOf('=')), e.slice(e.indexOf('=') + 1)]));
    assert.equal(env.size, config.process.env.length, 'each variable once');
    assert.equal(env.get('HOME'), '/root');
    assert.equal(env.get('PATH'), '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin');
    assert.equal(env.get('NODE_EXTRA_CA_CERTS'), '/etc/ssl/certs/ca-certificates.crt');
  });

  test('host facts read as empty (masked) and kernel knobs are read-only, as docs/security.md lists them', () => {
    const masked = new Set(config.linux.maskedPaths);
    const facts = names(`cmdline config.gz kallsyms slabinfo vmallocinfo kpageflags kpagecount kpagecgroup iomem ioports
      pagetypeinfo zoneinfo buddyinfo key-users kcore keys kmsg`);
    for (const p of facts) assert.ok(masked.has(`/proc/${p}`), `/proc/${p} is masked`);
    assert.deepEqual([...config.linux.readonlyPaths].sort(), [
      '/proc/bus',
      '/proc/fs',
      '/proc/irq',
      '/proc/sys',
      '/proc/sysrq-trigger',
    ]);
  });

  test('devices: everything denied, then only null, zero, full, random, urandom, tty, ptmx and the pts', () => {
    const [first, ...allowed] = config.linux.resources.devices;
    assert.deepEqual(first, { allow: false, access: 'rwm' });
    assert.deepEqual(
      (allowed as Array<{ allow: boolean; type: string; major: number; minor?: number }>).map(
        (d) => `${d.allow} ${d.type} ${d.major}:${d.minor ?? '*'}`,
      ),
      [
        'true c 1:3',
        'true c 1:5',
        'true c 1:7',
        'true c 1:8',
        'true c 1:9',
        'true c 5:0',
        'true c 5:2',
        'true c 136:*',
      ],
    );
  });

  test('the runtime gets the cgroup path it is given and sets no limits itself: those live on the level above (cgroups.ts)', () => {
    assert.equal(config.linux.cgroupsPath, input.cgroupsPath);
    // Limits set on the runtime's cgroup would vanish with it; the agent reads them (e.g. the memory peak) after.
    assert.deepEqual(Object.keys(config.linux.resources), ['devices']);
  });
});
