// The seccomp profile's rules, checked as libseccomp will apply them (the attacks themselves are in test/isolation.test.ts).
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { ociConfig } from '../src/bundle.js';

interface Arg {
  index: number;
  value: number;
  valueTwo?: number;
  op: string;
}
interface Rule {
  names: string[];
  action: string;
  errnoRet?: number;
  args?: Arg[];
}

const profile = ociConfig({
  rootfs: '/r',
  netnsPath: '/n',
  cgroupsPath: '/c',
  hostsFile: '/h',
  resolvFile: '/s',
  initBinary: '/i',
  toolBinary: '/t',
  userns: { hostId: 100_000, size: 65_536 },
}).linux.seccomp as { defaultAction: string; defaultErrnoRet: number; architectures: string[]; syscalls: Rule[] };

const MASK64 = (1n << 64n) - 1n;

function matches(arg: Arg, args: bigint[]): boolean {
  const v = args[arg.index];
  const a = BigInt(arg.value);
  switch (arg.op) {
    case 'SCMP_CMP_EQ':
      return v === a;
    case 'SCMP_CMP_NE':
      return v !== a;
    case 'SCMP_CMP_GE':
      return v >= a;
    case 'SCMP_CMP_MASKED_EQ':
      return (v & a) === BigInt(arg.valueTwo ?? 0);
    default:
      throw new Error(`unexpected operator ${arg.op}`);
  }
}

/** Every action whose rule matches a call: more than one means the outcome rests on libseccomp's tie-breaking. */
function outcomes(name: string, args: bigint[]): string[] {
  const hits = profile.syscalls.filter((r) => r.names.includes(name) && (r.args ?? []).every((a) => matches(a, args)));
  const actions = hits.map((r) => (r.action === 'SCMP_ACT_ALLOW' ? 'allow' : `errno ${r.errnoRet}`));
  return [...new Set(actions.length ? actions : [`errno ${profile.defaultErrnoRet}`])];
}

describe('the seccomp profile', () => {
  test('is an allow-list for x86_64 whose default is ENOSYS', () => {
    assert.equal(profile.defaultAction, 'SCMP_ACT_ERRNO');
    assert.equal(profile.defaultErrnoRet, 38);
    assert.deepEqual(profile.architectures, ['SCMP_ARCH_X86_64']);
    assert.deepEqual(outcomes('io_uring_setup', []), ['errno 38']);
    assert.deepEqual(outcomes('read', []), ['allow']);
    assert.deepEqual(outcomes('mount', []), ['errno 1']);
  });

  test('small enough to compile quickly (crun compiles it at every start)', () => {
    assert.ok(profile.syscalls.length < 60, `${profile.syscalls.length} rules`);
  });

  test('no system call has both an unconditional rule and conditional ones (libseccomp would drop the conditions)', () => {
    const unconditional = new Set(profile.syscalls.filter((r) => !r.args?.length).flatMap((r) => r.names));
    const conditional = new Set(profile.syscalls.filter((r) => r.args?.length).flatMap((r) => r.names));
    assert.deepEqual(
      [...unconditional].filter((n) => conditional.has(n)),
      [],
    );
    const seen = new Map<string, number>();
    for (const n of profile.syscalls.filter((r) => !r.args?.length).flatMap((r) => r.names))
      seen.set(n, (seen.get(n) ?? 0) + 1);
    assert.deepEqual(
      [...seen].filter(([, c]) => c > 1),
      [],
      'a system call is named twice',
    );
  });

  test('socket families: exactly AF_UNIX, AF_INET, AF_INET6 and two netlink protocols, one outcome each', () => {
    const allowed: string[] = [];
    for (let family = 0; family < 64; family++) {
      for (const proto of [0, 1, 4, 9, 12, 15, 16]) {
        const o = outcomes('socket', [BigInt(family), 1n, BigInt(proto)]);
        assert.equal(o.length, 1, `socket(${family}, _, ${proto}) matches ${o.join(' and ')}`);
        if (o[0] === 'allow') allowed.push(`${family}/${proto}`);
      }
    }
    const inet = (f: number) => [0, 1, 4, 9, 12, 15, 16].map((p) => `${f}/${p}`);
    assert.deepEqual(allowed.sort(), [...inet(1), ...inet(2), ...inet(10), '16/0', '16/4'].sort());
    assert.deepEqual(outcomes('socket', [40n, 1n, 0n]), ['errno 97'], 'AF_VSOCK: EAFNOSUPPORT');
    assert.deepEqual(outcomes('socket', [16n, 3n, 9n]), ['errno 93'], 'NETLINK_AUDIT: EPROTONOSUPPORT');
    assert.deepEqual(outcomes('socket', [17n, 3n, 0n]), ['errno 1'], 'AF_PACKET: EPERM');
    // The kernel reads the family as an int: one hidden behind upper bits is never allowed.
    for (const family of [1n, 2n, 10n, 16n, 40n]) {
      const o = outcomes('socket', [family | (1n << 32n), 1n, 0n]);
      assert.ok(!o.includes('allow'), `socket(${family} | 1 << 32) ${o}`);
    }
    assert.deepEqual(outcomes('socketpair', [1n]), ['allow']);
    assert.deepEqual(outcomes('socketpair', [40n]), ['errno 97']);
  });

  test('pid 1 cannot be traced or read, whatever the upper half of the pid holds; other pids can', () => {
    for (const [name, index] of [
      ['ptrace', 1],
      ['process_vm_readv', 0],
      ['process_vm_writev', 0],
    ] as const) {
      const args = (pid: bigint) => Array.from({ length: 6 }, (_, i) => (i === index ? pid & MASK64 : 16n));
      assert.deepEqual(outcomes(name, args(1n)), ['errno 1'], `${name}(1)`);
      // Matches the deny rule and `>= 2`: libseccomp applies the more restrictive action (the isolation test attacks it).
      assert.deepEqual(outcomes(name, args(1n | (1n << 32n))).sort(), ['allow', 'errno 1'], `${name}(1 | 1 << 32)`);
      for (const pid of [0n, 2n, 3n, 12345n, 0x7fffffffn, 0xfffffffen, 2n | (1n << 32n)]) {
        assert.deepEqual(outcomes(name, args(pid)), ['allow'], `${name}(${pid})`);
      }
    }
  });

  test('every rule allows or answers an errno of its own; nothing kills, traps or logs', () => {
    for (const r of profile.syscalls) {
      if (r.action === 'SCMP_ACT_ALLOW') assert.equal(r.errnoRet, undefined, `${r.names}`);
      else
        assert.ok(
          r.action === 'SCMP_ACT_ERRNO' && Number.isInteger(r.errnoRet),
          `${r.names}: ${r.action} ${r.errnoRet}`,
        );
    }
  });

  test('what docs/security.md names as refused with EPERM answers EPERM, whatever the arguments', () => {
    const eperm =
      `mount fsopen fsconfig fsmount fspick move_mount open_tree mount_setattr umount2 pivot_root unshare setns
      init_module finit_module delete_module kexec_load kexec_file_load bpf perf_event_open add_key keyctl request_key
      userfaultfd name_to_handle_at open_by_handle_at kcmp pidfd_getfd process_madvise mbind set_mempolicy get_mempolicy
      migrate_pages move_pages clock_settime clock_adjtime settimeofday sethostname setdomainname swapon swapoff reboot
      acct quotactl syslog iopl ioperm fanotify_init vhangup _sysctl uselib ustat sysfs modify_ldt`.split(/\s+/);
    for (const name of eperm) assert.deepEqual(outcomes(name, [0n, 0n, 0n]), ['errno 1'], name);
  });

  test('io_uring, clone3 and socketcall look absent (ENOSYS): programs fall back', () => {
    for (const name of ['io_uring_setup', 'io_uring_enter', 'io_uring_register', 'clone3', 'socketcall']) {
      assert.deepEqual(outcomes(name, [0n, 0n, 0n]), ['errno 38'], name);
    }
  });

  test("personality: only Docker's values (0, 8, 0x20000, 0x20008, query); others look absent", () => {
    for (const p of [0n, 0x8n, 0x20000n, 0x20008n, 0xffffffffn])
      assert.deepEqual(outcomes('personality', [p]), ['allow'], `${p}`);
    // ADDR_NO_RANDOMIZE, READ_IMPLIES_EXEC, PER_LINUX32
    for (const p of [0x40000n, 0x400000n, 0x8n | 0x40000n])
      assert.deepEqual(outcomes('personality', [p]), ['errno 38'], `${p}`);
  });

  test('families docs/security.md names answer as it says: EAFNOSUPPORT, or EPROTONOSUPPORT for netlink', () => {
    // AF_KEY, AF_RDS, AF_CAN, AF_TIPC, AF_BLUETOOTH, AF_ALG, AF_VSOCK, AF_XDP
    for (const family of [15n, 21n, 29n, 30n, 31n, 38n, 40n, 44n]) {
      assert.deepEqual(outcomes('socket', [family, 2n, 0n]), ['errno 97'], `family ${family}`);
    }
    // NETLINK_XFRM, NETLINK_AUDIT, NETLINK_NETFILTER, NETLINK_KOBJECT_UEVENT, NETLINK_GENERIC, NETLINK_CRYPTO
    for (const proto of [6n, 9n, 12n, 15n, 16n, 21n]) {
      assert.deepEqual(outcomes('socket', [16n, 3n, proto]), ['errno 93'], `netlink protocol ${proto}`);
    }
  });

  test('what programs need is allowed: files, memory, processes, signals, time, IPC, sockets', () => {
    const needed = `openat read write close newfstatat statx getdents64 mmap mprotect munmap brk execve fork vfork wait4
      exit_group rt_sigaction futex clock_gettime epoll_wait pipe2 accept4 connect sendto recvfrom setsockopt prctl seccomp
      getrandom chroot setuid setgroups capset prlimit64 memfd_create inotify_init1 uname`.split(/\s+/);
    for (const name of needed) assert.deepEqual(outcomes(name, [0n, 0n, 0n]), ['allow'], name);
  });

  test('clone with a namespace flag is refused, a thread or fork is not', () => {
    assert.deepEqual(outcomes('clone', [0x3d0f00n]), ['allow']); // pthread_create's flags
    assert.deepEqual(outcomes('clone', [0x01200011n]), ['allow']); // fork
    assert.deepEqual(outcomes('clone', [0x10000000n | 0x11n]), ['errno 1']); // CLONE_NEWUSER
    assert.deepEqual(outcomes('clone3', []), ['errno 38']);
  });
});
