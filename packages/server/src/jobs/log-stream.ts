// Follows a job's output as Server-Sent Events: the stored lines after `after`, then live lines as they
// arrive, each exactly once and in order (`event: log`), then `event: end` with the final JobStatus.
// A follower costs O(1) memory however slowly it reads: live lines are written only while its socket takes them;
// once a write is refused (backpressure), the follower keeps nothing but its last seq, and when the socket drains
// it catches up from the store, where every announced line already is.
import type { ServerResponse } from 'node:http';
import { MagsError, type OutputLine } from '@mags/api';
import type { Logger } from 'pino';
import type { Job, LogRow, Store } from '../store/index.js';
import type { JobEvent, JobEvents } from './events.js';
import { jobStatusView, logEntryView, type UrlOf } from './view.js';
import { hasSettled } from './wait.js';

/** Rows read from the store at a time while catching up: as many as make about PAGE_CHARS, within these bounds. */
const MIN_PAGE_ROWS = 8;
const MAX_PAGE_ROWS = 500;
const PAGE_CHARS = 64 * 1024;
/** Bytes gathered before a write while catching up. */
const WRITE_CHUNK = 64 * 1024;
const HEARTBEAT_MS = 15_000;

/**
 * Pages read from the store at once, server-wide. Followers that fell behind take turns (first come, first served),
 * so however many of them there are, each turn of the event loop does a bounded amount of their work and other
 * requests (/health included) keep being answered. Readers that keep up never need a turn.
 */
const CATCH_UP_TURNS = 4;
let turnsTaken = 0;
const turnQueue: Array<() => void> = [];

/** Waits for a turn to read a page from the store; call the returned function when done. */
async function takeTurn(): Promise<() => void> {
  if (turnsTaken < CATCH_UP_TURNS) turnsTaken++;
  else await new Promise<void>((resolve) => turnQueue.push(resolve));
  let released = false;
  return () => {
    if (released) return;
    released = true;
    const next = turnQueue.shift();
    // The turn passes on after other I/O had a chance (SQLite answers synchronously).
    if (next) setImmediate(next);
    else turnsTaken--;
  };
}

export interface LogStreamDeps {
  store: Store;
  events: JobEvents;
  logger: Logger;
  /** The URL of a subdomain, for the job view of the `end` event. */
  urlOf?: UrlOf;
}

/** A batch's SSE text in pieces of about WRITE_CHUNK, each with the seq of its last line. */
interface Piece {
  text: string;
  lastSeq: number;
}
/** Built once per batch however many followers send it; a follower holds at most one piece in its socket. */
const encoded = new WeakMap<readonly OutputLine[], Piece[]>();
function encodeBatch(lines: readonly OutputLine[]): Piece[] {
  let pieces = encoded.get(lines);
  if (pieces === undefined) {
    pieces = [];
    let parts: string[] = [];
    let size = 0;
    for (const line of lines) {
      const text = encodeLine(line);
      parts.push(text);
      size += text.length;
      if (size >= WRITE_CHUNK) {
        pieces.push({ text: parts.join(''), lastSeq: line.seq });
        parts = [];
        size = 0;
      }
    }
    if (parts.length > 0) pieces.push({ text: parts.join(''), lastSeq: lines[lines.length - 1].seq });
    encoded.set(lines, pieces);
  }
  return pieces;
}
function encodeLine(line: LogRow | OutputLine): string {
  return `id: ${line.seq}\nevent: log\ndata: ${JSON.stringify(logEntryView(line))}\n\n`;
}

/** The open streams, each user's bounded (`maxPerUser`; one more is 429), all ended when the server closes. */
export class LogFollowers {
  private readonly streams = new Set<LogStream>();

  constructor(
    private readonly deps: LogStreamDeps,
    private readonly maxPerUser: number,
  ) {}

  /**
   * Streams the output after `after` of the caller's job `ref` on the response `open()` hands over (called once the
   * job is found and the caller is under the limit); resolves when the stream ends.
   */
  async follow(userId: string, ref: string, after: number, open: () => ServerResponse): Promise<void> {
    const job = await this.deps.store.jobs.find(userId, ref);
    if (!job) throw MagsError.notFound(`job "${ref}" not found`);
    let count = 0;
    for (const s of this.streams) if (s.userId === userId) count++;
    if (count >= this.maxPerUser) {
      throw new MagsError(
        429,
        'too_many_requests',
        `you already follow ${count} job outputs at once, the most this server allows per user; close one (or read the logs without following) and try again`,
      );
    }
    const stream = new LogStream(this.deps, open(), job.id, after, userId);
    this.streams.add(stream);
    await stream.closed;
    this.streams.delete(stream);
  }

  /** Ends every stream without an `end` event (the server is closing); clients may resume with Last-Event-ID. */
  stopAll(): void {
    for (const stream of this.streams) stream.stop();
  }
}

export class LogStream {
  private lastSeq: number;
  /** Rows per read, adapted to the length of the lines (long lines: fewer per page). */
  private pageRows = 100;
  private ended = false;
  /** A catch-up (or a wait for the socket to drain) is under way; live lines are left to it. */
  private busy = false;
  /** Lines were announced while busy: the catch-up reads the store again before it stops. */
  private behind = false;
  /** The job's final state, once seen: sent after the last line. */
  private final: Job | undefined;
  private readonly unsubscribe: () => void;
  private readonly heartbeat: NodeJS.Timeout;
  private readonly closedPromise: Promise<void>;
  private resolveClosed!: () => void;

  constructor(
    private readonly deps: LogStreamDeps,
    private readonly res: ServerResponse,
    private readonly jobId: string,
    after: number,
    /** The user following (for the per-user limit on open streams). */
    readonly userId: string,
  ) {
    this.lastSeq = after;
    this.closedPromise = new Promise((r) => (this.resolveClosed = r));
    res.writeHead(200, {
      'content-type': 'text/event-stream; charset=utf-8',
      'cache-control': 'no-cache, no-transform',
      connection: 'keep-alive',
      'x-accel-buffering': 'no',
    });
    res.flushHeaders();
    res.on('close', () => this.stop());
    // Subscribe first: anything stored after this moment also arrives as an event.
    this.unsubscribe = deps.events.subscribe(jobId, (event) => this.onEvent(event));
    this.heartbeat = setInterval(() => {
      if (!this.ended && !this.busy) res.write(': keep-alive\n\n');
    }, HEARTBEAT_MS);
    this.pump(true);
  }

  /** Resolves when the stream has ended, for whatever reason. */
  get closed(): Promise<void> {
    return this.closedPromise;
  }

  /** Ends the stream without an `end` event (the server is closing); the client may resume with Last-Event-ID. */
  stop(): void {
    if (this.ended) return;
    this.ended = true;
    this.unsubscribe();
    clearInterval(this.heartbeat);
    if (!this.res.writableEnded) this.res.end();
    this.resolveClosed();
  }

  private onEvent(event: JobEvent): void {
    if (this.ended) return;
    if (event.type === 'status') {
      if (!hasSettled(event.job)) return;
      this.final = event.job;
      if (!this.busy) this.pump(false);
      return;
    }
    if (this.busy) {
      this.behind = true; // stored already: the catch-up will read it
      return;
    }
    const lines = event.lines;
    if (lines.length === 0 || lines[lines.length - 1].seq <= this.lastSeq) return;
    const first = lines[0].seq;
    const contiguous = lines[lines.length - 1].seq - first === lines.length - 1;
    if (contiguous && first === this.lastSeq + 1) {
      // The common case: the next lines, sent as they are (their text is shared by every follower). When the
      // socket refuses more, the rest is left to the catch-up, from the store.
      for (const piece of encodeBatch(lines)) {
        this.lastSeq = piece.lastSeq;
        if (!this.res.write(piece.text)) return this.pump(false, true);
      }
    } else {
      this.pump(false); // a gap or an overlap: the store has them in order
    }
  }

  /**
   * Catches up from the store until nothing is left behind, then (once the job has ended) sends the end.
   * `checkJob` reads the job's state first (at the start); `waitDrain` first waits for the socket to drain.
   */
  private pump(checkJob: boolean, waitDrain = false): void {
    this.busy = true;
    void (async () => {
      if (waitDrain) await this.drained();
      do {
        this.behind = false;
        await this.catchUp();
      } while (this.behind && !this.ended);
      if (checkJob && !this.ended && !this.final) {
        const job = await this.deps.store.jobs.get(this.jobId);
        if (!job) return this.stop();
        if (hasSettled(job)) this.final = job;
      }
      if (this.final && !this.ended) {
        await this.catchUp();
        if (!this.ended) {
          this.res.write(`event: end\ndata: ${JSON.stringify(jobStatusView(this.final, this.deps.urlOf))}\n\n`);
          this.stop();
        }
      }
    })()
      .catch((err: unknown) => {
        this.deps.logger.error({ err, jobId: this.jobId }, 'following job output failed');
        this.stop();
      })
      .finally(() => {
        this.busy = false;
        // A status event that arrived during the last step found us busy.
        if (!this.ended && (this.behind || this.final)) this.pump(false);
      });
  }

  /**
   * Sends the stored lines after lastSeq. When the socket refuses more, waits for it to drain and reads on from
   * the store; nothing read but not yet sent is kept meanwhile.
   */
  private async catchUp(): Promise<void> {
    for (;;) {
      if (this.ended) return;
      const limit = this.pageRows;
      let more: boolean;
      const release = await takeTurn();
      try {
        if (this.ended) return;
        more = await this.sendPage(limit);
      } finally {
        release();
      }
      if (!more) return;
      await this.drained();
    }
  }

  /** Reads one page after lastSeq and writes it. True when there may be more (a full page, or the socket is full). */
  private async sendPage(limit: number): Promise<boolean> {
    const rows = await this.deps.store.logs.read(this.jobId, this.lastSeq, limit);
    let chars = 0;
    for (const row of rows) chars += row.message.length;
    if (rows.length > 0) {
      const perRow = Math.max(1, chars / rows.length);
      this.pageRows = Math.max(MIN_PAGE_ROWS, Math.min(MAX_PAGE_ROWS, Math.floor(PAGE_CHARS / perRow)));
    }
    let chunk = '';
    for (const row of rows) {
      if (row.seq <= this.lastSeq) continue;
      chunk += encodeLine(row);
      this.lastSeq = row.seq;
      // The rest of a refused page is read again after the drain: nothing waits in memory meanwhile.
      if (chunk.length >= WRITE_CHUNK && !this.write(chunk)) return true;
      if (chunk.length >= WRITE_CHUNK) chunk = '';
    }
    if (chunk && !this.write(chunk)) return true;
    return rows.length >= limit;
  }

  private write(chunk: string): boolean {
    if (this.ended || this.res.writableEnded) return true;
    return this.res.write(chunk);
  }

  /** Resolves when the socket takes writes again (or the stream ends). */
  private drained(): Promise<void> {
    if (this.ended || this.res.writableEnded || !this.res.writableNeedDrain) return Promise.resolve();
    return new Promise((resolve) => {
      const done = () => {
        this.res.off('drain', done);
        this.res.off('close', done);
        resolve();
      };
      this.res.on('drain', done);
      this.res.on('close', done);
    });
  }
}
