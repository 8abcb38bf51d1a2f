// One `exec` order: a command run in a job's running sandbox, its stdout and stderr streamed to the server apart and
// in order under flow control (at most EXEC_WINDOW unacknowledged bytes, so a 100 MB output never sits in memory),
// its stdin fed from the server's `execInput`s, its timeout, and what happens to its processes when it ends.
import {
  type AgentToServer,
  EXEC_CHUNK,
  EXEC_WINDOW,
  type ExecEnd,
  type ExecOrder,
  type ServerToAgent,
} from '@mags/api';
import type { Logger } from 'pino';
import type { ExecProcess, Sandbox } from './sandbox.js';

/**
 * After the command exits, how long its output pipes may stay quiet before the exec ends anyway: a process it left
 * in the background on purpose (`nohup … &`) may hold them open for ever.
 */
const LINGER_MS = 300;

/**
 * After the command exits, when its process group is hung up: long enough for a `nohup` started just before the end
 * to set the hangup aside on a loaded machine (25 ms was not: a forked shell had not reached it under load 15).
 */
const HANGUP_DELAY_MS = 250;

type Send = (message: AgentToServer) => void;
type ExecMessage = Extract<ServerToAgent, { type: 'execInput' | 'execAck' | 'execKill' | 'execResize' }>;

const SIGNALS: Partial<Record<NodeJS.Signals, number>> = { SIGHUP: 1, SIGINT: 2, SIGKILL: 9, SIGPIPE: 13, SIGTERM: 15 };

export class ExecSession {
  private proc?: ExecProcess;
  private unacked = 0;
  private paused = false;
  private ended = false;
  private endReason?: ExecEnd;
  private timer?: NodeJS.Timeout;
  /** Called when flow control lets the output flow again. */
  private resumed: () => void = () => {};
  private readonly log: Logger;

  constructor(
    private readonly order: ExecOrder,
    private readonly send: Send,
    logger: Logger,
    /** Called once, after the last message about this exec was sent. */
    private readonly onDone: () => void,
  ) {
    this.log = logger.child({ execId: order.execId, jobId: order.jobId });
  }

  get jobId(): string {
    return this.order.jobId;
  }

  /** Runs the command in `sandbox` (undefined: the job has no running sandbox here, and the exec is refused). */
  start(sandbox: Sandbox | undefined, jobEnv: Record<string, string>): void {
    const { order } = this;
    if (!sandbox?.alive) {
      return this.finish(null, 'refused', `job ${order.jobId} has no running sandbox on this agent`);
    }
    try {
      this.proc = sandbox.exec(order.command, { ...jobEnv, ...order.environment }, order.cwd ?? '/root', order.tty);
    } catch (err) {
      this.log.error({ err }, 'could not start an exec');
      return this.finish(null, 'error', 'the sandbox runtime could not start the command');
    }
    const { child } = this.proc;
    if (!order.stdin) child.stdin.end();
    this.send({ type: 'execStarted', execId: order.execId });
    this.timer = setTimeout(() => this.kill('timeout'), order.timeoutS * 1000);
    let exit: number | null | undefined;
    let open = 2;
    let quiet: NodeJS.Timeout | undefined;
    // Once the command has exited, output that stops flowing (and is not held back by flow control) is the end.
    const linger = () => {
      clearTimeout(quiet);
      if (exit === undefined || this.paused) return;
      quiet = setTimeout(() => {
        if (this.paused) return; // held back by flow control, not quiet: the acknowledgement re-arms this
        child.stdout.destroy();
        child.stderr.destroy();
        done();
      }, LINGER_MS);
    };
    this.resumed = linger;
    const done = () => {
      clearTimeout(quiet);
      if (exit === undefined || this.ended) return;
      this.finish(exit, this.endReason ?? 'exited');
    };
    for (const stream of ['stdout', 'stderr'] as const) {
      const readable = child[stream];
      readable.on('data', (chunk: Buffer) => {
        this.forward(stream, chunk);
        linger();
      });
      readable.on('close', () => {
        if (--open === 0) done();
      });
      readable.on('error', () => {});
    }
    child.on('error', (err) => {
      this.log.error({ err }, 'the exec runtime failed');
      if (exit === undefined) exit = null;
      done();
    });
    child.on('exit', (code, signal) => {
      exit = code ?? (signal ? 128 + (SIGNALS[signal] ?? 0) : null);
      // Its processes end with it, unless put in the background on purpose (nohup ignores the hangup, setsid
      // leaves the group). A moment later: a `nohup` the command started just before it ended may not have set the
      // hangup aside yet.
      setTimeout(() => void this.signalGroup('SIGHUP'), HANGUP_DELAY_MS);
      if (open === 0) done();
      else linger();
    });
  }

  /** A message from the server about this exec. */
  handle(message: ExecMessage): void {
    if (message.type === 'execAck') {
      this.unacked = Math.max(0, this.unacked - message.bytes);
      if (this.paused && this.unacked < EXEC_WINDOW) {
        this.paused = false;
        this.proc?.child.stdout.resume();
        this.proc?.child.stderr.resume();
        this.resumed();
      }
    } else if (message.type === 'execInput') {
      const stdin = this.proc?.child.stdin;
      if (!stdin || stdin.writableEnded) return;
      const data = Buffer.from(message.data, 'base64');
      if (data.length > 0) {
        stdin.write(data, () => {
          if (!this.ended) this.send({ type: 'execInputAck', execId: this.order.execId, bytes: data.length });
        });
      }
      if (message.eof) stdin.end();
    } else if (message.type === 'execResize') {
      this.proc?.resize(message.cols, message.rows);
    } else {
      this.kill('killed');
    }
  }

  /** Kills the exec's processes (`timeout`, or `killed` at the server's request); its exit is then reported. */
  kill(reason: 'timeout' | 'killed'): void {
    if (this.ended || this.endReason) return;
    this.endReason = reason;
    this.log.info({ reason }, 'killing an exec');
    if (!this.proc) return this.finish(null, reason);
    // Killed output is not waited for: nothing is held back for a client that left.
    this.paused = false;
    this.proc.child.stdout.resume();
    this.proc.child.stderr.resume();
    // The terminal's session first: killing the tool would only hang it up.
    void this.proc.killTerminal().then(() => this.signalGroup('SIGKILL'));
  }

  /**
   * Signals the command's process group (its session: what it started is in it unless moved out on purpose); before
   * the command ran, the runtime's own group.
   */
  private async signalGroup(signal: NodeJS.Signals): Promise<void> {
    if (!this.proc) return;
    const group = (await this.proc.group) ?? this.proc.child.pid;
    if (group === undefined) return;
    try {
      process.kill(-group, signal);
    } catch {
      /* the group is empty */
    }
  }

  /** Sends output in chunks of at most EXEC_CHUNK, pausing the pipes while EXEC_WINDOW bytes are unacknowledged. */
  private forward(stream: 'stdout' | 'stderr', chunk: Buffer): void {
    if (this.ended) return;
    for (let at = 0; at < chunk.length; at += EXEC_CHUNK) {
      const piece = chunk.subarray(at, at + EXEC_CHUNK);
      this.send({ type: 'execOutput', execId: this.order.execId, stream, data: piece.toString('base64') });
      this.unacked += piece.length;
    }
    if (this.unacked >= EXEC_WINDOW && !this.paused && !this.endReason) {
      this.paused = true;
      this.proc?.child.stdout.pause();
      this.proc?.child.stderr.pause();
    }
  }

  private finish(exitCode: number | null, reason: ExecEnd, message?: string): void {
    if (this.ended) return;
    this.ended = true;
    clearTimeout(this.timer);
    this.send({ type: 'execExited', execId: this.order.execId, exitCode, reason, ...(message ? { message } : {}) });
    this.log.debug({ exitCode, reason }, 'exec ended');
    this.onDone();
  }
}
