// exec: a command run in a job's running sandbox. The service finds the caller's job (by id, by name, or the sandbox
// on a workspace of that name), hands the command to the agent holding it, feeds it stdin, and passes its stdout and
// stderr on apart: collected into one JSON answer, or streamed as newline-delimited JSON frames (base64 bytes, then
// an exit frame). Output is acknowledged to the agent only once it has been passed on (written to a socket that
// took it, or kept for the JSON answer), so the bytes in flight stay bounded by the protocol's window however much
// a command writes and however slowly its client reads; stdin is read from the request only as the agent takes it.
import type { ServerResponse } from 'node:http';
import type { Readable } from 'node:stream';
import {
  DEFAULT_EXEC_TIMEOUT_S,
  EXEC_CHUNK,
  EXEC_STREAM_TYPE,
  EXEC_WINDOW,
  type ExecFrame,
  type ExecReason,
  type ExecRequest,
  type ExecResult,
  type ExecTty,
  isTerminal,
  MAX_EXEC_JSON_BYTES,
  MagsError,
} from '@mags/api';
import type { Logger } from 'pino';
import type { AgentRegistry, ExecChannel, ExecReport } from '../agents/registry.js';
import type { Job, Store } from '../store/index.js';
import type { SandboxLifecycle } from './lifecycle.js';

/** Longest line of a streamed request (its first line, the parameters, or one stdin frame). */
export const MAX_EXEC_LINE = 4 * 1024 * 1024;

export interface ExecServiceDeps {
  store: Store;
  agents: AgentRegistry;
  logger: Logger;
  /** Wakes a sleeping sandbox (or waits for a starting one). */
  lifecycle: SandboxLifecycle;
  /** Commands one user may run at once (default MAX_EXECS_PER_USER). */
  maxPerUser?: number;
  /** Starts a sandbox that stays up on the caller's persistent workspace `name` (as `mags new NAME`). */
  startSandbox(userId: string, name: string): Promise<Job>;
}

export type ExecExit = { exitCode: number | null; reason: ExecReason | 'error'; error?: string };
type Exit = ExecExit;
export type ExecOutputHandler = (stream: 'stdout' | 'stderr', data: Buffer) => void;
type OutputHandler = ExecOutputHandler;

/** What a caller other than the HTTP route (the SSH gateway) gives to open an exec. */
export interface ExecOpenRequest {
  /** Run as `/bin/sh -c command`. */
  command: string;
  env?: Record<string, string>;
  cwd?: string;
  timeoutS?: number;
  /** Whether stdin will be sent (`input`, then `endInput`); without, the command's stdin is empty. */
  stdin: boolean;
  /** A terminal made inside the sandbox, of this type and size (all output then comes as stdout). */
  tty?: ExecTty;
}

/**
 * One exec on its agent, seen from the server: `onOutput` receives its bytes (each to be acknowledged with `ack`
 * once passed on), `input`/`endInput` feed its stdin under flow control, `resize` its terminal, `kill` ends it, and
 * `exited` resolves with how it ended.
 */
export class ExecRun {
  /** Resolves once the command runs; rejects (409, 500, 503) when it never did. */
  readonly started: Promise<void>;
  readonly exited: Promise<Exit>;
  private handler?: OutputHandler;
  private readonly early: Array<[stream: 'stdout' | 'stderr', data: Buffer]> = [];
  private channel!: ExecChannel;
  private inputUnacked = 0;
  private inputWaiter?: () => void;
  private over = false;

  constructor(open: (report: (m: ExecReport) => void) => ExecChannel, job: Job) {
    let start!: { resolve(): void; reject(err: MagsError): void };
    let exit!: (e: Exit) => void;
    this.started = new Promise((resolve, reject) => (start = { resolve, reject }));
    this.exited = new Promise((resolve) => (exit = resolve));
    this.started.catch(() => {});
    this.channel = open((m) => {
      switch (m.type) {
        case 'execStarted':
          return start.resolve();
        case 'execOutput': {
          const data = Buffer.from(m.data, 'base64');
          if (this.handler) this.handler(m.stream, data);
          else this.early.push([m.stream, data]);
          return;
        }
        case 'execInputAck':
          this.inputUnacked = Math.max(0, this.inputUnacked - m.bytes);
          if (this.inputUnacked < EXEC_WINDOW) this.wakeInput();
          return;
        case 'execExited': {
          this.over = true;
          this.wakeInput();
          if (m.reason === 'refused') {
            start.reject(
              MagsError.conflict(
                `job ${job.id} has no running sandbox to run the command in (it is ending); try again`,
              ),
            );
          } else if (m.reason === 'error') {
            start.reject(new MagsError(500, 'sandbox_failed', m.message ?? 'the command could not be run'));
          }
          start.resolve(); // a no-op if it settled
          const reason = m.reason === 'refused' ? 'error' : m.reason;
          return exit({ exitCode: m.exitCode, reason, ...(m.message ? { error: m.message } : {}) });
        }
      }
    });
  }

  /** Where output goes from now on (output that came before is handed over first). */
  onOutput(handler: OutputHandler): void {
    this.handler = handler;
    for (const [stream, data] of this.early.splice(0)) handler(stream, data);
  }

  ack(bytes: number): void {
    this.channel.ack(bytes);
  }

  kill(): void {
    if (!this.over) this.channel.kill();
  }

  /** Resizes its terminal (an exec opened with `tty`). */
  resize(cols: number, rows: number): void {
    if (!this.over) this.channel.resize(cols, rows);
  }

  /** Sends stdin bytes, waiting while a window's worth is unacknowledged; false once the exec has ended. */
  async input(data: Buffer): Promise<boolean> {
    for (let at = 0; at < data.length; at += EXEC_CHUNK) {
      while (this.inputUnacked >= EXEC_WINDOW && !this.over) await new Promise<void>((r) => (this.inputWaiter = r));
      if (this.over) return false;
      const piece = data.subarray(at, at + EXEC_CHUNK);
      this.inputUnacked += piece.length;
      this.channel.input(piece, false);
    }
    return !this.over;
  }

  endInput(): void {
    if (!this.over) this.channel.input(Buffer.alloc(0), true);
  }

  private wakeInput(): void {
    const wake = this.inputWaiter;
    this.inputWaiter = undefined;
    wake?.();
  }
}

/** Commands one user may have running in sandboxes at once (execs and SSH sessions together); one more is 429. */
export const MAX_EXECS_PER_USER = 256;

export class ExecService {
  /** Running execs by user. */
  private readonly running = new Map<string, number>();

  constructor(private readonly deps: ExecServiceDeps) {}

  /** Runs the command and answers once it has ended, with its output as text (the first MAX_EXEC_JSON_BYTES). */
  async collect(userId: string, ref: string, body: ExecRequest, stdin: Readable | undefined, gone: AbortSignal) {
    const run = await this.open(userId, ref, body, stdin);
    const kept = { stdout: [] as Buffer[], stderr: [] as Buffer[] };
    let size = 0;
    let truncated = false;
    run.onOutput((stream, data) => {
      const room = MAX_EXEC_JSON_BYTES - size;
      if (data.length > room) truncated = true;
      const part = data.length > room ? data.subarray(0, room) : data;
      if (part.length > 0) kept[stream].push(part);
      size += part.length;
      run.ack(data.length);
    });
    const onGone = () => run.kill();
    gone.addEventListener('abort', onGone, { once: true });
    try {
      const exit = await run.exited;
      if (exit.reason === 'error')
        throw new MagsError(500, 'sandbox_failed', exit.error ?? 'the command failed to run');
      const result: ExecResult = {
        exit_code: exit.exitCode,
        stdout: Buffer.concat(kept.stdout).toString('utf8'),
        stderr: Buffer.concat(kept.stderr).toString('utf8'),
        reason: exit.reason,
        truncated,
      };
      return result;
    } finally {
      gone.removeEventListener('abort', onGone);
    }
  }

  /**
   * Runs the command and streams its output on the response `open()` hands over (once the command runs): one JSON
   * frame per line, written only while the socket takes them, the exit frame last. Resolves when the stream ends.
   */
  async stream(
    userId: string,
    ref: string,
    body: ExecRequest,
    stdin: Readable | undefined,
    open: () => ServerResponse,
  ): Promise<void> {
    const run = await this.open(userId, ref, body, stdin);
    const res = open();
    res.writeHead(200, { 'content-type': `${EXEC_STREAM_TYPE}; charset=utf-8`, 'cache-control': 'no-store' });
    // The client learns at once that the command runs, even if it writes nothing for a while.
    res.flushHeaders();
    const frame = (f: ExecFrame) => res.write(`${JSON.stringify(f)}\n`);
    const onClose = () => run.kill();
    res.once('close', onClose);
    // Acknowledged once the socket took the bytes: a client that stops reading stops the command's output.
    let waiting = 0;
    res.on('drain', () => {
      run.ack(waiting);
      waiting = 0;
    });
    run.onOutput((stream, data) => {
      if (frame({ stream, data: data.toString('base64') }) && waiting === 0) run.ack(data.length);
      else waiting += data.length;
    });
    const exit = await run.exited;
    res.off('close', onClose);
    if (!res.writableEnded && !res.destroyed) {
      frame({ exit_code: exit.exitCode, reason: exit.reason, ...(exit.error ? { error: exit.error } : {}) });
      res.end();
    }
  }

  /**
   * The caller's job `ref` with a sandbox up (woken or started if need be), the command started in its sandbox and
   * its stdin pumped from `stdin`. A sandbox that went to sleep just as the command arrived is woken and tried again.
   */
  private async open(userId: string, ref: string, body: ExecRequest, stdin: Readable | undefined): Promise<ExecRun> {
    const { run } = await this.start(userId, ref, {
      command: body.command,
      ...(body.env ? { env: body.env } : {}),
      ...(body.cwd !== undefined ? { cwd: body.cwd } : {}),
      ...(body.timeout_s !== undefined ? { timeoutS: body.timeout_s } : {}),
      stdin: stdin !== undefined,
    });
    if (stdin) void pumpStdin(stdin, run, this.deps.logger);
    return run;
  }

  /**
   * Opens an exec for any caller (the exec route, the SSH gateway): the caller's job `ref` found as the exec route
   * finds it, woken or started if need be, the command started in its sandbox; resolves once it runs, with the job it
   * runs in. A sandbox that was being stopped just as the command arrived is woken and tried again.
   */
  async start(userId: string, ref: string, request: ExecOpenRequest): Promise<{ job: Job; run: ExecRun }> {
    const open = this.running.get(userId) ?? 0;
    if (open >= (this.deps.maxPerUser ?? MAX_EXECS_PER_USER)) {
      throw new MagsError(
        429,
        'too_many_requests',
        `you have ${open} commands running in sandboxes (execs and SSH sessions), the most one user may; wait for one to end`,
      );
    }
    this.running.set(userId, open + 1);
    let started: { job: Job; run: ExecRun } | undefined;
    try {
      started = await this.startOnce(userId, ref, request);
      return started;
    } finally {
      const release = () => {
        const n = (this.running.get(userId) ?? 1) - 1;
        if (n > 0) this.running.set(userId, n);
        else this.running.delete(userId);
      };
      if (started) void started.run.exited.then(release);
      else release();
    }
  }

  private async startOnce(userId: string, ref: string, request: ExecOpenRequest): Promise<{ job: Job; run: ExecRun }> {
    for (let attempt = 1; ; attempt++) {
      const job = await this.target(userId, ref);
      try {
        return { job, run: await this.openOn(job, request) };
      } catch (err) {
        // Refused by an agent whose sandbox had just ended: worth another try only if the job moved on meanwhile
        // (it sleeps without a sandbox now, or was started again), as the agent refuses only once it has said so.
        const refused = err instanceof MagsError && err.status === 409 && err.code === 'conflict';
        const now = refused && attempt < 3 ? await this.deps.store.jobs.get(job.id) : undefined;
        if (!now || (now.status === job.status && now.agent_id === job.agent_id)) throw err;
      }
    }
  }

  private async openOn(job: Job, request: ExecOpenRequest): Promise<ExecRun> {
    const { agents, logger } = this.deps;
    const env = request.env ?? {};
    for (const [key, value] of Object.entries(env)) {
      if (value.includes('\0')) throw MagsError.invalid(`env.${key}: must not contain NUL characters`);
    }
    if (request.command.includes('\0')) throw MagsError.invalid('command: must not contain NUL characters');
    const run = new ExecRun(
      (report) =>
        agents.exec(
          job.agent_id!,
          {
            jobId: job.id,
            command: request.command,
            environment: env,
            ...(request.cwd !== undefined ? { cwd: request.cwd } : {}),
            timeoutS: request.timeoutS ?? DEFAULT_EXEC_TIMEOUT_S,
            stdin: request.stdin,
            ...(request.tty ? { tty: request.tty } : {}),
          },
          report,
        ),
      job,
    );
    await run.started;
    logger.info({ jobId: job.id, tty: request.tty !== undefined }, 'exec started');
    return run;
  }

  /**
   * The caller's job by id or name, else the unfinished job on their workspace of that name, with a sandbox to run
   * in: a running one, or a frozen one (its agent thaws it for the command); a sandbox stopped asleep, or one still
   * starting, is waited for; on a persistent workspace with no sandbox, one is started.
   */
  private async target(userId: string, ref: string): Promise<Job> {
    const { store, lifecycle } = this.deps;
    let job = await store.jobs.findLive(userId, ref);
    if (!job || (isTerminal(job.status) && job.id !== ref.toLowerCase())) {
      const ws = await store.workspaces.get(userId, ref);
      if (ws?.persistent === 1) job = await this.deps.startSandbox(userId, ws.name);
    }
    if (!job) throw MagsError.notFound(`no job or sandbox named "${ref}"`);
    if (isTerminal(job.status)) {
      const hint = job.workspace_id ? `; start one with mags new ${job.workspace_id}` : '';
      throw MagsError.conflict(`job ${job.id} has finished (${job.status}): there is no sandbox to run in${hint}`);
    }
    if (job.status === 'sleeping' && job.agent_id !== null) return job;
    return lifecycle.wake(job);
  }
}

/**
 * Reads a streamed request's stdin frames (`{"stdin":"<base64>"}`, one per line) and passes the bytes on as the agent
 * takes them; the end of the request is the end of stdin. A malformed frame ends stdin (and is logged).
 */
async function pumpStdin(stdin: Readable, run: ExecRun, logger: Logger): Promise<void> {
  let pending: Buffer = Buffer.alloc(0);
  // Once the command has ended, the rest of the request is read and dropped: the request is never destroyed, since
  // its socket still carries the answer's last frame.
  let open = true;
  try {
    for await (const chunk of stdin as AsyncIterable<Buffer>) {
      if (!open) continue;
      pending = pending.length ? Buffer.concat([pending, chunk]) : chunk;
      let nl: number;
      while (open && (nl = pending.indexOf(10)) !== -1) {
        const line = pending.subarray(0, nl);
        pending = pending.subarray(nl + 1);
        open = await run.input(stdinFrame(line));
      }
      if (pending.length > MAX_EXEC_LINE) throw new Error(`a stdin frame is longer than ${MAX_EXEC_LINE} bytes`);
    }
    if (open && pending.length > 0) open = await run.input(stdinFrame(pending));
    run.endInput();
  } catch (err) {
    logger.warn({ err }, 'exec stdin ended early');
    run.endInput();
    stdin.resume();
  }
}

function stdinFrame(line: Buffer): Buffer {
  const text = line.toString('utf8').trim();
  if (text === '') return Buffer.alloc(0);
  const frame = JSON.parse(text) as { stdin?: unknown };
  if (typeof frame !== 'object' || frame === null || typeof frame.stdin !== 'string') {
    throw new Error('a stdin frame is not {"stdin": "<base64>"}');
  }
  return Buffer.from(frame.stdin, 'base64');
}
