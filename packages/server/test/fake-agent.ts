// A test double for the agent that speaks the real agent protocol over a real link. The agent is a separate
// component with its own tests; this peer lets the server's tests decide exactly what an agent reports.
// It "runs" a tiny script language, one command per line:
//   echo TEXT      a stdout line            err TEXT     a stderr line
//   lines N        N stdout lines "line 1".."line N"
//   exit N         exit with code N (default 0 at the end)
//   hang           wait until stopped (then exits with reason "stopped", code 143)
//   manual         wait for the test to call output()/exit() itself
//   timeout        exit with reason "timeout", code 137
//   crash TEXT     exit with reason "error" and message TEXT, never started
//   meter C M E    from now its usage says C ms of CPU, M MiB·ms of memory, E bytes out (cumulative)
//   report         send a `usage` report now (as the real agent does every minute)
// Every job that started reports its `usage` (final) before its `exited`: sandboxMs is the real time since started.
// A long-lived job (no script) runs like `hang`. An `exec` into a running job runs a tiny language of its own:
//   echo TEXT / err TEXT   TEXT and a newline on stdout / stderr
//   bytes N                N bytes 0..255 repeating on stdout, sent within the flow-control window (acks awaited)
//   cat                    stdin back on stdout, once stdin has ended
//   exit N                 exit code N (default 0)
//   hang                   until killed (execKill: reason "killed") or `timeout` passes… here at once: see `timeout`
//   timeout                ends with reason "timeout", code 137
//   fail TEXT              the runtime failed: reason "error", never started
//   size                   the terminal's size "ROWS COLS" on stdout (as `stty size`), once resized if `resized`
//   resized                waits for an execResize
// An exec into a job this agent does not run is refused (reason "refused"), as the real agent does.
// A job on a workspace makes the agent "hold" a copy of it, reported (`workspace`, present) before the exit.
// Workspace orders (sync, resize, drop) are answered with a `reply`, as the real agent does; `onOrder` lets a
// test answer differently, late, or not at all.
// It speaks the protocol the real agent speaks: every message it sends, and every message the server sends it, is
// checked against the schemas of @mags/api, and one that fails throws (failing the test that caused it). Only
// sendUnchecked() sends what a broken agent would.
import {
  type AgentEnd,
  type AgentInfo,
  type AgentToServer,
  EXEC_CHUNK,
  EXEC_WINDOW,
  type ExecOrder,
  type HostStorage,
  type OutputLine,
  parseAgentMessage,
  parseServerMessage,
  type SandboxSpec,
  type ServerToAgent,
  type WorkspaceOrder,
} from '@mags/api';

export interface HeldCopy {
  owner: string;
  name: string;
  persistent: boolean;
  /** Synced version (persistent). */
  version: number | null;
  diskGb: number;
}

export interface FakeAgentOptions {
  id?: string;
  name?: string;
  capacity?: number;
  pool?: AgentInfo['pool'];
  /** Storage figures for the hello (none by default: the server then admits every disk). */
  storage?: HostStorage;
  /** Send every output batch twice, as an agent resending after a reconnect would. */
  resendOutput?: boolean;
  /** Lines per output message. */
  batch?: number;
  /**
   * Answers a workspace order instead of the default: return a reply (without requestId) to send it, 'silent' to
   * send nothing, or undefined for the default.
   */
  onOrder?: (order: WorkspaceOrder, agent: FakeAgent) => ReplyBody | 'silent' | undefined;
}

export type ReplyBody =
  | { ok: true; result: { held: boolean; version?: number | null; changed?: boolean } }
  | { ok: false; status: number; code: string; error: string };

interface RunningJob {
  spec: SandboxSpec;
  seq: number;
  sandboxId: string;
  startedAt: number;
  /** What its usage reports say (cumulative). */
  meter: { cpuMs: number; memoryMibMs: number; egressBytes: number };
  release?: () => void;
  /** Asleep (`sleep()`): an exec, a `wake` or an `update` to never sleep wakes it. */
  frozen?: boolean;
}

/** An exec the fake runs: its stdin so far, its flow control, and what ends it. */
export interface FakeExec {
  order: ExecOrder;
  stdin: Buffer[];
  stdinEnded: boolean;
  unacked: number;
  /** The most output bytes ever unacknowledged at once (the window bounds it). */
  maxUnacked: number;
  /** Output bytes sent. */
  sent: number;
  killed: boolean;
  /** The sizes execResize asked for, in order. */
  resizes: Array<{ cols: number; rows: number }>;
  wake?: () => void;
}

/** A message's kind: its type, and for a reply whether it is ok (the two are different messages). */
function kindOf(m: AgentToServer | ServerToAgent): string {
  return m.type === 'reply' ? `reply (ok: ${m.ok})` : m.type;
}

export class FakeAgent {
  readonly info: AgentInfo;
  readonly starts: SandboxSpec[] = [];
  readonly stops: string[] = [];
  readonly orders: WorkspaceOrder[] = [];
  /** The kinds of message sent and received ("output", "reply (ok: false)"): only kinds, output is large. */
  readonly kindsSent = new Set<string>();
  readonly kindsReceived = new Set<string>();
  /** Host copies by "owner/name". */
  readonly copies = new Map<string, HeldCopy>();
  readonly running = new Map<string, RunningJob>();
  /** Execs by id, kept after they end. */
  readonly execs = new Map<string, FakeExec>();
  private readonly waiters: Array<{ test: () => boolean; resolve: () => void }> = [];

  constructor(
    readonly link: AgentEnd,
    private readonly options: FakeAgentOptions = {},
  ) {
    this.info = {
      id: options.id ?? 'agent-1',
      name: options.name ?? 'fake',
      runtime: 'fake-runtime 1.0',
      version: '0.1.0',
      capacity: options.capacity ?? 4,
      pool: options.pool ?? { idle: 2, busy: 0, sleeping: 0, min: 2, max: 8 },
      ...(options.storage ? { storage: options.storage } : {}),
    };
    link.onMessage((m) => this.onMessage(m));
    this.send({ type: 'hello', agent: this.info });
  }

  /** `update` orders received. */
  readonly updates: Array<Extract<ServerToAgent, { type: 'update' }>> = [];

  /** The job's sandbox goes to sleep (frozen): `slept` is sent. */
  sleep(jobId: string): void {
    const job = this.running.get(jobId);
    if (!job) throw new Error(`fake agent: job ${jobId} is not running`);
    job.frozen = true;
    this.send({ type: 'slept', jobId, ts: Date.now() });
  }

  private thaw(jobId: string): void {
    const job = this.running.get(jobId);
    if (!job) return;
    job.frozen = false;
    this.send({ type: 'woke', jobId, ts: Date.now() });
  }

  /** Resolves once `test()` holds (checked after every message the agent handles). */
  until(test: () => boolean): Promise<void> {
    if (test()) return Promise.resolve();
    return new Promise((resolve) => this.waiters.push({ test, resolve }));
  }

  /** Sends output lines for a `manual` job. */
  output(jobId: string, messages: string[], stream: OutputLine['stream'] = 'stdout'): void {
    const job = this.mustRun(jobId);
    const lines = messages.map((message) => ({ seq: ++job.seq, stream, ts: Date.now(), message }));
    this.sendLines(jobId, lines);
  }

  /** Sends a `usage` report about a running job's sandbox, as the real agent does every minute and at its end. */
  usage(jobId: string, final = false): void {
    const job = this.mustRun(jobId);
    this.send({
      type: 'usage',
      jobId,
      sandboxId: job.sandboxId,
      sandboxMs: Date.now() - job.startedAt,
      ...job.meter,
      final,
      ts: Date.now(),
    });
  }

  /** Ends a `manual` job. */
  exit(jobId: string, exitCode: number): void {
    const job = this.mustRun(jobId);
    this.usage(jobId, true);
    this.running.delete(jobId);
    this.reportCopy(job.spec);
    this.send({ type: 'exited', jobId, exitCode, reason: 'exited', ts: Date.now() });
  }

  /** After a run on a workspace: the copy's size (and a persistent one's new version), as the real agent reports. */
  private reportCopy(spec: SandboxSpec): void {
    const ws = spec.workspace;
    const copy = ws && this.copies.get(`${ws.owner}/${ws.name}`);
    if (!ws || !copy) return;
    if (copy.persistent) copy.version = (copy.version ?? 0) + 1;
    this.report(ws.owner, ws.name, 'present', {
      usedBytes: 4096,
      files: 2,
      ...(copy.persistent ? { version: copy.version!, versions: copy.version! } : {}),
    });
  }

  /** Reports new storage figures, as the real agent does with its pool counts. */
  reportStorage(storage: HostStorage): void {
    this.send({ type: 'pool', pool: this.info.pool, storage });
  }

  /** Sends a message, after checking it against the protocol's schemas (throws if it breaks them). */
  send(message: AgentToServer): void {
    const parsed = parseAgentMessage(message);
    if (!parsed.ok)
      throw new Error(`fake agent: its ${parsed.type ?? ''} message breaks the agent protocol: ${parsed.reason}`);
    this.kindsSent.add(kindOf(message));
    this.link.send(message);
  }

  /** Sends anything, unchecked: what a broken agent, or another version of it, might send. */
  sendUnchecked(message: unknown): void {
    this.link.send(message as AgentToServer);
  }

  private mustRun(jobId: string): RunningJob {
    const job = this.running.get(jobId);
    if (!job) throw new Error(`fake agent: job ${jobId} is not running`);
    return job;
  }

  private sendLines(jobId: string, lines: OutputLine[]): void {
    const batch = this.options.batch ?? 100;
    for (let i = 0; i < lines.length; i += batch) {
      const part = lines.slice(i, i + batch);
      this.send({ type: 'output', jobId, lines: part });
      if (this.options.resendOutput) this.send({ type: 'output', jobId, lines: part });
    }
  }

  /** Answers a workspace order as the real agent would, unless the test's onOrder decides otherwise. */
  private order(o: WorkspaceOrder): void {
    this.orders.push(o);
    const custom = this.options.onOrder?.(o, this);
    if (custom === 'silent') return;
    if (custom) {
      this.send({ type: 'reply', requestId: o.requestId, ...custom } as AgentToServer);
      return;
    }
    const key = `${o.workspace.owner}/${o.workspace.name}`;
    const copy = this.copies.get(key);
    const reply = (result: { held: boolean; version?: number | null; changed?: boolean }) =>
      this.send({ type: 'reply', requestId: o.requestId, ok: true, result });
    if (!copy) return reply({ held: false });
    if (o.type === 'sync') {
      if (!copy.persistent) return reply({ held: true, version: null, changed: false });
      copy.version = (copy.version ?? 0) + 1;
      return reply({ held: true, version: copy.version, changed: true });
    }
    if (o.type === 'resize') {
      copy.diskGb = o.diskGb;
      return reply({ held: true });
    }
    if (
      [...this.running.values()].some(
        (j) => j.spec.workspace && `${j.spec.workspace.owner}/${j.spec.workspace.name}` === key,
      )
    ) {
      this.send({
        type: 'reply',
        requestId: o.requestId,
        ok: false,
        status: 409,
        code: 'workspace_busy',
        error: `workspace ${o.workspace.name} is in use on this host`,
      });
      return;
    }
    this.copies.delete(key);
    this.send({
      type: 'workspace',
      report: { owner: copy.owner, name: copy.name, state: 'gone', usedBytes: 0, files: 0, ts: Date.now() },
    });
    reply({ held: true });
  }

  /** Sends a `workspace` report about a copy this agent holds (present) or deleted (gone). */
  report(
    owner: string,
    name: string,
    state: 'present' | 'gone',
    extra: { usedBytes?: number; files?: number; version?: number; versions?: number } = {},
  ): void {
    if (state === 'gone') this.copies.delete(`${owner}/${name}`);
    this.send({
      type: 'workspace',
      report: {
        owner,
        name,
        state,
        usedBytes: extra.usedBytes ?? 0,
        files: extra.files ?? 0,
        version: extra.version,
        versions: extra.versions,
        ts: Date.now(),
      },
    });
  }

  private onMessage(raw: unknown): void {
    const parsed = parseServerMessage(raw);
    if (!parsed.ok)
      throw new Error(
        `fake agent: the server sent a ${parsed.type ?? ''} message that breaks the agent protocol: ${parsed.reason}`,
      );
    const m = parsed.message;
    this.kindsReceived.add(kindOf(m));
    if (m.type === 'start') {
      this.starts.push(m.sandbox);
      const ws = m.sandbox.workspace;
      if (ws) {
        const key = `${ws.owner}/${ws.name}`;
        const held = this.copies.get(key);
        this.copies.set(key, {
          owner: ws.owner,
          name: ws.name,
          persistent: ws.persistent || (held?.persistent ?? false),
          version: held?.version ?? null,
          diskGb: m.sandbox.diskGb,
        });
      }
      void this.run(m.sandbox);
    } else if (m.type === 'sync' || m.type === 'resize' || m.type === 'drop') {
      this.order(m);
    } else if (m.type === 'exec') {
      const job = this.running.get(m.jobId);
      if (job?.frozen) this.thaw(m.jobId); // an exec wakes a sleeping sandbox
      void this.exec(m);
    } else if (m.type === 'wake') {
      if (this.running.get(m.jobId)?.frozen) this.thaw(m.jobId);
    } else if (m.type === 'sleep') {
      const job = this.running.get(m.jobId);
      if (job && !job.frozen) this.sleep(m.jobId); // frozen now, busy or idle (E2B's pause)
    } else if (m.type === 'update') {
      this.updates.push(m);
      if (m.sleep === null && this.running.get(m.jobId)?.frozen) this.thaw(m.jobId);
    } else if (m.type === 'execInput' || m.type === 'execAck' || m.type === 'execKill' || m.type === 'execResize') {
      const e = this.execs.get(m.execId);
      if (e && m.type === 'execResize') e.resizes.push({ cols: m.cols, rows: m.rows });
      else if (e && m.type === 'execInput') {
        const data = Buffer.from(m.data, 'base64');
        e.stdin.push(data);
        if (m.eof) e.stdinEnded = true;
        if (data.length > 0) this.send({ type: 'execInputAck', execId: m.execId, bytes: data.length });
      } else if (e && m.type === 'execAck') e.unacked -= m.bytes;
      else if (e) e.killed = true;
      e?.wake?.();
    } else {
      this.stops.push(m.jobId);
      const job = this.running.get(m.jobId);
      if (job) {
        this.usage(m.jobId, true);
        this.running.delete(m.jobId);
        job.release?.();
        // Its execs die with the sandbox.
        for (const e of this.execs.values()) {
          if (e.order.jobId !== m.jobId) continue;
          e.killed = true;
          e.wake?.();
        }
        this.reportCopy(job.spec);
        this.send({ type: 'exited', jobId: m.jobId, exitCode: 143, reason: 'stopped', ts: Date.now() });
      }
    }
    this.check();
  }

  private check(): void {
    for (const w of [...this.waiters]) {
      if (w.test()) {
        this.waiters.splice(this.waiters.indexOf(w), 1);
        w.resolve();
      }
    }
  }

  /** Runs an exec order's command (the language at the top of this file). */
  private async exec(order: ExecOrder): Promise<void> {
    const { execId } = order;
    const e: FakeExec = {
      order,
      stdin: [],
      stdinEnded: false,
      unacked: 0,
      maxUnacked: 0,
      sent: 0,
      killed: false,
      resizes: [],
    };
    this.execs.set(execId, e);
    const exited = (
      exitCode: number | null,
      reason: 'exited' | 'timeout' | 'killed' | 'refused' | 'error',
      message?: string,
    ) => this.send({ type: 'execExited', execId, exitCode, reason, ...(message ? { message } : {}) });
    if (!this.running.has(order.jobId))
      return exited(null, 'refused', `job ${order.jobId} has no running sandbox here`);
    const commands = order.command
      .split('\n')
      .map((l) => l.trim())
      .filter(Boolean);
    const failed = commands.find((c) => c.startsWith('fail'));
    if (failed) return exited(null, 'error', failed.slice(5) || 'the runtime failed');
    this.send({ type: 'execStarted', execId });
    const until = async (test: () => boolean) => {
      while (!test() && !e.killed) await new Promise<void>((r) => (e.wake = r));
    };
    const write = async (stream: 'stdout' | 'stderr', data: Buffer) => {
      for (let at = 0; at < data.length && !e.killed; at += EXEC_CHUNK) {
        await until(() => e.unacked < EXEC_WINDOW);
        if (e.killed) return;
        const piece = data.subarray(at, at + EXEC_CHUNK);
        e.unacked += piece.length;
        e.sent += piece.length;
        e.maxUnacked = Math.max(e.maxUnacked, e.unacked);
        this.send({ type: 'execOutput', execId, stream, data: piece.toString('base64') });
      }
    };
    let exitCode = 0;
    for (const command of commands) {
      const [word, ...rest] = command.split(' ');
      const arg = rest.join(' ');
      if (word === 'echo') await write('stdout', Buffer.from(`${arg}\n`));
      else if (word === 'err') await write('stderr', Buffer.from(`${arg}\n`));
      else if (word === 'bytes') {
        const block = Buffer.from(Buffer.alloc(EXEC_CHUNK, 0).map((_, i) => i % 256));
        for (let left = Number(arg); left > 0 && !e.killed; left -= block.length) {
          await write('stdout', block.subarray(0, Math.min(left, block.length)));
        }
      } else if (word === 'cat') {
        await until(() => e.stdinEnded);
        await write('stdout', Buffer.concat(e.stdin));
      } else if (word === 'size') {
        const size = e.resizes.at(-1) ?? order.tty;
        await write('stdout', Buffer.from(size ? `${size.rows} ${size.cols}\n` : 'stty: not a tty\n'));
      } else if (word === 'resized') await until(() => e.resizes.length > 0);
      else if (word === 'exit') exitCode = Number(arg);
      else if (word === 'hang') await until(() => false);
      else if (word === 'timeout') return exited(137, 'timeout');
      else await write('stderr', Buffer.from(`sh: ${word}: not found\n`));
      if (e.killed) return exited(137, 'killed');
    }
    exited(exitCode, 'exited');
  }

  private async run(spec: SandboxSpec): Promise<void> {
    const jobId = spec.jobId;
    const job: RunningJob = {
      spec,
      seq: 0,
      // A job started again (woken, restarted) is a new sandbox.
      sandboxId: spec.firstSeq ? `sbx-${jobId.slice(0, 8)}-${spec.firstSeq}` : `sbx-${jobId.slice(0, 8)}`,
      startedAt: Date.now(),
      meter: { cpuMs: 0, memoryMibMs: 0, egressBytes: 0 },
    };
    const commands = (spec.longLived ? 'hang' : spec.script)
      .split('\n')
      .map((l) => l.trim())
      .filter(Boolean);
    const crash = commands.find((c) => c.startsWith('crash'));
    if (crash) {
      this.send({
        type: 'exited',
        jobId,
        exitCode: null,
        reason: 'error',
        message: crash.slice(6) || undefined,
        ts: Date.now(),
      });
      return;
    }
    this.running.set(jobId, job);
    this.send({ type: 'started', jobId, sandboxId: job.sandboxId, ts: Date.now() });
    const pending: OutputLine[] = [];
    const line = (stream: OutputLine['stream'], message: string) =>
      pending.push({ seq: ++job.seq, stream, ts: Date.now(), message });
    let exitCode = 0;
    for (const command of commands) {
      const [word, ...rest] = command.split(' ');
      const arg = rest.join(' ');
      if (word === 'echo') line('stdout', arg);
      else if (word === 'err') line('stderr', arg);
      else if (word === 'lines') for (let i = 1; i <= Number(arg); i++) line('stdout', `line ${i}`);
      else if (word === 'exit') exitCode = Number(arg);
      else if (word === 'meter') {
        const [cpuMs, memoryMibMs, egressBytes] = rest.map(Number);
        job.meter = { cpuMs: cpuMs ?? 0, memoryMibMs: memoryMibMs ?? 0, egressBytes: egressBytes ?? 0 };
      } else if (word === 'report') this.usage(jobId);
      else if (word === 'hang' || word === 'manual') {
        this.sendLines(jobId, pending.splice(0));
        if (word === 'manual') return; // the test drives it from here
        await new Promise<void>((resolve) => (job.release = resolve));
        return; // the stop handler has reported the exit
      } else if (word === 'timeout') {
        this.sendLines(jobId, pending.splice(0));
        this.usage(jobId, true);
        this.running.delete(jobId);
        this.send({ type: 'exited', jobId, exitCode: 137, reason: 'timeout', ts: Date.now() });
        return;
      } else line('stderr', `sh: ${word}: not found`);
    }
    this.sendLines(jobId, pending.splice(0));
    this.usage(jobId, true);
    this.running.delete(jobId);
    this.reportCopy(spec);
    this.send({ type: 'exited', jobId, exitCode, reason: 'exited', ts: Date.now() });
  }
}
