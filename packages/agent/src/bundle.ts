// The OCI bundle of a sandbox: namespaces (a user namespace whose root is an unprivileged host uid among them),
// mounts, cgroup limits, capabilities and the seccomp filter.
// The same hardening is written into every process started in the sandbox (crun exec --process).

export interface Limits {
  memoryMb: number;
  vcpus: number;
  pids: number;
}

/** Capabilities a sandboxed root keeps: enough for apt, pip and servers; no admin, raw sockets, mknod or ptrace of the host. */
const CAPABILITIES = [
  'CAP_CHOWN',
  'CAP_DAC_OVERRIDE',
  'CAP_FSETID',
  'CAP_FOWNER',
  'CAP_SETGID',
  'CAP_SETUID',
  'CAP_SETFCAP',
  'CAP_SETPCAP',
  'CAP_NET_BIND_SERVICE',
  'CAP_SYS_CHROOT',
  'CAP_KILL',
  'CAP_AUDIT_WRITE',
];

/** System calls a sandbox has no business making: kernel modules, mounts, namespaces, keyrings, bpf, clocks, … */
const DENIED_SYSCALLS = [
  'acct', 'add_key', 'bpf', 'clock_adjtime', 'clock_settime', 'create_module', 'delete_module', 'finit_module',
  'fsconfig', 'fsmount', 'fsopen', 'fspick', 'get_kernel_syms', 'get_mempolicy', 'init_module', 'ioperm', 'iopl',
  'kcmp', 'kexec_file_load', 'kexec_load', 'keyctl', 'lookup_dcookie', 'mbind', 'mount', 'mount_setattr',
  'move_mount', 'move_pages', 'name_to_handle_at', 'nfsservctl', 'open_by_handle_at', 'open_tree', 'perf_event_open',
  'pivot_root', 'query_module', 'quotactl', 'quotactl_fd', 'reboot', 'request_key', 'set_mempolicy', 'setns',
  'settimeofday', 'swapoff', 'swapon', 'sysfs', 'syslog', '_sysctl', 'umount', 'umount2', 'unshare', 'uselib',
  'userfaultfd', 'ustat', 'vhangup', 'vm86', 'vm86old', 'fanotify_init', 'lsm_set_self_attr',
];

const CLONE_NAMESPACE_FLAGS = [
  0x00020000, // CLONE_NEWNS
  0x02000000, // CLONE_NEWCGROUP
  0x04000000, // CLONE_NEWUTS
  0x08000000, // CLONE_NEWIPC
  0x10000000, // CLONE_NEWUSER
  0x20000000, // CLONE_NEWPID
  0x40000000, // CLONE_NEWNET
];

function seccomp() {
  return {
    defaultAction: 'SCMP_ACT_ALLOW',
    architectures: ['SCMP_ARCH_X86_64', 'SCMP_ARCH_X86', 'SCMP_ARCH_X32'],
    syscalls: [
      { names: DENIED_SYSCALLS, action: 'SCMP_ACT_ERRNO', errnoRet: 1 },
      // clone3 passes its flags in memory a filter cannot read: answer ENOSYS so libc falls back to clone.
      { names: ['clone3'], action: 'SCMP_ACT_ERRNO', errnoRet: 38 },
      ...CLONE_NAMESPACE_FLAGS.map((flag) => ({
        names: ['clone'],
        action: 'SCMP_ACT_ERRNO',
        errnoRet: 1,
        args: [{ index: 0, value: flag, valueTwo: flag, op: 'SCMP_CMP_MASKED_EQ' }],
      })),
    ],
  };
}

export const SANDBOX_PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';

/** The process section used for the init and for every exec into the sandbox. */
export function processSpec(args: string[], env: Record<string, string>, cwd = '/root') {
  const base: Record<string, string> = {
    PATH: SANDBOX_PATH,
    HOME: '/root',
    LANG: 'C.UTF-8',
    TERM: 'xterm',
    HOSTNAME: 'sandbox',
    // Node ships its own CA list; make it trust the system store too (which includes the host's local CAs).
    NODE_EXTRA_CA_CERTS: '/etc/ssl/certs/ca-certificates.crt',
  };
  return {
    terminal: false,
    user: { uid: 0, gid: 0, additionalGids: [0] },
    args,
    env: Object.entries({ ...base, ...env }).map(([k, v]) => `${k}=${v}`),
    cwd,
    capabilities: {
      bounding: CAPABILITIES,
      effective: CAPABILITIES,
      permitted: CAPABILITIES,
      inheritable: [],
      ambient: [],
    },
    // root lacks CAP_SYS_RESOURCE on this machine kind: stay below the 20000 hard limit.
    rlimits: [{ type: 'RLIMIT_NOFILE', hard: 16384, soft: 16384 }],
    noNewPrivileges: true,
    oomScoreAdj: 1000,
  };
}

const ALLOWED_DEVICES = [
  { type: 'c', major: 1, minor: 3 }, // null
  { type: 'c', major: 1, minor: 5 }, // zero
  { type: 'c', major: 1, minor: 7 }, // full
  { type: 'c', major: 1, minor: 8 }, // random
  { type: 'c', major: 1, minor: 9 }, // urandom
  { type: 'c', major: 5, minor: 0 }, // tty
  { type: 'c', major: 5, minor: 2 }, // ptmx
  { type: 'c', major: 136, minor: -1 }, // pts
];

/** Device access: deny everything but the usual character devices. Memory, CPU and pids limits live on the
 * sandbox's own cgroup (see cgroups.ts), above the runtime's, so they can be read after the runtime is gone. */
function deviceRules() {
  return [
    { allow: false, access: 'rwm' },
    ...ALLOWED_DEVICES.map((d) => ({ allow: true, type: d.type, major: d.major, ...(d.minor >= 0 ? { minor: d.minor } : {}), access: 'rwm' })),
  ];
}

/**
 * PID 2 of every sandbox (under the catatonit init): announces it is ready, then waits for the job, which the agent
 * writes to its stdin as a shell program, and becomes it. No `crun exec` on the start path.
 */
export const LAUNCHER = `printf 'READY\\n'; exec /bin/sh -c "$(cat)"`;
export const READY_LINE = 'READY\n';

export interface BundleInput {
  rootfs: string;
  netnsPath: string;
  cgroupsPath: string;
  hostsFile: string;
  resolvFile: string;
  initBinary: string;
  /** The user namespace: uid/gid 0..size-1 inside are hostId.. on the host. */
  userns: { hostId: number; size: number };
}

export function ociConfig(b: BundleInput) {
  return {
    ociVersion: '1.0.2',
    process: processSpec(['/.mags/init', '--', '/bin/sh', '-c', LAUNCHER], {}, '/'),
    root: { path: b.rootfs, readonly: false },
    hostname: 'sandbox',
    mounts: [
      { destination: '/proc', type: 'proc', source: 'proc', options: ['nosuid', 'noexec', 'nodev'] },
      { destination: '/dev', type: 'tmpfs', source: 'tmpfs', options: ['nosuid', 'strictatime', 'mode=755', 'size=65536k'] },
      { destination: '/dev/pts', type: 'devpts', source: 'devpts', options: ['nosuid', 'noexec', 'newinstance', 'ptmxmode=0666', 'mode=0620'] },
      { destination: '/dev/shm', type: 'tmpfs', source: 'shm', options: ['nosuid', 'noexec', 'nodev', 'mode=1777', 'size=65536k'] },
      { destination: '/dev/mqueue', type: 'mqueue', source: 'mqueue', options: ['nosuid', 'noexec', 'nodev'] },
      // The network namespace is made by the host (owned by the initial user namespace), so the kernel refuses the
      // sandbox a sysfs of its own, and crun would then bind the host's /sys instead. An empty read-only tmpfs it is.
      { destination: '/sys', type: 'tmpfs', source: 'sysfs', options: ['nosuid', 'noexec', 'nodev', 'ro', 'mode=0555', 'size=4k'] },
      { destination: '/etc/hosts', type: 'bind', source: b.hostsFile, options: ['bind', 'ro', 'nosuid', 'nodev', 'noexec'] },
      { destination: '/etc/resolv.conf', type: 'bind', source: b.resolvFile, options: ['bind', 'ro', 'nosuid', 'nodev', 'noexec'] },
      { destination: '/.mags/init', type: 'bind', source: b.initBinary, options: ['bind', 'ro', 'nosuid', 'nodev'] },
    ],
    linux: {
      // The user namespace comes first: the others are created (or, for the network, joined) from inside it.
      namespaces: [
        { type: 'user' },
        { type: 'pid' },
        { type: 'ipc' },
        { type: 'uts' },
        { type: 'mount' },
        { type: 'cgroup' },
        { type: 'network', path: b.netnsPath },
      ],
      uidMappings: [{ containerID: 0, hostID: b.userns.hostId, size: b.userns.size }],
      gidMappings: [{ containerID: 0, hostID: b.userns.hostId, size: b.userns.size }],
      cgroupsPath: b.cgroupsPath,
      resources: { devices: deviceRules() },
      seccomp: seccomp(),
      maskedPaths: [
        '/proc/acpi', '/proc/asound', '/proc/kcore', '/proc/keys', '/proc/latency_stats', '/proc/timer_list',
        '/proc/timer_stats', '/proc/sched_debug', '/proc/scsi', '/sys/firmware', '/sys/devices/virtual/powercap',
        '/sys/kernel/debug', '/sys/fs/cgroup',
      ],
      readonlyPaths: ['/proc/bus', '/proc/fs', '/proc/irq', '/proc/sys', '/proc/sysrq-trigger'],
    },
  };
}
