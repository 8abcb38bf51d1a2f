// The Connect protocol with its JSON codec, as E2B's SDK speaks it to envd (@connectrpc/connect 2.x): unary calls
// (`application/json` in and out, errors as a non-200 status with `{code, message}`), server-streaming calls (one
// enveloped request message; 200 `application/connect+json` with one envelope per message, flushed as it is
// written, and the end-stream envelope last: flag 0x02 with `{}` or `{"error": {code, message}}`), the deadline of
// `Connect-Timeout-Ms`, and keepalives on long streams. Messages are proto3 JSON built by the callers.
import type { IncomingMessage, ServerResponse } from 'node:http';

/** Connect's error codes (their wire names). */
export type ConnectCode =
  | 'canceled'
  | 'unknown'
  | 'invalid_argument'
  | 'deadline_exceeded'
  | 'not_found'
  | 'already_exists'
  | 'permission_denied'
  | 'resource_exhausted'
  | 'failed_precondition'
  | 'aborted'
  | 'out_of_range'
  | 'unimplemented'
  | 'internal'
  | 'unavailable'
  | 'data_loss'
  | 'unauthenticated';

/** The HTTP status of a unary error with each code (connectrpc.com/docs/protocol#error-codes). */
export const CONNECT_HTTP_STATUS: Record<ConnectCode, number> = {
  canceled: 499,
  unknown: 500,
  invalid_argument: 400,
  deadline_exceeded: 504,
  not_found: 404,
  already_exists: 409,
  permission_denied: 403,
  resource_exhausted: 429,
  failed_precondition: 400,
  aborted: 409,
  out_of_range: 400,
  unimplemented: 501,
  internal: 500,
  unavailable: 503,
  data_loss: 500,
  unauthenticated: 401,
};

/** A failure answered in Connect's form; `status` overrides the code's HTTP status (502 for a gone sandbox). */
export class ConnectError extends Error {
  constructor(
    readonly code: ConnectCode,
    message: string,
    readonly status?: number,
  ) {
    super(message);
    this.name = 'ConnectError';
  }
}

export const CONNECT_JSON = 'application/json';
export const CONNECT_STREAM_JSON = 'application/connect+json';
/** Largest request message taken (every envd request is small: paths, commands, stdin chunks). */
export const MAX_CONNECT_MESSAGE = 4 * 1024 * 1024;
const END_STREAM_FLAG = 0x02;
const COMPRESSED_FLAG = 0x01;

/** Reads a request body whole, refusing one longer than `limit`. */
export async function readBody(req: IncomingMessage, limit = MAX_CONNECT_MESSAGE + 5): Promise<Buffer> {
  const parts: Buffer[] = [];
  let size = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > limit) {
      req.resume();
      throw new ConnectError('resource_exhausted', `the request message is larger than ${limit} bytes`);
    }
    parts.push(chunk);
  }
  return Buffer.concat(parts);
}

/** Parses a JSON request message: an object (an empty body is the empty message). */
export function parseMessage(body: Buffer): Record<string, unknown> {
  if (body.length === 0) return {};
  let value: unknown;
  try {
    value = JSON.parse(body.toString('utf8'));
  } catch {
    throw new ConnectError('invalid_argument', 'the request message is not valid JSON');
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new ConnectError('invalid_argument', 'the request message must be a JSON object');
  }
  return value as Record<string, unknown>;
}

/** The one message of a server-streaming request: a single uncompressed envelope. */
export function parseEnvelopedRequest(body: Buffer): Record<string, unknown> {
  if (body.length < 5) throw new ConnectError('invalid_argument', 'the request is not a Connect envelope');
  const flags = body[0]!;
  const length = body.readUInt32BE(1);
  if (flags & COMPRESSED_FLAG) {
    throw new ConnectError('unimplemented', 'compressed request messages are not supported; send them uncompressed');
  }
  if (flags !== 0) throw new ConnectError('invalid_argument', `unexpected envelope flags ${flags}`);
  if (body.length !== 5 + length) {
    throw new ConnectError('invalid_argument', 'a server-streaming request carries exactly one enveloped message');
  }
  return parseMessage(body.subarray(5));
}

/** One envelope: flags, 4-byte big-endian length, the JSON. */
export function envelope(message: unknown, flags = 0): Buffer {
  const json = Buffer.from(JSON.stringify(message), 'utf8');
  const head = Buffer.alloc(5);
  head[0] = flags;
  head.writeUInt32BE(json.length, 1);
  return Buffer.concat([head, json]);
}

/** The end-stream envelope: `{}` or `{"error": {code, message}}`. */
export function endStream(error?: ConnectError): Buffer {
  return envelope(error ? { error: { code: error.code, message: error.message } } : {}, END_STREAM_FLAG);
}

/** `Connect-Timeout-Ms` in milliseconds (undefined without one); at most 10 digits as the protocol says. */
export function parseTimeout(header: string | string[] | undefined): number | undefined {
  if (header === undefined) return undefined;
  const value = Array.isArray(header) ? header[0] : header;
  if (value === undefined || !/^\d{1,10}$/.test(value)) {
    throw new ConnectError('invalid_argument', 'Connect-Timeout-Ms must be a positive integer of at most 10 digits');
  }
  return Number(value);
}

/** Answers a unary call: its message, or its error with the code's status. */
export function sendUnary(res: ServerResponse, result: { message: unknown } | { error: ConnectError }): void {
  if ('message' in result) {
    const body = Buffer.from(JSON.stringify(result.message), 'utf8');
    res.writeHead(200, { 'content-type': CONNECT_JSON, 'content-length': body.length });
    res.end(body);
    return;
  }
  const { error } = result;
  const body = Buffer.from(JSON.stringify({ code: error.code, message: error.message }), 'utf8');
  res.writeHead(error.status ?? CONNECT_HTTP_STATUS[error.code], {
    'content-type': CONNECT_JSON,
    'content-length': body.length,
  });
  res.end(body);
}

/**
 * An open server-streaming response: messages are written as they come (each reaches the socket at once), `end`
 * writes the end-stream envelope. `backpressure` tells whether the socket has taken what was written; `drained`
 * resolves when it has. `closed` is set once the client went away. `abort` cuts the connection without an end.
 */
export class ConnectStream {
  private ended = false;
  private keepalive?: NodeJS.Timeout;
  private deadline?: NodeJS.Timeout;
  /** Resolves when the client is gone, or the stream ended. */
  readonly done: Promise<void>;
  private finish!: () => void;

  constructor(private readonly res: ServerResponse) {
    this.done = new Promise((resolve) => (this.finish = resolve));
    res.writeHead(200, { 'content-type': CONNECT_STREAM_JSON, 'cache-control': 'no-store' });
    res.flushHeaders();
    res.once('close', () => {
      this.clearTimers();
      this.finish();
    });
  }

  get closed(): boolean {
    return this.ended || this.res.destroyed || this.res.writableEnded;
  }

  /** Writes one message; false when the socket buffer is full (wait for `drained`). */
  send(message: unknown): boolean {
    if (this.closed) return false;
    return this.res.write(envelope(message));
  }

  drained(): Promise<void> {
    if (this.closed || !this.res.writableNeedDrain) return Promise.resolve();
    return new Promise((resolve) => {
      const go = () => {
        this.res.off('drain', go);
        this.res.off('close', go);
        resolve();
      };
      this.res.once('drain', go);
      this.res.once('close', go);
    });
  }

  /** Sends `message()` every `intervalS` seconds while the stream is open. */
  keepAlive(intervalS: number, message: () => unknown): void {
    this.keepalive = setInterval(() => this.send(message()), intervalS * 1000);
    this.keepalive.unref();
  }

  /** Ends the stream with `deadline_exceeded` after `ms`, calling `onExpire` first. */
  expireAfter(ms: number, onExpire?: () => void): void {
    const at = Date.now() + ms;
    this.deadline = setTimeout(() => {
      onExpire?.();
      this.end(new ConnectError('deadline_exceeded', `the call's deadline of ${ms} ms passed`));
    }, ms);
    this.deadline.unref();
    // A client that leaves first (its own timer fired a moment earlier) does not spare what the deadline ends.
    if (onExpire) {
      this.res.once('close', () => {
        if (!this.ended) setTimeout(onExpire, Math.max(0, at - Date.now())).unref();
      });
    }
  }

  end(error?: ConnectError): void {
    if (this.closed) return;
    this.ended = true;
    this.clearTimers();
    this.res.end(endStream(error));
    this.finish();
  }

  /** Cuts the connection abruptly (the sandbox was killed): the client sees the stream terminated, no end frame. */
  abort(): void {
    if (this.res.destroyed) return;
    this.ended = true;
    this.clearTimers();
    this.res.destroy();
    this.finish();
  }

  onClose(listener: () => void): void {
    if (this.res.destroyed) listener();
    else this.res.once('close', listener);
  }

  private clearTimers(): void {
    clearInterval(this.keepalive);
    clearTimeout(this.deadline);
  }
}

/** The keepalive interval a client asks for (`Keepalive-Ping-Interval`, seconds), bounded to 1…300; 50 without. */
export function keepaliveInterval(header: string | string[] | undefined): number {
  const value = Number(Array.isArray(header) ? header[0] : header);
  if (!Number.isFinite(value) || value <= 0) return 50;
  return Math.min(300, Math.max(1, Math.floor(value)));
}

// --- proto3 JSON helpers -------------------------------------------------------------------------------------------

/** A string field (proto3 default ""). */
export function str(message: Record<string, unknown>, field: string): string {
  const value = message[field];
  if (value === undefined || value === null) return '';
  if (typeof value !== 'string') throw new ConnectError('invalid_argument', `${field} must be a string`);
  return value;
}

/** An unsigned integer field: a JSON number or a decimal string (proto3 JSON accepts both). */
export function uint(message: Record<string, unknown>, field: string, max = 0xffffffff): number {
  const value = message[field];
  if (value === undefined || value === null) return 0;
  const n = typeof value === 'string' && /^\d+$/.test(value) ? Number(value) : value;
  if (typeof n !== 'number' || !Number.isInteger(n) || n < 0 || n > max) {
    throw new ConnectError('invalid_argument', `${field} must be an integer from 0 to ${max}`);
  }
  return n;
}

export function bool(message: Record<string, unknown>, field: string): boolean {
  const value = message[field];
  if (value === undefined || value === null) return false;
  if (typeof value !== 'boolean') throw new ConnectError('invalid_argument', `${field} must be true or false`);
  return value;
}

/** A message field (absent: undefined). */
export function sub(message: Record<string, unknown>, field: string): Record<string, unknown> | undefined {
  const value = message[field];
  if (value === undefined || value === null) return undefined;
  if (typeof value !== 'object' || Array.isArray(value)) {
    throw new ConnectError('invalid_argument', `${field} must be an object`);
  }
  return value as Record<string, unknown>;
}

/** A bytes field: standard or URL-safe base64. */
export function bytes(message: Record<string, unknown>, field: string): Buffer {
  const value = message[field];
  if (value === undefined || value === null) return Buffer.alloc(0);
  if (typeof value !== 'string' || !/^[A-Za-z0-9+/_-]*=*$/.test(value)) {
    throw new ConnectError('invalid_argument', `${field} must be base64`);
  }
  return Buffer.from(value, 'base64');
}

/** A map<string,string> field. */
export function stringMap(message: Record<string, unknown>, field: string): Record<string, string> {
  const value = sub(message, field) ?? {};
  const out: Record<string, string> = {};
  for (const [key, v] of Object.entries(value)) {
    if (typeof v !== 'string') throw new ConnectError('invalid_argument', `${field}.${key} must be a string`);
    out[key] = v;
  }
  return out;
}

/** A repeated string field. */
export function strings(message: Record<string, unknown>, field: string): string[] {
  const value = message[field];
  if (value === undefined || value === null) return [];
  if (!Array.isArray(value) || value.some((v) => typeof v !== 'string')) {
    throw new ConnectError('invalid_argument', `${field} must be a list of strings`);
  }
  return value as string[];
}

/** A Timestamp as proto3 JSON writes it: RFC 3339 in UTC, with 0, 3, 6 or 9 fraction digits. */
export function timestamp(seconds: number, nanos = 0): string {
  const iso = new Date(seconds * 1000).toISOString().slice(0, 19);
  if (nanos === 0) return `${iso}Z`;
  const frac = String(nanos).padStart(9, '0');
  const digits = frac.endsWith('000000') ? frac.slice(0, 3) : frac.endsWith('000') ? frac.slice(0, 6) : frac;
  return `${iso}.${digits}Z`;
}
