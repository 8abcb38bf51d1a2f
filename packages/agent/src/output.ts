// Turns a sandbox's stdout/stderr byte streams into numbered, timestamped lines, batched for the server.
import { StringDecoder } from 'node:string_decoder';
import type { OutputLine } from '@mags/api';

/** A line longer than this is sent in pieces, so one unterminated megabyte can't stall the stream. */
const MAX_LINE = 64 * 1024;
const MAX_BATCH = 2000;

export class OutputCollector {
  private seq: number;
  private batch: OutputLine[] = [];
  private scheduled = false;
  private readonly partial = { stdout: '', stderr: '' };
  private readonly decoders = { stdout: new StringDecoder('utf8'), stderr: new StringDecoder('utf8') };

  /** `firstSeq`: the seq of the first line (a job started again continues its numbering). */
  constructor(
    private readonly send: (lines: OutputLine[]) => void,
    firstSeq = 1,
  ) {
    this.seq = firstSeq - 1;
  }

  write(stream: 'stdout' | 'stderr', chunk: Buffer): void {
    let text = this.partial[stream] + this.decoders[stream].write(chunk);
    let nl: number;
    while ((nl = text.indexOf('\n')) !== -1) {
      this.push(stream, text.slice(0, nl));
      text = text.slice(nl + 1);
    }
    while (text.length > MAX_LINE) {
      this.push(stream, text.slice(0, MAX_LINE));
      text = text.slice(MAX_LINE);
    }
    this.partial[stream] = text;
  }

  system(message: string): void {
    this.push('system', message);
  }

  /** Emits unterminated last lines and sends everything still batched. */
  end(): void {
    for (const stream of ['stdout', 'stderr'] as const) {
      const rest = this.partial[stream] + this.decoders[stream].end();
      this.partial[stream] = '';
      if (rest) this.push(stream, rest);
    }
    this.flush();
  }

  private push(stream: OutputLine['stream'], message: string): void {
    this.batch.push({ seq: ++this.seq, stream, ts: Date.now(), message });
    if (this.batch.length >= MAX_BATCH) this.flush();
    else if (!this.scheduled) {
      this.scheduled = true;
      setImmediate(() => this.flush());
    }
  }

  private flush(): void {
    this.scheduled = false;
    if (this.batch.length) this.send(this.batch.splice(0));
  }
}
