// Follows a job's output as Server-Sent Events: the stored lines after `after`, then live lines as they
// arrive, each exactly once and in order (`event: log`), then `event: end` with the final JobStatus.
// It subscribes before reading the store, and every step runs on one promise chain, deduplicated by seq.
import type { ServerResponse } from 'node:http';
import type { Logger } from 'pino';
import { type OutputLine, isTerminal } from '@mags/api';
import type { JobEvent, JobEvents } from '../events.js';
import { jobStatusView, logEntryView } from '../job-view.js';
import type { JobRow, LogRow, Store } from '../store/index.js';

const READ_PAGE = 1000;
const HEARTBEAT_MS = 15_000;

export interface LogStreamDeps {
  store: Store;
  events: JobEvents;
  logger: Logger;
}

export class LogStream {
  private lastSeq: number;
  private chain: Promise<void> = Promise.resolve();
  private ended = false;
  private readonly unsubscribe: () => void;
  private readonly heartbeat: NodeJS.Timeout;
  private readonly closedPromise: Promise<void>;
  private resolveClosed!: () => void;

  constructor(
    private readonly deps: LogStreamDeps,
    private readonly res: ServerResponse,
    private readonly jobId: string,
    after: number,
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
      if (!this.ended) res.write(': keep-alive\n\n');
    }, HEARTBEAT_MS);
    this.enqueue(async () => {
      await this.drainStore();
      const job = await deps.store.getJob(jobId);
      if (!job) return this.stop();
      if (isTerminal(job.status)) await this.finish(job);
    });
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

  private enqueue(step: () => Promise<void>): void {
    this.chain = this.chain.then(async () => {
      if (!this.ended) await step();
    }).catch((err: unknown) => {
      this.deps.logger.error({ err, jobId: this.jobId }, 'following job output failed');
      this.stop();
    });
  }

  private onEvent(event: JobEvent): void {
    if (event.type === 'logs') {
      const lines = event.lines;
      this.enqueue(async () => {
        const fresh = lines.filter((l) => l.seq > this.lastSeq);
        if (fresh.length === 0) return;
        const contiguous = fresh.every((l, i) => l.seq === this.lastSeq + 1 + i);
        // A gap means lines this stream has not seen yet are in the store: read them from there instead.
        if (contiguous) await this.writeLines(fresh);
        else await this.drainStore();
      });
    } else if (isTerminal(event.job.status)) {
      const job = event.job;
      this.enqueue(() => this.finish(job));
    }
  }

  private async finish(job: JobRow): Promise<void> {
    await this.drainStore();
    await this.write(`event: end\ndata: ${JSON.stringify(jobStatusView(job))}\n\n`);
    this.stop();
  }

  private async drainStore(): Promise<void> {
    for (;;) {
      if (this.ended) return;
      const rows = await this.deps.store.readLogs(this.jobId, this.lastSeq, READ_PAGE);
      if (rows.length > 0) await this.writeLines(rows);
      if (rows.length < READ_PAGE) return;
    }
  }

  private async writeLines(lines: ReadonlyArray<LogRow | OutputLine>): Promise<void> {
    let chunk = '';
    for (const line of lines) {
      if (line.seq <= this.lastSeq) continue;
      chunk += `id: ${line.seq}\nevent: log\ndata: ${JSON.stringify(logEntryView(line))}\n\n`;
      this.lastSeq = line.seq;
    }
    if (chunk) await this.write(chunk);
  }

  /** Writes, and waits for the socket to drain when its buffer is full (a slow client slows only itself). */
  private write(chunk: string): Promise<void> {
    if (this.ended || this.res.writableEnded) return Promise.resolve();
    if (this.res.write(chunk)) return Promise.resolve();
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
