// A Server-Sent Events parser (the text/event-stream format of the HTML standard) over a fetch body.
// Events come out in batches, one per network chunk, so a fast stream costs one await per chunk, not per event.

export interface SseEvent {
  /** `message` when the event named none. */
  event: string;
  data: string;
  /** The `id:` field of this event, if it had one. */
  id: string | undefined;
}

export class SseParser {
  private buffer = '';
  private event = '';
  private data: string[] = [];
  private id: string | undefined;
  private sawData = false;
  private readonly decoder = new TextDecoder('utf-8');

  /** Feeds bytes; returns the events they completed. */
  push(chunk: Uint8Array): SseEvent[] {
    return this.feed(this.decoder.decode(chunk, { stream: true }));
  }

  /** Flushes what is left once the stream ended (an unterminated last event is dropped, as the standard says). */
  end(): SseEvent[] {
    return this.feed(this.decoder.decode());
  }

  private feed(text: string): SseEvent[] {
    const out: SseEvent[] = [];
    let buf = this.buffer + text;
    let start = 0;
    // Where the next \r is (-1: none left); searched again only once passed, so a chunk is scanned once.
    let cr = buf.indexOf('\r');
    for (;;) {
      let nl = -1;
      let next = -1;
      // A line ends at \n, \r\n or \r.
      const lf = buf.indexOf('\n', start);
      if (cr !== -1 && cr < start) cr = buf.indexOf('\r', start);
      if (cr !== -1 && (lf === -1 || cr < lf)) {
        // A \r at the very end may be the first half of \r\n: wait for more input.
        if (cr === buf.length - 1) break;
        nl = cr;
        next = buf[cr + 1] === '\n' ? cr + 2 : cr + 1;
      } else if (lf !== -1) {
        nl = lf;
        next = lf + 1;
      } else break;
      this.line(buf.slice(start, nl), out);
      start = next;
    }
    this.buffer = start === 0 ? buf : buf.slice(start);
    buf = '';
    return out;
  }

  private line(line: string, out: SseEvent[]): void {
    if (line === '') {
      if (this.sawData) out.push({ event: this.event || 'message', data: this.data.join('\n'), id: this.id });
      this.event = '';
      this.data = [];
      this.sawData = false;
      this.id = undefined;
      return;
    }
    if (line.charCodeAt(0) === 58 /* ':' comment, e.g. keep-alive */) return;
    const colon = line.indexOf(':');
    const field = colon === -1 ? line : line.slice(0, colon);
    let value = colon === -1 ? '' : line.slice(colon + 1);
    if (value.charCodeAt(0) === 32) value = value.slice(1);
    switch (field) {
      case 'event':
        this.event = value;
        break;
      case 'data':
        this.data.push(value);
        this.sawData = true;
        break;
      case 'id':
        if (!value.includes('\0')) this.id = value;
        break;
      default:
      // `retry` and unknown fields are ignored.
    }
  }
}
