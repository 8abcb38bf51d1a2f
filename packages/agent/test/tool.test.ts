// The sandbox tool (/.mags/tool, native/mags-tool.c) run on the host, and an exec session with a terminal: what SSH
// users rely on. A user would notice a terminal of the wrong size or type, a resize that does nothing, Ctrl-C that
// does not interrupt, a wrong exit code, or an `ssh -L` that loses or holds back bytes.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import type { AgentToServer, ExecOrder } from '@mags/api';
import { pino } from 'pino';
import { DEFAULT_TOOL_BINARY } from '../src/config.js';
import { ExecSession } from '../src/exec.js';
import { type ExecProcess, type ExecTerminal, killChildSessions, type Sandbox } from '../src/sandbox.js';

const TOOL = DEFAULT_TOOL_BINARY;

/** Runs the tool; `drive` gets its stdin, a way to wait for output, and its control pipe (fd 4). */
async function tool(
  args: string[],
  drive: (io: {
    write(s: string | Buffer): void;
    end(): void;
    until(re: RegExp): Promise<void>;
    control(s: string): void;
  }) => Promise<void>,
  env: Record<string, string> = {},
) {
  const child = spawn(TOOL, args, {
    stdio: ['pipe', 'pipe', 'pipe', 'ignore', 'pipe'],
    env: { PATH: process.env.PATH, ...env },
  });
  let out = '';
  let err = '';
  const waiters: Array<() => void> = [];
  child.stdout!.on('data', (b: Buffer) => {
    out += b.toString('latin1');
    for (const w of waiters.splice(0)) w();
  });
  child.stderr!.on('data', (b: Buffer) => (err += b.toString()));
  const closed = once(child, 'close');
  const until = async (re: RegExp) => {
    const deadline = Date.now() + 10_000;
    while (!re.test(out)) {
      if (Date.now() > deadline) throw new Error(`no ${re} in ${JSON.stringify(out)}`);
      await Promise.race([new Promise<void>((r) => waiters.push(r)), new Promise((r) => setTimeout(r, 100))]);
    }
  };
  const control = child.stdio[4] as NodeJS.WritableStream;
  await drive({
    write: (s) => child.stdin!.write(s),
    end: () => child.stdin!.end(),
    until,
    control: (s) => control.write(s),
  });
  const [code] = (await closed) as [number | null];
  return { code, out, err };
}

test('pty: the program gets a terminal of the given size and TERM, resizes, Ctrl-C, and its exit code', async () => {
  const r = await tool(
    ['pty', '--size', '101x33', '--control', '4', '--', '/bin/sh'],
    async (io) => {
      io.write('tty; stty size; echo "term=$TERM"\n');
      await io.until(/33 101/);
      await io.until(/term=xterm-256color/);
      io.control('120 40\n');
      await new Promise((r) => setTimeout(r, 100));
      io.write('stty size\n');
      await io.until(/40 120/);
      io.write('sleep 100\n');
      await new Promise((r) => setTimeout(r, 300));
      io.write('\x03');
      io.write('echo "after=$?"\n');
      await io.until(/after=130/);
      io.write('exit 7\n');
    },
    { TERM: 'xterm-256color' },
  );
  assert.match(r.out, /\/dev\/pts\/\d+/, 'stdin is a terminal');
  assert.equal(r.code, 7, r.err);
});

test('pty: a program killed by a signal exits 128+n; one that cannot run exits 127', async () => {
  const killed = await tool(['pty', '--', '/bin/sh', '-c', 'kill -TERM $$'], async (io) => io.end());
  assert.equal(killed.code, 143);
  const missing = await tool(['pty', '--', '/nonexistent/program'], async (io) => io.end());
  assert.equal(missing.code, 127);
  assert.match(missing.out, /cannot run \/nonexistent\/program/);
});

test('connect: relays both ways to a port on 127.0.0.1, the end of input half-closes, a closed port fails', async () => {
  const server = net.createServer((s) => {
    const got: Buffer[] = [];
    s.on('data', (b) => got.push(b));
    s.on('end', () => s.end(`echo:${Buffer.concat(got).toString('hex')}`));
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as net.AddressInfo;
  try {
    const bytes = Buffer.from([0, 1, 2, 255, 10, 13, 3]);
    const r = await tool(['connect', String(port)], async (io) => {
      io.write(bytes);
      io.end();
    });
    assert.equal(r.code, 0, r.err);
    assert.equal(r.err, 'connected\n');
    assert.equal(r.out, `echo:${bytes.toString('hex')}`);
  } finally {
    server.close();
  }
  const refused = await tool(['connect', String(port)], async (io) => io.end());
  assert.equal(refused.code, 1);
  assert.match(refused.err, /connect to 127\.0\.0\.1:\d+: Connection refused/);
});

/** A stand-in sandbox whose exec wires the terminal as Sandbox.exec does: the tool, its control pipe on fd 4. */
const hostSandbox = {
  alive: true,
  exec(command: string, env: Record<string, string>, cwd: string, tty?: ExecTerminal): ExecProcess {
    assert.ok(tty, 'the order carried a terminal');
    const child = spawn(
      TOOL,
      ['pty', '--size', `${tty.cols}x${tty.rows}`, '--control', '4', '--', '/bin/sh', '-c', command],
      {
        cwd,
        env: { PATH: process.env.PATH, ...env, TERM: tty.term },
        stdio: ['pipe', 'pipe', 'pipe', 'ignore', 'pipe'],
        detached: true,
      },
    );
    const control = child.stdio[4] as NodeJS.WritableStream;
    return {
      child,
      group: Promise.resolve(child.pid),
      resize: (cols: number, rows: number) => control.write(`${cols} ${rows}\n`),
      killTerminal: async () => killChildSessions(child.pid!),
    } as unknown as ExecProcess;
  },
} as unknown as Sandbox;

test('an exec with a terminal: output comes as stdout, execResize resizes it, the exit code comes back', async () => {
  const o: ExecOrder = {
    type: 'exec',
    execId: 'e-tty',
    jobId: 'j-1',
    command: 'stty size; echo err >&2; read line; stty size; exit 5',
    environment: {},
    timeoutS: 60,
    stdin: true,
    tty: { term: 'vt100', cols: 90, rows: 20 },
  };
  const sent: AgentToServer[] = [];
  let session!: ExecSession;
  const out = () =>
    Buffer.concat(
      sent.flatMap((m) => (m.type === 'execOutput' && m.stream === 'stdout' ? [Buffer.from(m.data, 'base64')] : [])),
    ).toString();
  const done = new Promise<void>((resolve) => {
    session = new ExecSession(
      o,
      (m) => {
        sent.push(m);
        if (m.type === 'execOutput')
          setImmediate(() =>
            session.handle({ type: 'execAck', execId: o.execId, bytes: Buffer.from(m.data, 'base64').length }),
          );
      },
      pino({ level: 'silent' }),
      resolve,
    );
  });
  session.start(hostSandbox, {});
  for (let i = 0; i < 100 && !/20 90/.test(out()); i++) await new Promise((r) => setTimeout(r, 50));
  session.handle({ type: 'execResize', execId: o.execId, cols: 132, rows: 43 });
  await new Promise((r) => setTimeout(r, 100));
  session.handle({ type: 'execInput', execId: o.execId, data: Buffer.from('go\n').toString('base64'), eof: false });
  await done;
  assert.match(out(), /20 90[\s\S]*err[\s\S]*43 132/);
  assert.ok(!sent.some((m) => m.type === 'execOutput' && m.stream === 'stderr'), 'nothing on stderr with a terminal');
  const exited = sent.find((m) => m.type === 'execExited');
  assert.deepEqual(exited, { type: 'execExited', execId: o.execId, exitCode: 5, reason: 'exited' });
});

test('a killed exec with a terminal ends every process of its terminal, also one that ignores the hangup', async () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'mags-tool-test-'));
  try {
    const pidFile = path.join(dir, 'pid');
    const o: ExecOrder = {
      type: 'exec',
      execId: 'e-kill',
      jobId: 'j-1',
      command: `(trap '' HUP; exec sleep 1000) & echo $! > ${pidFile}; wait`,
      environment: {},
      timeoutS: 60,
      stdin: false,
      tty: { term: 'xterm', cols: 80, rows: 24 },
    };
    const sent: AgentToServer[] = [];
    let session!: ExecSession;
    const done = new Promise<void>((resolve) => {
      session = new ExecSession(o, (m) => sent.push(m), pino({ level: 'silent' }), resolve);
    });
    session.start(hostSandbox, {});
    for (let i = 0; i < 200 && !existsSync(pidFile); i++) await new Promise((r) => setTimeout(r, 25));
    const pid = Number(readFileSync(pidFile, 'utf8'));
    session.handle({ type: 'execKill', execId: o.execId });
    await done;
    assert.equal((sent.find((m) => m.type === 'execExited') as { reason: string }).reason, 'killed');
    for (let i = 0; i < 100 && alive(pid); i++) await new Promise((r) => setTimeout(r, 20));
    assert.equal(alive(pid), false, 'the process that ignored SIGHUP is gone');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

function alive(pid: number): boolean {
  try {
    return !/^\S+ \S+ Z/.test(readFileSync(`/proc/${pid}/stat`, 'utf8').replace(/\(.*\)/, 'x'));
  } catch {
    return false;
  }
}
