// The OCI bundle of a sandbox: namespaces (a user namespace whose root is an unprivileged host uid among them),
// mounts, cgroup limits, capabilities and the seccomp filter.
// Every process of a sandbox descends from the one process described here, so all of them carry its hardening.

export interface Limits {
  memoryMb: number;
  vcpus: number;
  pids: number;
}

/**
 * Capabilities a sandboxed root keeps: enough for apt, pip and servers; no admin, raw sockets, mknod or ptrace of the
 * host. No AUDIT_WRITE either: the audit log is the host's (and NETLINK_AUDIT sockets are refused, see below).
 */
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
];

const EPERM = 1;
const ENOSYS = 38;
const EAFNOSUPPORT = 97;
const EPROTONOSUPPORT = 93;

/**
 * The seccomp filter is an allow-list (x86_64 only): a system call not named here answers ENOSYS, as on a kernel
 * that lacks it, so programs fall back (clone3, io_uring) and the next new syscall family is closed until reviewed.
 * The list follows Docker's default profile for an unprivileged container, minus io_uring, modify_ldt and the
 * 32-bit/x32 entry points; the calls below are what programs use (files, memory, processes, signals, time, IPC, sockets).
 */
// biome-ignore format: a dense list of names, one topic per block
const ALLOWED_SYSCALLS = [
  // files and directories
  'access', 'chdir', 'chmod', 'chown', 'chroot', 'close', 'close_range', 'copy_file_range', 'creat', 'dup', 'dup2', 'dup3',
  'faccessat', 'faccessat2', 'fadvise64', 'fallocate', 'fchdir', 'fchmod', 'fchmodat', 'fchown', 'fchownat', 'fcntl',
  'fdatasync', 'fgetxattr', 'flistxattr', 'flock', 'fremovexattr', 'fsetxattr', 'fstat', 'fstatfs', 'fsync', 'ftruncate',
  'futimesat', 'getcwd', 'getdents', 'getdents64', 'getxattr', 'inotify_add_watch', 'inotify_init', 'inotify_init1',
  'inotify_rm_watch', 'fanotify_mark', 'lchown', 'lgetxattr', 'link', 'linkat', 'listxattr', 'llistxattr', 'lremovexattr',
  'lseek', 'lsetxattr', 'lstat', 'mkdir', 'mkdirat', 'mknod', 'mknodat', 'newfstatat', 'open', 'openat', 'openat2',
  'pread64', 'preadv', 'preadv2', 'pwrite64', 'pwritev', 'pwritev2', 'read', 'readahead', 'readlink', 'readlinkat',
  'readv', 'removexattr', 'rename', 'renameat', 'renameat2', 'rmdir', 'sendfile', 'setxattr', 'splice', 'stat', 'statfs',
  'statx', 'symlink', 'symlinkat', 'sync', 'sync_file_range', 'syncfs', 'tee', 'truncate', 'umask', 'unlink', 'unlinkat',
  'utime', 'utimensat', 'utimes', 'vmsplice', 'write', 'writev',
  // memory
  'brk', 'madvise', 'membarrier', 'memfd_create', 'memfd_secret', 'mincore', 'mlock', 'mlock2', 'mlockall', 'mmap',
  'mprotect', 'mremap', 'msync', 'munlock', 'munlockall', 'munmap', 'pkey_alloc', 'pkey_free', 'pkey_mprotect',
  'remap_file_pages',
  // processes, threads, credentials, limits, scheduling
  'arch_prctl', 'capget', 'capset', 'execve', 'execveat', 'exit', 'exit_group', 'fork', 'get_robust_list',
  'get_thread_area', 'getcpu', 'getegid', 'geteuid', 'getgid', 'getgroups', 'getpgid', 'getpgrp', 'getpid', 'getppid',
  'getpriority', 'getrandom', 'getresgid', 'getresuid', 'getrlimit', 'getrusage', 'getsid', 'gettid', 'getuid', 'ioprio_get',
  'ioprio_set', 'kill', 'landlock_add_rule', 'landlock_create_ruleset', 'landlock_restrict_self', 'pidfd_open',
  'pidfd_send_signal', 'prctl', 'prlimit64', 'process_mrelease', 'rseq', 'sched_get_priority_max',
  'sched_get_priority_min', 'sched_getaffinity', 'sched_getattr', 'sched_getparam', 'sched_getscheduler',
  'sched_rr_get_interval', 'sched_setaffinity', 'sched_setattr', 'sched_setparam', 'sched_setscheduler', 'sched_yield',
  'seccomp', 'set_robust_list', 'set_thread_area', 'set_tid_address', 'setfsgid', 'setfsuid', 'setgid', 'setgroups',
  'setpgid', 'setpriority', 'setregid', 'setresgid', 'setresuid', 'setreuid', 'setrlimit', 'setsid', 'setuid', 'tgkill',
  'tkill', 'vfork', 'wait4', 'waitid',
  // signals, time, waiting
  'alarm', 'clock_getres', 'clock_gettime', 'clock_nanosleep', 'adjtimex', 'epoll_create', 'epoll_create1', 'epoll_ctl',
  'epoll_pwait', 'epoll_pwait2', 'epoll_wait', 'eventfd', 'eventfd2', 'futex', 'futex_waitv', 'getitimer',
  'gettimeofday', 'nanosleep', 'pause', 'poll', 'ppoll', 'pselect6', 'restart_syscall', 'rt_sigaction', 'rt_sigpending',
  'rt_sigprocmask', 'rt_sigqueueinfo', 'rt_sigreturn', 'rt_sigsuspend', 'rt_sigtimedwait', 'rt_tgsigqueueinfo', 'select',
  'setitimer', 'sigaltstack', 'signalfd', 'signalfd4', 'time', 'timer_create', 'timer_delete', 'timer_getoverrun',
  'timer_gettime', 'timer_settime', 'timerfd_create', 'timerfd_gettime', 'timerfd_settime', 'times',
  // System V and POSIX IPC (namespaced), pipes, asynchronous I/O (not io_uring)
  'io_cancel', 'io_destroy', 'io_getevents', 'io_pgetevents', 'io_setup', 'io_submit', 'ioctl', 'mq_getsetattr',
  'mq_notify', 'mq_open', 'mq_timedreceive', 'mq_timedsend', 'mq_unlink', 'msgctl', 'msgget', 'msgrcv', 'msgsnd', 'pipe',
  'pipe2', 'semctl', 'semget', 'semop', 'semtimedop', 'shmat', 'shmctl', 'shmdt', 'shmget',
  // sockets (socket() and socketpair() themselves are filtered by family below)
  'accept', 'accept4', 'bind', 'connect', 'getpeername', 'getsockname', 'getsockopt', 'listen', 'recvfrom', 'recvmmsg',
  'recvmsg', 'sendmmsg', 'sendmsg', 'sendto', 'setsockopt', 'shutdown',
  // system information
  'sysinfo', 'uname',
];

/**
 * Named, so that they answer "Operation not permitted" (what the kernel says without the capability) rather than
 * ENOSYS: kernel modules, mounts, namespaces, keyrings, bpf, perf, clocks, swap, reboot, tracing of other processes
 * by handle, NUMA policy, and the like.
 */
// biome-ignore format: a dense list of names, one topic per block
const DENIED_SYSCALLS = [
  'acct', 'add_key', 'bpf', 'clock_adjtime', 'clock_settime', 'delete_module', 'fanotify_init', 'finit_module',
  'fsconfig', 'fsmount', 'fsopen', 'fspick', 'get_mempolicy', 'init_module', 'ioperm', 'iopl', 'kcmp',
  'kexec_file_load', 'kexec_load', 'keyctl', 'lookup_dcookie', 'mbind', 'migrate_pages', 'modify_ldt', 'mount',
  'mount_setattr', 'move_mount', 'move_pages', 'name_to_handle_at', 'nfsservctl', 'open_by_handle_at', 'open_tree',
  'perf_event_open', 'pidfd_getfd', 'pivot_root', 'process_madvise', 'quotactl', 'quotactl_fd', 'reboot',
  'request_key', 'set_mempolicy', 'set_mempolicy_home_node', 'setdomainname', 'sethostname', 'setns', 'settimeofday',
  'swapoff', 'swapon', 'sysfs', 'syslog', '_sysctl', 'umount2', 'unshare', 'uselib', 'userfaultfd', 'ustat', 'vhangup',
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

/** Socket families a sandbox may open: local, IPv4, IPv6 and netlink (for `ip`, `ss` and getaddrinfo). */
const AF_UNIX = 1;
const AF_INET = 2;
const AF_INET6 = 10;
const AF_NETLINK = 16;
const AF_PACKET = 17;
/** Netlink protocols: NETLINK_ROUTE (addresses, routes: `ip`, getifaddrs) and NETLINK_SOCK_DIAG (`ss`). */
const NETLINK_ROUTE = 0;
const NETLINK_SOCK_DIAG = 4;

type Arg = { index: number; value: number; valueTwo?: number; op: string };
type Rule = { names: string[]; action: string; errnoRet?: number; args?: Arg[] };

/** Argument conditions matching the low 32 bits of argument `index` in [lo, hi] (an int argument: the kernel ignores the upper half). */
function intRange(index: number, lo: number, hi: number): Arg[][] {
  const out: Arg[][] = [];
  let at = lo;
  while (at <= hi) {
    // The largest aligned block that starts at `at` and ends by `hi`.
    let size = 1;
    while (at % (size * 2) === 0 && at + size * 2 - 1 <= hi && size < 2 ** 31) size *= 2;
    out.push([{ index, value: (0x1_0000_0000 - size) >>> 0, valueTwo: at, op: 'SCMP_CMP_MASKED_EQ' }]);
    at += size;
  }
  return out;
}

/** The same action for each alternative set of argument conditions. */
function rules(name: string, action: string, errnoRet: number | undefined, alternatives: Arg[][]): Rule[] {
  return alternatives.map((args) => ({ names: [name], action, ...(errnoRet === undefined ? {} : { errnoRet }), args }));
}

/**
 * socket(): allowed for the families above (exact values, so a family smuggled in the upper half of the register
 * is refused); AF_PACKET answers EPERM as without CAP_NET_RAW; other families (vsock, alg, tipc, rds, bluetooth, …)
 * answer EAFNOSUPPORT, netlink protocols other than the two above (audit, netfilter, uevent, …) EPROTONOSUPPORT, so
 * programs that probe them (PAM, shadow's useradd, sudo for audit) carry on as on a kernel without them.
 */
function socketRules(): Rule[] {
  const eq = (index: number, value: number): Arg => ({ index, value, op: 'SCMP_CMP_EQ' });
  // Open-ended ranges compare all 64 bits: a value with upper bits set is refused there too (only exact values are allowed).
  const ge = (index: number, value: number): Arg => ({ index, value, op: 'SCMP_CMP_GE' });
  const family = (lo: number, hi: number) => intRange(0, lo, hi);
  const netlinkProto = (lo: number, hi: number) => intRange(2, lo, hi).map((a) => [eq(0, AF_NETLINK), ...a]);
  return [
    ...rules('socket', 'SCMP_ACT_ALLOW', undefined, [[eq(0, AF_UNIX)], [eq(0, AF_INET)], [eq(0, AF_INET6)]]),
    ...rules(
      'socket',
      'SCMP_ACT_ALLOW',
      undefined,
      [NETLINK_ROUTE, NETLINK_SOCK_DIAG].map((p) => [eq(0, AF_NETLINK), eq(2, p)]),
    ),
    ...rules('socket', 'SCMP_ACT_ERRNO', EPROTONOSUPPORT, [...netlinkProto(1, 3), [eq(0, AF_NETLINK), ge(2, 5)]]),
    ...rules('socket', 'SCMP_ACT_ERRNO', EPERM, family(AF_PACKET, AF_PACKET)),
    ...rules('socket', 'SCMP_ACT_ERRNO', EAFNOSUPPORT, [
      ...family(0, 0),
      ...family(3, 9),
      ...family(11, 15),
      [ge(0, 18)],
    ]),
    ...rules('socketpair', 'SCMP_ACT_ALLOW', undefined, [[eq(0, AF_UNIX)]]),
    ...rules('socketpair', 'SCMP_ACT_ERRNO', EAFNOSUPPORT, [[{ index: 0, value: AF_UNIX, op: 'SCMP_CMP_NE' }]]),
  ];
}

/**
 * The sandbox's PID 1 (the reaping init) can't be traced, or its memory read or written with process_vm_*:
 * a script that stops its init would otherwise keep the sandbox alive after the script ended. Any other pid is
 * allowed (gdb, strace on the script's own processes). A pid is an int: only its low 32 bits are compared.
 */
function initProtectionRules(): Rule[] {
  const isInit = (index: number): Arg => ({ index, value: 0xffff_ffff, valueTwo: 1, op: 'SCMP_CMP_MASKED_EQ' });
  // Every other pid. A pid of 1 hidden behind upper bits (which the kernel ignores) matches both the deny rule and
  // `>= 2`: libseccomp then applies the more restrictive action, EPERM (attacked in test/isolation.test.ts). Blocks
  // of the low 32 bits instead would keep the rules disjoint, at some 90 rules that crun compiles at every start.
  const notInit = (index: number): Arg[][] => [
    [{ index, value: 0, op: 'SCMP_CMP_EQ' }],
    [{ index, value: 2, op: 'SCMP_CMP_GE' }],
  ];
  return [
    ...rules('ptrace', 'SCMP_ACT_ERRNO', EPERM, [[isInit(1)]]),
    ...rules('ptrace', 'SCMP_ACT_ALLOW', undefined, notInit(1)),
    ...['process_vm_readv', 'process_vm_writev'].flatMap((name) => [
      ...rules(name, 'SCMP_ACT_ERRNO', EPERM, [[isInit(0)]]),
      ...rules(name, 'SCMP_ACT_ALLOW', undefined, notInit(0)),
    ]),
  ];
}

function seccomp() {
  return {
    defaultAction: 'SCMP_ACT_ERRNO',
    defaultErrnoRet: ENOSYS,
    // x86_64 only: the 32-bit and x32 entry points (and socketcall, whose arguments a filter cannot see) are refused.
    architectures: ['SCMP_ARCH_X86_64'],
    syscalls: [
      { names: ALLOWED_SYSCALLS, action: 'SCMP_ACT_ALLOW' },
      { names: DENIED_SYSCALLS, action: 'SCMP_ACT_ERRNO', errnoRet: EPERM },
      // Only the personalities programs query or set for themselves (Docker's list); clone3 answers ENOSYS (the
      // default) because its flags are in memory a filter cannot read, so libc falls back to clone.
      ...[0, 0x8, 0x20000, 0x20008, 0xffffffff].map((p) => ({
        names: ['personality'],
        action: 'SCMP_ACT_ALLOW',
        args: [{ index: 0, value: p, op: 'SCMP_CMP_EQ' }],
      })),
      {
        names: ['clone'],
        action: 'SCMP_ACT_ALLOW',
        args: [
          { index: 0, value: CLONE_NAMESPACE_FLAGS.reduce((a, b) => a | b, 0), valueTwo: 0, op: 'SCMP_CMP_MASKED_EQ' },
        ],
      },
      ...CLONE_NAMESPACE_FLAGS.map((flag) => ({
        names: ['clone'],
        action: 'SCMP_ACT_ERRNO',
        errnoRet: EPERM,
        args: [{ index: 0, value: flag, valueTwo: flag, op: 'SCMP_CMP_MASKED_EQ' }],
      })),
      ...socketRules(),
      ...initProtectionRules(),
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
    ...ALLOWED_DEVICES.map((d) => ({
      allow: true,
      type: d.type,
      major: d.major,
      ...(d.minor >= 0 ? { minor: d.minor } : {}),
      access: 'rwm',
    })),
  ];
}

/**
 * PID 2 of every sandbox (under the catatonit init): the tool's launcher (native/mags-tool.c `launch`) announces it
 * is ready, then reads the job from its stdin (its environment and script, see `jobInput`) and becomes
 * `/bin/sh -c SCRIPT`. No `crun exec` on the start path, and no `cat` nor second shell per job.
 */
export const LAUNCHER = 'exec /.mags/tool launch';
export const READY_LINE = 'READY\n';

export interface BundleInput {
  rootfs: string;
  netnsPath: string;
  cgroupsPath: string;
  hostsFile: string;
  resolvFile: string;
  initBinary: string;
  /** The helper bound read-only as /.mags/tool. */
  toolBinary: string;
  /** The user namespace: uid/gid 0..size-1 inside are hostId.. on the host. */
  userns: { hostId: number; size: number };
  /**
   * The filter crun compiled from this very `seccomp` section for an earlier sandbox (base64 of its BPF program):
   * given, crun loads it as it is instead of compiling the section again (~3-5 ms of CPU per sandbox). See
   * `SeccompCache` in sandbox.ts.
   */
  seccompBpf?: string;
}

/** crun's annotation for a raw seccomp program, used instead of the config's `seccomp` section (kept beside it). */
export const SECCOMP_BPF_ANNOTATION = 'run.oci.seccomp_bpf_data';

export function ociConfig(b: BundleInput) {
  return {
    ociVersion: '1.0.2',
    ...(b.seccompBpf ? { annotations: { [SECCOMP_BPF_ANNOTATION]: b.seccompBpf } } : {}),
    process: processSpec(['/.mags/init', '--', '/bin/sh', '-c', LAUNCHER], {}, '/'),
    root: { path: b.rootfs, readonly: false },
    hostname: 'sandbox',
    mounts: [
      { destination: '/proc', type: 'proc', source: 'proc', options: ['nosuid', 'noexec', 'nodev'] },
      {
        destination: '/dev',
        type: 'tmpfs',
        source: 'tmpfs',
        options: ['nosuid', 'strictatime', 'mode=755', 'size=65536k'],
      },
      {
        destination: '/dev/pts',
        type: 'devpts',
        source: 'devpts',
        options: ['nosuid', 'noexec', 'newinstance', 'ptmxmode=0666', 'mode=0620'],
      },
      {
        destination: '/dev/shm',
        type: 'tmpfs',
        source: 'shm',
        options: ['nosuid', 'noexec', 'nodev', 'mode=1777', 'size=65536k'],
      },
      { destination: '/dev/mqueue', type: 'mqueue', source: 'mqueue', options: ['nosuid', 'noexec', 'nodev'] },
      // The network namespace is made by the host (owned by the initial user namespace), so the kernel refuses the
      // sandbox a sysfs of its own, and crun would then bind the host's /sys instead. An empty read-only tmpfs it is.
      {
        destination: '/sys',
        type: 'tmpfs',
        source: 'sysfs',
        options: ['nosuid', 'noexec', 'nodev', 'ro', 'mode=0555', 'size=4k'],
      },
      {
        destination: '/etc/hosts',
        type: 'bind',
        source: b.hostsFile,
        options: ['bind', 'ro', 'nosuid', 'nodev', 'noexec'],
      },
      {
        destination: '/etc/resolv.conf',
        type: 'bind',
        source: b.resolvFile,
        options: ['bind', 'ro', 'nosuid', 'nodev', 'noexec'],
      },
      { destination: '/.mags/init', type: 'bind', source: b.initBinary, options: ['bind', 'ro', 'nosuid', 'nodev'] },
      { destination: '/.mags/tool', type: 'bind', source: b.toolBinary, options: ['bind', 'ro', 'nosuid', 'nodev'] },
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
      // Host facts a sandbox has no use for: the kernel's command line, configuration, symbols, memory layout
      // (slab, vmalloc, page tables and flags, I/O maps, zones), other users' key counts, kernel buffers; and
      // the usual device and debug trees. Each reads as empty.
      // biome-ignore format: a dense list of paths
      maskedPaths: [
        '/proc/acpi', '/proc/asound', '/proc/buddyinfo', '/proc/cmdline', '/proc/config.gz', '/proc/iomem', '/proc/ioports',
        '/proc/kallsyms', '/proc/kcore', '/proc/key-users', '/proc/keys', '/proc/kmsg', '/proc/kpagecgroup',
        '/proc/kpagecount', '/proc/kpageflags', '/proc/latency_stats', '/proc/mtrr', '/proc/pagetypeinfo',
        '/proc/sched_debug', '/proc/scsi', '/proc/slabinfo', '/proc/timer_list', '/proc/timer_stats', '/proc/vmallocinfo',
        '/proc/zoneinfo', '/sys/firmware', '/sys/devices/virtual/powercap', '/sys/kernel/boot_params', '/sys/kernel/btf',
        '/sys/kernel/debug', '/sys/kernel/vmcoreinfo', '/sys/fs/cgroup',
      ],
      readonlyPaths: ['/proc/bus', '/proc/fs', '/proc/irq', '/proc/sys', '/proc/sysrq-trigger'],
    },
  };
}
