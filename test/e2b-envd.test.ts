// envd as E2B's official SDK (e2b 2.51.0) uses it, against a real `mags server --e2b-port` with real sandboxes:
// commands (streamed output, exit codes, background, stdin, kill, list, re-attach), the filesystem, /files (50 MB
// both ways, signed URLs), watchDir, PTYs, and the walls: a wrong access token, another user's sandbox, a killed
// sandbox's streams, and names inside the sandbox that point at the host's files.
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { after, before, describe, test } from 'node:test';
import { CommandExitError, type CommandHandle, Sandbox } from 'e2b';
import { type E2bServer, optsFor, startE2b } from './e2b.js';
import { removeInstance, runCli } from './harness.js';

const instance = `e${randomBytes(2).toString('hex')}`;
let e2b: E2bServer;
let sbx: Sandbox;

before(async () => {
  e2b = await startE2b(['--instance', instance]);
  sbx = await Sandbox.create({ ...e2b.opts });
});
after(async () => {
  await sbx?.kill().catch(() => {});
  await e2b?.server.stop();
  removeInstance(instance);
});

/** A process's resident memory in MB. */
function rssMb(pid: number): number {
  return Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] ?? 0) / 1024;
}

/** A raw envd call: the sandbox header and token of `sandbox` unless overridden. */
function envdFetch(path: string, init: RequestInit & { sandboxId?: string; token?: string | null } = {}) {
  const headers = new Headers(init.headers);
  headers.set('e2b-sandbox-id', init.sandboxId ?? sbx.sandboxId);
  const token =
    init.token === undefined ? (sbx as unknown as { envdAccessToken?: string }).envdAccessToken : init.token;
  if (token) headers.set('x-access-token', token);
  return fetch(`${e2b.opts.sandboxUrl}${path}`, { ...init, headers });
}

async function until<T>(what: string, probe: () => Promise<T | undefined> | T | undefined, ms = 20_000): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const value = await probe();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

describe('commands', () => {
  test('commands.run streams stdout and stderr apart and returns the exit code', async () => {
    const out: string[] = [];
    const err: string[] = [];
    const result = await sbx.commands.run('echo hello; echo oops >&2; echo "$FOO"', {
      envs: { FOO: 'bar baz' },
      onStdout: (d) => void out.push(d),
      onStderr: (d) => void err.push(d),
    });
    assert.equal(result.exitCode, 0);
    assert.equal(result.stdout, 'hello\nbar baz\n');
    assert.equal(result.stderr, 'oops\n');
    assert.equal(out.join(''), 'hello\nbar baz\n');
    assert.equal(err.join(''), 'oops\n');
  });

  test('a failing command throws CommandExitError with its exit code and output', async () => {
    await assert.rejects(
      sbx.commands.run('echo partial; exit 3'),
      (e: unknown) => e instanceof CommandExitError && e.exitCode === 3 && e.stdout === 'partial\n',
    );
  });

  test('cwd is honoured and the command line is run exactly as bash -l -c gets it', async () => {
    const r = await sbx.commands.run(`printf '%s|' "$(pwd)" 'a b' "it's"`, { cwd: '/tmp' });
    assert.equal(r.stdout, "/tmp|a b|it's|");
  });

  test('a background command takes stdin, is listed, and is killed', async () => {
    const seen: string[] = [];
    const h = await sbx.commands.run('cat', { background: true, stdin: true, onStdout: (d) => void seen.push(d) });
    await h.sendStdin('ping\n');
    await until('cat echoing stdin', () => (seen.join('').includes('ping') ? true : undefined));
    const listed = await sbx.commands.list();
    const mine = listed.find((p) => p.pid === h.pid);
    assert.ok(mine, 'the running command is listed');
    assert.equal(mine.cmd, '/bin/bash');
    assert.deepEqual(mine.args, ['-l', '-c', 'cat']);
    assert.equal(await sbx.commands.kill(h.pid), true);
    await assert.rejects(h.wait(), (e: unknown) => e instanceof CommandExitError);
    assert.equal(await sbx.commands.kill(h.pid), false, 'a gone process is not found');
    assert.ok(!(await sbx.commands.list()).some((p) => p.pid === h.pid));
  });

  test('a command keeps running after its handle disconnects and commands.connect re-attaches', async () => {
    const h = await sbx.commands.run('for i in 1 2 3 4 5 6; do echo line$i; sleep 0.3; done; exit 7', {
      background: true,
    });
    await h.disconnect();
    await new Promise((r) => setTimeout(r, 700));
    const seen: string[] = [];
    const again: CommandHandle = await sbx.commands.connect(h.pid, { onStdout: (d) => void seen.push(d) });
    const err = await again.wait().catch((e: unknown) => e);
    assert.ok(err instanceof CommandExitError && err.exitCode === 7, `exit 7 after re-attaching: ${err}`);
    // What was written while nobody listened was kept and replayed: every line arrived exactly once overall.
    assert.match(seen.join(''), /line6\n$/);
    assert.ok(seen.join('').includes('line2'), `output written while detached is replayed: ${seen.join('')}`);
  });

  test('a sandbox runs at most 64 processes through envd; one more is refused with a sentence', async () => {
    const busy = await Sandbox.create({ ...e2b.opts });
    try {
      await Promise.all(Array.from({ length: 64 }, () => busy.commands.run('sleep 600', { background: true })));
      await assert.rejects(busy.commands.run('true'), /64 processes.*kill one first/);
      assert.equal((await busy.commands.list()).length, 64);
    } finally {
      await busy.kill();
    }
  });

  test('the sandbox environment (envVars at create) reaches commands', async () => {
    const other = await Sandbox.create({ ...e2b.opts, envs: { GREETING: 'hi there' } });
    try {
      const r = await other.commands.run('echo "$GREETING"');
      assert.equal(r.stdout, 'hi there\n');
    } finally {
      await other.kill();
    }
  });
});

describe('filesystem', () => {
  test('write, read, exists, getInfo, list, makeDir, rename and remove', async () => {
    const dir = `/tmp/fs-${randomBytes(3).toString('hex')}`;
    const info = await sbx.files.write(`${dir}/a/hello.txt`, 'hello world');
    assert.equal(info.path, `${dir}/a/hello.txt`);
    assert.equal(await sbx.files.read(`${dir}/a/hello.txt`), 'hello world');
    assert.equal(await sbx.files.exists(`${dir}/a/hello.txt`), true);
    assert.equal(await sbx.files.exists(`${dir}/nope`), false);
    const st = await sbx.files.getInfo(`${dir}/a/hello.txt`);
    assert.equal(st.type, 'file');
    assert.equal(st.size, 11);
    assert.equal(st.name, 'hello.txt');
    assert.equal(st.owner, 'root');
    assert.match(st.permissions, /^-rw/);
    assert.ok(st.modifiedTime instanceof Date && Math.abs(st.modifiedTime.getTime() - Date.now()) < 120_000);
    assert.equal(await sbx.files.makeDir(`${dir}/b/c`), true);
    assert.equal(await sbx.files.makeDir(`${dir}/b/c`), false, 'an existing directory: false');
    const top = await sbx.files.list(dir);
    assert.deepEqual(
      top.map((e) => [e.name, e.type]),
      [
        ['a', 'dir'],
        ['b', 'dir'],
      ],
    );
    const deep = await sbx.files.list(dir, { depth: 3 });
    assert.deepEqual(deep.map((e) => e.path).sort(), [`${dir}/a`, `${dir}/a/hello.txt`, `${dir}/b`, `${dir}/b/c`]);
    const moved = await sbx.files.rename(`${dir}/a/hello.txt`, `${dir}/b/moved.txt`);
    assert.equal(moved.path, `${dir}/b/moved.txt`);
    assert.equal(await sbx.files.read(`${dir}/b/moved.txt`), 'hello world');
    await sbx.files.remove(`${dir}/b`);
    assert.equal(await sbx.files.exists(`${dir}/b`), false);
    await assert.rejects(sbx.files.read(`${dir}/b/moved.txt`), /not found|does not exist/i);
  });

  test('multi-file writes and bytes round-trip exactly', async () => {
    const dir = `/tmp/multi-${randomBytes(3).toString('hex')}`;
    const bytes = randomBytes(70_000);
    const infos = await sbx.files.write([
      { path: `${dir}/one.bin`, data: bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.length) },
      { path: `${dir}/two.txt`, data: 'two' },
    ]);
    assert.deepEqual(
      infos.map((i) => i.path),
      [`${dir}/one.bin`, `${dir}/two.txt`],
    );
    const back = await sbx.files.read(`${dir}/one.bin`, { format: 'bytes' });
    assert.ok(Buffer.from(back).equals(bytes));
    assert.equal(await sbx.files.read(`${dir}/two.txt`, { gzip: true }), 'two');
    await sbx.files.write(`${dir}/zipped.txt`, 'gzip on the way up', { gzip: true });
    assert.equal(await sbx.files.read(`${dir}/zipped.txt`), 'gzip on the way up');
    // A name with a newline is a name like any other.
    await sbx.files.write(`${dir}/new\nline.txt`, 'nl');
    assert.ok((await sbx.files.list(dir)).some((e) => e.name === 'new\nline.txt'));
    assert.equal(await sbx.files.read(`${dir}/new\nline.txt`), 'nl');
  });

  test('watchDir reports creates, writes and removes', async () => {
    const dir = `/tmp/watch-${randomBytes(3).toString('hex')}`;
    await sbx.files.makeDir(dir);
    const events: Array<{ name: string; type: string }> = [];
    const handle = await sbx.files.watchDir(dir, (e) => void events.push({ name: e.name, type: e.type }), {
      recursive: true,
    });
    try {
      await sbx.files.write(`${dir}/new.txt`, 'x');
      await sbx.files.makeDir(`${dir}/sub`);
      await new Promise((r) => setTimeout(r, 300));
      await sbx.files.write(`${dir}/sub/deep.txt`, 'y');
      await sbx.files.remove(`${dir}/new.txt`);
      await until('the remove event', () => (events.some((e) => e.type === 'remove') ? true : undefined));
      assert.ok(
        events.some((e) => e.name === 'new.txt' && e.type === 'create'),
        JSON.stringify(events),
      );
      assert.ok(
        events.some((e) => e.name === 'new.txt' && e.type === 'write'),
        JSON.stringify(events),
      );
      assert.ok(
        events.some((e) => e.name === 'sub/deep.txt'),
        `recursive: ${JSON.stringify(events)}`,
      );
    } finally {
      await handle.stop();
    }
  });

  test('a 50 MB file goes up and comes back intact; a reader that stops holds the server back, not its memory', async (t) => {
    const size = 50 * 1024 * 1024;
    const data = randomBytes(size);
    const sum = createHash('sha256').update(data).digest('hex');
    const pid = e2b.server.pid;
    const before = rssMb(pid);
    let peak = before;
    const sampler = setInterval(() => (peak = Math.max(peak, rssMb(pid))), 50);
    try {
      const t0 = Date.now();
      const stream = new ReadableStream<Uint8Array>({
        start(controller) {
          for (let at = 0; at < size; at += 1 << 20) controller.enqueue(data.subarray(at, at + (1 << 20)));
          controller.close();
        },
      });
      await sbx.files.write('/tmp/big.bin', stream);
      const up = Date.now() - t0;
      const inside = await sbx.commands.run('sha256sum /tmp/big.bin');
      assert.equal(inside.stdout.split(' ')[0], sum);
      const t1 = Date.now();
      const back = (await sbx.files.read('/tmp/big.bin', { format: 'stream' })) as ReadableStream<Uint8Array>;
      const reader = back.getReader();
      const hash = createHash('sha256');
      let got = 0;
      // Read a little, then stop reading for a while: the file must wait in the sandbox, not in the server.
      const first = await reader.read();
      hash.update(first.value!);
      got += first.value!.length;
      const paused = rssMb(pid);
      await new Promise((r) => setTimeout(r, 2000));
      const held = rssMb(pid) - paused;
      for (;;) {
        const { done, value } = await reader.read();
        if (done) break;
        hash.update(value);
        got += value.length;
      }
      const down = Date.now() - t1;
      assert.equal(got, size);
      assert.equal(hash.digest('hex'), sum);
      t.diagnostic(
        `50 MB: upload ${up} ms, download ${down} ms (2 s of it paused); server RSS ${before.toFixed(0)} MB, peak +${(peak - before).toFixed(0)} MB, while the reader paused +${held.toFixed(0)} MB; load ${readFileSync('/proc/loadavg', 'utf8').split(' ')[0]}`,
      );
      assert.ok(held < 20, `the server kept reading while its client did not: RSS grew by ${held.toFixed(0)} MB`);
      // Garbage between GCs reaches tens of MB on a busy heap; holding both copies would be 100 MB more.
      assert.ok(peak - before < 100, `the server held the file: RSS grew by ${(peak - before).toFixed(0)} MB`);
    } finally {
      clearInterval(sampler);
    }
  });

  test('signed upload and download URLs work; a wrong or expired signature is refused', async () => {
    const path = `/tmp/signed-${randomBytes(3).toString('hex')}.txt`;
    const uploadUrl = await sbx.uploadUrl(path, { useSignatureExpiration: 60 });
    const form = new FormData();
    form.append('file', new Blob(['signed content']), path);
    // E2B_SANDBOX_URL is one URL for every sandbox: the header names the sandbox (a 49983-<id> host does too).
    const headers = { 'e2b-sandbox-id': sbx.sandboxId };
    const up = await fetch(uploadUrl, { method: 'POST', body: form, headers });
    assert.equal(up.status, 200, await up.clone().text());
    const downloadUrl = await sbx.downloadUrl(path);
    const down = await fetch(downloadUrl, { headers });
    assert.equal(await down.text(), 'signed content');
    const bad = new URL(downloadUrl);
    bad.searchParams.set('signature', 'v1_AAAA');
    const refused = await fetch(bad, { headers });
    assert.equal(refused.status, 401);
    const expired = await sbx.downloadUrl(path, { useSignatureExpiration: -10 });
    const late = await fetch(expired, { headers });
    assert.equal(late.status, 401);
    assert.deepEqual(await late.json(), { code: 401, message: 'signature is already expired' });
  });
});

describe('pty', () => {
  test('pty.create runs an interactive shell: input, output, resize', async () => {
    let output = '';
    const decoder = new TextDecoder();
    const term = await sbx.pty.create({ cols: 80, rows: 24, onData: (d) => void (output += decoder.decode(d)) });
    await sbx.pty.sendInput(term.pid, new TextEncoder().encode('stty size; echo mark-$((6*7))\n'));
    await until('the first answer', () => (output.includes('mark-42') ? true : undefined));
    assert.match(output, /24 80/);
    await sbx.pty.resize(term.pid, { cols: 120, rows: 40 });
    await sbx.pty.sendInput(term.pid, new TextEncoder().encode('stty size\n'));
    await until('the new size', () => (output.includes('40 120') ? true : undefined));
    await sbx.pty.sendInput(term.pid, new TextEncoder().encode('exit 0\n'));
    const result = await term.wait();
    assert.equal(result.exitCode, 0);
  });
});

describe('walls', () => {
  test('a wrong X-Access-Token is refused, as if the sandbox were gone', async () => {
    const res = await envdFetch('/filesystem.Filesystem/Stat', {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ path: '/etc/hostname' }),
      token: 'wrong-token',
    });
    assert.equal(res.status, 502);
    const none = await envdFetch('/files?path=/etc/hostname', { token: null });
    assert.equal(none.status, 502);
  });

  test("another user's sandbox answers as gone, even with that user's own valid token", async () => {
    const made = await runCli(e2b.server, ['user', 'add', `other-${randomBytes(2).toString('hex')}`, '--json']);
    assert.equal(made.code, 0, made.stderr);
    const token = (JSON.parse(made.stdout) as { token: string }).token;
    const theirs = await Sandbox.create({ ...optsFor(e2b, token) });
    try {
      const theirToken = (theirs as unknown as { envdAccessToken: string }).envdAccessToken;
      // Their token on my sandbox's id: gone.
      const res = await envdFetch('/filesystem.Filesystem/Stat', {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ path: '/' }),
        token: theirToken,
      });
      assert.equal(res.status, 502);
      const unknown = await envdFetch('/health', { sandboxId: 'no-such-sandbox' });
      assert.equal(unknown.status, 502);
    } finally {
      await theirs.kill();
    }
  });

  test("a symlink inside the sandbox to a host file reads the sandbox's file, never the host's", async () => {
    await sbx.commands.run('echo sandbox-host > /etc/hostname; ln -sf /etc/hostname /tmp/x; ln -sf /etc/shadow /tmp/s');
    assert.equal(await sbx.files.read('/tmp/x'), 'sandbox-host\n');
    const shadow = await sbx.files.read('/tmp/s').catch((e: Error) => e.message);
    assert.ok(!shadow.includes(readFileSync('/etc/shadow', 'utf8').split('\n')[0]!), 'the host shadow never leaks');
    const info = await sbx.files.getInfo('/tmp/x');
    assert.equal(info.symlinkTarget, '/etc/hostname');
    // Names with newlines and .. are data, not commands.
    const odd = '/tmp/odd\nname/../../etc/evil';
    await sbx.files.write(odd, 'x');
    assert.equal(await sbx.files.read('/etc/evil'), 'x', 'the path is resolved inside the sandbox');
    assert.throws(() => readFileSync('/etc/evil'), 'the host is unchanged');
  });

  test('killing the sandbox cuts its streams and /health answers 502', async () => {
    const victim = await Sandbox.create({ ...e2b.opts });
    const h = await victim.commands.run('sleep 600', { background: true });
    assert.equal(await victim.isRunning(), true);
    await victim.kill();
    const err = await h.wait().catch((e: unknown) => e);
    // Cut, not ended: the SDK probes /health and reports the sandbox gone (not an exit of the command).
    assert.ok(err instanceof Error && !(err instanceof CommandExitError), `the stream was cut: ${err}`);
    assert.match(String(err), /terminated|killed|not running|end of life/i);
    assert.equal(await victim.isRunning(), false);
  });
});
