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
  userns: { hostId: 100_000, size: 65_536 },
}).linux
  .seccomp as { defaultAction: string; defaultErrnoRet: number; architectures: string[]; syscalls: Rule[] };

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
    assert.deepEqual([...unconditional].filter((n) => conditional.has(n)), []);
    const seen = new Map<string, number>();
    for (const n of profile.syscalls.filter((r) => !r.args?.length).flatMap((r) => r.names)) seen.set(n, (seen.get(n) ?? 0) + 1);
    assert.deepEqual([...seen].filter(([, c]) => c > 1), [], 'a system call is named twice');
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
    for (const [name, index] of [['ptrace', 1], ['process_vm_readv', 0], ['process_vm_writev', 0]] as const) {
      const args = (pid: bigint) => Array.from({ length: 6 }, (_, i) => (i === index ? pid & MASK64 : 16n));
      assert.deepEqual(outcomes(name, args(1n)), ['errno 1'], `${name}(1)`);
      // Matches the deny rule and `>= 2`: libseccomp applies the more restrictive action (the isolation test attacks it).
      assert.deepEqual(outcomes(name, args(1n | (1n << 32n))).sort(), ['allow', 'errno 1'], `${name}(1 | 1 << 32)`);
      for (const pid of [0n, 2n, 3n, 12345n, 0x7fffffffn, 0xfffffffen, 2n | (1n << 32n)]) {
        assert.deepEqual(outcomes(name, args(pid)), ['allow'], `${name}(${pid})`);
      }
    }
  });

  test('clone with a namespace flag is refused, a thread or fork is not', () => {
    assert.deepEqual(outcomes('clone', [0x3d0f00n]), ['allow']); // pthread_create's flags
    assert.deepEqual(outcomes('clone', [0x01200011n]), ['allow']); // fork
    assert.deepEqual(outcomes('clone', [0x10000000n | 0x11n]), ['errno 1']); // CLONE_NEWUSER
    assert.deepEqual(outcomes('clone3', []), ['errno 38']);
  });
});
