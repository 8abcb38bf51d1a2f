// Stores jobs' output. Lines from agents are batched per job (one transaction per batch, written on a short timer,
// when a batch is full, and before the job's end is recorded), and announced to followers once stored. Each job may
// store up to the server's cap (`maxLogMb`); past it nothing more is stored or streamed, and one `system` line, the
// last one stored, says where the output was cut. So a script printing without end costs the database a bounded size.

import type { OutputLine } from '@mags/api';
import type { Logger } from 'pino';
import type { Store } from '../store/index.js';
import type { JobEvents } from './events.js';

/** How long a line may wait in a batch before it is stored (and reaches followers). */
export const FLUSH_MS = 50;
/** A batch is stored at once when it holds this many lines or bytes; the agent's messages wait meanwhile. */
const BATCH_LINES = 2000;
const BATCH_BYTES = 1024 * 1024;
/** Longest stored line, in UTF-16 units (the agent splits longer lines at the same size; this guards other agents). */
export const MAX_LINE_CHARS = 64 * 1024;
/**
 * What a line costs besides its text, in bytes. Counting it keeps a flood of short lines (`yes`) bounded too. A row
 * really takes more (measured on SQLite: ~117 bytes for a one-byte line, so `yes` fills about twice the cap), but
 * counting all of it would cut ordinary output of short lines early (`seq 1 750000`, 5 MB, must arrive whole).
 */
export const LINE_COST_BYTES = 64;

export function truncationNotice(maxLogMb: number): string {
  return `[output truncated: more than ${maxLogMb} MB; the rest of this job's output was not stored]`;
}

interface JobBuffer {
  lines: OutputLine[];
  bytes: number;
  /** Bytes counted against the cap, including what is still buffered. */
  counted: number;
  /** The highest seq accepted: agents send lines in order, so one at or below it is a resend. */
  lastSeq: number;
  truncated: boolean;
  timer: NodeJS.Timeout | undefined;
  /** Batches are stored and announced one after another, in order. */
  chain: Promise<void>;
}

export interface JobOutputDeps {
  store: Store;
  events: JobEvents;
  logger: Logger;
  /** The cap on a job's stored output, in MiB. */
  maxLogMb: number;
}

export class JobOutput {
  private readonly jobs = new Map<string, JobBuffer>();
  private readonly maxBytes: number;

  constructor(private readonly deps: JobOutputDeps) {
    this.maxBytes = deps.maxLogMb * 1024 * 1024;
  }

  /**
   * Takes lines an agent sent for a job. Resolves at once while the job's batch has room; when it is full, resolves
   * once the batch is stored, so an agent writing faster than the database waits instead of filling memory.
   */
  append(jobId: string, lines: readonly OutputLine[]): Promise<void> {
    let job = this.jobs.get(jobId);
    if (!job) {
      job = {
        lines: [],
        bytes: 0,
        counted: 0,
        lastSeq: 0,
        truncated: false,
        timer: undefined,
        chain: Promise.resolve(),
      };
      this.jobs.set(jobId, job);
    }
    for (const line of lines) {
      if (job.truncated) break;
      if (line.seq <= job.lastSeq) continue;
      job.lastSeq = line.seq;
      const message = line.message.length > MAX_LINE_CHARS ? cutLine(line.message) : line.message;
      const bytes = Buffer.byteLength(message) + LINE_COST_BYTES;
      if (job.counted + bytes > this.maxBytes) {
        // The notice takes the place of the first line not kept; every later line is dropped.
        job.truncated = true;
        const notice = truncationNotice(this.deps.maxLogMb);
        job.lines.push({ seq: line.seq, ts: line.ts, stream: 'system', message: notice });
        job.bytes += notice.length;
        this.deps.logger.warn(
          { jobId, maxLogMb: this.deps.maxLogMb },
          'job output reached the stored output cap; the rest is dropped',
        );
        break;
      }
      job.counted += bytes;
      job.bytes += bytes;
      job.lines.push(message === line.message ? line : { ...line, message });
    }
    if (job.lines.length === 0) return Promise.resolve();
    if (job.lines.length >= BATCH_LINES || job.bytes >= BATCH_BYTES || job.truncated) return this.flush(jobId, job);
    job.timer ??= setTimeout(() => void this.flush(jobId, job), FLUSH_MS);
    return Promise.resolve();
  }

  /** Stores what is buffered for a job and forgets it: call before recording that the job ended. */
  async end(jobId: string): Promise<void> {
    const job = this.jobs.get(jobId);
    if (!job) return;
    await this.flush(jobId, job);
    this.jobs.delete(jobId);
  }

  /** Stores everything buffered (the server is closing). */
  async close(): Promise<void> {
    await Promise.all([...this.jobs.keys()].map((id) => this.end(id)));
  }

  private flush(jobId: string, job: JobBuffer): Promise<void> {
    clearTimeout(job.timer);
    job.timer = undefined;
    const batch = job.lines;
    job.lines = [];
    job.bytes = 0;
    if (batch.length > 0) {
      job.chain = job.chain.then(async () => {
        try {
          const stored = await this.deps.store.logs.append(jobId, batch);
          if (stored.length > 0) this.deps.events.emit(jobId, { type: 'logs', lines: stored });
        } catch (err) {
          this.deps.logger.error(
            { err, jobId, lines: batch.length },
            'could not store job output; these lines are lost',
          );
        }
      });
    }
    return job.chain;
  }
}

/** A line cut to MAX_LINE_CHARS (never inside a surrogate pair), saying so. */
function cutLine(message: string): string {
  let end = MAX_LINE_CHARS;
  const last = message.charCodeAt(end - 1);
  if (last >= 0xd800 && last <= 0xdbff) end--;
  return `${message.slice(0, end)} [line cut: longer than ${MAX_LINE_CHARS / 1024} KiB]`;
}
