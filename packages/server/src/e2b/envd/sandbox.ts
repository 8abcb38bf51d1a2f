// What envd knows of an E2B sandbox (from E2bSandboxes.resolve), and the in-sandbox helper run as an exec: its
// JSON reply read from the head of its stdout, what follows handed on under the exec's flow control.
import { MAX_EXEC_TIMEOUT_S, MagsError } from '@mags/api';
import type { ExecExit, ExecRun, ExecService } from '../../jobs/exec.js';
import type { Job } from '../../store/index.js';
import { type ConnectCode, ConnectError } from './connect.js';
import { HELPER_COMMAND } from './helper.js';

/** An E2B sandbox as envd serves it. */
export interface EnvdSandbox {
  job: Job;
  userId: string;
  envdToken: string;
  /** The sandbox's environment (E2B's `envVars` at create), given to every process. */
  envs?: Record<string, string>;
}

export type ResolveSandbox = (sandboxId: string) => Promise<EnvdSandbox | undefined>;

/** The answer for a sandbox that is unknown, another user's, or ended: 502 as E2B's proxy gives. */
export function goneError(sandboxId: string): ConnectError {
  return new ConnectError('unavailable', `sandbox "${sandboxId}" was not found or is not running`, 502);
}

const CODES = new Set<ConnectCode>([
  'invalid_argument',
  'not_found',
  'already_exists',
  'permission_denied',
  'resource_exhausted',
  'failed_precondition',
  'unknown',
]);
/** Longest reply line the helper may write (a ListDir of many entries). */
const MAX_REPLY_BYTES = 64 * 1024 * 1024;
const MAX_STDERR = 16 * 1024;

/** A MagsError from ExecService (no sandbox to run in, too many commands) as a Connect error. */
export function execError(err: unknown, sandboxId: string): unknown {
  if (!(err instanceof MagsError)) return err;
  if (err.status === 404 || err.status === 409) return goneError(sandboxId);
  if (err.status === 429) return new ConnectError('resource_exhausted', err.message);
  return new ConnectError('unavailable', err.message);
}

/**
 * One run of the helper: `reply` resolves with its JSON answer (`ok` value) or rejects with its ConnectError;
 * `onData` then receives the bytes after it (each to be passed to `ack` once taken), `exited` when it ended.
 */
export class HelperRun {
  readonly reply: Promise<unknown>;
  private dataHandler?: (data: Buffer) => void;
  private early: Buffer[] = [];
  private head: Buffer[] = [];
  private headSize = 0;
  private replied = false;
  private stderr = '';

  private constructor(
    readonly run: ExecRun,
    settle: { resolve(v: unknown): void; reject(e: unknown): void },
  ) {
    this.reply = new Promise<unknown>((resolve, reject) => {
      settle.resolve = resolve;
      settle.reject = reject;
    });
    this.reply.catch(() => {});
  }

  static async open(exec: ExecService, sb: EnvdSandbox, request: object, stdin: boolean): Promise<HelperRun> {
    let run: ExecRun;
    try {
      ({ run } = await exec.start(sb.userId, sb.job.id, {
        command: HELPER_COMMAND,
        env: { PYTHONIOENCODING: 'utf-8', HOME: '/root' },
        timeoutS: MAX_EXEC_TIMEOUT_S,
        stdin: true,
      }));
    } catch (err) {
      throw execError(err, sb.job.id);
    }
    const settle = { resolve: (_: unknown) => {}, reject: (_: unknown) => {} };
    const helper = new HelperRun(run, settle);
    run.onOutput((stream, data) => helper.output(stream, data, settle));
    void run.exited.then((exit) => helper.exit(exit, settle));
    await run.input(Buffer.from(`${JSON.stringify(request)}\n`, 'utf8'));
    if (!stdin) run.endInput();
    return helper;
  }

  /** Where the bytes after the reply go (those that came already first); each is acknowledged by the handler. */
  onData(handler: (data: Buffer) => void): void {
    this.dataHandler = handler;
    for (const data of this.early.splice(0)) handler(data);
  }

  ack(bytes: number): void {
    this.run.ack(bytes);
  }

  private output(
    stream: 'stdout' | 'stderr',
    data: Buffer,
    settle: { resolve(v: unknown): void; reject(e: unknown): void },
  ) {
    if (stream === 'stderr') {
      if (this.stderr.length < MAX_STDERR) this.stderr += data.toString('utf8').slice(0, MAX_STDERR);
      this.run.ack(data.length);
      return;
    }
    if (this.replied) return this.deliver(data);
    const nl = data.indexOf(10);
    if (nl === -1) {
      this.head.push(data);
      this.headSize += data.length;
      this.run.ack(data.length);
      if (this.headSize > MAX_REPLY_BYTES) {
        this.replied = true;
        settle.reject(new ConnectError('resource_exhausted', 'the answer from inside the sandbox is too large'));
        this.run.kill();
      }
      return;
    }
    this.head.push(data.subarray(0, nl));
    this.run.ack(nl + 1);
    this.replied = true;
    const line = Buffer.concat(this.head).toString('utf8');
    this.head = [];
    try {
      const parsed = JSON.parse(line) as { ok?: unknown; error?: { code?: unknown; message?: unknown } };
      if (parsed.error) {
        const code = CODES.has(parsed.error.code as ConnectCode) ? (parsed.error.code as ConnectCode) : 'unknown';
        settle.reject(new ConnectError(code, String(parsed.error.message ?? 'the operation failed in the sandbox')));
      } else settle.resolve(parsed.ok);
    } catch {
      settle.reject(new ConnectError('unknown', 'the sandbox answered the filesystem call with something unreadable'));
    }
    if (nl + 1 < data.length) this.deliver(data.subarray(nl + 1));
  }

  private deliver(data: Buffer): void {
    if (this.dataHandler) this.dataHandler(data);
    else this.early.push(data);
  }

  private exit(exit: ExecExit, settle: { reject(e: unknown): void }): void {
    if (this.replied) return;
    this.replied = true;
    const why = this.stderr.trim().split('\n').slice(-3).join(' ').slice(0, 500);
    if (exit.reason === 'exited' && exit.exitCode === 127) {
      settle.reject(
        new ConnectError('failed_precondition', "the sandbox's image has no python3, which envd's file calls need"),
      );
    } else {
      settle.reject(
        new ConnectError(
          'unknown',
          `the filesystem call ended inside the sandbox without an answer${why ? `: ${why}` : ` (${exit.reason})`}`,
        ),
      );
    }
  }
}
