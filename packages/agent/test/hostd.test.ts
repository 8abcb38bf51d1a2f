// The host helper (native/mags-hostd.c) runs as root and mounts, unmounts and makes network namespaces on request:
// its request channel is an attack surface. A user would notice (a host compromised) if a request it receives could
// unmount or mount over a host path, follow a link a sandbox made out of the agent's directory, or remove another
// agent's (or the host's) network namespace; or if anything but the agent could reach it, or it outlived the agent.
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { pino } from 'pino';
import { HOSTD_BINARY, HostdError, HostHelper } from '../src/hostd.js';

const PREFIX = `mhdt${process.pid % 10000}-`;

function helper() {
  const base = mkdtempSync('/var/lib/mags/hostd-test-');
  const sandboxes = path.join(base, 'sandboxes');
  const templates = path.join(base, 'templates');
  mkdirSync(sandboxes);
  mkdirSync(templates);
  const hostd = new HostHelper({ sandboxes, templates, netnsPrefix: PREFIX, logger: pino({ level: 'silent' }) }, 1);
  return {
    hostd,
    sandboxes,
    templates,
    cleanup: () => {
      hostd.close();
      rmSync(base, { recursive: true, force: true });
    },
  };
}

async function refused(p: Promise<unknown>, errno?: number): Promise<void> {
  await assert.rejects(p, (err: Error) => {
    assert.ok(err instanceof HostdError, String(err));
    if (errno !== undefined) assert.equal(err.errno, errno, err.message);
    return true;
  });
}

const EPERM = 1;
const ELOOP = 40;

test('the host helper refuses paths outside its directory, through links, and with ..', async () => {
  const h = helper();
  try {
    // The mounts a refused request could have touched: the host's own (others' sandboxes come and go meanwhile).
    const hostMounts = () =>
      execFileSync('findmnt', ['-rn', '-o', 'TARGET,SOURCE,OPTIONS'])
        .toString()
        .split('\n')
        .filter((l) => !/^\/(var\/lib\/mags|run\/netns|run\/mags|tmp)\//.test(l) || l.startsWith(h.sandboxes))
        .join('\n');
    const mounts = hostMounts();
    await refused(h.hostd.request('umount', '/etc'), EPERM);
    await refused(h.hostd.request('umount', `${h.sandboxes}/../../..`), EPERM);
    await refused(h.hostd.request('umount', `${h.sandboxes}/x/../../..`), EPERM);
    await refused(h.hostd.request('umount', h.sandboxes), EPERM);
    await refused(h.hostd.request('mount-layer', '/etc/passwd', `${h.sandboxes}/x`), EPERM);
    await refused(h.hostd.request('copy-layer', '/etc/shadow', `${h.sandboxes}/copy`), EPERM);
    await refused(h.hostd.request('copy-layer', `${h.templates}/../../../etc/shadow`, `${h.sandboxes}/c`), EPERM);
    assert.ok(!existsSync(`${h.sandboxes}/copy`) && !existsSync(`${h.sandboxes}/c`));
    // A link made in a sandbox's directory (as a sandbox's writes can be) is never followed.
    mkdirSync(`${h.sandboxes}/s`);
    writeFileSync(`${h.templates}/t`, 'template');
    symlinkSync('/etc', `${h.sandboxes}/s/evil`);
    symlinkSync('/', `${h.sandboxes}/s/rootfs`);
    await refused(h.hostd.request('mount-layer', `${h.sandboxes}/s/evil/passwd`, `${h.sandboxes}/s`), ELOOP);
    await refused(h.hostd.request('mount-layer', `${h.sandboxes}/s/x`, `${h.sandboxes}/s/evil`));
    await refused(h.hostd.request('copy-layer', `${h.templates}/t`, `${h.sandboxes}/s/evil/x`), ELOOP);
    await refused(h.hostd.request('mount-overlay', `${h.sandboxes}/s`, 'lowerdir=l0,upperdir=u,workdir=w'), ELOOP);
    // Unmounting a link unmounts nothing (not what it points to): "not mounted", as the mount list below shows.
    await h.hostd.request('umount', `${h.sandboxes}/s/evil`);
    await h.hostd.request('umount', `${h.sandboxes}/s/rootfs`);
    // Overlay options name only paths under the sandbox's directory.
    await refused(h.hostd.request('mount-overlay', `${h.sandboxes}/s`, 'lowerdir=/,upperdir=u,workdir=w'), EPERM);
    await refused(h.hostd.request('mount-overlay', `${h.sandboxes}/s`, 'lowerdir=../..,upperdir=u,workdir=w'), EPERM);
    await refused(h.hostd.request('mount-overlay', `${h.sandboxes}/s`, 'lowerdir=a,upperdir=u,workdir=w,suid'));
    // Unknown requests and a tab smuggled in an argument.
    await assert.rejects(h.hostd.request('umount', `${h.sandboxes}/a\tnetns-del\tx`));
    await refused((h.hostd.request as (...a: string[]) => Promise<string>)('exec', '/bin/sh'));
    assert.equal(hostMounts(), mounts, 'no mount changed');
    assert.ok(existsSync('/etc/passwd'));
  } finally {
    h.cleanup();
  }
});

test('the host helper makes and removes only network namespaces of its own prefix', async () => {
  const h = helper();
  const other = `mhdother${process.pid % 10000}`;
  execFileSync('ip', ['netns', 'add', other]);
  try {
    await refused(h.hostd.request('netns-del', other), EPERM);
    await refused(h.hostd.request('netns-del', `${PREFIX}../${other}`), EPERM);
    await refused(h.hostd.request('netns-add', `${PREFIX}A/b`), EPERM);
    assert.ok(existsSync(`/run/netns/${other}`), "another's namespace is still there");
    const name = `${PREFIX}n1`;
    await h.hostd.request('netns-add', name, `${PREFIX.slice(0, 6)}v1`, '10.254.0.1', '10.254.0.2');
    const inside = execFileSync('ip', ['-n', name, '-4', '-o', 'addr']).toString();
    assert.match(inside, /eth0\s+inet 10\.254\.0\.2\/30/);
    assert.match(execFileSync('ip', ['-n', name, 'route']).toString(), /default via 10\.254\.0\.1 dev eth0/);
    await h.hostd.request('netns-del', name);
    assert.ok(!existsSync(`/run/netns/${name}`));
    // The kernel removes a namespace's veth a moment after its last reference goes.
    const veth = new RegExp(`${PREFIX.slice(0, 6)}v1`);
    for (let i = 0; i < 100 && veth.test(execFileSync('ip', ['-o', 'link']).toString()); i++)
      await new Promise((r) => setTimeout(r, 50));
    assert.doesNotMatch(execFileSync('ip', ['-o', 'link']).toString(), veth);
  } finally {
    execFileSync('ip', ['netns', 'del', other]);
    h.cleanup();
  }
});

test("only the agent holds the helper's channel, and the helper ends with the agent", async () => {
  // An "agent" process that starts a helper and prints its pid, then is killed without a chance to clean up.
  const script = `
    import { HostHelper } from ${JSON.stringify(path.resolve(import.meta.dirname, '../src/hostd.ts'))};
    import { pino } from 'pino';
    const h = new HostHelper({ sandboxes: '/nonexistent', templates: '/nonexistent', netnsPrefix: 'x', logger: pino({ level: 'silent' }) }, 1);
    await h.request('umount', '/nonexistent/a').catch(() => {});
    console.log('ready');
    setInterval(() => {}, 1000);`;
  const agent = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  try {
    await new Promise<void>((resolve) => agent.stdout!.on('data', (b: Buffer) => b.includes('ready') && resolve()));
    const kids = execFileSync('pgrep', ['-P', String(agent.pid)])
      .toString()
      .trim()
      .split('\n')
      .map(Number);
    const hostd = kids.find((k) => readlinkSync(`/proc/${k}/exe`) === HOSTD_BINARY);
    assert.ok(hostd, "the helper runs as the agent's child");
    // Its descriptors: its stdio (the unnamed socket pairs the agent made, whose other ends only the agent holds)
    // and its own network namespace; nothing it listens on, nothing inherited.
    const fds = readdirSync(`/proc/${hostd}/fd`).map((fd) => [Number(fd), readlinkSync(`/proc/${hostd}/fd/${fd}`)]);
    for (const [fd, link] of fds) {
      if (Number(fd) <= 2) assert.match(String(link), /^(socket|pipe):/);
      else assert.match(String(link), /^net:/, `unexpected descriptor ${fd} -> ${link}`);
    }
    const listening = readFileSync('/proc/net/unix', 'utf8');
    for (const [fd, link] of fds) {
      const inode = /^socket:\[(\d+)\]$/.exec(String(link))?.[1];
      if (Number(fd) <= 2 && inode)
        assert.doesNotMatch(listening, new RegExp(` ${inode} @?/`), 'the socket has no name');
    }
    agent.kill('SIGKILL');
    for (let i = 0; i < 50 && existsSync(`/proc/${hostd}`); i++) await new Promise((r) => setTimeout(r, 20));
    const state = existsSync(`/proc/${hostd}/stat`) ? execFileSync('cat', [`/proc/${hostd}/stat`]).toString() : '';
    assert.ok(!state || / Z /.test(state), 'the helper ended with the agent');
  } finally {
    agent.kill('SIGKILL');
  }
});
