// An exec's session on the agent, without a sandbox: the command runs as a host process in a session of its own (as
// crun starts it), so what is tested is the session's part: output sent apart and in order, never more than the
// flow-control window unacknowledged, stdin written and acknowledged, the timeout, and the hangup at the end that
// ends what the command left in the background but not what it put there on purpose. A user would notice a stalled
// or mangled output, an agent that buffers a whole output, stdin lost, or processes that outlive their exec.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, test } from 'node:test';
import { type AgentToServer, EXEC_CHUNK, EXEC_WINDOW, type ExecOrder } from '@mags/api';
import { pino } from 'pino';
import { ExecSession } from '../src/exec.js';
import type { ExecProcess, Sandbox } from '../src/sandbox.js';

const dir = mkdtempSync(path.join(tmpdir(), 'mags-exec-test-'));
after(() => rmSync(dir, { recursive: true, force: true }));

/** A stand-in for a running sandbox: `exec` starts the command with setsid, so it leads its own group. */
const hostSandbox = {
  alive: true,
  exec(command: string, env: Record<string, string>, cwd: string): ExecProcess {
    const child = spawn('/bin/sh', ['-c', command], { cwd, env: { PATH: process.env.PATH, ...env }, detached: true });
    return { child, group: Promise.resolve(child.pid), killTerminal: async () => {} } as unknown as ExecProcess;
  },
} as unknown as Sandbox;

function order(command: string, extra: Partial<ExecOrder> = {}): ExecOrder {
  return { type: 'exec', execId: 'e-1', jobId: 'j-1', command, environment: {}, timeoutS: 60, stdin: false, ...extra };
}

/** Runs a session; `ack` decides whether output is acknowledged as it arrives. */
function run(o: ExecOrder, ack = true) {
  const sent: AgentToServer[] = [];
  let session!: ExecSession;
  let unacked = 0;
  let maxUnacked = 0;
  const done = new Promise<void>((resolve) => {
    session = new ExecSession(
      o,
      (m) => {
        sent.push(m);
        if (m.type !== 'execOutput') return;
        const bytes = Buffer.from(m.data, 'base64').length;
        unacked += bytes;
        maxUnacked = Math.max(maxUnacked, unacked);
        if (ack) {
          unacked -= bytes;
          setImmediate(() => session.handle({ type: 'execAck', execId: o.execId, bytes }));
        }
      },
      pino({ level: 'silent' }),
      resolve,
    );
  });
  session.start(hostSandbox, { FROM_JOB: 'job' });
  const stream = (name: 'stdout' | 'stderr') =>
    Buffer.concat(
      sent
        .filter(
          (m): m is Extract<AgentToServer, { type: 'execOutput' }> => m.type === 'execOutput' && m.stream === name,
        )
        .map((m) => Buffer.from(m.data, 'base64')),
    );
  const exited = () => sent.find((m) => m.type === 'execExited') as Extract<AgentToServer, { type: 'execExited' }>;
  return {
    session,
    sent,
    done,
    stream,
    exited,
    maxUnacked: () => maxUnacked,
    ackAll: () => {
      const bytes = unacked;
      unacked = 0;
      session.handle({ type: 'execAck', execId: o.execId, bytes });
    },
  };
}

test('stdout and stderr arrive apart and in order, with the exit code and the job environment under the exec one', async () => {
  const r = run(
    order('echo "$FROM_JOB $A"; echo err >&2; head -c 3000000 /dev/urandom | od -An -tx1 | head -c 2000000; exit 5', {
      environment: { A: 'exec' },
    }),
  );
  await r.done;
  assert.equal(r.sent[0].type, 'execStarted');
  const out = r.stream('stdout').toString();
  assert.ok(out.startsWith('job exec\n'));
  assert.equal(out.length, 'job exec\n'.length + 2_000_000);
  assert.equal(r.stream('stderr').toString(), 'err\n');
  assert.deepEqual(r.exited(), { type: 'execExited', execId: 'e-1', exitCode: 5, reason: 'exited' });
  assert.equal(r.sent.at(-1)?.type, 'execExited', 'the last message');
});

test('without acknowledgements the output stops at the window; acknowledged, all of it arrives in order', async () => {
  const r = run(order('seq 1 2000000'), false);
  for (let i = 0; i < 50 && r.maxUnacked() < EXEC_WINDOW; i++) await new Promise((res) => setTimeout(res, 20));
  await new Promise((res) => setTimeout(res, 200));
  const held = r.maxUnacked();
  assert.ok(held >= EXEC_WINDOW && held <= EXEC_WINDOW + EXEC_CHUNK, `held at the window (${held} bytes)`);
  assert.equal(r.exited(), undefined, 'the command waits, blocked on its output');
  while (!r.exited()) {
    r.ackAll();
    await new Promise((res) => setTimeout(res, 5));
  }
  await r.done;
  const expected = `${Array.from({ length: 2_000_000 }, (_, i) => i + 1).join('\n')}\n`;
  assert.ok(r.stream('stdout').equals(Buffer.from(expected)), 'whole and in order');
  assert.equal(r.exited().exitCode, 0);
});

test('stdin is written to the command and acknowledged; its end closes it', async () => {
  const r = run(order('cat; echo end', { stdin: true }));
  const input = Buffer.from(Buffer.alloc(600_000).map((_, i) => i % 251));
  for (let at = 0; at < input.length; at += EXEC_CHUNK) {
    const piece = input.subarray(at, at + EXEC_CHUNK);
    r.session.handle({ type: 'execInput', execId: 'e-1', data: piece.toString('base64'), eof: false });
  }
  r.session.handle({ type: 'execInput', execId: 'e-1', data: '', eof: true });
  await r.done;
  assert.ok(r.stream('stdout').equals(Buffer.concat([input, Buffer.from('end\n')])));
  const acked = r.sent
    .filter((m): m is Extract<AgentToServer, { type: 'execInputAck' }> => m.type === 'execInputAck')
    .reduce((n, m) => n + m.bytes, 0);
  assert.equal(acked, input.length, 'every stdin byte acknowledged once written');
});

test('at its timeout the command and what it started are killed', async () => {
  const marker = path.join(dir, 'late');
  const r = run(order(`(sleep 3; touch ${marker}) & sleep 30`, { timeoutS: 1 }));
  await r.done;
  assert.equal(r.exited().reason, 'timeout');
  assert.equal(r.exited().exitCode, 137);
  await new Promise((res) => setTimeout(res, 3500));
  assert.ok(!existsSync(marker), 'the background part was killed too');
});

test('when it ends, what it left in the background is hung up, except what was put there with nohup', async () => {
  const pids = path.join(dir, 'pids');
  const r = run(
    order(`sleep 100 >/dev/null 2>&1 & echo $! > ${pids}; nohup sleep 101 >/dev/null 2>&1 & echo $! >> ${pids}`),
  );
  await r.done;
  assert.equal(r.exited().exitCode, 0);
  const [plain, kept] = readFileSync(pids, 'utf8').trim().split('\n').map(Number);
  await new Promise((res) => setTimeout(res, 600)); // the group is hung up 250 ms after the command ends
  const alive = (pid: number) => {
    try {
      process.kill(pid, 0);
      return !/^\S+ \S+ Z/.test(readFileSync(`/proc/${pid}/stat`, 'utf8').replace(/\(.*\)/, 'x'));
    } catch {
      return false;
    }
  };
  assert.equal(alive(plain), false, 'the plain background process ended with the exec');
  assert.equal(alive(kept), true, 'the nohup one lives on');
  process.kill(kept, 'SIGKILL');
});

test('a kill ends it at once; an exec into a job without a running sandbox is refused', async () => {
  const r = run(order('sleep 30'));
  await new Promise((res) => setTimeout(res, 100));
  r.session.handle({ type: 'execKill', execId: 'e-1' });
  await r.done;
  assert.equal(r.exited().reason, 'killed');

  const sent: AgentToServer[] = [];
  const refused = new ExecSession(
    order('true'),
    (m) => sent.push(m),
    pino({ level: 'silent' }),
    () => {},
  );
  refused.start(undefined, {});
  assert.deepEqual(sent, [
    {
      type: 'execExited',
      execId: 'e-1',
      exitCode: null,
      reason: 'refused',
      message: 'job j-1 has no running sandbox on this agent',
    },
  ]);
});
