// Attacks from inside a sandbox. Each must fail, and the host must be unchanged afterwards.
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, test } from 'node:test';
import { type TestServer, leftovers, runScript, startServer } from './harness.js';

const IMAGE = '/var/lib/mags/images/debian-12-v2';
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
  return { port: (srv.address() as AddressInfo).port, hits: () => hits, close: () => new Promise((r) => srv.close(() => r())) };
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
    assert.equal(existsSync(`${IMAGE}/etc/pwned-${tag}`), false, 'the read-only image is untouched');
    assert.equal(existsSync(`${IMAGE}/usr/bin/pwned-${tag}`), false);
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
    const r = await runScript(server, `ps -eo pid,args; ls /proc | grep -cE '^[0-9]+$'; kill -9 ${sleeper.pid} ; echo kill=$?`);
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
      addr = logs.logs.map((l) => l.message).find((m) => m.startsWith('ADDR='))?.slice(5).split('/')[0] ?? '';
      if (!addr) await new Promise((r) => setTimeout(r, 100));
    }
    assert.match(addr, /^\d+\.\d+\.\d+\.\d+$/, 'the victim sandbox printed its address');
    // Give the victim's server a moment to listen, then attack it.
    const r = await runScript(
      server,
      `sleep 1; curl -sS -m 3 http://${addr}:8000/ && echo REACHED; echo end`,
    );
    assert.doesNotMatch(r.stdout, /REACHED/);
    assert.match(r.stdout, /end/);
  });
});

describe('a sandbox cannot reach host or control-plane services', () => {
  test('servers on the host loopback, on 0.0.0.0, and the API server are unreachable', async () => {
    const loop = await hostListener('127.0.0.1');
    const any = await hostListener('0.0.0.0');
    cleanups.push(loop.close, any.close);
    const hostIps = execFileSync('hostname', ['-I']).toString().trim().split(/\s+/).filter((a) => a.includes('.'));
    const targets = [
      `127.0.0.1:${loop.port}`,
      `127.0.0.1:${any.port}`,
      `127.0.0.1:${server.port}`,
      `${GATEWAY}:${loop.port}`,
      `${GATEWAY}:${any.port}`,
      `${GATEWAY}:${server.port}`,
      ...hostIps.flatMap((ip) => [`${ip}:${any.port}`, `${ip}:${server.port}`]),
    ];
    const script = targets.map((t) => `curl -sS -m 2 -o /dev/null -w "${t} %{http_code}\\n" http://${t}/ 2>&1 || echo "${t} failed"`).join('\n');
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
    const listener = spawn('ip', ['netns', 'exec', ns, 'python3', '-m', 'http.server', '80', '--bind', '0.0.0.0'], { stdio: 'ignore' });
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
    const script = addrs.map((a) => `curl -sS -m 2 -o /dev/null -w "${a} %{http_code}\\n" http://${a}/ 2>/dev/null || echo "${a} blocked"`).join('\n');
    const r = await runScript(server, script);
    for (const a of addrs) assert.match(r.stdout, new RegExp(`${a.replace(/\./g, '\\.')} blocked`), `sandbox reached ${a}`);
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
    for (const bad of ['MOUNTED', 'UNSHARED_USER', 'UNSHARED_MOUNT', 'UNSHARED_NET', 'ALLOWED', 'HAS_KVM']) assert.doesNotMatch(all, new RegExp(bad));
    assert.match(r.stdout, /init_module denied/);
    assert.match(r.stdout, /raw socket denied/);
    assert.match(r.stdout, /NoNewPrivs:\s+1/);
    assert.match(r.stdout, /Seccomp:\s+2/);
    const capEff = BigInt(`0x${/CapEff:\s+([0-9a-f]+)/.exec(r.stdout)![1]}`);
    const CAP_SYS_ADMIN = 21n;
    const CAP_NET_ADMIN = 12n;
    const CAP_NET_RAW = 13n;
    const CAP_SYS_MODULE = 16n;
    for (const cap of [CAP_SYS_ADMIN, CAP_NET_ADMIN, CAP_NET_RAW, CAP_SYS_MODULE]) assert.equal((capEff >> cap) & 1n, 0n, `capability ${cap} is dropped`);
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

  test('writing past the disk gives the script ENOSPC, not an OOM kill, and the host gets its space back', { timeout: 120_000 }, async () => {
    // 1.5 GB into a 1 GB disk, with a 1 GB memory limit: the disk's size bounds the writes, the memory limit doesn't.
    const r = await runScript(server, 'dd if=/dev/zero of=/root/big bs=1M count=1500 2>&1; echo rc=$?; echo alive', { memory_mb: 1024, disk_gb: 1 });
    assert.match(r.stdout, /No space left on device/);
    assert.match(r.stdout, /rc=1\nalive\n/);
    assert.equal(r.exitCode, 0, `the script lives on and ends normally (${r.errorMessage ?? ''})`);
    assert.equal(r.status, 'completed');
    // The layer is a file on the host's disk only while its sandbox lives: removed after, with its loop device.
    const headers = { authorization: `Bearer ${server.token}` };
    const { vm_id: sandboxId } = (await (await fetch(`${server.url}/api/v1/mags-jobs/${r.requestId}/status`, { headers })).json()) as { vm_id: string };
    const dir = `/var/lib/mags/sandboxes/${instance}/${sandboxId}`;
    const holds = () => existsSync(dir) || leftovers(instance).loops.some((f) => f.startsWith(`${dir}/`));
    for (let i = 0; i < 300 && holds(); i++) await new Promise((res) => setTimeout(res, 100));
    assert.equal(holds(), false, 'the sandbox\'s layer and its loop device are gone');
    const held = Number(execFileSync('du', ['-skx', `/var/lib/mags/sandboxes/${instance}`]).toString().split('\t')[0]) * 1024;
    assert.ok(held < 100 * 1024 ** 2, `the sandboxes left hold little of the host's disk (${held} bytes)`);
  });
});
