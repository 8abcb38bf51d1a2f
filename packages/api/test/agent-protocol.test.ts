// The agent protocol's schemas: what each end accepts from the other. If they let a malformed message through, the
// server stores nonsense or the agent builds a host path from it; if they refuse a good one, jobs never start.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { TSchema } from 'typebox';
import { Compile } from 'typebox/compile';
import {
  AgentToServer,
  MAX_ERROR,
  type Parsed,
  parseAgentMessage,
  parseServerMessage,
  ServerToAgent,
} from '../src/index.js';

const pool = { idle: 2, busy: 1, sleeping: 1, min: 2, max: 8 };
const storage = {
  totalBytes: 100 * 1024 ** 3,
  freeBytes: 60 * 1024 ** 3,
  promisedBytes: 4 * 1024 ** 3,
  growableBytes: 3 * 1024 ** 3,
};
const owner = '0190a0c2-7a6e-7c3e-9a51-3f1d2b4c5d6e';
const sandbox = {
  jobId: '0190a0c2-7a6e-7c3e-9a51-000000000001',
  script: 'echo hi',
  environment: { GREETING: 'hi there', _X1: '' },
  vcpus: 0.5,
  memoryMb: 256,
  timeoutS: 30,
  network: 'none',
  diskGb: 2,
  uploads: [],
};

/** Messages the real agent sends, one or more of every kind. */
const fromAgent: unknown[] = [
  {
    type: 'hello',
    agent: { id: 'main@host', name: 'main', runtime: 'crun 1.8.1', version: '0.1.0', capacity: 4, pool, storage },
  },
  {
    type: 'hello',
    agent: { id: 'main@host', name: 'main', runtime: 'crun 1.8.1', version: '0.1.0', capacity: 4, pool },
  },
  { type: 'pool', pool },
  { type: 'pool', pool, storage },
  { type: 'started', jobId: sandbox.jobId, sandboxId: 'mags-1', ts: 1_700_000_000_000 },
  { type: 'slept', jobId: sandbox.jobId, ts: 1_700_000_000_100 },
  { type: 'woke', jobId: sandbox.jobId, ts: 1_700_000_000_200 },
  { type: 'output', jobId: sandbox.jobId, lines: [] },
  {
    type: 'output',
    jobId: sandbox.jobId,
    lines: [
      { seq: 1, stream: 'stdout', ts: 1_700_000_000_001, message: 'hi' },
      { seq: 2, stream: 'stderr', ts: 1_700_000_000_002, message: '' },
      { seq: 3, stream: 'system', ts: 1_700_000_000_003, message: 'x'.repeat(100_000) },
    ],
  },
  { type: 'exited', jobId: sandbox.jobId, exitCode: 0, reason: 'exited', ts: 1_700_000_000_004 },
  { type: 'exited', jobId: sandbox.jobId, exitCode: -1, reason: 'timeout', ts: 1 },
  // In-process, an optional field the agent left out arrives as a key holding undefined.
  { type: 'exited', jobId: sandbox.jobId, exitCode: null, reason: 'error', message: undefined, ts: 1 },
  {
    type: 'exited',
    jobId: sandbox.jobId,
    exitCode: 143,
    reason: 'stopped',
    message: 'stopped before it started',
    ts: 1,
  },
  { type: 'workspace', report: { owner, name: 'dev', state: 'present', usedBytes: 4096, files: 2, ts: 1 } },
  {
    type: 'workspace',
    report: {
      owner,
      name: 'dev',
      state: 'present',
      usedBytes: 0,
      files: 0,
      version: 3,
      versions: 3,
      dirty: true,
      ts: 1,
    },
  },
  { type: 'workspace', report: { owner, name: 'dev', state: 'gone', usedBytes: 0, files: 0, ts: 1 } },
  { type: 'reply', requestId: 'r-1', ok: true, result: { held: false } },
  { type: 'reply', requestId: 'r-1', ok: true, result: { held: true, version: null, changed: false } },
  { type: 'reply', requestId: 'r-1', ok: true, result: { held: true, version: 7, changed: true } },
  {
    type: 'reply',
    requestId: 'r-1',
    ok: false,
    status: 409,
    code: 'workspace_busy',
    error: 'workspace dev is in use on this host',
  },
  { type: 'execStarted', execId: 'e-1' },
  { type: 'execOutput', execId: 'e-1', stream: 'stdout', data: Buffer.from([0, 255, 10]).toString('base64') },
  { type: 'execOutput', execId: 'e-1', stream: 'stderr', data: '' },
  { type: 'execInputAck', execId: 'e-1', bytes: 65536 },
  { type: 'execExited', execId: 'e-1', exitCode: 3, reason: 'exited' },
  { type: 'execExited', execId: 'e-1', exitCode: 137, reason: 'timeout' },
  { type: 'execExited', execId: 'e-1', exitCode: null, reason: 'refused', message: 'job j has no running sandbox' },
  {
    type: 'usage',
    jobId: sandbox.jobId,
    sandboxId: 'magsa1b2c3d4e5',
    sandboxMs: 61_000,
    cpuMs: 2_500,
    memoryMibMs: 3_100_000,
    egressBytes: 1_042_000,
    final: false,
    ts: 1_700_000_000_000,
  },
];

/** Messages the real server sends, one or more of every kind. */
const fromServer: unknown[] = [
  { type: 'start', sandbox },
  {
    type: 'start',
    sandbox: {
      ...sandbox,
      network: 'internet',
      workspace: { owner, name: 'dev', persistent: true },
      base: { label: 'golden@3', manifestKey: `workspaces/${owner}/golden/manifests/3.json.gz` },
      uploads: [{ key: `files/${owner}/f1`, name: 'data.csv', size: 12 }],
    },
  },
  { type: 'stop', jobId: sandbox.jobId },
  { type: 'wake', jobId: sandbox.jobId },
  { type: 'sleep', jobId: sandbox.jobId },
  { type: 'update', jobId: sandbox.jobId, sleep: { afterS: 600, stopAfterS: 3600 }, startupCommand: 'npm start' },
  { type: 'update', jobId: sandbox.jobId, sleep: null, startupCommand: null },
  { type: 'sync', requestId: 'r-1', workspace: { owner, name: 'dev' } },
  { type: 'resize', requestId: 'r-2', workspace: { owner, name: 'dev' }, diskGb: 10 },
  { type: 'drop', requestId: 'r-3', workspace: { owner, name: 'my_ws-1.0' } },
  {
    type: 'start',
    sandbox: { ...sandbox, script: '', longLived: true, workspace: { owner, name: 'dev', persistent: true } },
  },
  {
    type: 'exec',
    execId: 'e-1',
    jobId: sandbox.jobId,
    command: 'echo hi\nexit 3',
    environment: { A: 'b' },
    cwd: '/srv',
    timeoutS: 30,
    stdin: true,
  },
  { type: 'exec', execId: 'e-2', jobId: sandbox.jobId, command: 'true', environment: {}, timeoutS: 1, stdin: false },
  {
    type: 'exec',
    execId: 'e-3',
    jobId: sandbox.jobId,
    command: 'exec bash -l',
    environment: {},
    timeoutS: 3600,
    stdin: true,
    tty: { term: 'xterm-256color', cols: 80, rows: 24 },
  },
  { type: 'execResize', execId: 'e-3', cols: 132, rows: 43 },
  { type: 'execInput', execId: 'e-1', data: Buffer.from('hello').toString('base64'), eof: false },
  { type: 'execInput', execId: 'e-1', data: '', eof: true },
  { type: 'execAck', execId: 'e-1', bytes: 1048576 },
  { type: 'execKill', execId: 'e-1' },
];

function refused<T>(parsed: Parsed<T>, reason: RegExp, what: string): void {
  assert.equal(parsed.ok, false, `${what} must be refused`);
  if (!parsed.ok) assert.match(parsed.reason, reason, what);
}

/** Which variants of a union the examples cover (a variant is one message kind: `reply` has two). */
function uncovered(union: { anyOf: TSchema[] }, examples: unknown[]): string[] {
  return union.anyOf
    .filter((variant) => !examples.some((m) => Compile(variant).Check(m)))
    .map((variant) => {
      const { type, ok } = (variant as { properties: Record<string, { const?: unknown }> }).properties;
      return ok ? `${type.const} (ok: ${ok.const})` : String(type.const);
    });
}

describe('agent protocol: messages from an agent', () => {
  test('every kind of message the agent sends is accepted as sent', () => {
    assert.deepEqual(uncovered(AgentToServer, fromAgent), [], 'an example of every message kind');
    for (const m of fromAgent) {
      const parsed = parseAgentMessage(m);
      assert.ok(parsed.ok, `accepted: ${JSON.stringify(m).slice(0, 200)} (${parsed.ok ? '' : parsed.reason})`);
      assert.equal(parsed.message, m, 'passed on as it came');
    }
  });

  test('malformed messages are refused with their type and the field at fault', () => {
    const hello = fromAgent[0] as { agent: Record<string, unknown> };
    const cases: Array<[string, unknown, RegExp]> = [
      ['not an object', 'hello', /not an object with a "type"/],
      ['null', null, /not an object with a "type"/],
      ['an array', [{ type: 'pool', pool }], /not an object with a "type"/],
      ['a type that is not text', { type: 7 }, /not an object with a "type"/],
      ['an unknown type', { type: 'bogus' }, /^unknown message type "bogus"$/],
      ['a hello without the agent', { type: 'hello' }, /^hello: .*agent/],
      ['an empty agent id', { type: 'hello', agent: { ...hello.agent, id: '' } }, /^hello: agent\.id /],
      [
        'an agent id of 1025 characters',
        { type: 'hello', agent: { ...hello.agent, id: 'a'.repeat(1025) } },
        /^hello: agent\.id must not have more than 1024/,
      ],
      [
        'a runtime of 1025 characters',
        { type: 'hello', agent: { ...hello.agent, runtime: 'r'.repeat(1025) } },
        /^hello: agent\.runtime /,
      ],
      [
        'a negative capacity',
        { type: 'hello', agent: { ...hello.agent, capacity: -1 } },
        /^hello: agent\.capacity must be >= 0/,
      ],
      [
        'a fractional capacity',
        { type: 'hello', agent: { ...hello.agent, capacity: 1.5 } },
        /^hello: agent\.capacity must be integer/,
      ],
      [
        'junk in the agent',
        { type: 'hello', agent: { ...hello.agent, admin: true } },
        /^hello: agent\.admin is not a field of this message$/,
      ],
      ['junk beside the pool', { type: 'pool', pool, admin: true }, /^pool: admin is not a field/],
      [
        'pool counts that are text',
        { type: 'pool', pool: { ...pool, idle: 'x' } },
        /^pool: pool\.idle must be integer/,
      ],
      [
        'a negative storage figure',
        { type: 'pool', pool, storage: { ...storage, totalBytes: -1 } },
        /^pool: storage\.totalBytes must be >= 0/,
      ],
      [
        'a storage figure past 2^53',
        { type: 'pool', pool, storage: { ...storage, freeBytes: 2 ** 60 } },
        /^pool: storage\.freeBytes /,
      ],
      ['started without a time', { type: 'started', jobId: 'j', sandboxId: 's' }, /^started: .*ts/],
      ['a pool without its sleeping count', { type: 'pool', pool: { idle: 1, busy: 0, min: 0, max: 1 } }, /sleeping/],
      ['slept without a job', { type: 'slept', ts: 1 }, /^slept: .*jobId/],
      ['started at time 0', { type: 'started', jobId: 'j', sandboxId: 's', ts: 0 }, /^started: ts must be > 0/],
      ['started at time NaN', { type: 'started', jobId: 'j', sandboxId: 's', ts: Number.NaN }, /^started: ts /],
      ['output lines that are text', { type: 'output', jobId: 'j', lines: 'x' }, /^output: lines must be array/],
      [
        'a line numbered 0',
        { type: 'output', jobId: 'j', lines: [{ seq: 0, stream: 'stdout', ts: 1, message: 'x' }] },
        /^output: lines\.0\.seq must be >= 1/,
      ],
      [
        'a line on an unknown stream',
        { type: 'output', jobId: 'j', lines: [{ seq: 1, stream: 'tty', ts: 1, message: 'x' }] },
        /^output: lines\.0\.stream must be "stdout" or "stderr" or "system"$/,
      ],
      [
        'a line without its text',
        { type: 'output', jobId: 'j', lines: [{ seq: 1, stream: 'stdout', ts: 1 }] },
        /^output: lines\.0 .*message/,
      ],
      [
        'an exit code that is text',
        { type: 'exited', jobId: 'j', exitCode: 'zero', reason: 'exited', ts: 1 },
        /^exited: exitCode must be integer or null$/,
      ],
      [
        'an unknown exit reason',
        { type: 'exited', jobId: 'j', exitCode: 0, reason: 'vanished', ts: 1 },
        /^exited: reason must be "exited" or /,
      ],
      [
        'a report without a name',
        { type: 'workspace', report: { owner, state: 'gone', usedBytes: 0, files: 0, ts: 1 } },
        /^workspace: report .*name/,
      ],
      [
        'a report on a workspace named ".."',
        { type: 'workspace', report: { owner, name: '..', state: 'gone', usedBytes: 0, files: 0, ts: 1 } },
        /^workspace: report\.name must match pattern/,
      ],
      [
        'a report with version 0',
        {
          type: 'workspace',
          report: { owner, name: 'dev', state: 'present', usedBytes: 0, files: 0, version: 0, ts: 1 },
        },
        /^workspace: report\.version must be >= 1/,
      ],
      ['a reply without a requestId', { type: 'reply', ok: true, result: { held: true } }, /^reply: .*requestId/],
      [
        'a result with held as text',
        { type: 'reply', requestId: 'r', ok: true, result: { held: 'yes' } },
        /^reply: result\.held must be boolean/,
      ],
      [
        'a refusal with status 200',
        { type: 'reply', requestId: 'r', ok: false, status: 200, code: 'fine', error: 'x' },
        /^reply: status must be >= 400/,
      ],
      [
        'a refusal without its sentence',
        { type: 'reply', requestId: 'r', ok: false, status: 500, code: 'internal' },
        /^reply: .*error/,
      ],
      [
        'a refusal with an empty sentence',
        { type: 'reply', requestId: 'r', ok: false, status: 500, code: 'internal', error: '' },
        /^reply: error /,
      ],
      [
        'a refusal with a code of 1025 characters',
        { type: 'reply', requestId: 'r', ok: false, status: 500, code: 'c'.repeat(1025), error: 'x' },
        /^reply: code /,
      ],
      [
        'exec output that is not base64',
        { type: 'execOutput', execId: 'e', stream: 'stdout', data: 'not base64!' },
        /^execOutput: data must match pattern/,
      ],
      [
        'exec output on an unknown stream',
        { type: 'execOutput', execId: 'e', stream: 'system', data: '' },
        /^execOutput: stream must be "stdout" or "stderr"$/,
      ],
      [
        'exec output over the chunk size',
        { type: 'execOutput', execId: 'e', stream: 'stdout', data: 'A'.repeat(400_000) },
        /^execOutput: data must not have more than/,
      ],
      [
        'an exec end with an unknown reason',
        { type: 'execExited', execId: 'e', exitCode: 0, reason: 'vanished' },
        /^execExited: reason must be "exited" or /,
      ],
      ['a negative stdin acknowledgement', { type: 'execInputAck', execId: 'e', bytes: -1 }, /^execInputAck: bytes /],
      ['usage with a negative CPU time', { ...(fromAgent.at(-1) as object), cpuMs: -5 }, /^usage: cpuMs must be >= 0/],
      [
        'usage with a fractional byte count',
        { ...(fromAgent.at(-1) as object), egressBytes: 1.5 },
        /^usage: egressBytes must be integer/,
      ],
      [
        'usage without saying whether it is the last',
        { ...(fromAgent.at(-1) as object), final: undefined },
        /^usage: .*final/,
      ],
      [
        'a reply neither ok nor not',
        { type: 'reply', requestId: 'r', ok: 'maybe', result: { held: true } },
        /^reply: ok must be true$/,
      ],
    ];
    for (const [what, message, reason] of cases) refused(parseAgentMessage(message), reason, what);
  });

  test('the type of a refused message is given for the log, cut to 40 characters', () => {
    const parsed = parseAgentMessage({ type: 'x'.repeat(5000) });
    assert.ok(!parsed.ok);
    assert.equal(parsed.type, `${'x'.repeat(40)}…`);
    assert.ok(parsed.reason.length < 100, 'the reason is short too');
    const exited = parseAgentMessage({ type: 'exited', jobId: 'j' });
    assert.ok(!exited.ok);
    assert.equal(exited.type, 'exited');
  });

  test('a refusal with a long sentence is cut to MAX_ERROR characters, not dropped', () => {
    const sent = {
      type: 'reply',
      requestId: 'r',
      ok: false,
      status: 422,
      code: 'unsupported_option',
      error: `too long: ${'d/'.repeat(5000)}`,
    };
    const parsed = parseAgentMessage(sent);
    assert.ok(parsed.ok && parsed.message.type === 'reply' && !parsed.message.ok);
    assert.equal(parsed.message.error.length, MAX_ERROR);
    assert.ok(parsed.message.error.startsWith('too long: d/d/') && parsed.message.error.endsWith('…'));
    assert.equal(sent.error.length, 10 + 10_000, "the sender's object is left as it was");
    const exact = parseAgentMessage({ ...sent, error: 'e'.repeat(MAX_ERROR) });
    assert.ok(
      exact.ok && exact.message.type === 'reply' && !exact.message.ok && exact.message.error === 'e'.repeat(MAX_ERROR),
    );
  });
});

/** An exec order on a terminal. */
const ttyExec = (tty: Record<string, unknown>) => ({
  type: 'exec',
  execId: 'e',
  jobId: 'j',
  command: 'sh',
  environment: {},
  timeoutS: 1,
  stdin: true,
  tty,
});

describe('agent protocol: messages from the server', () => {
  test('every kind of message the server sends is accepted as sent', () => {
    assert.deepEqual(uncovered(ServerToAgent, fromServer), [], 'an example of every message kind');
    for (const m of fromServer) {
      const parsed = parseServerMessage(m);
      assert.ok(parsed.ok, `accepted: ${JSON.stringify(m)} (${parsed.ok ? '' : parsed.reason})`);
      assert.equal(parsed.message, m);
    }
  });

  test('malformed orders are refused before the agent acts on them', () => {
    const start = (changes: Record<string, unknown>) => ({ type: 'start', sandbox: { ...sandbox, ...changes } });
    const order = (workspace: unknown) => ({ type: 'drop', requestId: 'r', workspace });
    const { script: _, ...withoutScript } = sandbox;
    const cases: Array<[string, unknown, RegExp]> = [
      ['an unknown order', { type: 'format', requestId: 'r' }, /^unknown message type "format"$/],
      ['an agent message sent the wrong way', { type: 'pool', pool }, /^unknown message type "pool"$/],
      ['a start without a sandbox', { type: 'start' }, /^start: .*sandbox/],
      [
        'sleep timers of zero',
        start({ sleep: { afterS: 0, stopAfterS: 1 } }),
        /^start: sandbox\.sleep\.afterS must be >= 1/,
      ],
      ['an update with no sleep field', { type: 'update', jobId: 'j', startupCommand: null }, /^update: .*sleep/],
      ['an empty startup command', start({ startupCommand: '' }), /^start: sandbox\.startupCommand /],
      ['a sandbox without a script', { type: 'start', sandbox: withoutScript }, /^start: sandbox .*script/],
      ['an empty job id', start({ jobId: '' }), /^start: sandbox\.jobId /],
      [
        'a job id of 1025 characters',
        start({ jobId: 'j'.repeat(1025) }),
        /^start: sandbox\.jobId must not have more than 1024/,
      ],
      [
        'a script past the limit',
        start({ script: 'x'.repeat(256 * 1024 + 1) }),
        /^start: sandbox\.script must not have more than/,
      ],
      [
        'junk in the sandbox',
        start({ privileged: true }),
        /^start: sandbox\.privileged is not a field of this message$/,
      ],
      [
        'an environment name that is not one',
        start({ environment: { 'A-B': 'x' } }),
        /^start: sandbox\.environment\.A-B is not a field/,
      ],
      [
        'an environment value that is not text',
        start({ environment: { A: 1 } }),
        /^start: sandbox\.environment\.A must be string/,
      ],
      ['zero cpus', start({ vcpus: 0 }), /^start: sandbox\.vcpus must be > 0/],
      ['a fractional memory limit', start({ memoryMb: 1.5 }), /^start: sandbox\.memoryMb must be integer/],
      [
        'an unknown network policy',
        start({ network: 'host' }),
        /^start: sandbox\.network must be "internet" or "none"$/,
      ],
      ['a 2048 GB disk', start({ diskGb: 2048 }), /^start: sandbox\.diskGb must be <= 1024/],
      ['uploads that are not a list', start({ uploads: {} }), /^start: sandbox\.uploads must be array/],
      [
        'an upload without a name',
        start({ uploads: [{ key: 'k', name: '', size: 1 }] }),
        /^start: sandbox\.uploads\.0\.name /,
      ],
      [
        'a workspace that is not persistent or not',
        start({ workspace: { owner, name: 'dev' } }),
        /^start: sandbox\.workspace .*persistent/,
      ],
      [
        'a workspace named ".."',
        start({ workspace: { owner, name: '..', persistent: false } }),
        /^start: sandbox\.workspace\.name must match pattern/,
      ],
      ['a base without its manifest', start({ base: { label: 'golden@1' } }), /^start: sandbox\.base .*manifestKey/],
      ['a stop without a job id', { type: 'stop' }, /^stop: .*jobId/],
      ['a stop with junk', { type: 'stop', jobId: 'j', force: true }, /^stop: force is not a field/],
      ['an order without a requestId', { type: 'sync', workspace: { owner, name: 'dev' } }, /^sync: .*requestId/],
      ['an owner with a slash', order({ owner: 'a/b', name: 'dev' }), /^drop: workspace\.owner must match pattern/],
      ['an owner "."', order({ owner: '.', name: 'dev' }), /^drop: workspace\.owner must match pattern/],
      ['a name of 64 characters', order({ owner, name: 'n'.repeat(64) }), /^drop: workspace\.name must match pattern/],
      [
        'junk in the workspace key',
        order({ owner, name: 'dev', path: '/etc' }),
        /^drop: workspace\.path is not a field/,
      ],
      [
        'a resize without its size',
        { type: 'resize', requestId: 'r', workspace: { owner, name: 'dev' } },
        /^resize: .*diskGb/,
      ],
      [
        'an exec with an empty command',
        { type: 'exec', execId: 'e', jobId: 'j', command: '', environment: {}, timeoutS: 1, stdin: false },
        /^exec: command must not have fewer than 1/,
      ],
      [
        'an exec in a relative directory',
        {
          type: 'exec',
          execId: 'e',
          jobId: 'j',
          command: 'ls',
          environment: {},
          cwd: 'etc',
          timeoutS: 1,
          stdin: false,
        },
        /^exec: cwd must match pattern/,
      ],
      [
        'an exec without a timeout',
        { type: 'exec', execId: 'e', jobId: 'j', command: 'ls', environment: {}, stdin: false },
        /^exec: .*timeoutS/,
      ],
      ['stdin without eof', { type: 'execInput', execId: 'e', data: '' }, /^execInput: .*eof/],
      ['an ack of a fraction', { type: 'execAck', execId: 'e', bytes: 1.5 }, /^execAck: bytes must be integer/],
      ['a kill without its exec', { type: 'execKill' }, /^execKill: .*execId/],
      ['a terminal of 0 columns', ttyExec({ term: 'xterm', cols: 0, rows: 24 }), /^exec: tty\.cols must be >= 1/],
      [
        'a terminal type that is not a name',
        ttyExec({ term: 'x; rm -rf /', cols: 80, rows: 24 }),
        /^exec: tty\.term must match pattern/,
      ],
      [
        'a resize of 20000 rows',
        { type: 'execResize', execId: 'e', cols: 80, rows: 20_000 },
        /^execResize: rows must be <= 10000/,
      ],
      [
        'a resize to 0 GB',
        { type: 'resize', requestId: 'r', workspace: { owner, name: 'dev' }, diskGb: 0 },
        /^resize: diskGb must be >= 1/,
      ],
    ];
    for (const [what, message, reason] of cases) refused(parseServerMessage(message), reason, what);
  });
});
