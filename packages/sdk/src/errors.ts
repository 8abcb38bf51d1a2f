// The SDK's errors. Every one is a MagsError (the project's one error type): a stable code, an HTTP status
// (0 when no HTTP answer arrived) and a sentence a user can act on.
import { type ErrorBody, MagsError } from '@mags/api';

/** The API refused or failed a request; `code` and `message` are the server's own (`{ error, code }`). */
export class MagsApiError extends MagsError {
  /** The job the error is about, when there is one. */
  readonly requestId: string | undefined;
  constructor(status: number, code: string, message: string, options: { requestId?: string; cause?: unknown } = {}) {
    super(status, code, message);
    this.name = 'MagsApiError';
    this.requestId = options.requestId;
    if (options.cause !== undefined) (this as { cause?: unknown }).cause = options.cause;
  }
}

/** No HTTP answer: the server is down, the address is wrong, or the connection broke. `status` is 0. */
export class MagsConnectionError extends MagsApiError {
  constructor(message: string, options: { cause?: unknown } = {}) {
    super(0, 'network_error', message, options);
    this.name = 'MagsConnectionError';
  }
}

/** A wait ran out: `runAndWait`'s `timeout`, or a request that got no answer in `timeoutMs`. The job itself keeps running. */
export class MagsTimeoutError extends MagsApiError {
  constructor(message: string, options: { requestId?: string; cause?: unknown } = {}) {
    super(0, 'timeout', message, options);
    this.name = 'MagsTimeoutError';
  }
}

const CODE_BY_STATUS: Record<number, string> = {
  400: 'invalid_request',
  401: 'unauthorized',
  403: 'forbidden',
  404: 'not_found',
  409: 'conflict',
  413: 'payload_too_large',
  415: 'unsupported_media_type',
  422: 'unsupported_option',
  429: 'too_many_requests',
  503: 'unavailable',
  507: 'insufficient_storage',
};

/** The error for a non-2xx answer: the body's `{ error, code }` when it has them, else a sentence from the status. */
export function errorFromResponse(status: number, statusText: string, body: unknown, baseUrl: string): MagsApiError {
  const b = (typeof body === 'object' && body !== null ? body : {}) as Partial<ErrorBody>;
  if (typeof b.error === 'string' && b.error !== '') {
    return new MagsApiError(status, typeof b.code === 'string' && b.code ? b.code : codeForStatus(status), b.error);
  }
  const text = statusText ? `${status} ${statusText}` : String(status);
  return new MagsApiError(
    status,
    codeForStatus(status),
    `the Mags server at ${baseUrl} answered HTTP ${text} without an explanation`,
  );
}

function codeForStatus(status: number): string {
  return CODE_BY_STATUS[status] ?? (status >= 500 ? 'internal' : 'invalid_request');
}
