// Attacks from inside a sandbox. Each must fail, and the host must be unchanged afterwards.
import assert from 'node:assert/strict';
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import {
  existsSync,
  lstatSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { Mags } from '@mags/sdk';
import { CLI, freePort, leftovers, runScript, startServer, type TestServer } from './harness.js';

const IMAGE = '/var/lib/mags/images/debian-12-v3';
/** The copy sandboxes use: owners shifted into their user namespace (uid 0 inside = host uid 100000). */
const SHIFTED_IMAGE = `${IMAGE}-u100000`;
const SANDBOX_ROOT_UID = 100000;
let server: TestServer;
const instance = `i${randomBytes(2).toString('hex')}`;
const cleanups: Array<() => void | Promise<void>> = [];

/** An HTTP server on the host that records whether anything reached it. */
async function hostListener(host: string): Promise<{ port: number; hits: () => number; close: () => Promise<void> }> {
  let hits = 0;
  const srv = http.createServer((_req, res) => {
    hits++;
    res.end('host secret service\n');
  });
  await new Promise<void>((r) => srv.listen(0, host, () => r()));
  return {
    port: (srv.address() as AddressInfo).port,
    hits: () => hits,
    close: () => new Promise((r) => srv.close(() => r())),
  };
}

/** The address of the host-side end of a sandbox's link, which a sandbox sees as its gateway. */
const GATEWAY = `$(ip route | awk '/default/ {print $3}')`;

before(async () => {
  server = await startServer(['--instance', instance]);
});
after(async () => {
  for (const c of cleanups.reverse()) await c();
  await server?.stop();
  const left = leftovers(instance);
  assert.deepEqual(left.mounts, [], 'no sandbox mounts remain on the host after the server stops');
  assert.deepEqual(left.netns, [], 'no sandbox network namespaces remain either');
  assert.deepEqual(left.loops, [], 'nor loop devices of sandbox layers');
  const stateMounts = readFileSync('/proc/self/mountinfo', 'utf8')
    .split('\n')
    .map((l) => l.split(' ')[4])
    .filter((m) => ['workspaces', 'bases'].some((d) => m?.startsWith(`/var/lib/mags/${d}/${instance}/`)));
  assert.deepEqual(stateMounts, [], 'no workspace disk or base layer stays mounted either');
  for (const dir of ['workspaces', 'bases', 'cache'])
    rmSync(`/var/lib/mags/${dir}/${instance}`, { recursive: true, force: true });
});

describe('a sandbox cannot touch the host filesystem', () => {
  test('cannot read a secret file planted on the host', async () => {
    const name = `mags-secret-${randomBytes(6).toString('hex')}`;
    const file = `/tmp/${name}`;
    writeFileSync(file, 'TOP-SECRET-HOST-DATA\n', { mode: 0o644 });
    cleanups.push(() => rmSync(file, { force: true }));
    const r = await runScript(
      server,
      `cat ${file} /proc/1/root${file} 2>&1; find / -xdev -name '${name}' 2>/dev/null; grep -r TOP-SECRET-HOST /tmp /root /proc/1/root/tmp 2>/dev/null; echo done`,
    );
    assert.equal(r.status, 'completed');
    assert.match(r.stdout, /done/);
    assert.doesNotMatch(r.stdout, /TOP-SECRET-HOST-DATA/);
    assert.match(r.stdout, /No such file or directory/);
  });

  test('writes land only in the sandbox: not on the host, not in the shared image', async () => {
    const tag = randomBytes(6).toString('hex');
    const r = await runScript(
      server,
      `echo pwned > /etc/pwned-${tag} && echo pwned > /usr/bin/pwned-${tag} && ls /etc/pwned-${tag} && echo x > /proc/sysrq-trigger; echo 1 > /proc/sys/kernel/panic; echo $?; touch /sys/kernel/pwned-${tag}; echo end`,
    );
    assert.equal(r.status, 'completed');
    assert.match(r.stdout, new RegExp(`/etc/pwned-${tag}`), 'the sandbox sees its own write');
    assert.match(r.stderr, /Read-only file system|Permission denied/);
    assert.equal(existsSync(`/etc/pwned-${tag}`), false, 'the host /etc is untouched');
    for (const image of [IMAGE, SHIFTED_IMAGE]) {
      assert.equal(existsSync(`${image}/etc/pwned-${tag}`), false, 'the read-only image is untouched');
      assert.equal(existsSync(`${image}/usr/bin/pwned-${tag}`), false);
    }
    assert.notEqual(readFileSync('/proc/sys/kernel/panic', 'utf8').trim(), 'pwned');
    // And a later sandbox starts clean.
    const next = await runScript(server, `test -e /etc/pwned-${tag} && echo LEAKED || echo clean`);
    assert.equal(next.stdout.trim(), 'clean');
  });
});

describe('a sandbox cannot see host processes or other sandboxes', () => {
  test('host processes are invisible', async () => {
    const marker = 4000 + Math.floor(Math.random() * 50000);
    const sleeper = spawn('sleep', [`${marker}.5`], { stdio: 'ignore' });
    cleanups.push(() => void sleeper.kill('SIGKILL'));
    const r = await runScript(
      server,
      `ps -eo pid,args; ls /proc | grep -cE '^[0-9]+$'; kill -9 ${sleeper.pid} ; echo kill=$?`,
    );
    assert.equal(r.status, 'completed');
    assert.doesNotMatch(r.stdout, new RegExp(`sleep ${marker}`));
    assert.doesNotMatch(r.stdout, /node|systemd|sshd/);
    assert.match(r.stdout, /kill=1/);
    assert.equal(sleeper.exitCode, null, 'the host process is still alive');
    assert.equal(sleeper.signalCode, null);
  });

  test('cannot reach another running sandbox', async () => {
    const headers = { authorization: `Bearer ${server.token}`, 'content-type': 'application/json' };
    const submit = await fetch(`${server.url}/api/v1/mags-jobs`, {
      method: 'POST',
      headers,
      body: JSON.stringify({
        script: `ip -4 -o addr show eth0 | awk '{print "ADDR=" $4}'; python3 -m http.server 8000 --bind 0.0.0.0 2>&1`,
        timeout_s: 120,
      }),
    });
    const { request_id: victim } = (await submit.json()) as { request_id: string };
    cleanups.push(async () => {
      await fetch(`${server.url}/api/v1/mags-jobs/${victim}/stop`, { method: 'POST', headers });
    });
    let addr = '';
    for (let i = 0; i < 100 && !addr; i++) {
      const logs = (await (await fetch(`${server.url}/api/v1/mags-jobs/${victim}/logs`, { headers })).json()) as {
        logs: Array<{ message: string }>;
      };
      addr =
        logs.logs
          .map((l) => l.message)
          .find((m) => m.startsWith('ADDR='))
          ?.slice(5)
          .split('/')[0] ?? '';
      if (!addr) await new Promise((r) => setTimeout(r, 100));
    }
    assert.match(addr, /^\d+\.\d+\.\d+\.\d+$/, 'the victim sandbox printed its address');
    // Give the victim's server a moment to listen, then attack it.
    const r = await runScript(server, `sleep 1; curl -sS -m 3 http://${addr}:8000/ && echo REACHED; echo end`);
    assert.doesNotMatch(r.stdout, /REACHED/);
    assert.match(r.stdout, /end/);
  });
});

describe('a sandbox cannot reach host or control-plane services', () => {
  test('servers on the host loopback, on 0.0.0.0, and the API server are unreachable', async () => {
    const loop = await hostListener('127.0.0.1');
    const any = await hostListener('0.0.0.0');
    cleanups.push(loop.close, any.close);
    const hostIps = execFileSync('hostname', ['-I'])
      .toString()
      .trim()
      .split(/\s+/)
      .filter((a) => a.includes('.'));
    const targets = [
      `127.0.0.1:${loop.port}`,
      `127.0.0.1:${any.port}`,
      `127.0.0.1:${server.port}`,
      `${GATEWAY}:${loop.port}`,
      `${GATEWAY}:${any.port}`,
      `${GATEWAY}:${server.port}`,
      ...hostIps.flatMap((ip) => [`${ip}:${any.port}`, `${ip}:${server.port}`]),
    ];
    const script = targets
      .map((t) => `curl -sS -m 2 -o /dev/null -w "${t} %{http_code}\\n" http://${t}/ 2>&1 || echo "${t} failed"`)
      .join('\n');
    const r = await runScript(server, script);
    for (const line of r.stdout.trim().split('\n')) {
      assert.doesNotMatch(line, / (200|401|404)$/, `reached a host service: ${line}`);
    }
    assert.equal(loop.hits(), 0);
    assert.equal(any.hits(), 0);
    // Control: the listeners are reachable from the host itself, so the failures above come from the sandbox's walls.
    const ok = await fetch(`http://127.0.0.1:${any.port}/`);
    assert.equal(ok.status, 200);
  });

  test('private, link-local and metadata addresses are dropped', async (t) => {
    // A namespace of our own holds listeners on such addresses, so a broken rule sends nothing off this machine.
    const ns = `mtest${randomBytes(3).toString('hex')}`;
    const hostIf = `mt${randomBytes(3).toString('hex')}`;
    const addrs = ['169.254.169.254', '10.254.77.1', '192.168.254.1', '172.31.254.1'];
    const sh = (cmd: string) => execFileSync('sh', ['-ec', cmd], { stdio: 'pipe' });
    sh(`ip netns add ${ns}; ip link add ${hostIf} type veth peer name eth0 netns ${ns}; ip link set ${hostIf} up;
        ip addr add 100.127.254.1/30 dev ${hostIf}; ip -n ${ns} addr add 100.127.254.2/30 dev eth0; ip -n ${ns} link set eth0 up; ip -n ${ns} link set lo up;
        ${addrs.map((a) => `ip -n ${ns} addr add ${a}/32 dev lo; ip route add ${a}/32 via 100.127.254.2 dev ${hostIf}`).join('; ')}`);
    const listener = spawn('ip', ['netns', 'exec', ns, 'python3', '-m', 'http.server', '80', '--bind', '0.0.0.0'], {
      stdio: 'ignore',
    });
    t.after(() => {
      listener.kill('SIGKILL');
      try {
        sh(`${addrs.map((a) => `ip route del ${a}/32 || true`).join('; ')}; ip netns del ${ns}`);
      } catch {
        /* best effort */
      }
    });
    // Control: from the host, every listener answers.
    for (let i = 0; i < 50; i++) {
      try {
        sh(`curl -sS -m 1 -o /dev/null http://${addrs[0]}/`);
        break;
      } catch {
        await new Promise((r) => setTimeout(r, 100));
      }
    }
    for (const a of addrs) sh(`curl -sS -m 2 -o /dev/null http://${a}/`);
    const script = addrs
      .map(
        (a) => `curl -sS -m 2 -o /dev/null -w "${a} %{http_code}\\n" http://${a}/ 2>/dev/null || echo "${a} blocked"`,
      )
      .join('\n');
    const r = await runScript(server, script);
    for (const a of addrs)
      assert.match(r.stdout, new RegExp(`${a.replace(/\./g, '\\.')} blocked`), `sandbox reached ${a}`);
  });
});

describe('network policy', () => {
  test('--network none leaves only loopback: no interface, no route, no DNS', async () => {
    const r = await runScript(
      server,
      `ip -o link | awk -F': ' '{print $2}'; ip route; getent hosts deb.debian.org || echo no-dns; curl -sS -m 2 -o /dev/null http://203.0.113.80/ 2>/dev/null || echo no-egress`,
      { network: 'none' },
    );
    assert.equal(r.status, 'completed', r.stderr);
    assert.deepEqual(r.stdout.trim().split('\n'), ['lo', 'no-dns', 'no-egress']);
  });
});

describe('a sandbox cannot use privileged kernel interfaces', () => {
  test('mount, unshare, module loading, raw sockets, ptrace of pid 1 all fail', async () => {
    const r = await runScript(
      server,
      [
        'mount -t tmpfs none /mnt 2>&1 && echo MOUNTED',
        'unshare -r true 2>&1 && echo UNSHARED_USER',
        'unshare -m true 2>&1 && echo UNSHARED_MOUNT',
        'unshare -n true 2>&1 && echo UNSHARED_NET',
        `python3 - <<'EOF'
import ctypes, socket, errno
libc = ctypes.CDLL(None, use_errno=True)
for name, nr, args in [("init_module", 175, (0, 0, b"")), ("finit_module", 313, (0, b"", 0)), ("kexec_load", 246, (0, 0, 0, 0)), ("bpf", 321, (0, 0, 0)), ("keyctl", 250, (0, 0, 0))]:
    rc = libc.syscall(nr, *args)
    print(name, "ALLOWED" if rc == 0 else "denied", errno.errorcode.get(ctypes.get_errno()))
for proto in (socket.IPPROTO_ICMP, socket.IPPROTO_RAW):
    try:
        socket.socket(socket.AF_INET, socket.SOCK_RAW, proto)
        print("raw socket ALLOWED")
    except PermissionError:
        print("raw socket denied")
try:
    socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
    print("packet socket ALLOWED")
except PermissionError:
    print("packet socket denied")
EOF`,
        'ls /dev; test -e /dev/kvm && echo HAS_KVM; ls /dev/sda /dev/vda /dev/mem 2>&1 | head -3',
        'grep -E "^(Cap(Eff|Bnd)|NoNewPrivs|Seccomp):" /proc/self/status',
        'echo end',
      ].join('\n'),
    );
    assert.equal(r.status, 'completed', r.stderr);
    const all = r.stdout + r.stderr;
    for (const bad of ['MOUNTED', 'UNSHARED_USER', 'UNSHARED_MOUNT', 'UNSHARED_NET', 'ALLOWED', 'HAS_KVM'])
      assert.doesNotMatch(all, new RegExp(bad));
    assert.match(r.stdout, /init_module denied/);
    assert.match(r.stdout, /raw socket denied/);
    assert.match(r.stdout, /NoNewPrivs:\s+1/);
    assert.match(r.stdout, /Seccomp:\s+2/);
    const capEff = BigInt(`0x${/CapEff:\s+([0-9a-f]+)/.exec(r.stdout)![1]}`);
    const CAP_SYS_ADMIN = 21n;
    const CAP_NET_ADMIN = 12n;
    const CAP_NET_RAW = 13n;
    const CAP_SYS_MODULE = 16n;
    for (const cap of [CAP_SYS_ADMIN, CAP_NET_ADMIN, CAP_NET_RAW, CAP_SYS_MODULE])
      assert.equal((capEff >> cap) & 1n, 0n, `capability ${cap} is dropped`);
  });
});

describe('the seccomp allow-list', () => {
  test('vsock, io_uring, other socket families, netlink audit, 32-bit entry points and privileged calls are refused', async () => {
    const r = await runScript(
      server,
      `python3 - <<'EOF'
import ctypes, errno, os, socket, subprocess, sys
libc = ctypes.CDLL(None, use_errno=True)
def call(name, nr, *args):
    rc = libc.syscall(nr, *[ctypes.c_long(a) for a in args])
    print(name, "ALLOWED" if rc >= 0 else "denied", errno.errorcode.get(ctypes.get_errno()))
def sock(name, family, kind, proto=0):
    rc = libc.socket(ctypes.c_long(family), kind, proto)
    print(name, "ALLOWED" if rc >= 0 else "denied", errno.errorcode.get(ctypes.get_errno()))
sock("vsock", 40, socket.SOCK_STREAM)
sock("vsock-dgram", 40, socket.SOCK_DGRAM)
call("vsock-high-bits", 41, 40 | (1 << 32), socket.SOCK_STREAM, 0)
sock("alg", 38, socket.SOCK_SEQPACKET)
sock("tipc", 30, socket.SOCK_RDM)
sock("rds", 21, socket.SOCK_SEQPACKET)
sock("key", 15, socket.SOCK_RAW, 2)
sock("netlink-audit", socket.AF_NETLINK, socket.SOCK_RAW, 9)
call("netlink-audit-high-bits", 41, socket.AF_NETLINK, socket.SOCK_RAW, 9 | (1 << 32))
sock("netlink-netfilter", socket.AF_NETLINK, socket.SOCK_RAW, 12)
sock("netlink-uevent", socket.AF_NETLINK, socket.SOCK_DGRAM, 15)
pair = (ctypes.c_int * 2)()
call("vsock-pair", 53, 40, socket.SOCK_STREAM, 0, ctypes.addressof(pair))
params = ctypes.create_string_buffer(120)
call("io_uring_setup", 425, 8, ctypes.addressof(params))
call("io_uring_enter", 426, 0, 1, 0, 0, 0, 0)
call("io_uring_register", 427, 0, 0, 0, 0)
# Calls Docker's default profile refuses too, and modify_ldt, which it allows.
for name, nr in [("userfaultfd", 323), ("kexec_file_load", 320), ("open_by_handle_at", 304), ("add_key", 248),
                 ("request_key", 249), ("pivot_root", 155), ("swapon", 167), ("setns", 308), ("perf_event_open", 298),
                 ("syslog", 103), ("acct", 163), ("settimeofday", 164), ("modify_ldt", 154), ("pidfd_getfd", 438),
                 ("kcmp", 312), ("fsopen", 430), ("open_tree", 428), ("mount_setattr", 442), ("sethostname", 170),
                 ("quotactl", 179), ("lookup_dcookie", 212), ("process_madvise", 440)]:
    call(name, nr, 0, 0, 0, 0, 0)
# The sandbox's init can't be traced or read, even with its pid hidden behind bits the kernel ignores.
call("ptrace-init", 101, 16, 1, 0, 0)
call("ptrace-init-high-bits", 101, 16, 1 | (1 << 32), 0, 0)
call("process_vm_readv-init", 310, 1, 0, 0, 0, 0, 0)
# 32-bit system calls (int 0x80, x32) kill the process that makes them.
code = "import ctypes, mmap; m = mmap.mmap(-1, 4096, prot=7); m.write(bytes([0xb8, 20, 0, 0, 0, 0xcd, 0x80, 0xc3])); print(ctypes.CFUNCTYPE(ctypes.c_long)(ctypes.addressof(ctypes.c_char.from_buffer(m)))())"
print("int80 rc", subprocess.run([sys.executable, "-c", code]).returncode)
print("x32 rc", subprocess.run([sys.executable, "-c", "import ctypes; print(ctypes.CDLL(None).syscall(0x40000000 | 39))"]).returncode)
EOF
echo end`,
      // Were the init traced, the run would last until its timeout.
      { timeout_s: 120 },
    );
    assert.equal(r.status, 'completed', r.stderr);
    assert.match(r.stdout, /end/);
    assert.doesNotMatch(r.stdout, /ALLOWED/, r.stdout);
    assert.match(r.stdout, /^vsock denied EAFNOSUPPORT$/m);
    assert.match(r.stdout, /^vsock-high-bits denied/m);
    assert.match(r.stdout, /^vsock-pair denied/m);
    assert.match(r.stdout, /^alg denied EAFNOSUPPORT$/m);
    // Refused as on a kernel without audit, so PAM, sudo and useradd carry on.
    assert.match(r.stdout, /^netlink-audit denied EPROTONOSUPPORT$/m);
    assert.match(r.stdout, /^io_uring_setup denied ENOSYS$/m);
    assert.match(r.stdout, /^io_uring_enter denied ENOSYS$/m);
    assert.match(r.stdout, /^io_uring_register denied ENOSYS$/m);
    assert.match(r.stdout, /^userfaultfd denied/m);
    assert.match(r.stdout, /^ptrace-init-high-bits denied EPERM$/m);
    // Killed by SIGSYS (31).
    assert.match(r.stdout, /^int80 rc -31$/m);
    assert.match(r.stdout, /^x32 rc -31$/m);
  });

  test('ordinary workloads still work: a server on loopback, node, python, git, ip and ss, useradd and su', async () => {
    const r = await runScript(
      server,
      [
        'set -e',
        'python3 -m http.server 8123 --bind 127.0.0.1 >/dev/null 2>&1 & server=$!',
        'for i in $(seq 100); do curl -s -o /dev/null http://127.0.0.1:8123/ && break; sleep 0.1; done',
        'curl -sS -o /dev/null -w "http %{http_code}\\n" http://127.0.0.1:8123/',
        `node -e 'const fs=require("fs"),cp=require("child_process"),{Worker}=require("worker_threads");fs.writeFileSync("/tmp/n","x");new Worker("1",{eval:true}).on("exit",()=>console.log("node", cp.execSync("cat /tmp/n").toString(), require("os").cpus().length>0))'`,
        'cd /tmp && git init -q repo && cd repo && git -c user.email=a@b -c user.name=a commit -q --allow-empty -m first && echo "git $(git log --oneline | wc -l)"',
        `ip -o addr show lo | awk '{print "ip", $2; exit}'`,
        'ss -tln | grep -q 8123 && echo ss listed',
        'useradd -m tester && echo "su $(su tester -s /bin/sh -c "id -un")"',
        `python3 -c 'import multiprocessing, sqlite3, ssl; print("python", multiprocessing.Pool(2).map(abs, [-1])[0], sqlite3.connect(":memory:").execute("select 1").fetchone()[0])'`,
        'kill $server',
      ].join('\n'),
    );
    assert.equal(r.status, 'completed', r.stderr);
    for (const line of ['http 200', 'node x true', 'git 1', 'ip lo', 'ss listed', 'su tester', 'python 1 1']) {
      assert.match(r.stdout, new RegExp(`^${line}$`, 'm'), `${line}: ${r.stdout}\n${r.stderr}`);
    }
  });
});

describe('a run ends when its script ends', () => {
  /** Waits through the SDK with a bound far below the job's own timeout (an hour): a wedged run would pass it. */
  async function runBounded(script: string) {
    const mags = new Mags({ apiUrl: server.url, apiToken: server.token });
    const r = await mags.runAndWait(script, { timeout: 60_000 });
    return { ...r, stdout: r.logs.filter((l) => l.stream === 'stdout').map((l) => l.message) };
  }

  test("a script that stops the sandbox's init (ptrace attach, SIGSTOP) and exits", async () => {
    const r = await runBounded(
      `python3 -c 'import ctypes; ctypes.CDLL(None).ptrace(16, 1, 0, 0)'; kill -STOP 1; echo done; exit 3`,
    );
    assert.equal(r.exitCode, 3);
    assert.equal(r.status, 'failed');
    assert.deepEqual(r.stdout, ['done']);
  });

  test("a script that overwrites its init's code through /proc/1/mem, so that it never reaps nor exits", async () => {
    const r = await runBounded(`python3 - <<'EOF'
import os
fields = open('/proc/1/syscall').read().split()
fd = os.open('/proc/1/mem', os.O_RDWR)
os.pwrite(fd, b'\\xeb\\xfe', int(fields[-1], 16))  # jmp to itself, where the init resumes after its wait
print('patched')
EOF
sleep 1000 &
echo done; exit 3`);
    assert.equal(r.exitCode, 3);
    assert.equal(r.status, 'failed');
    assert.deepEqual(r.stdout, ['patched', 'done']);
    const next = await runBounded('echo next');
    assert.deepEqual(next.stdout, ['next']);
  });
});

describe('a sandbox learns nothing of the host from /proc', () => {
  test('kernel command line, slab and vmalloc info, symbols, page flags read as empty; mountinfo names no host path', async () => {
    const files = [
      '/proc/cmdline',
      '/proc/slabinfo',
      '/proc/vmallocinfo',
      '/proc/kallsyms',
      '/proc/kpageflags',
      '/proc/config.gz',
      '/proc/key-users',
      '/proc/iomem',
    ];
    const r = await runScript(
      server,
      `for f in ${files.join(' ')}; do echo "$f $(cat $f 2>/dev/null | wc -c)"; done; echo ---; cat /proc/self/mountinfo /proc/1/mountinfo`,
    );
    assert.equal(r.status, 'completed', r.stderr);
    const [sizes, mountinfo] = r.stdout.split('---\n');
    for (const f of files) assert.match(sizes, new RegExp(`^${f} 0$`, 'm'), `${f} is readable: ${sizes}`);
    assert.match(mountinfo, / \/ \/ .* - overlay /, 'the root is listed');
    for (const hostPath of [
      '/var/lib/mags',
      '/sandboxes/',
      instance,
      '/usr/bin/catatonit',
      IMAGE,
      ' /dev/vd',
      ' /dev/sd',
      ' /dev/nvme',
    ]) {
      assert.ok(!mountinfo.includes(hostPath), `mountinfo shows ${hostPath}:\n${mountinfo}`);
    }
  });

  test("no CAP_AUDIT_WRITE: nothing a sandbox does reaches the host's audit log", async () => {
    const r = await runScript(server, 'grep CapEff /proc/self/status');
    const capEff = BigInt(`0x${/CapEff:\s+([0-9a-f]+)/.exec(r.stdout)![1]}`);
    const CAP_AUDIT_WRITE = 29n;
    assert.equal((capEff >> CAP_AUDIT_WRITE) & 1n, 0n);
  });

  test("a later sandbox never starts in an earlier one's network namespace (its counters)", async () => {
    const N = 3000;
    const udpSent = `awk '/^Udp: [0-9]/ {print $5}' /proc/net/snmp`;
    const sent = await runScript(
      server,
      `python3 -c "import socket; s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); [s.sendto(b'x', ('127.0.0.1', 9)) for _ in range(${N})]"; ${udpSent}`,
    );
    assert.ok(Number(sent.stdout.trim()) >= N, `the first sandbox counted its datagrams: ${sent.stdout}`);
    // Enough later sandboxes that one would be given the first one's namespace if namespaces were handed on.
    for (let i = 0; i < 6; i++) {
      const later = await runScript(server, udpSent);
      assert.ok(Number(later.stdout.trim()) < N, `sandbox ${i} starts with ${later.stdout.trim()} datagrams sent`);
    }
  });
});

describe('a sandbox cannot exhaust the host', () => {
  test('a fork bomb stays inside its process limit and the host keeps working', async () => {
    const bomb = runScript(server, 'bomb() { bomb | bomb & }; bomb; sleep 8', { timeout_s: 6 });
    // While it runs, the host can still start processes and answer API calls.
    await new Promise((r) => setTimeout(r, 2000));
    assert.equal(execFileSync('echo', ['host alive']).toString().trim(), 'host alive');
    const health = await fetch(`${server.url}/api/v1/health`);
    assert.equal(health.status, 200);
    const r = await bomb;
    assert.equal(r.status, 'failed');
    assert.match(r.errorMessage ?? '', /timeout/);
    const after = await runScript(server, 'echo still fine');
    assert.equal(after.stdout.trim(), 'still fine');
  });

  test('a memory bomb is killed at its limit (exit 137) and the next sandbox runs normally', async () => {
    const r = await runScript(server, 'python3 -c "x = bytearray(8 * 1024**3)"; echo after', { memory_mb: 128 });
    // The shell survives the kill of its child; the script goes on. A memory bomb as the script itself exits 137.
    assert.match(r.stdout, /after/);
    const direct = await runScript(server, 'exec python3 -c "x = b\\"a\\" * (4 * 1024**3)"', { memory_mb: 128 });
    assert.equal(direct.exitCode, 137);
    assert.match(direct.errorMessage ?? '', /memory/);
    const next = await runScript(server, 'echo ok');
    assert.equal(next.stdout.trim(), 'ok');
  });

  test('writing past the disk gives the script ENOSPC, not an OOM kill, and the host gets its space back', {
    timeout: 120_000,
  }, async () => {
    // 1.5 GB into a 1 GB disk, with a 1 GB memory limit: the disk's size bounds the writes, the memory limit doesn't.
    const r = await runScript(server, 'dd if=/dev/zero of=/root/big bs=1M count=1500 2>&1; echo rc=$?; echo alive', {
      memory_mb: 1024,
      disk_gb: 1,
    });
    assert.match(r.stdout, /No space left on device/);
    assert.match(r.stdout, /rc=1\nalive\n/);
    assert.equal(r.exitCode, 0, `the script lives on and ends normally (${r.errorMessage ?? ''})`);
    assert.equal(r.status, 'completed');
    // The layer is a file on the host's disk only while its sandbox lives: removed after, with its loop device.
    const headers = { authorization: `Bearer ${server.token}` };
    const { vm_id: sandboxId } = (await (
      await fetch(`${server.url}/api/v1/mags-jobs/${r.requestId}/status`, { headers })
    ).json()) as { vm_id: string };
    const dir = `/var/lib/mags/sandboxes/${instance}/${sandboxId}`;
    const holds = () => existsSync(dir) || leftovers(instance).loops.some((f) => f.startsWith(`${dir}/`));
    for (let i = 0; i < 300 && holds(); i++) await new Promise((res) => setTimeout(res, 100));
    assert.equal(holds(), false, "the sandbox's layer and its loop device are gone");
    const held =
      Number(
        execFileSync('du', ['-skx', `/var/lib/mags/sandboxes/${instance}`])
          .toString()
          .split('\t')[0],
      ) * 1024;
    assert.ok(held < 100 * 1024 ** 2, `the sandboxes left hold little of the host's disk (${held} bytes)`);
  });
});

// ── root inside is not root outside; what a sandbox leaves on the host gives no one anything ─────────────────────

const headers = () => ({ authorization: `Bearer ${server.token}`, 'content-type': 'application/json' });

/** Starts a job that prints READY once set up and then keeps its sandbox alive; resolves with its sandbox's id. */
async function startHeld(
  script: string,
  options: Record<string, unknown> = {},
): Promise<{ id: string; sandbox: string; stdout: string }> {
  const submit = await fetch(`${server.url}/api/v1/mags-jobs`, {
    method: 'POST',
    headers: headers(),
    body: JSON.stringify({ script: `${script}\necho READY\nsleep 120`, timeout_s: 180, ...options }),
  });
  const { request_id: id } = (await submit.json()) as { request_id: string };
  cleanups.push(() => stopJob(id));
  for (let i = 0; i < 600; i++) {
    const logs = (await (await fetch(`${server.url}/api/v1/mags-jobs/${id}/logs`, { headers: headers() })).json()) as {
      logs: Array<{ stream: string; message: string }>;
    };
    const out = logs.logs.filter((l) => l.stream === 'stdout').map((l) => l.message);
    if (out.includes('READY')) {
      const status = (await (
        await fetch(`${server.url}/api/v1/mags-jobs/${id}/status`, { headers: headers() })
      ).json()) as { vm_id: string };
      return { id, sandbox: status.vm_id, stdout: `${out.join('\n')}\n` };
    }
    const st = (await (await fetch(`${server.url}/api/v1/mags-jobs/${id}/status`, { headers: headers() })).json()) as {
      status: string;
      error_message: string;
    };
    if (['completed', 'failed', 'error', 'stopped'].includes(st.status))
      assert.fail(`the held job ended (${st.status}: ${st.error_message}): ${JSON.stringify(logs.logs)}`);
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error('the held job never printed READY');
}

async function stopJob(id: string): Promise<void> {
  await fetch(`${server.url}/api/v1/mags-jobs/${id}/stop`, { method: 'POST', headers: headers() });
  await fetch(`${server.url}/api/v1/mags-jobs/${id}/status?wait=30`, { headers: headers() });
}

const sandboxDir = (sandbox: string) => `/var/lib/mags/sandboxes/${instance}/${sandbox}`;

/** The host directory holding a workspace's disk (`<owner>/<name>`; the owner is the user's id). */
function workspaceDir(name: string): string {
  const base = `/var/lib/mags/workspaces/${instance}`;
  const owner = readdirSync(base).find((o) => existsSync(`${base}/${o}/${name}`));
  assert.ok(owner, `the workspace ${name} has a host copy`);
  return `${base}/${owner}/${name}`;
}

/**
 * Runs a program on the host as nobody: an unprivileged host user. (Not `setpriv --reuid`: it keeps root's
 * capabilities until its own execve, so the path to the program is looked up with CAP_DAC_OVERRIDE.)
 */
function asNobody(args: string[]): { code: number | null; out: string } {
  const r = spawnSync('runuser', ['-u', 'nobody', '--', ...args], { encoding: 'utf8', timeout: 20_000 });
  return { code: r.status, out: `${r.stdout}${r.stderr}` };
}

/** Per-mount options (nosuid, nodev, ro, …) of the mount at `mountPoint`, as host root sees them. */
function mountOptions(mountPoint: string): string[] {
  const line = readFileSync('/proc/self/mountinfo', 'utf8')
    .split('\n')
    .reverse() // the topmost mount at that point
    .find((l) => l.split(' ')[4] === mountPoint);
  assert.ok(line, `${mountPoint} is a mount`);
  return line.split(' ')[5]!.split(',');
}

const hostOwner = (p: string) => {
  const st = lstatSync(p);
  return `${st.uid}:${st.gid}`;
};

describe('root in a sandbox is not root on the host (user namespace)', () => {
  test('uid 0 inside is host uid 100000: the map, processes and files on the host say so; chown works inside', async () => {
    const held = await startHeld(`cat /proc/self/uid_map /proc/self/gid_map
echo mine > /root/mine
mkdir -p /opt/u && echo x > /opt/u/f && chown 1000:1000 /opt/u/f && echo chown-ok
touch /root/apt-owned && chown _apt:nogroup /root/apt-owned && echo apt-chown-ok
echo "apt=$(id -u _apt):$(getent group nogroup | cut -d: -f3)"`);
    const map = held.stdout
      .split('\n')
      .slice(0, 2)
      .map((l) => l.trim().split(/\s+/).join(' '));
    assert.deepEqual(map, ['0 100000 65536', '0 100000 65536'], 'uid and gid 0..65535 inside are 100000.. on the host');
    assert.match(held.stdout, /chown-ok\napt-chown-ok/);
    const [aptUid, nogroup] = /apt=(\d+):(\d+)/.exec(held.stdout)!.slice(1).map(Number);

    // Every process of the sandbox, seen from the host, runs as an unprivileged uid of the range.
    const procsFile = `/sys/fs/cgroup/memory/mags${instance}/${held.sandbox}/c/cgroup.procs`;
    const pids = readFileSync(procsFile, 'utf8').trim().split('\n').filter(Boolean);
    assert.ok(pids.length >= 2, `the sandbox's processes are listed in ${procsFile}`);
    for (const pid of pids) {
      const status = readFileSync(`/proc/${pid}/status`, 'utf8');
      const [uids, gids] = ['Uid', 'Gid'].map((k) =>
        new RegExp(`^${k}:\\s+(.*)$`, 'm').exec(status)![1]!.trim().split(/\s+/).map(Number),
      );
      for (const id of [...uids!, ...gids!])
        assert.ok(id >= SANDBOX_ROOT_UID && id < SANDBOX_ROOT_UID + 65536, `host pid ${pid} runs as ${uids} / ${gids}`);
    }

    // What it wrote is owned on the host by the shifted ids, in its layer.
    const upper = `${sandboxDir(held.sandbox)}/fs/upper`;
    assert.equal(hostOwner(upper), '100000:100000', "the layer's root (the sandbox's /) belongs to the sandbox's root");
    assert.equal(hostOwner(`${upper}/root/mine`), '100000:100000');
    assert.equal(hostOwner(`${upper}/opt/u/f`), '101000:101000');
    assert.equal(hostOwner(`${upper}/root/apt-owned`), `${SANDBOX_ROOT_UID + aptUid!}:${SANDBOX_ROOT_UID + nogroup!}`);
    await stopJob(held.id);
  });

  test('files a workspace run writes, and uploads, are owned by the shifted ids on the host; owners round-trip inside', {
    timeout: 120_000,
  }, async () => {
    const up = await fetch(`${server.url}/api/v1/mags-files?name=up.txt`, {
      method: 'POST',
      headers: { authorization: `Bearer ${server.token}`, 'content-type': 'application/octet-stream' },
      body: 'uploaded\n',
    });
    const { file_id } = (await up.json()) as { file_id: string };
    for (const persistent of [false, true]) {
      const name = `own-${persistent ? 'p' : 'l'}`;
      const r = await runScript(
        server,
        'echo a > /root/f && mkdir -p /srv/d && chown 1000:1000 /srv/d && stat -c "%u:%g %U" /uploads /uploads/up.txt',
        {
          workspace_id: name,
          persistent,
          file_ids: [file_id],
        },
      );
      // A persistent run sleeps once its script ends.
      assert.deepEqual([r.status, r.exitCode], [persistent ? 'sleeping' : 'completed', 0], r.stderr);
      assert.equal(r.stdout, '0:0 root\n0:0 root\n', 'uploads belong to the root inside');
      const dir = workspaceDir(name);
      assert.equal(hostOwner(`${dir}/mnt`), '100000:100000');
      assert.equal(hostOwner(`${dir}/mnt/upper`), '100000:100000');
      assert.equal(hostOwner(`${dir}/mnt/upper/root/f`), '100000:100000');
      assert.equal(hostOwner(`${dir}/mnt/upper/srv/d`), '101000:101000');
      const again = await runScript(server, 'stat -c "%u:%g" /root/f /srv/d; touch /root/f && echo writable', {
        workspace_id: name,
        persistent,
      });
      assert.equal(again.stdout, '0:0\n1000:1000\nwritable\n');
    }
  });

  test('without the uid-shifted image the agent refuses to start, saying how to build it', async () => {
    const state = mkdtempSync(path.join(tmpdir(), 'mags-test-state-'));
    const home = mkdtempSync(path.join(tmpdir(), 'mags-test-home-'));
    const other = `n${randomBytes(2).toString('hex')}`;
    try {
      mkdirSync(`${state}/images/debian-12-v3`, { recursive: true });
      writeFileSync(`${state}/images/debian-12-v3/.mags-image-complete`, ''); // only the unshifted one
      const r = spawnSync(
        process.execPath,
        [CLI, 'server', '--port', String(await freePort()), '--instance', other, '--state-dir', state],
        {
          env: { ...process.env, MAGS_HOME: home },
          encoding: 'utf8',
          timeout: 60_000,
        },
      );
      assert.notEqual(r.status, 0);
      assert.match(r.stderr, /debian-12-v3-u100000.*is missing: build it with scripts\/build-image\.sh/);
    } finally {
      rmSync(state, { recursive: true, force: true });
      rmSync(home, { recursive: true, force: true });
      rmSync(`/run/mags/${other}`, { recursive: true, force: true });
    }
  });
});

describe('setuid files and capabilities a sandbox makes give a host user nothing', () => {
  const ATTACK = `cp /bin/bash /tmp/rb && chmod 4755 /tmp/rb
cp "$(readlink -f /usr/bin/python3)" /tmp/py
# cap_setuid+ep (v2 format); setcap is not in the image
python3 -c "import os; os.setxattr('/tmp/py', 'security.capability', bytes.fromhex('0100000280000000000000000000000000000000'))"
ls -l /tmp/rb | cut -c1-10`;

  /** Tries the planted programs through a host path as nobody; each must fail to run (let alone give root). */
  function attack(dir: string): void {
    for (const [file, args] of [
      ['rb', ['-p', '-c', 'id -u; id -ur']],
      ['py', ['-c', 'import os; os.setuid(0); print("ROOT", os.getuid())']],
    ] as const) {
      const r = asNobody([`${dir}/${file}`, ...args]);
      assert.notEqual(r.code, 0, `nobody ran ${dir}/${file}: ${r.out}`);
      assert.doesNotMatch(r.out, /^0$|ROOT/m, `nobody became root through ${dir}/${file}`);
      assert.match(r.out, /Permission denied/, `${dir}/${file} is out of reach: ${r.out}`);
    }
  }

  test('ephemeral sandbox: not reachable through its rootfs or layer; those mounts are nosuid,nodev', async () => {
    const held = await startHeld(ATTACK);
    assert.match(held.stdout, /-rwsr-xr-x/, 'the setuid copy was made');
    const dir = sandboxDir(held.sandbox);
    // Control: the files are there (host root sees them), setuid and with the capability.
    assert.equal(statSync(`${dir}/fs/upper/tmp/rb`).mode & 0o4000, 0o4000);
    assert.match(
      execFileSync('getfattr', ['-n', 'security.capability', '-e', 'hex', `${dir}/fs/upper/tmp/py`]).toString(),
      /security\.capability=0x/,
    );
    attack(`${dir}/rootfs/tmp`);
    attack(`${dir}/fs/upper/tmp`);
    for (const m of [`${dir}/rootfs`, `${dir}/fs`]) {
      const opts = mountOptions(m);
      assert.ok(opts.includes('nosuid') && opts.includes('nodev'), `${m} is mounted nosuid,nodev (${opts})`);
    }
    // The capability was written inside the namespace: it names the sandbox's root, so the host ignores it.
    assert.match(execFileSync('getcap', ['-n', `${dir}/fs/upper/tmp/py`]).toString(), /rootid=100000/);
    await stopJob(held.id);
  });

  test('workspace disk and base layer: same; the state directories are closed to host users', {
    timeout: 180_000,
  }, async () => {
    const r = await runScript(server, ATTACK.replace(/\/tmp\//g, '/opt/'), {
      workspace_id: 'suid-ws',
      persistent: true,
    });
    assert.deepEqual([r.status, r.exitCode], ['sleeping', 0], r.stderr); // a persistent run sleeps once it ends
    const ws = workspaceDir('suid-ws');
    attack(`${ws}/mnt/upper/opt`);
    const diskOpts = mountOptions(`${ws}/mnt`);
    assert.ok(
      diskOpts.includes('nosuid') && diskOpts.includes('nodev'),
      `the workspace disk is mounted nosuid,nodev (${diskOpts})`,
    );

    // The workspace as a base under a running sandbox: its materialised copy on the host.
    const held = await startHeld('test -u /opt/rb && echo base-has-setuid', { base_workspace_id: 'suid-ws' });
    assert.match(held.stdout, /base-has-setuid/);
    const bases = `/var/lib/mags/bases/${instance}`;
    const layer = readdirSync(bases)
      .map((k) => `${bases}/${k}/root`)
      .find((p) => existsSync(`${p}/opt/rb`));
    assert.ok(layer, 'the base is materialised on the host');
    attack(`${layer}/opt`);
    const baseOpts = mountOptions(layer);
    for (const o of ['ro', 'nosuid', 'nodev'])
      assert.ok(baseOpts.includes(o), `the base layer is mounted ${o} (${baseOpts})`);
    await stopJob(held.id);

    // No host user may enter the agent's state: 0700, or 0710 with the sandboxes' root as group on the way to
    // the sandboxes' directories (crun, inside the namespace, must reach a sandbox's rootfs).
    const expect: Array<[string, number, number]> = [
      ['/var/lib/mags', 0o710, SANDBOX_ROOT_UID],
      ['/var/lib/mags/sandboxes', 0o710, SANDBOX_ROOT_UID],
      [`/var/lib/mags/sandboxes/${instance}`, 0o710, SANDBOX_ROOT_UID],
      ['/var/lib/mags/images', 0o700, 0],
      ['/var/lib/mags/workspaces', 0o700, 0],
      [`/var/lib/mags/workspaces/${instance}`, 0o700, 0],
      ['/var/lib/mags/bases', 0o700, 0],
      [`/var/lib/mags/bases/${instance}`, 0o700, 0],
      ['/var/lib/mags/cache', 0o700, 0],
      [`/var/lib/mags/cache/${instance}`, 0o700, 0],
      ['/run/mags', 0o700, 0],
      [`/run/mags/${instance}`, 0o700, 0],
    ];
    for (const [dir, mode, gid] of expect) {
      const st = statSync(dir);
      assert.equal(`${(st.mode & 0o7777).toString(8)} ${st.uid}:${st.gid}`, `${mode.toString(8)} 0:${gid}`, dir);
    }
    for (const dir of ['/var/lib/mags', `/var/lib/mags/sandboxes/${instance}`, `/run/mags/${instance}`]) {
      assert.match(asNobody(['ls', dir]).out, /Permission denied/, `nobody can't list ${dir}`);
    }
  });
});
