// exec: a command run in a running sandbox, through the streaming form of POST /api/v1/mags-jobs/{id}/exec
// (newline-delimited JSON both ways). Output is read only as fast as the caller consumes it, so a slow consumer holds
// the command back instead of filling memory; stdin is sent as fast as the server takes it. node:http(s), because a
// fetch request body is sent whole before its answer can be read.
import http, { type IncomingMessage } from 'node:http';
import https from 'node:https';
import type { Readable } from 'node:stream';
import { EXEC_STREAM_TYPE, type ExecFrame, type ExecReason, type ExecRequest } from '@mags/api';
import { errorFromResponse, MagsApiError } from './errors.js';
import { connectionError, type Transport } from './http.js';

/** Options of `exec` and `execStream`. */
export interface ExecOptions {
  /** Seconds before the command's processes are killed (server default 3600). */
  timeoutS?: number;
  /** Environment variables for the command, over the sandbox's own. */
  env?: Record<string, string>;
  /** Working directory inside the sandbox (absolute; default /root). */
  cwd?: string;
  /** The command's stdin (default: empty). */
  stdin?: Readable | Buffer | string;
  /** Aborting kills the command. */
  signal?: AbortSignal;
}

/** What `exec` answers once the command has ended. */
export interface ExecResult {
  /** The command's exit code (128+n when killed by signal n). */
  exitCode: number | null;
  stdout: string;
  stderr: string;
  /** `exited`, or `timeout` when it was killed at `timeoutS`. */
  reason: ExecReason;
}

/** Bytes the command wrote, on one of its two streams. */
export interface ExecChunk {
  stream: 'stdout' | 'stderr';
  data: Buffer;
}

/** How the command ended. */
export interface ExecEnd {
  exitCode: number | null;
  reason: ExecReason;
}

/** Longest line the server sends (a frame of 256 KiB of base64 and its JSON). */
const MAX_FRAME = 4 * 1024 * 1024;
/** Stdin bytes per frame. */
const STDIN_FRAME = 192 * 1024;

/**
 * A command's output as it is written: iterate it for chunks (stdout and stderr apart, each in order), then read
 * `end` (or await `done`) for its exit code.
 * ```ts
 * const run = mags.execStream('dev', 'npm test');
 * for await (const { stream, data } of run) (stream === 'stdout' ? process.stdout : process.stderr).write(data);
 * console.log((await run.done).exitCode);
 * ```
 */
export class ExecStream implements AsyncIterable<ExecChunk> {
  /** How it ended, once iteration is over. */
  end?: ExecEnd;
  /** Resolves with how it ended once iteration is over; rejects if it failed. */
  readonly done: Promise<ExecEnd>;
  private settle!: { resolve(e: ExecEnd): void; reject(err: unknown): void };
  private iterated = false;
  private request?: http.ClientRequest;

  constructor(
    private readonly http: Transport,
    private readonly path: string,
    private readonly body: ExecRequest,
    private readonly options: ExecOptions,
    private readonly ref: string,
  ) {
    this.done = new Promise((resolve, reject) => (this.settle = { resolve, reject }));
    this.done.catch(() => {});
  }

  async *[Symbol.asyncIterator](): AsyncIterator<ExecChunk> {
    if (this.iterated) throw new Error('an ExecStream can be iterated once');
    this.iterated = true;
    try {
      const res = await this.open();
      let pending = '';
      for await (const chunk of res as AsyncIterable<Buffer>) {
        pending += chunk.toString('utf8');
        let nl: number;
        while ((nl = pending.indexOf('\n')) !== -1) {
          const line = pending.slice(0, nl);
          pending = pending.slice(nl + 1);
          if (line.trim() === '') continue;
          const frame = JSON.parse(line) as ExecFrame;
          if ('stream' in frame) {
            yield { stream: frame.stream, data: Buffer.from(frame.data, 'base64') };
            continue;
          }
          if (frame.reason === 'error') {
            throw new MagsApiError(500, 'sandbox_failed', frame.error ?? 'the command failed to run', {
              requestId: this.ref,
            });
          }
          this.end = { exitCode: frame.exit_code, reason: frame.reason };
          this.settle.resolve(this.end);
          return;
        }
        if (pending.length > MAX_FRAME) throw new Error('the Mags server sent an exec frame that is too long');
      }
      throw new MagsApiError(
        0,
        'network_error',
        `the connection to the Mags server broke before ${this.ref}'s command ended`,
      );
    } catch (err) {
      const e =
        err instanceof MagsApiError || this.options.signal?.aborted ? err : connectionError(this.http.baseUrl, err);
      this.settle.reject(e);
      throw e;
    } finally {
      // Leaving the loop early (break, an error) closes the request, and the server kills the command; after the
      // end, whatever stdin is left is not sent.
      this.request?.destroy();
    }
  }

  private open(): Promise<IncomingMessage> {
    const { options } = this;
    const target = new URL(this.http.url(this.path));
    const client = target.protocol === 'https:' ? https : http;
    const stdin = options.stdin;
    const req = client.request(target, {
      method: 'POST',
      headers: this.http.headers({
        accept: EXEC_STREAM_TYPE,
        'content-type': stdin === undefined ? 'application/json' : EXEC_STREAM_TYPE,
      }),
      signal: options.signal,
    });
    this.request = req;
    return new Promise<IncomingMessage>((resolve, reject) => {
      const headers = setTimeout(() => {
        req.destroy();
        reject(
          new MagsApiError(0, 'timeout', `the Mags server at ${this.http.baseUrl} did not start the command in time`, {
            requestId: this.ref,
          }),
        );
      }, this.http.options.timeoutMs);
      req.on('error', (err) => {
        clearTimeout(headers);
        reject(err);
      });
      req.on('response', (res) => {
        clearTimeout(headers);
        if (res.statusCode === 200) return resolve(res);
        const parts: Buffer[] = [];
        res.on('data', (c: Buffer) => parts.push(c));
        res.on('error', reject);
        res.on('end', () => {
          let body: unknown;
          try {
            body = JSON.parse(Buffer.concat(parts).toString('utf8'));
          } catch {
            body = undefined;
          }
          const err = errorFromResponse(res.statusCode ?? 0, res.statusMessage ?? '', body, this.http.baseUrl);
          reject(new MagsApiError(err.status, err.code, err.message, { requestId: this.ref }));
        });
      });
      if (stdin === undefined) {
        req.end(JSON.stringify(this.body));
        return;
      }
      req.write(`${JSON.stringify(this.body)}\n`);
      void sendStdin(req, stdin).catch((err) => req.destroy(err as Error));
    });
  }
}

/** Writes stdin as `{"stdin":"<base64>"}` lines, waiting whenever the socket is full, then ends the request. */
async function sendStdin(req: http.ClientRequest, stdin: Readable | Buffer | string): Promise<void> {
  const frame = (bytes: Buffer) => `${JSON.stringify({ stdin: bytes.toString('base64') })}\n`;
  const write = async (bytes: Buffer) => {
    for (let at = 0; at < bytes.length; at += STDIN_FRAME) {
      if (req.destroyed) throw new Error('the command has ended');
      if (!req.write(frame(bytes.subarray(at, at + STDIN_FRAME)))) {
        await new Promise<void>((resolve, reject) => {
          req.once('drain', resolve);
          req.once('close', () => reject(new Error('the request closed')));
        });
      }
    }
  };
  if (typeof stdin === 'string' || Buffer.isBuffer(stdin)) await write(Buffer.from(stdin));
  else {
    for await (const chunk of stdin as AsyncIterable<Buffer | string>) {
      // Stop reading a source nobody takes any more (the command ended): the loop's end releases it.
      if (req.destroyed) return;
      await write(Buffer.from(chunk));
    }
  }
  if (!req.destroyed) req.end();
}
