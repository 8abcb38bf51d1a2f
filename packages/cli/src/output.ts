// What the CLI prints: job output (stdout lines to stdout, stderr lines to stderr, in order, with backpressure),
// one-sentence errors, tables and JSON.
import { UNPRINTABLE } from '@mags/api';
import type { Job, LogEntry } from '@mags/sdk';
import picocolors from 'picocolors';

/** Colors for a stream: on for a terminal (unless NO_COLOR), or when FORCE_COLOR asks; never in a pipe by accident. */
function colorsFor(stream: NodeJS.WriteStream) {
  const env = process.env;
  const forced = env.FORCE_COLOR !== undefined && env.FORCE_COLOR !== '0' && env.FORCE_COLOR !== 'false';
  return picocolors.createColors(forced || (stream.isTTY === true && !env.NO_COLOR && env.TERM !== 'dumb'));
}
/** For what goes to stdout (tables) and to stderr (errors, notes). */
export const pc = colorsFor(process.stdout);
const epc = colorsFor(process.stderr);

/**
 * Writes job output lines to the process's stdout and stderr in the order they came.
 * Lines for one stream are batched until the stream changes or the event loop turns, so a large output
 * costs few writes; `ready()` waits while a pipe's buffer is full.
 */
export class OutputWriter {
  private pending = '';
  private target: NodeJS.WritableStream | undefined;
  private scheduled = false;
  private blocked: Promise<void> | undefined;
  /** System lines printed so far (platform messages such as a timeout), so the final report does not repeat them. */
  readonly systemMessages = new Set<string>();

  constructor(
    private readonly stdout: NodeJS.WritableStream = process.stdout,
    private readonly stderr: NodeJS.WritableStream = process.stderr,
  ) {}

  line(entry: LogEntry): void {
    if (entry.stream === 'stdout') this.write(this.stdout, `${entry.message}\n`);
    else if (entry.stream === 'stderr') this.write(this.stderr, `${entry.message}\n`);
    else {
      this.systemMessages.add(entry.message);
      this.write(this.stderr, `${epc.dim('mags:')} ${entry.message}\n`);
    }
  }

  /** Resolves when the last write has been accepted (immediately unless a pipe is full). */
  ready(): Promise<void> {
    return this.blocked ?? Promise.resolve();
  }

  /** Writes everything still buffered and waits until both streams took it. */
  async flush(): Promise<void> {
    this.flushNow();
    await this.ready();
    await Promise.all([drained(this.stdout), drained(this.stderr)]);
  }

  private write(target: NodeJS.WritableStream, text: string): void {
    if (this.target !== target) {
      this.flushNow();
      this.target = target;
    }
    this.pending += text;
    if (this.pending.length >= 64 * 1024) this.flushNow();
    else if (!this.scheduled) {
      this.scheduled = true;
      setImmediate(() => this.flushNow());
    }
  }

  private flushNow(): void {
    this.scheduled = false;
    if (!this.pending || !this.target) return;
    const target = this.target;
    const ok = target.write(this.pending);
    this.pending = '';
    if (!ok && !this.blocked) {
      this.blocked = new Promise((resolve) =>
        target.once('drain', () => {
          this.blocked = undefined;
          resolve();
        }),
      );
    }
  }
}

/** Resolves once everything written to the stream so far has been handed to the OS. */
export function drained(stream: NodeJS.WritableStream): Promise<void> {
  return new Promise((resolve) => {
    if (!stream.write('', () => resolve())) stream.once('drain', () => resolve());
  });
}

/** The one way the CLI reports a failure: `mags: <sentence>` on stderr. */
export function printError(message: string): void {
  process.stderr.write(`${epc.red('mags:')} ${message}\n`);
}

/** A note for a person at a terminal; silent when stderr is piped. */
export function note(message: string): void {
  if (process.stderr.isTTY) process.stderr.write(`${epc.dim(message)}\n`);
}

export function printJson(value: unknown): void {
  process.stdout.write(`${JSON.stringify(value, null, 2)}\n`);
}

const UNPRINTABLE_ALL = new RegExp(UNPRINTABLE.source, 'g');
const ESCAPES: Record<string, string> = { '\n': '\\n', '\r': '\\r', '\t': '\\t' };

/**
 * Text from the server (names, messages) made safe to show: every control and text-direction character becomes a
 * visible escape (`\n`, `\r`, `\t`, `\x1b`, `\u202e`, …), so what is printed cannot move the cursor, recolour the
 * terminal, or show text in another order than it is.
 */
export function printable(text: string): string {
  return text.replace(UNPRINTABLE_ALL, (c) => {
    const code = c.charCodeAt(0);
    return (
      ESCAPES[c] ??
      (code <= 0xff ? `\\x${code.toString(16).padStart(2, '0')}` : `\\u${code.toString(16).padStart(4, '0')}`)
    );
  });
}

/** A cell shown in a colour of ours: its text is escaped first, then painted. */
export interface Painted {
  text: string;
  paint: (text: string) => string;
}
/** A table cell: server text (escaped when shown), or server text in one of our colours. */
export type Cell = string | Painted;

export function painted(text: string, paint: (text: string) => string): Painted {
  return { text, paint };
}

/** What a cell prints: never a raw control character from the server. */
export function cell(c: Cell): string {
  return typeof c === 'string' ? printable(c) : c.paint(printable(c.text));
}

/** Aligned columns; the header is dimmed on a terminal. Every cell is shown through cell(). */
export function table(header: string[], rows: Cell[][]): string {
  const shown = rows.map((r) => r.map(cell));
  const widths = header.map((h, i) => Math.max(visible(h).length, ...shown.map((r) => visible(r[i] ?? '').length)));
  const fmt = (cells: string[]) =>
    cells
      .map((c, i) => (i === cells.length - 1 ? c : c + ' '.repeat(widths[i] - visible(c).length)))
      .join('  ')
      .trimEnd();
  return `${[pc.dim(fmt(header)), ...shown.map(fmt)].join('\n')}\n`;
}

// eslint-disable-next-line no-control-regex
const visible = (s: string) => s.replace(/\x1b\[[0-9;]*m/g, '');

export function colorStatus(status: string): Cell {
  switch (status) {
    case 'completed':
      return painted(status, pc.green);
    case 'failed':
    case 'error':
      return painted(status, pc.red);
    case 'running':
    case 'accepted':
      return painted(status, pc.cyan);
    case 'stopped':
    case 'sleeping':
      return painted(status, pc.yellow);
    default:
      return status;
  }
}

export function formatDuration(ms: number | null): string {
  if (ms === null) return '-';
  if (ms < 1000) return `${ms} ms`;
  const s = ms / 1000;
  if (s < 60) return `${s.toFixed(s < 10 ? 2 : 1)} s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m} min ${Math.round(s % 60)} s`;
  return `${Math.floor(m / 60)} h ${m % 60} min`;
}

/** A local date and time, `2026-11-28 13:49:12`. */
export function formatTime(iso: string | null): string {
  if (!iso) return '-';
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return iso;
  const p = (n: number) => String(n).padStart(2, '0');
  return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())} ${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())}`;
}

/** The duration of a job: its script's, or how long it has run so far. */
export function jobDuration(job: Job): number | null {
  if (job.scriptDurationMs !== null) return job.scriptDurationMs;
  if (job.startedAt && !job.completedAt) return Math.max(0, Date.now() - new Date(job.startedAt).getTime());
  return null;
}

/** A size for people: `512 B`, `1.5 KB`, `20.0 MB`, `3.2 GB` (powers of 1024, as du -h counts). */
export function formatBytes(bytes: number): string {
  if (!Number.isFinite(bytes) || bytes < 1024) return `${Math.max(0, Math.round(bytes || 0))} B`;
  const units = ['KB', 'MB', 'GB', 'TB', 'PB'];
  let value = bytes / 1024;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit++;
  }
  return `${value.toFixed(value < 10 ? 1 : 0)} ${units[unit]}`;
}
