// envd's process service for E2B sandboxes: every process is a Mags exec (ExecService: the agent protocol, its flow
// control) in the sandbox's job, with a small pid of ours, unique per sandbox. A process outlives the stream that
// started it: output produced while no stream is attached is kept (the newest PROCESS_BUFFER_BYTES) and replayed to
// the next `Connect`, and the agent is acknowledged only once output was kept or taken by the attached sockets.

import { MAX_EXEC_TIMEOUT_S } from '@mags/api';
import type { Logger } from 'pino';
import type { ExecExit, ExecRun, ExecService } from '../../jobs/exec.js';
import { bytes, ConnectError, type ConnectStream, str, stringMap, strings, sub, uint } from './connect.js';
import type { EnvdSandbox } from './sandbox.js';

/** Processes one sandbox may have running at once through envd. */
export const MAX_PROCESSES_PER_SANDBOX = 64;
/** Output kept for a process while no stream is attached (the oldest is dropped). */
export const PROCESS_BUFFER_BYTES = 1024 * 1024;
/** How long an ended process nobody saw end stays reachable by `Connect` (its buffered output and end). */
const ENDED_KEEP_MS = 60_000;
/** Largest PTY input or stdin chunk one `SendInput` may carry. */
const MAX_INPUT_BYTES = 4 * 1024 * 1024;

type Output = 'stdout' | 'stderr' | 'pty';
type ProcessEvent =
  | { start: { pid: number } }
  | { data: Partial<Record<Output, string>> }
  | { end: { exitCode: number; exited: boolean; status: string; error?: string } }
  | { keepalive: Record<string, never> };

interface ProcessConfig {
  cmd: string;
  args: string[];
  envs: Record<string, string>;
  cwd?: string;
}

/** Quotes one word for /bin/sh. */
export function shellQuote(word: string): string {
  if (word !== '' && /^[\w@%+=:,./-]+$/.test(word)) return word;
  return `'${word.replace(/'/g, `'"'"'`)}'`;
}

/** The `/bin/sh -c` string that runs `cmd args…` exactly (no word of it reinterpreted). */
export function commandLine(config: ProcessConfig): string {
  return `exec ${[config.cmd, ...config.args].map(shellQuote).join(' ')}`;
}

/** The end event of an exec's exit, as envd reports a Go process's state. */
export function endEvent(exit: ExecExit): { exitCode: number; exited: boolean; status: string; error?: string } {
  if (exit.reason === 'exited' && exit.exitCode !== null) {
    return { exitCode: exit.exitCode, exited: true, status: `exit status ${exit.exitCode}` };
  }
  if (exit.reason === 'killed' || exit.reason === 'timeout') {
    return { exitCode: -1, exited: false, status: 'signal: killed' };
  }
  return { exitCode: -1, exited: false, status: 'error', error: exit.error ?? 'the process could not be run' };
}

/** One attached stream: where events go, and whether its socket took them. */
interface Attached {
  stream: ConnectStream;
  send(event: ProcessEvent): boolean;
}

/** A process of a sandbox: its exec, its configuration, its attached streams and what they missed. */
class EnvdProcess {
  readonly attached = new Set<Attached>();
  /** Output no stream has taken yet (kept while none is attached). */
  private readonly missed: Array<{ event: ProcessEvent; size: number }> = [];
  private missedBytes = 0;
  end?: ReturnType<typeof endEvent>;
  /** Set once an attached stream received the end. */
  endSeen = false;
  /** Set when a caller killed it (SendSignal, the deadline): its end is no sign of the sandbox's. */
  killed = false;

  constructor(
    readonly pid: number,
    readonly config: ProcessConfig,
    readonly tag: string | undefined,
    readonly pty: boolean,
    readonly stdin: boolean,
    readonly run: ExecRun,
  ) {}

  /** Output from the exec: to the attached streams (acknowledged once their sockets took it), else kept. */
  output(stream: 'stdout' | 'stderr', data: Buffer): void {
    const event: ProcessEvent = { data: { [this.pty ? 'pty' : stream]: data.toString('base64') } };
    if (this.attached.size === 0) {
      this.keep(event, data.length);
      this.run.ack(data.length);
      return;
    }
    const waits: Array<Promise<void>> = [];
    for (const a of this.attached) if (!a.send(event)) waits.push(a.stream.drained());
    if (waits.length === 0) this.run.ack(data.length);
    else void Promise.all(waits).then(() => this.run.ack(data.length));
  }

  private keep(event: ProcessEvent, size: number): void {
    this.missed.push({ event, size });
    this.missedBytes += size;
    while (this.missedBytes > PROCESS_BUFFER_BYTES && this.missed.length > 1) {
      this.missedBytes -= this.missed.shift()!.size;
    }
  }

  /** Attaches a stream: the start event, what was missed, then what comes (and the end). */
  attach(stream: ConnectStream): void {
    const a: Attached = { stream, send: (event) => stream.send({ event }) };
    a.send({ start: { pid: this.pid } });
    for (const { event } of this.missed.splice(0)) a.send(event);
    this.missedBytes = 0;
    if (this.end) {
      a.send({ end: this.end });
      this.endSeen = true;
      stream.end();
      return;
    }
    this.attached.add(a);
    stream.onClose(() => this.attached.delete(a));
  }

  /** The exec ended: the end event to the attached streams (or kept for a later `Connect`). */
  finish(exit: ExecExit, sandboxGone: boolean): void {
    this.end = endEvent(exit);
    for (const a of this.attached) {
      if (sandboxGone) {
        a.stream.abort();
        continue;
      }
      a.send({ end: this.end });
      a.stream.end();
      this.endSeen = true;
    }
    this.attached.clear();
  }
}

/** The processes of one sandbox. */
class SandboxProcesses {
  readonly byPid = new Map<number, EnvdProcess>();
  nextPid = 1;
  /** Starts under way (counted against the limit). */
  starting = 0;

  running(): EnvdProcess[] {
    return [...this.byPid.values()].filter((p) => !p.end);
  }
}

export interface ProcessesDeps {
  exec: ExecService;
  /** Whether the sandbox is gone now (its processes' streams are then cut, not ended). */
  gone(sandboxId: string): Promise<boolean>;
  logger: Logger;
}

export class EnvdProcesses {
  private readonly sandboxes = new Map<string, SandboxProcesses>();

  constructor(private readonly deps: ProcessesDeps) {}

  private table(sandboxId: string): SandboxProcesses {
    let table = this.sandboxes.get(sandboxId);
    if (!table) {
      table = new SandboxProcesses();
      this.sandboxes.set(sandboxId, table);
    }
    return table;
  }

  /**
   * `Start`: runs the process, then streams its events on the stream `open` starts once it runs. The process is
   * killed when the call's deadline passes; a stream that merely disconnects leaves it running.
   */
  async start(
    sb: EnvdSandbox,
    request: Record<string, unknown>,
    open: (onDeadline?: () => void) => ConnectStream,
  ): Promise<void> {
    const processMsg = sub(request, 'process');
    if (!processMsg) throw new ConnectError('invalid_argument', 'process is required: {cmd, args, envs, cwd}');
    const cmd = str(processMsg, 'cmd');
    if (cmd === '') throw new ConnectError('invalid_argument', 'process.cmd must name the program to run');
    const config: ProcessConfig = {
      cmd,
      args: strings(processMsg, 'args'),
      envs: stringMap(processMsg, 'envs'),
      ...(typeof processMsg.cwd === 'string' && processMsg.cwd !== '' ? { cwd: processMsg.cwd } : {}),
    };
    const tag = request.tag === undefined || request.tag === null ? undefined : str(request, 'tag');
    const ptyMsg = sub(request, 'pty');
    const size = ptyMsg ? sub(ptyMsg, 'size') : undefined;
    const stdin = ptyMsg !== undefined || request.stdin === true;
    for (const word of [config.cmd, ...config.args, ...Object.values(config.envs), config.cwd ?? '']) {
      if (word.includes('\0'))
        throw new ConnectError('invalid_argument', 'commands, arguments and envs must not contain NUL');
    }
    for (const name of Object.keys(config.envs)) {
      if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(name)) {
        throw new ConnectError('invalid_argument', `env name "${name}" is not a valid variable name`);
      }
    }
    const table = this.table(sb.job.id);
    if (table.running().length + table.starting >= MAX_PROCESSES_PER_SANDBOX) {
      throw new ConnectError(
        'resource_exhausted',
        `this sandbox already runs ${MAX_PROCESSES_PER_SANDBOX} processes through envd, the most it may; kill one first`,
      );
    }
    const term = config.envs.TERM && /^[A-Za-z0-9._+-]{1,64}$/.test(config.envs.TERM) ? config.envs.TERM : 'xterm';
    table.starting++;
    let run: ExecRun;
    try {
      ({ run } = await this.deps.exec.start(sb.userId, sb.job.id, {
        command: commandLine(config),
        env: { ...(sb.envs ?? {}), ...config.envs },
        ...(config.cwd !== undefined ? { cwd: config.cwd } : {}),
        timeoutS: MAX_EXEC_TIMEOUT_S,
        stdin,
        ...(ptyMsg ? { tty: { term, cols: clampSize(size?.cols, 80), rows: clampSize(size?.rows, 24) } } : {}),
      }));
    } finally {
      table.starting--;
    }
    const pid = table.nextPid++;
    const proc = new EnvdProcess(pid, config, tag, ptyMsg !== undefined, stdin, run);
    table.byPid.set(pid, proc);
    run.onOutput((stream, data) => proc.output(stream, data));
    // As envd: a command whose Start deadline (the SDK's timeoutMs, 60 s unless 0) passes is killed.
    const stream = open(() => {
      proc.killed = true;
      run.kill();
    });
    proc.attach(stream);
    void run.exited.then(async (exit) => {
      // A sandbox being killed ends its processes too (killed, or exited by the signal): its streams are then cut.
      const gone = await sandboxEnded(exit, () => this.deps.gone(sb.job.id), proc.killed);
      this.deps.logger.info({ jobId: sb.job.id, pid, exit, sandboxGone: gone }, 'envd process ended');
      proc.finish(exit, gone);
      const forget = () => {
        if (table.byPid.get(pid) === proc) table.byPid.delete(pid);
        if (table.byPid.size === 0 && this.sandboxes.get(sb.job.id) === table) this.sandboxes.delete(sb.job.id);
      };
      if (proc.endSeen || gone) forget();
      else setTimeout(forget, ENDED_KEEP_MS).unref();
    });
  }

  /** `Connect`: re-attaches a stream to a process (what it missed first). */
  connect(sb: EnvdSandbox, request: Record<string, unknown>, open: () => ConnectStream): void {
    const proc = this.select(sb, request, true);
    proc.attach(open());
  }

  list(sb: EnvdSandbox): unknown {
    const table = this.sandboxes.get(sb.job.id);
    return {
      processes: (table?.running() ?? []).map((p) => ({
        config: {
          cmd: p.config.cmd,
          args: p.config.args,
          envs: p.config.envs,
          ...(p.config.cwd !== undefined ? { cwd: p.config.cwd } : {}),
        },
        pid: p.pid,
        ...(p.tag !== undefined ? { tag: p.tag } : {}),
      })),
    };
  }

  async sendInput(sb: EnvdSandbox, request: Record<string, unknown>): Promise<unknown> {
    const proc = this.select(sb, request);
    const input = sub(request, 'input') ?? {};
    const data = input.pty !== undefined ? bytes(input, 'pty') : bytes(input, 'stdin');
    if (data.length > MAX_INPUT_BYTES) {
      throw new ConnectError('invalid_argument', `one input may carry at most ${MAX_INPUT_BYTES} bytes`);
    }
    if (!proc.stdin) {
      throw new ConnectError('failed_precondition', `process ${proc.pid} was started without stdin (pass stdin: true)`);
    }
    if (!(await proc.run.input(data))) throw new ConnectError('not_found', `process ${proc.pid} has ended`);
    return {};
  }

  closeStdin(sb: EnvdSandbox, request: Record<string, unknown>): unknown {
    this.select(sb, request).run.endInput();
    return {};
  }

  /**
   * `SendSignal`: SIGKILL and SIGTERM both end the process's group with SIGKILL (the exec protocol has no other
   * signal; a program that would clean up on SIGTERM does not get the chance).
   */
  sendSignal(sb: EnvdSandbox, request: Record<string, unknown>): unknown {
    const proc = this.select(sb, request);
    const signal = request.signal;
    if (signal !== 'SIGNAL_SIGKILL' && signal !== 'SIGNAL_SIGTERM' && signal !== 9 && signal !== 15) {
      throw new ConnectError('invalid_argument', 'signal must be SIGNAL_SIGKILL or SIGNAL_SIGTERM');
    }
    proc.killed = true;
    proc.run.kill();
    return {};
  }

  /** `Update`: resizes a PTY. */
  update(sb: EnvdSandbox, request: Record<string, unknown>): unknown {
    const proc = this.select(sb, request);
    const size = sub(sub(request, 'pty') ?? {}, 'size');
    if (size) {
      if (!proc.pty) throw new ConnectError('failed_precondition', `process ${proc.pid} has no PTY to resize`);
      proc.run.resize(clampSize(size.cols, 80), clampSize(size.rows, 24));
    }
    return {};
  }

  /** The process a ProcessSelector names (`{process: {pid} | {tag}}`); ended ones only for `Connect`. */
  private select(sb: EnvdSandbox, request: Record<string, unknown>, ended = false): EnvdProcess {
    const selector = sub(request, 'process');
    if (!selector) throw new ConnectError('invalid_argument', 'process is required: {pid} or {tag}');
    const table = this.sandboxes.get(sb.job.id);
    const found = (p: EnvdProcess | undefined) => p && (ended ? !p.end || !p.endSeen : !p.end);
    if (selector.tag !== undefined && selector.tag !== null) {
      const tag = str(selector, 'tag');
      const proc = [...(table?.byPid.values() ?? [])].find((p) => p.tag === tag && found(p));
      if (!proc) throw new ConnectError('not_found', `process with tag "${tag}" not found`);
      return proc;
    }
    const pid = uint(selector, 'pid');
    const proc = table?.byPid.get(pid);
    if (!proc || !found(proc)) throw new ConnectError('not_found', `process with pid ${pid} not found`);
    return proc;
  }
}

/** How long an exit that looks like a kill waits for the sandbox's end to be recorded (its agent reports it). */
const KILL_SETTLE_MS = 5000;

/**
 * Whether an exec ended because its sandbox did: asked at once, and for an exit by a signal (or none reported) again
 * for a moment, as the agent reports the sandbox's end just after its processes'.
 */
export async function sandboxEnded(exit: ExecExit, gone: () => Promise<boolean>, killed = false): Promise<boolean> {
  const check = () => gone().catch(() => false);
  if (await check()) return true;
  if (killed) return false;
  // A sandbox's end kills its processes with SIGKILL (137); other exits are the command's own and end at once.
  const signalled = exit.reason !== 'exited' || exit.exitCode === null || exit.exitCode === 137;
  if (!signalled) return false;
  for (const until = Date.now() + KILL_SETTLE_MS; Date.now() < until; ) {
    await new Promise((r) => setTimeout(r, 250));
    if (await check()) return true;
  }
  return false;
}

function clampSize(value: unknown, fallback: number): number {
  const n = typeof value === 'string' ? Number(value) : value;
  if (typeof n !== 'number' || !Number.isInteger(n) || n < 1) return fallback;
  return Math.min(n, 10_000);
}
