// Follows a job's output live over Server-Sent Events (GET …/logs?follow=true): every line once, in order,
// until the job ends. A dropped connection is resumed after the last line seen, so nothing is lost or repeated.
import type { LogEntry, JobStatus as WireJobStatus } from '@mags/api';
import { MagsApiError, MagsConnectionError } from './errors.js';
import type { Transport } from './http.js';
import { connectionError } from './http.js';
import { fromWireJob, type Job } from './jobs.js';
import { SseParser } from './sse.js';

/** Consecutive failed (re)connections before giving up. */
const MAX_RETRIES = 5;
/** The server sends a keep-alive every 15 s; this much silence means the connection is dead. */
const IDLE_MS = 45_000;

/**
 * A job's output, followed live. Iterate it with `for await`; iteration ends when the job ends, after its last line.
 * Then `status` holds the job's final state (also the value of `done`).
 *
 * ```ts
 * const follower = mags.stream(requestId);
 * for await (const line of follower) console.log(line.stream, line.message);
 * console.log(follower.status?.exitCode);
 * ```
 * It can be iterated once. `close()` (or `break` in the loop) stops following; the job keeps running.
 */
export class LogFollower implements AsyncIterable<LogEntry> {
  /** The job's final state, once iteration has ended with the job. */
  status: Job | undefined;
  /** Settles once the iteration has ended: with the final state, or with the error that ended it. */
  readonly done: Promise<Job>;
  private resolveDone!: (job: Job) => void;
  private rejectDone!: (err: unknown) => void;
  private readonly abort = new AbortController();
  private started = false;
  /** seq of the last line delivered. */
  private lastSeq: number;

  constructor(
    private readonly transport: Transport,
    private readonly id: string,
    after = 0,
  ) {
    this.lastSeq = after;
    this.done = new Promise<Job>((resolve, reject) => {
      this.resolveDone = resolve;
      this.rejectDone = reject;
    });
    // Nobody has to await `done`; an error still reaches whoever iterates.
    this.done.catch(() => undefined);
  }

  /** Stops following (the job is not stopped). */
  close(): void {
    this.abort.abort();
  }

  [Symbol.asyncIterator](): AsyncIterator<LogEntry> {
    if (this.started) throw new Error('a LogFollower can be iterated only once; call stream() again');
    this.started = true;
    return this.run();
  }

  private async *run(): AsyncGenerator<LogEntry, void, undefined> {
    let failures = 0;
    let lastError: unknown;
    // A server that never answered is reported at once; retries are for resuming a stream that was running.
    let connected = false;
    try {
      while (!this.abort.signal.aborted) {
        let res: Response;
        try {
          res = await this.transport.stream(
            `/api/v1/mags-jobs/${encodeURIComponent(this.id)}/logs`,
            { query: { follow: true, after: this.lastSeq }, requestId: this.id, signal: this.abort.signal },
            'text/event-stream',
          );
        } catch (err) {
          if (this.abort.signal.aborted) break;
          if (!connected || !retryable(err) || ++failures > MAX_RETRIES) throw err;
          lastError = err;
          await sleep(150 * 2 ** failures, this.abort.signal);
          continue;
        }
        connected = true;
        const gotAny = { value: false };
        const ended = yield* this.read(res, gotAny);
        if (ended) return;
        if (this.abort.signal.aborted) break;
        // The stream closed before the job ended (a proxy, a server restart): resume after the last line.
        if (gotAny.value) failures = 0;
        if (++failures > MAX_RETRIES) {
          throw lastError instanceof Error ? lastError : connectionError(this.transport.baseUrl, lastError);
        }
        await sleep(150 * 2 ** failures, this.abort.signal);
      }
      this.rejectDone(new Error('stopped following the job before it ended'));
    } catch (err) {
      this.rejectDone(err);
      throw err;
    } finally {
      this.abort.abort();
    }
  }

  /** Reads one SSE response; true when the job's `end` event arrived. */
  private async *read(res: Response, gotAny: { value: boolean }): AsyncGenerator<LogEntry, boolean, undefined> {
    if (!res.body) return false;
    const reader = res.body.getReader();
    const parser = new SseParser();
    let idle: NodeJS.Timeout | undefined;
    const arm = () => {
      clearTimeout(idle);
      idle = setTimeout(() => void reader.cancel().catch(() => undefined), IDLE_MS);
    };
    try {
      for (;;) {
        arm();
        let chunk: Awaited<ReturnType<typeof reader.read>>;
        try {
          chunk = await reader.read();
        } catch {
          return false;
        }
        const events = chunk.done ? parser.end() : parser.push(chunk.value);
        for (const ev of events) {
          if (ev.event === 'log') {
            const entry = JSON.parse(ev.data) as LogEntry;
            if (entry.seq <= this.lastSeq) continue;
            this.lastSeq = entry.seq;
            gotAny.value = true;
            yield entry;
          } else if (ev.event === 'end') {
            const job = fromWireJob(JSON.parse(ev.data) as WireJobStatus);
            this.status = job;
            this.resolveDone(job);
            return true;
          } else if (ev.event === 'error') {
            // A server may explain a failure in-band: `{ error, code }`.
            const body = safeJson(ev.data) as { error?: string; code?: string } | undefined;
            throw new MagsApiError(
              500,
              body?.code ?? 'internal',
              body?.error ?? 'the server failed while following the job',
              {
                requestId: this.id,
              },
            );
          }
        }
        if (chunk.done) return false;
      }
    } finally {
      clearTimeout(idle);
      reader.cancel().catch(() => undefined);
    }
  }
}

/** 429 too: on a resume, the server may still count the stream that just dropped against the caller's follower limit. */
function retryable(err: unknown): boolean {
  return (
    err instanceof MagsConnectionError ||
    (err instanceof MagsApiError &&
      (err.status === 429 || err.status === 502 || err.status === 503 || err.status === 504))
  );
}

function safeJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal.aborted) return resolve();
    const t = setTimeout(done, ms);
    function done() {
      clearTimeout(t);
      signal.removeEventListener('abort', done);
      resolve();
    }
    signal.addEventListener('abort', done, { once: true });
  });
}
