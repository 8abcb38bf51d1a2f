// The one place the SDK talks HTTP: base URL, token, timeouts, and the mapping of every failure to a typed error.
import { MAGS_VERSION } from '@mags/api';
import { MagsApiError, MagsConnectionError, MagsTimeoutError, errorFromResponse } from './errors.js';

export interface TransportOptions {
  apiUrl: string;
  apiToken: string | undefined;
  /** Longest wait for an answer to an ordinary request (a long-poll gets its wait on top). */
  timeoutMs: number;
}

export interface RequestOptions {
  method?: 'GET' | 'POST' | 'PATCH' | 'DELETE';
  query?: Record<string, string | number | boolean | undefined>;
  body?: unknown;
  /** Extra time the server is expected to hold the request (long-poll). */
  holdMs?: number;
  /** The job this request is about, carried by errors. */
  requestId?: string;
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
    if (body === undefined) {
      throw new MagsApiError(res.status, 'invalid_response', `the Mags server at ${this.baseUrl} answered ${path} with something that is not JSON`, {
        requestId: o.requestId,
      });
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

  private async open(
    path: string,
    o: RequestOptions,
    accept: string,
  ): Promise<{ res: Response; timer: AbortSignal; timeoutMs: number; clear: () => void }> {
    const timeoutMs = this.options.timeoutMs + (o.holdMs ?? 0);
    const ctl = new AbortController();
    const handle = setTimeout(() => ctl.abort(new DOMException(`no answer within ${timeoutMs} ms`, 'TimeoutError')), timeoutMs);
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
      return new MagsTimeoutError(`the Mags server at ${this.baseUrl} did not answer within ${Math.round(timeoutMs / 1000)} s`, {
        requestId: o.requestId,
        cause: err,
      });
    }
    return connectionError(this.baseUrl, err);
  }
}

/** The sentence for a server that cannot be reached, with the low-level reason kept as `cause`. */
export function connectionError(baseUrl: string, err: unknown): MagsConnectionError {
  const cause = (err as { cause?: { code?: string } } | null)?.cause;
  const code = cause?.code ?? (err as { code?: string } | null)?.code;
  if (code === 'ENOTFOUND' || code === 'EAI_AGAIN') {
    return new MagsConnectionError(`cannot reach the Mags server at ${baseUrl}: its host name does not resolve (check MAGS_API_URL)`, { cause: err });
  }
  if (code === 'ECONNRESET' || code === 'UND_ERR_SOCKET' || code === 'EPIPE') {
    return new MagsConnectionError(`the connection to the Mags server at ${baseUrl} broke; try again`, { cause: err });
  }
  return new MagsConnectionError(`cannot reach the Mags server at ${baseUrl}: is it running? (mags server)`, { cause: err });
}

function withRequestId(err: MagsApiError, requestId: string | undefined): MagsApiError {
  if (requestId === undefined || err.requestId !== undefined) return err;
  return new MagsApiError(err.status, err.code, err.message, { requestId });
}
