// Long-lived sandboxes and exec as users see them, against a real `mags server` with real sandboxes: `mags new`
// stays up, `mags exec` passes stdout, stderr, stdin, bytes and the exit code through, kills at its timeout and
// what the command left behind when it ends, keeps what was put in the background on purpose, and an exec'd
// process is exactly as confined as the sandbox's own processes.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { Mags, MagsApiError } from '@mags/sdk';
import { CLI, removeInstance, runCli, runScript, startServer, type TestServer } from './harness.js';

const instance = `x${randomBytes(2).toString('hex')}`;
let server: TestServer;
let mags: Mags;
const unique = (prefix: string) => `${prefix}-${randomBytes(3).toString('hex')}`;

before(async () => {
  server = await startServer(['--instance', instance]);
  mags = new Mags({ apiUrl: server.url, apiToken: server.token });
});
after(async () => {
  await server?.stop();
  removeInstance(instance);
});

/** A process's resident memory in MB. */
function rssMb(pid: number): number {
  return Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] ?? 0) / 1024;
}

interface Exec {
  code: number | null;
  stdout: Buffer;
  stderr: Buffer;
}

/** `mags exec ARGS` with `stdin` (or /dev/null), stdout and stderr kept as bytes. */
function execCli(args: string[], stdin?: Buffer): Promise<Exec> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [CLI, 'exec', ...args], {
      env: server.env,
      stdio: [stdin ? 'pipe' : 'ignore', 'pipe', 'pipe'],
    });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout!.on('data', (b: Buffer) => out.push(b));
    child.stderr!.on('data', (b: Buffer) => err.push(b));
    child.once('error', reject);
    child.once('close', (code) => resolve({ code, stdout: Buffer.concat(out), stderr: Buffer.concat(err) }));
    if (stdin) child.stdin!.end(stdin);
  });
}

describe('mags new and mags exec', () => {
  let dev: string;
  before(async () => {
    dev = unique('dev');
    const r = await runCli(server, ['new', dev]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(
      r.stdout,
      new RegExp(`^sandbox ${dev} is running \\(job [0-9a-f-]{36}\\); run commands in it with: mags exec ${dev}`),
    );
  });
  after(async () => {
    await runCli(server, ['stop', dev]);
  });

  test('the sandbox stays up: status running, and a run on its workspace is refused, pointing at exec', async () => {
    const job = await mags.findJob(dev);
    assert.equal(job?.status, 'running');
    assert.equal(job?.workspaceId, dev);
    const run = await runCli(server, ['run', '-w', dev, 'true']);
    assert.equal(run.code, 1);
    assert.match(run.stderr, new RegExp(`running sandbox of job ${job?.requestId}.*mags exec ${dev}`));
  });

  test('exit codes pass through; stdout and stderr stay apart', async () => {
    const r = await execCli([dev, 'echo out; echo err >&2; exit 7']);
    assert.equal(r.code, 7);
    assert.equal(r.stdout.toString(), 'out\n');
    assert.equal(r.stderr.toString(), 'err\n');
    assert.equal((await execCli([dev, 'true'])).code, 0);
    assert.equal((await execCli([dev, 'kill -9 $$'])).code, 137, 'killed by a signal: 128+n');
  });

  test('any bytes pass through unchanged', async () => {
    const r = await execCli([dev, `python3 -c 'import sys; sys.stdout.buffer.write(bytes(range(256)) * 3)'`]);
    assert.equal(r.code, 0, r.stderr.toString());
    assert.ok(
      r.stdout.equals(Buffer.concat([0, 1, 2].map(() => Buffer.from(Array.from({ length: 256 }, (_, i) => i))))),
    );
  });

  test('a 300 MB output arrives whole and in order, and the server does not hold it', {
    timeout: 300_000,
  }, async (t) => {
    // 300 MB, so that holding it (≥ 300 MB of growth) cannot be mistaken for the garbage a busy V8 heap leaves
    // uncollected between GCs (measured up to ~90 MB of RSS on a loaded machine).
    const expected = await execCli([dev, 'seq 1 35000000 | sha256sum']);
    const before = rssMb(server.pid);
    let peak = before;
    const sampler = setInterval(() => {
      peak = Math.max(peak, rssMb(server.pid));
    }, 50);
    const r = await execCli([dev, 'seq 1 35000000']).finally(() => clearInterval(sampler));
    assert.equal(r.code, 0, r.stderr.toString());
    t.diagnostic(`server RSS grew by ${Math.round(peak - before)} MB`);
    assert.ok(peak - before < 160, `the server grew by ${Math.round(peak - before)} MB while 300 MB passed through`);
    assert.ok(r.stdout.length > 300_000_000, `${r.stdout.length} bytes`);
    assert.equal(`${createHash('sha256').update(r.stdout).digest('hex')}  -\n`, expected.stdout.toString());
  });

  test('stdin is passed through when it is not a terminal', async () => {
    const input = randomBytes(5 * 1024 * 1024 + 3);
    const r = await execCli([dev, 'cat > /root/in.bin && sha256sum < /root/in.bin && wc -c < /root/in.bin'], input);
    assert.equal(r.code, 0, r.stderr.toString());
    assert.equal(r.stdout.toString(), `${createHash('sha256').update(input).digest('hex')}  -\n${input.length}\n`);
  });

  test('multi-line scripts with quotes, -e and --cwd work', async () => {
    const script = `a='it'"'"'s'\nfor i in 1 2; do\n  echo "$i $a $GREETING"\ndone\npwd`;
    const r = await execCli(['-e', 'GREETING=hi there', '--cwd', '/tmp', dev, script]);
    assert.equal(r.code, 0, r.stderr.toString());
    assert.equal(r.stdout.toString(), "1 it's hi there\n2 it's hi there\n/tmp\n");
  });

  test('--timeout kills the command and everything it started; exit 124', async () => {
    const r = await execCli(['--timeout', '2', dev, 'sleep 301 & sleep 302; echo never']);
    assert.equal(r.code, 124);
    assert.equal(r.stdout.toString(), '');
    assert.match(r.stderr.toString(), /longer than its 2 s timeout and was killed/);
    const ps = await execCli([dev, 'ps -eo args']);
    assert.doesNotMatch(ps.stdout.toString(), /sleep 30[12]/, 'nothing of the timed-out command is left');
  });

  test('state persists between execs; a background process lives on only if put there on purpose', async () => {
    const kept = await execCli([
      dev,
      'echo hello > /root/state; nohup sleep 1001 >/dev/null 2>&1 & sleep 1002 >/dev/null 2>&1 & echo started',
    ]);
    assert.equal(kept.code, 0, kept.stderr.toString());
    assert.equal(kept.stdout.toString(), 'started\n');
    // (The exec's process group is hung up 250 ms after it ends.)
    const next = await execCli([dev, 'sleep 1; cat /root/state; ps -eo args']);
    assert.match(next.stdout.toString(), /^hello\n/);
    assert.match(next.stdout.toString(), /^sleep 1001$/m, 'the nohup process is still running');
    assert.doesNotMatch(next.stdout.toString(), /^sleep 1002$/m, 'the plain background process ended with its exec');
  });

  test('--json prints the result; --help shows an example; an unknown sandbox fails with one sentence', async () => {
    const r = await runCli(server, ['exec', '--json', dev, 'echo a; echo b >&2; exit 2']);
    assert.equal(r.code, 2);
    assert.deepEqual(JSON.parse(r.stdout), { exitCode: 2, stdout: 'a\n', stderr: 'b\n', reason: 'exited' });
    for (const cmd of ['exec', 'new']) {
      const help = await runCli(server, [cmd, '--help']);
      assert.equal(help.code, 0);
      assert.match(help.stdout, new RegExp(`Examples:\\n\\s+\\$ mags ${cmd}`));
    }
    const missing = await runCli(server, ['exec', unique('none'), 'true']);
    assert.equal(missing.code, 1);
    assert.match(missing.stderr, /^mags: no job or sandbox named/);
  });
});

describe('an exec is as confined as the sandbox', () => {
  let box: string;
  let secret: string;
  before(async () => {
    box = unique('conf');
    await mags.new(box);
    secret = path.join(tmpdir(), `mags-secret-${randomBytes(6).toString('hex')}`);
    writeFileSync(secret, 'host secret\n');
  });
  after(async () => {
    await mags.stop(box).catch(() => undefined);
    rmSync(secret, { force: true });
  });

  const PROBE =
    'grep -E "^(Uid|Gid|Cap(Inh|Prm|Eff|Bnd|Amb)|NoNewPrivs|Seccomp):" /proc/self/status; cat /proc/self/uid_map; cat /proc/self/cgroup | sort';

  test('the same user, capabilities, no_new_privs, seccomp filter, user namespace and cgroups as the sandbox', async () => {
    const fromExec = await mags.exec(box, PROBE);
    assert.equal(fromExec.exitCode, 0, fromExec.stderr);
    const fromInit = await mags.exec(
      box,
      `cd /proc/1 && grep -E "^(Uid|Gid|Cap(Inh|Prm|Eff|Bnd|Amb)|NoNewPrivs|Seccomp):" status; cat uid_map; cat cgroup | sort`,
    );
    assert.equal(fromExec.stdout, fromInit.stdout, "an exec'd process carries what the sandbox's init carries");
    assert.match(fromExec.stdout, /NoNewPrivs:\s+1/);
    assert.match(fromExec.stdout, /Seccomp:\s+2/);
    assert.match(fromExec.stdout, /^\s+0\s+100000\s+65536$/m, 'root inside is host uid 100000');
    const run = await runScript(server, PROBE);
    const caps = (text: string) => text.split('\n').filter((l) => /^(Cap|NoNewPrivs|Seccomp)/.test(l));
    assert.deepEqual(caps(fromExec.stdout), caps(run.stdout), 'the same as a run script');
  });

  test('it sees no host process or file, and its attacks fail', async () => {
    const r = await mags.exec(
      box,
      [
        `ls /proc | grep -c '^[0-9]*$'`,
        `kill -9 ${process.pid} 2>&1 || echo kill refused`,
        `cat ${secret} 2>&1 || echo no secret`,
        'unshare -r true 2>&1 || echo unshare refused',
        'mount -t tmpfs x /mnt 2>&1 || echo mount refused',
      ].join('\n'),
    );
    const lines = r.stdout.split('\n');
    assert.ok(Number(lines[0]) < 20, `only its own few processes are visible (${lines[0]})`);
    assert.match(r.stdout, /kill refused/);
    assert.match(r.stdout, /no secret/);
    assert.match(r.stdout, /unshare refused/);
    assert.match(r.stdout, /mount refused/);
    assert.equal(readFileSync(secret, 'utf8'), 'host secret\n');
    const hostStat = readFileSync(`/proc/${process.pid}/stat`, 'utf8');
    assert.ok(hostStat.length > 0, 'this test process lives on');
  });
});

describe('the SDK and the REST API', () => {
  test('new, exec, execStream and findJob; stop syncs a persistent workspace first', { timeout: 300_000 }, async () => {
    const name = unique('sdk');
    const job = await mags.new(name, { persistent: true });
    assert.equal(job.status, 'running');
    assert.equal((await mags.findJob(name))?.requestId, job.requestId);
    const r = await mags.exec(name, 'echo kept > /root/kept; cat /root/kept; echo e >&2; exit 4');
    assert.deepEqual(r, { exitCode: 4, stdout: 'kept\n', stderr: 'e\n', reason: 'exited' });

    const chunks: string[] = [];
    const run = mags.execStream(job.requestId, 'for i in 1 2 3; do echo $i; sleep 0.2; done');
    for await (const c of run) chunks.push(`${c.stream}:${c.data.toString()}`);
    assert.equal(chunks.join(''), 'stdout:1\nstdout:2\nstdout:3\n');
    assert.deepEqual(await run.done, { exitCode: 0, reason: 'exited' });

    const rest = await fetch(`${server.url}/api/v1/mags-jobs/${name}/exec`, {
      method: 'POST',
      headers: { authorization: `Bearer ${server.token}`, 'content-type': 'application/json' },
      body: JSON.stringify({ command: 'cat /root/kept', timeout_s: 30 }),
    });
    assert.equal(rest.status, 200);
    assert.deepEqual(await rest.json(), {
      exit_code: 0,
      stdout: 'kept\n',
      stderr: '',
      reason: 'exited',
      truncated: false,
    });

    const stopped = await mags.stop(name);
    assert.equal(stopped.status, 'stopped');
    // With no sandbox on it, an exec on a persistent workspace starts one (from what the stop synced).
    const restarted = await mags.exec(name, 'cat /root/kept');
    assert.equal(restarted.stdout, 'kept\n', 'the persistent workspace was synced before the sandbox stopped');
    const second = (await mags.findJob(name))!;
    assert.notEqual(second.requestId, job.requestId, 'a new sandbox');
    assert.equal(second.status, 'running');
    await mags.stop(name);
    const again = await runScript(server, 'cat /root/kept', { workspace_id: name, persistent: true });
    assert.equal(again.stdout, 'kept\n');
    // A job id that has finished is not started again: 409.
    await assert.rejects(
      mags.exec(second.requestId, 'true'),
      (err: unknown) => err instanceof MagsApiError && err.status === 409,
    );
  });
});
