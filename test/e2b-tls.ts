// Wildcard names for E2B through the router, for tests and benchmarks: a test CA and a certificate for *.e2b.test it
// signed, Debian's dnsmasq answering *.e2b.test on a loopback address of its own, and a command line that runs a
// program in a mount namespace whose /etc/resolv.conf names that dnsmasq (the host's own resolv.conf is not touched).
import assert from 'node:assert/strict';
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { Resolver } from 'node:dns/promises';
import { existsSync, writeFileSync } from 'node:fs';
import path from 'node:path';

export const DOMAIN = 'e2b.test';

/** A test CA and a wildcard certificate for *.e2b.test that it signed (what a user makes for their own domain). */
export function makeCertificates(dir: string): { ca: string; cert: string; key: string } {
  const f = (name: string) => path.join(dir, name);
  const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes'];
  const quiet = { stdio: 'ignore' as const };
  execFileSync(
    'openssl',
    [
      'req',
      '-x509',
      ...ec,
      '-days',
      '2',
      '-subj',
      '/CN=Mags E2B test CA',
      '-addext',
      'basicConstraints=critical,CA:TRUE',
      '-addext',
      'keyUsage=critical,keyCertSign,cRLSign',
      '-keyout',
      f('ca.key'),
      '-out',
      f('ca.pem'),
    ],
    quiet,
  );
  execFileSync(
    'openssl',
    ['req', ...ec, '-subj', `/CN=*.${DOMAIN}`, '-keyout', f('key.pem'), '-out', f('req.csr')],
    quiet,
  );
  writeFileSync(
    f('ext.cnf'),
    `subjectAltName=DNS:*.${DOMAIN},DNS:${DOMAIN}\nextendedKeyUsage=serverAuth\nbasicConstraints=CA:FALSE\n`,
  );
  execFileSync(
    'openssl',
    [
      'x509',
      '-req',
      '-in',
      f('req.csr'),
      '-CA',
      f('ca.pem'),
      '-CAkey',
      f('ca.key'),
      '-CAcreateserial',
      '-days',
      '2',
      '-extfile',
      f('ext.cnf'),
      '-out',
      f('cert.pem'),
    ],
    quiet,
  );
  return { ca: f('ca.pem'), cert: f('cert.pem'), key: f('key.pem') };
}

/** Debian's dnsmasq answering *.e2b.test with 127.0.0.1, on port 53 of a loopback address of its own; stopped by PID. */
export async function startDnsmasq(dir: string): Promise<{ address: string; stop(): Promise<void> }> {
  const dnsmasq = ['/usr/sbin/dnsmasq', '/usr/bin/dnsmasq'].find((p) => existsSync(p));
  assert.ok(dnsmasq, 'dnsmasq is not installed: run scripts/install-host-packages.sh --test (package dnsmasq-base)');
  for (let attempt = 0; ; attempt++) {
    // resolv.conf takes no port, so the address is what keeps this dnsmasq apart from any other on the host.
    const address = `127.53.${1 + Math.floor(Math.random() * 254)}.${1 + Math.floor(Math.random() * 254)}`;
    const pidFile = path.join(dir, 'dnsmasq.pid');
    const child: ChildProcess = spawn(
      dnsmasq,
      [
        '--conf-file=/dev/null',
        '--keep-in-foreground',
        '--no-resolv',
        '--no-hosts',
        '--bind-interfaces',
        `--listen-address=${address}`,
        '--port=53',
        `--address=/${DOMAIN}/127.0.0.1`,
        `--pid-file=${pidFile}`,
        '--user=root',
        '--group=root',
      ],
      { stdio: ['ignore', 'ignore', 'pipe'] },
    );
    let stderr = '';
    child.stderr?.on('data', (b: Buffer) => {
      stderr += b.toString();
    });
    const exited = new Promise<void>((r) => child.once('exit', () => r()));
    const stop = async () => {
      if (child.exitCode === null && child.signalCode === null) {
        child.kill('SIGTERM');
        await exited;
      }
    };
    const resolver = new Resolver({ timeout: 500, tries: 1 });
    resolver.setServers([address]);
    const deadline = Date.now() + 10_000;
    for (;;) {
      if (child.exitCode !== null) break;
      try {
        const a = await resolver.resolve4(`probe.${DOMAIN}`);
        assert.deepEqual(a, ['127.0.0.1']);
        return { address, stop };
      } catch {
        if (Date.now() > deadline) break;
        await new Promise((r) => setTimeout(r, 100));
      }
    }
    await stop();
    if (attempt >= 3) throw new Error(`dnsmasq did not answer on ${address}: ${stderr}`);
  }
}

/** `unshare` arguments that run `command` with `resolvConf` bound over /etc/resolv.conf in a mount namespace of its own. */
export function withResolvConf(resolvConf: string, command: string[]): string[] {
  return [
    '--mount',
    '--propagation',
    'private',
    'sh',
    '-c',
    'mount --bind "$0" /etc/resolv.conf && exec "$@"',
    resolvConf,
    ...command,
  ];
}
