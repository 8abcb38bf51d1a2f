// The one place the SDK talks HTTP: base URL, token, timeouts, and the mapping of every failure to a typed error.
import { createReadStream } from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import { MAGS_VERSION } from '@mags/api';
import { errorFromResponse, MagsApiError, MagsConnectionError, MagsTimeoutError } from './errors.js';

export interface TransportOptions {
  apiUrl: string;
  apiToken: string | undefined;
  /** Longest wait for an answer to an ordinary request (a long-poll gets its wait on top). */
  timeoutMs: number;
}

export interface RequestOptions {
  method?: 'GET' | 'POST' | 'PUT' | 'PATCH' | 'DELETE';
  query?: Record<string, string | number | boolean | undefined>;
  body?: unknown;
  /** Extra time the server is expected to hold the request (long-poll). */
  holdMs?: number;
  /** The job this request is about, carried by errors. */
  requestId?: string;
  signal?: AbortSignal;
  /** Accept a 2xx answer without a body (e.g. 204 to a DELETE); `json` then resolves to undefined. */
  allowEmpty?: boolean;
}

/** A local file to send as the raw body of a POST. */
export interface UploadRequest {
  query?: RequestOptions['query'];
  /** Path of a regular file. */
  file: string;
  /** Its size in bytes (sent as Content-Length; a file that changes size meanwhile fails the upload). */
  size: number;
  onProgress?: (sent: number, total: number) => void;
  signal?: AbortSignal;
}

export class Transport {
  constructor(readonly options: TransportOptions) {}

  get baseUrl(): string {
    return this.options.apiUrl;
  }

  url(path: string, query: RequestOptions['query'] = {}): string {
    const params = new URLSearchParams();
    for (const [k, v] of Object.entries(query)) if (v !== undefined) params.set(k, String(v));
    const qs = params.toString();
    return `${this.options.apiUrl}${path}${qs ? `?${qs}` : ''}`;
  }

  headers(extra: Record<string, string> = {}): Record<string, string> {
    const h: Record<string, string> = { 'user-agent': `mags-sdk-node/${MAGS_VERSION}`, ...extra };
    if (this.options.apiToken) h.authorization = `Bearer ${this.options.apiToken}`;
    return h;
  }

  /** A JSON request; resolves to the parsed body of a 2xx answer, or throws a MagsApiError. */
  async json<T>(path: string, o: RequestOptions = {}): Promise<T> {
    const { res, timer, timeoutMs, clear } = await this.open(path, o, 'application/json');
    let text: string;
    try {
      text = await res.text();
    } catch (err) {
      throw this.failure(err, timer, o, timeoutMs);
    } finally {
      clear();
    }
    let body: unknown;
    try {
      body = text === '' ? undefined : JSON.parse(text);
    } catch {
      body = undefined;
    }
    if (!res.ok) throw withRequestId(errorFromResponse(res.status, res.statusText, body, this.baseUrl), o.requestId);
    if (body === undefined && !(o.allowEmpty && text === '')) {
      throw new MagsApiError(
        res.status,
        'invalid_response',
        `the Mags server at ${this.baseUrl} answered ${path} with something that is not JSON`,
        {
          requestId: o.requestId,
        },
      );
    }
    return body as T;
  }

  /**
   * Opens a streaming request: resolves once a 2xx answer's headers arrived, leaving its body to the caller;
   * the timeout covers only the wait for those headers. A non-2xx answer becomes a MagsApiError.
   */
  async stream(path: string, o: RequestOptions, accept: string): Promise<Response> {
    const { res, timer, timeoutMs, clear } = await this.open(path, o, accept);
    clear();
    if (res.ok) return res;
    let body: unknown;
    try {
      body = JSON.parse(await res.text());
    } catch (err) {
      if (!(err instanceof SyntaxError)) throw this.failure(err, timer, o, timeoutMs);
      body = undefined;
    }
    throw withRequestId(errorFromResponse(res.status, res.statusText, body, this.baseUrl), o.requestId);
  }

  /**
   * Streams a local file as the raw body of a POST (application/octet-stream, Content-Length set), never holding
   * it in memory; resolves to the parsed JSON of a 2xx answer, or throws a MagsApiError. fetch cannot set
   * Content-Length on a streamed body, so this one request goes through node:http(s). The timeout is for
   * silence (nothing sent or received), so a large file on a slow link is not cut off.
   */
  upload<T>(path: string, u: UploadRequest): Promise<T> {
    const target = new URL(this.url(path, u.query));
    const client = target.protocol === 'https:' ? https : http;
    const idleMs = this.options.timeoutMs;
    return new Promise<T>((resolve, reject) => {
      if (u.signal?.aborted) return reject(u.signal.reason);
      let settled = false;
      let answered = false;
      let sent = 0;
      const req = client.request(target, {
        method: 'POST',
        headers: this.headers({
          accept: 'application/json',
          'content-type': 'application/octet-stream',
          'content-length': String(u.size),
        }),
      });
      const file =
        u.size > 0 ? createReadStream(u.file, { start: 0, end: u.size - 1, highWaterMark: 256 * 1024 }) : undefined;
      const onAbort = () =>
        finish(u.signal?.reason instanceof Error ? u.signal.reason : new Error('the upload was cancelled'));
      function finish(err: unknown, value?: T): void {
        if (settled) return;
        settled = true;
        u.signal?.removeEventListener('abort', onAbort);
        file?.destroy();
        if (err === undefined) return resolve(value as T);
        req.destroy();
        reject(err);
      }
      u.signal?.addEventListener('abort', onAbort, { once: true });
      req.setTimeout(idleMs, () =>
        finish(
          new MagsTimeoutError(
            `the Mags server at ${this.baseUrl} did not answer within ${Math.round(idleMs / 1000)} s`,
          ),
        ),
      );
      req.on('error', (err) => {
        // A server that refuses early (401, 413) may close the connection while the body is still being sent:
        // its answer, not the broken pipe, is what to report.
        if (!answered) finish(connectionError(this.baseUrl, err));
      });
      req.on('response', (res) => {
        answered = true;
        if (file) file.unpipe(req);
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('error', (err) => finish(connectionError(this.baseUrl, err)));
        res.on('end', () => {
          const status = res.statusCode ?? 0;
          const text = Buffer.concat(chunks).toString('utf8');
          let body: unknown;
          try {
            body = text === '' ? undefined : JSON.parse(text);
          } catch {
            body = undefined;
          }
          if (status < 200 || status > 299)
            return finish(errorFromResponse(status, res.statusMessage ?? '', body, this.baseUrl));
          if (body === undefined) {
            return finish(
              new MagsApiError(
                status,
                'invalid_response',
                `the Mags server at ${this.baseUrl} answered ${path} with something that is not JSON`,
              ),
            );
          }
          finish(undefined, body as T);
        });
      });
      if (!file) {
        u.onProgress?.(0, 0);
        req.end();
        return;
      }
      file.on('data', (chunk) => {
        sent += chunk.length;
        u.onProgress?.(sent, u.size);
      });
      file.on('error', (err) =>
        finish(new MagsApiError(0, 'invalid_request', `cannot read ${u.file}: ${err.message}`, { cause: err })),
      );
      // Registered before pipe() so that a short read fails the upload before pipe() ends the request.
      file.on('end', () => {
        if (sent !== u.size)
          finish(new MagsApiError(0, 'invalid_request', `${u.file} changed size while it was uploaded; try again`));
      });
      file.pipe(req);
    });
  }

  private async open(
    path: string,
    o: RequestOptions,
    accept: string,
  ): Promise<{ res: Response; timer: AbortSignal; timeoutMs: number; clear: () => void }> {
    const timeoutMs = this.options.timeoutMs + (o.holdMs ?? 0);
    const ctl = new AbortController();
    const handle = setTimeout(
      () => ctl.abort(new DOMException(`no answer within ${timeoutMs} ms`, 'TimeoutError')),
      timeoutMs,
    );
    const clear = () => clearTimeout(handle);
    const signal = o.signal ? AbortSignal.any([o.signal, ctl.signal]) : ctl.signal;
    const init: RequestInit = {
      method: o.method ?? 'GET',
      headers: this.headers(o.body === undefined ? { accept } : { accept, 'content-type': 'application/json' }),
      body: o.body === undefined ? undefined : JSON.stringify(o.body),
      signal,
    };
    try {
      return { res: await fetch(this.url(path, o.query), init), timer: ctl.signal, timeoutMs, clear };
    } catch (err) {
      clear();
      throw this.failure(err, ctl.signal, o, timeoutMs);
    }
  }

  /** Turns a fetch failure into the error a user can act on. */
  failure(err: unknown, timer: AbortSignal | undefined, o: RequestOptions, timeoutMs: number): Error {
    if (o.signal?.aborted) return err instanceof Error ? err : new Error(String(err));
    const name = (err as { name?: string } | null)?.name;
    if (timer?.aborted || name === 'TimeoutError') {
      return new MagsTimeoutError(
        `the Mags server at ${this.baseUrl} did not answer within ${Math.round(timeoutMs / 1000)} s`,
        {
          requestId: o.requestId,
          cause: err,
        },
      );
    }
    return connectionError(this.baseUrl, err);
  }
}

/** The sentence for a server that cannot be reached, with the low-level reason kept as `cause`. */
export function connectionError(baseUrl: string, err: unknown): MagsConnectionError {
  const cause = (err as { cause?: { code?: string } } | null)?.cause;
  const code = cause?.code ?? (err as { code?: string } | null)?.code;
  if (code === 'ENOTFOUND' || code === 'EAI_AGAIN') {
    return new MagsConnectionError(
      `cannot reach the Mags server at ${baseUrl}: its host name does not resolve (check MAGS_API_URL)`,
      { cause: err },
    );
  }
  if (code === 'ECONNRESET' || code === 'UND_ERR_SOCKET' || code === 'EPIPE') {
    return new MagsConnectionError(`the connection to the Mags server at ${baseUrl} broke; try again`, { cause: err });
  }
  return new MagsConnectionError(`cannot reach the Mags server at ${baseUrl}: is it running? (mags server)`, {
    cause: err,
  });
}

function withRequestId(err: MagsApiError, requestId: string | undefined): MagsApiError {
  if (requestId === undefined || err.requestId !== undefined) return err;
  return new MagsApiError(err.status, err.code, err.message, { requestId });
}
