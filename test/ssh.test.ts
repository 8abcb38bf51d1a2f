// SSH into sandboxes as users see it: the real OpenSSH client (ssh, scp, sftp) against the gateway of a real
// `mags server`, into real sandboxes. An interactive shell on a terminal (size, resize, TERM, Ctrl-C, exit code),
// commands with their streams and exit codes, files both ways byte for byte, `ssh -L` to a server in the sandbox,
// and the keys: a sandbox's key, a user's own registered key, and every key that must be refused.
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { Mags, MagsApiError } from '@mags/sdk';
import { generateToken, Store } from '@mags/server';
import { api, freePort, removeInstance, runCli, startServer, type TestServer } from './harness.js';

const instance = `s${randomBytes(2).toString('hex')}`;
const work = mkdtempSync(path.join(tmpdir(), 'mags-ssh-test-'));
let server: TestServer;
let dev: string;
let devKey: string;
const unique = (prefix: string) => `${prefix}-${randomBytes(3).toString('hex')}`;

interface Run {
  code: number | null;
  stdout: Buffer;
  stderr: string;
}

/** Runs a program with stdin from `input` (or nothing), stdout as bytes. */
function run(cmd: string, args: string[], input?: Buffer | string, env: NodeJS.ProcessEnv = process.env): Promise<Run> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { stdio: ['pipe', 'pipe', 'pipe'], env });
    const out: Buffer[] = [];
    let err = '';
    child.stdout.on('data', (b: Buffer) => out.push(b));
    child.stderr.on('data', (b: Buffer) => (err += b.toString()));
    child.once('error', reject);
    child.once('close', (code) => resolve({ code, stdout: Buffer.concat(out), stderr: err }));
    child.stdin.end(input ?? '');
  });
}

/** The options every OpenSSH tool here gets: this key only, no prompts, no known_hosts of the user's. */
function sshOptions(key: string): string[] {
  return [
    '-i',
    key,
    '-o',
    'IdentitiesOnly=yes',
    '-o',
    'BatchMode=yes',
    '-o',
    'StrictHostKeyChecking=no',
    '-o',
    'UserKnownHostsFile=/dev/null',
    '-o',
    'LogLevel=ERROR',
  ];
}

function ssh(key: string, user: string, command: string, input?: Buffer | string): Promise<Run> {
  return run('ssh', [...sshOptions(key), '-p', String(server.sshPort), `${user}@127.0.0.1`, command], input);
}

/** A fresh ed25519 key pair made by ssh-keygen; returns the private key's path (the public one is beside it). */
function keygen(name: string): string {
  const file = path.join(work, name);
  execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', name, '-f', file]);
  return file;
}

/** The access route's key for a sandbox, written 0600. */
async function accessKey(ref: string, name: string): Promise<string> {
  const r = await api(server, 'POST', `/api/v1/mags-jobs/${ref}/access`, { port: 22 });
  assert.equal(r.status, 200, JSON.stringify(r.body));
  assert.equal(r.body.ssh_user, 'root');
  assert.equal(r.body.ssh_port, server.sshPort);
  assert.equal(r.body.ssh_host, '127.0.0.1');
  const file = path.join(work, name);
  writeFileSync(file, r.body.ssh_private_key, { mode: 0o600 });
  return file;
}

const sha256 = (b: Buffer) => createHash('sha256').update(b).digest('hex');

before(async () => {
  server = await startServer(['--instance', instance]);
  dev = unique('dev');
  const r = await runCli(server, ['new', dev]);
  assert.equal(r.code, 0, r.stderr);
  devKey = await accessKey(dev, 'dev-key');
});
after(async () => {
  await runCli(server, ['stop', dev]).catch(() => undefined);
  await server?.stop();
  rmSync(work, { recursive: true, force: true });
  removeInstance(instance);
});

describe('ssh into a sandbox', () => {
  test('an interactive shell on a terminal: its size and a resize, TERM, Ctrl-C interrupts, exit 7 is the exit code', async () => {
    const ttyFile = path.join(work, 'tty');
    const sshCmd = ['ssh', '-tt', ...sshOptions(devKey), '-p', String(server.sshPort), 'root@127.0.0.1']
      .map((a) => `'${a}'`)
      .join(' ');
    // script(1) gives ssh a real terminal: 100x30 to start with; the test resizes it later with stty -F.
    const child = spawn('script', ['-qfec', `tty > ${ttyFile}; stty cols 100 rows 30; exec ${sshCmd}`, '/dev/null'], {
      stdio: ['pipe', 'pipe', 'pipe'],
      env: { ...process.env, TERM: 'vt220' },
    });
    let out = '';
    child.stdout.on('data', (b: Buffer) => (out += b.toString('latin1')));
    const exited = new Promise<number | null>((resolve) => child.once('close', resolve));
    const until = async (re: RegExp, what: string) => {
      const deadline = Date.now() + 30_000;
      while (!re.test(out)) {
        if (Date.now() > deadline) throw new Error(`no ${what} in the session: ${JSON.stringify(out.slice(-2000))}`);
        await new Promise((r) => setTimeout(r, 50));
      }
    };
    try {
      await until(/root@sandbox/, 'prompt');
      child.stdin.write('stty size; echo "term=$TERM"\r');
      await until(/\r30 100\r\n/, 'initial size 30 100');
      await until(/term=vt220/, 'TERM');
      execFileSync('stty', ['-F', readFileSync(ttyFile, 'utf8').trim(), 'cols', '120', 'rows', '40']);
      await new Promise((r) => setTimeout(r, 500));
      child.stdin.write('stty size\r');
      await until(/\r40 120\r\n/, 'the new size 40 120');
      child.stdin.write('sleep 100\r');
      await new Promise((r) => setTimeout(r, 500));
      child.stdin.write('\x03');
      child.stdin.write('echo "after=$?"\r');
      await until(/after=130/, 'sleep interrupted by Ctrl-C');
      child.stdin.write('exit 7\r');
      assert.equal(await exited, 7, out.slice(-2000));
    } finally {
      child.kill('SIGKILL');
    }
  });

  test('a command: stdout and stderr apart, stdin, and its exit code', async () => {
    const r = await ssh(devKey, 'root', 'cat; echo out; echo err >&2; exit 3', 'from stdin\n');
    assert.equal(r.code, 3, r.stderr);
    assert.equal(r.stdout.toString(), 'from stdin\nout\n');
    assert.equal(r.stderr, 'err\n');
    const bytes = randomBytes(200_000);
    const binary = await ssh(devKey, 'root', 'cat', bytes);
    assert.equal(binary.code, 0, binary.stderr);
    assert.ok(binary.stdout.equals(bytes), 'binary bytes pass through unchanged');
  });

  test('a session, with or without a terminal, is as confined as an exec, and cannot change /.mags/tool', async () => {
    const probe = "grep -E '^(Uid|Gid|CapInh|CapPrm|CapEff|CapBnd|CapAmb|NoNewPrivs|Seccomp):' /proc/self/status";
    const viaExec = await runCli(server, ['exec', dev, probe]);
    assert.equal(viaExec.code, 0, viaExec.stderr);
    const viaSsh = await ssh(devKey, 'root', probe);
    assert.equal(viaSsh.stdout.toString(), viaExec.stdout);
    const onTty = await run('ssh', [
      '-tt',
      ...sshOptions(devKey),
      '-p',
      String(server.sshPort),
      'root@127.0.0.1',
      probe,
    ]);
    assert.equal(onTty.stdout.toString().replace(/\r\n/g, '\n'), viaExec.stdout, 'the same under /.mags/tool pty');
    const write = await ssh(devKey, 'root', 'echo x > /.mags/tool');
    assert.notEqual(write.code, 0);
    assert.match(write.stderr, /Read-only file system|Permission denied|Text file busy/);
  });

  test('scp both ways and sftp in batch mode keep a binary file of a few MB byte for byte', async () => {
    const data = randomBytes(3 * 1024 * 1024 + 17);
    const local = path.join(work, 'data.bin');
    writeFileSync(local, data);
    const target = `root@127.0.0.1`;
    const up = await run('scp', [...sshOptions(devKey), '-P', String(server.sshPort), local, `${target}:/root/up.bin`]);
    assert.equal(up.code, 0, up.stderr);
    const sum = await ssh(devKey, 'root', 'sha256sum /root/up.bin');
    assert.equal(sum.stdout.toString().split(' ')[0], sha256(data), 'the upload arrived whole');
    const back = path.join(work, 'back.bin');
    const down = await run('scp', [
      ...sshOptions(devKey),
      '-P',
      String(server.sshPort),
      `${target}:/root/up.bin`,
      back,
    ]);
    assert.equal(down.code, 0, down.stderr);
    assert.ok(readFileSync(back).equals(data), 'scp download equals the original');

    const viaSftp = path.join(work, 'sftp.bin');
    const batch = path.join(work, 'batch');
    writeFileSync(batch, `put ${local} /root/sftp.bin\nget /root/sftp.bin ${viaSftp}\nls -l /root/sftp.bin\n`);
    const s = await run('sftp', [...sshOptions(devKey), '-P', String(server.sshPort), '-b', batch, target]);
    assert.equal(s.code, 0, s.stderr);
    assert.ok(readFileSync(viaSftp).equals(data), 'sftp round trip equals the original');
  });

  test('ssh -L reaches an HTTP server in the sandbox through a loopback port', async () => {
    const started = await ssh(
      devKey,
      'root',
      'mkdir -p /root/www && echo "hello from the sandbox" > /root/www/hello.txt && ' +
        '(cd /root/www && nohup python3 -m http.server 8000 --bind 127.0.0.1 >/dev/null 2>&1 &)',
    );
    assert.equal(started.code, 0, started.stderr);
    const port = await freePort();
    const tunnel = spawn(
      'ssh',
      [...sshOptions(devKey), '-N', '-L', `${port}:localhost:8000`, '-p', String(server.sshPort), 'root@127.0.0.1'],
      { stdio: ['ignore', 'ignore', 'pipe'] },
    );
    let tunnelErr = '';
    tunnel.stderr.on('data', (b: Buffer) => (tunnelErr += b.toString()));
    try {
      let body = '';
      const deadline = Date.now() + 30_000;
      for (;;) {
        try {
          const res = await fetch(`http://127.0.0.1:${port}/hello.txt`);
          body = await res.text();
          if (res.ok) break;
        } catch {
          /* the tunnel or the server is not up yet */
        }
        if (Date.now() > deadline) throw new Error(`no answer through the tunnel: ${tunnelErr}`);
        await new Promise((r) => setTimeout(r, 200));
      }
      assert.equal(body, 'hello from the sandbox\n');
      // Several requests, one connection each.
      const again = await Promise.all(
        [1, 2, 3].map(() => fetch(`http://127.0.0.1:${port}/hello.txt`).then((r) => r.text())),
      );
      assert.deepEqual(again, [body, body, body]);
    } finally {
      tunnel.kill('SIGTERM');
    }
  });

  test('mags ssh NAME -- CMD passes the exit code and output through', async () => {
    const r = await runCli(server, ['ssh', dev, '--', 'echo hi; echo oops >&2; exit 5']);
    assert.equal(r.code, 5, r.stderr);
    assert.equal(r.stdout, 'hi\n');
    assert.match(r.stderr, /oops/);
  });
});

describe('ssh keys', () => {
  test('a key nobody registered is refused', async () => {
    const stranger = keygen('stranger');
    const r = await ssh(stranger, 'root', 'true');
    assert.equal(r.code, 255);
    assert.match(r.stderr, /Permission denied \(publickey\)/);
  });

  test('a registered key opens the sandbox the ssh user names; once removed (mags ssh-key remove) it is refused at once', async () => {
    const mine = keygen('mine');
    const added = await runCli(server, ['ssh-key', 'add', `${mine}.pub`, '--name', 'laptop', '--json']);
    assert.equal(added.code, 0, added.stderr);
    const key = JSON.parse(added.stdout) as { id: string; fingerprint: string; name: string };
    assert.equal(key.name, 'laptop');
    const fp = execFileSync('ssh-keygen', ['-l', '-f', `${mine}.pub`])
      .toString()
      .split(' ')[1];
    assert.equal(key.fingerprint, fp, 'the fingerprint is the one ssh-keygen shows');
    const listed = await runCli(server, ['ssh-key', 'list', '--json']);
    assert.deepEqual(
      (JSON.parse(listed.stdout) as { keys: Array<{ id: string }> }).keys.map((k) => k.id),
      [key.id],
      'only the own key is listed, not the sandboxes’ keys',
    );
    const table = await runCli(server, ['ssh-key', 'list']);
    assert.match(table.stdout, new RegExp(`${key.id}\\s+laptop\\s+SHA256:`));

    const opened = await ssh(mine, dev, 'echo "in $(hostname)"; exit 4');
    assert.equal(opened.code, 4, opened.stderr);
    assert.equal(opened.stdout.toString(), 'in sandbox\n');
    const wrongName = await ssh(mine, 'no-such-sandbox', 'true');
    assert.equal(wrongName.code, 255, 'a name the user has no sandbox of is refused');

    const dup = await runCli(server, ['ssh-key', 'add', `${mine}.pub`]);
    assert.equal(dup.code, 1);
    assert.match(dup.stderr, /registered already/);
    const bad = path.join(work, 'bad.pub');
    writeFileSync(bad, 'ssh-dss AAAA not-a-key\n');
    const refused = await runCli(server, ['ssh-key', 'add', bad]);
    assert.equal(refused.code, 1);
    assert.match(refused.stderr, /not a supported key type/);

    const removed = await runCli(server, ['ssh-key', 'remove', key.id]);
    assert.equal(removed.code, 0, removed.stderr);
    const after = await ssh(mine, dev, 'true');
    assert.equal(after.code, 255);
    assert.match(after.stderr, /Permission denied/);
    assert.equal((await runCli(server, ['ssh-key', 'remove', key.id])).code, 1, 'removing it again: not found');
  });

  test("another user: their key is refused for this user's sandbox, and this user's access and keys are 404 to them", async () => {
    const store = await Store.open(path.join(server.home, 'mags.db'));
    let token: string;
    try {
      const other = await store.users.create('other');
      const secret = generateToken();
      await store.users.insertToken(other.id, { hash: secret.hash, prefix: secret.prefix, name: 'test' });
      token = secret.token;
    } finally {
      await store.close();
    }
    const as = (method: string, route: string, body?: unknown) =>
      fetch(`${server.url}${route}`, {
        method,
        headers: {
          authorization: `Bearer ${token}`,
          ...(body === undefined ? {} : { 'content-type': 'application/json' }),
        },
        body: body === undefined ? undefined : JSON.stringify(body),
      });
    assert.equal((await as('POST', `/api/v1/mags-jobs/${dev}/access`, { port: 22 })).status, 404);
    const job = await api(server, 'GET', `/api/v1/mags-jobs/${dev}/status`);
    assert.equal((await as('POST', `/api/v1/mags-jobs/${job.body.request_id}/access`, { port: 22 })).status, 404);

    const ownerKey = keygen('owner-key');
    const mine = await api(server, 'POST', '/api/v1/ssh-keys', {
      public_key: readFileSync(`${ownerKey}.pub`, 'utf8'),
    });
    assert.equal(mine.status, 201, JSON.stringify(mine.body));
    assert.equal((await as('DELETE', `/api/v1/ssh-keys/${mine.body.id}`)).status, 404);
    assert.deepEqual(await (await as('GET', '/api/v1/ssh-keys')).json(), { keys: [] });

    const theirs = keygen('their-key');
    const added = await as('POST', '/api/v1/ssh-keys', { public_key: readFileSync(`${theirs}.pub`, 'utf8') });
    assert.equal(added.status, 201);
    for (const user of [dev, job.body.request_id as string, 'root']) {
      const r = await ssh(theirs, user, 'true');
      assert.equal(r.code, 255, `their key as ${user}`);
      assert.match(r.stderr, /Permission denied/);
    }
    // The owner's key still works (the other user's registration did not change it).
    assert.equal((await ssh(ownerKey, dev, 'true')).code, 0);
  });

  test("a sandbox's key opens only its own sandbox, and stops working when its job is deleted", async () => {
    const other = unique('box');
    assert.equal((await runCli(server, ['new', other])).code, 0);
    const otherKey = await accessKey(other, 'box-key');
    const r = await ssh(otherKey, dev, 'hostname; cat /root/up.bin >/dev/null 2>&1 && echo has-dev-files || echo own');
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout.toString(), 'sandbox\nown\n', 'whatever the ssh user names, the key opens its own sandbox');
    assert.equal((await runCli(server, ['stop', other])).code, 0);
    const gone = await ssh(otherKey, 'root', 'true');
    assert.equal(gone.code, 255, 'the sandbox has ended: no session');
    const job = await api(server, 'GET', `/api/v1/mags-jobs/${other}/status`);
    assert.equal((await api(server, 'DELETE', `/api/v1/mags-jobs/${job.body.request_id}`)).status, 204);
    const deleted = await ssh(otherKey, 'root', 'true');
    assert.equal(deleted.code, 255);
    assert.match(deleted.stderr, /Permission denied/);
    assert.equal(existsSync(otherKey), true);
  });

  test('the SDK: enableAccess gives a key plain ssh accepts; addSshKey, listSshKeys, removeSshKey', async () => {
    const mags = new Mags({ apiUrl: server.url, apiToken: server.token });
    const access = await mags.enableAccess(dev, 22);
    assert.deepEqual(
      { ...access, sshPrivateKey: undefined },
      { success: true, sshHost: '127.0.0.1', sshPort: server.sshPort, sshUser: 'root', sshPrivateKey: undefined },
    );
    const file = path.join(work, 'sdk-key');
    writeFileSync(file, access.sshPrivateKey, { mode: 0o600 });
    const r = await ssh(file, access.sshUser, 'echo via-sdk');
    assert.equal(r.stdout.toString(), 'via-sdk\n', r.stderr);
    // Another port: the sandbox's URL instead of a key.
    const web = await mags.enableAccess(dev, 8080);
    assert.ok('url' in web && /^http:\/\/[0-9a-f]{12}\.localhost:\d+$/.test(web.url), JSON.stringify(web));

    const pub = readFileSync(`${keygen('sdk-own')}.pub`, 'utf8');
    const key = await mags.addSshKey(pub, { name: 'sdk' });
    assert.equal(key.name, 'sdk');
    assert.match(key.fingerprint, /^SHA256:/);
    assert.equal(key.publicKey, pub.split(' ').slice(0, 2).join(' '));
    assert.ok((await mags.listSshKeys()).some((k) => k.id === key.id));
    await mags.removeSshKey(key.id);
    assert.ok(!(await mags.listSshKeys()).some((k) => k.id === key.id));
    await assert.rejects(
      mags.removeSshKey(key.id),
      (err: unknown) => err instanceof MagsApiError && err.status === 404,
    );
  });

  test('access to a port other than 22 opens a URL (no key); private goes with URLs only', async () => {
    const r = await api(server, 'POST', `/api/v1/mags-jobs/${dev}/access`, { port: 8080 });
    assert.equal(r.status, 200);
    assert.equal(r.body.port, 8080);
    assert.match(r.body.url, /^http:\/\/[0-9a-f]{12}\.localhost:\d+$/);
    assert.equal(r.body.ssh_private_key, undefined);
    const bad = await api(server, 'POST', `/api/v1/mags-jobs/${dev}/access`, { port: 22, private: true });
    assert.equal(bad.status, 400);
  });
});
