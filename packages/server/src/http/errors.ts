// The one mapping from any error a request can raise to an HTTP status and `{ error, code }`.
// A 500 means a bug in the server: it is logged with its stack and answered without details.
import { type ErrorBody, MagsError } from '@mags/api';
import { describeValidation, type SchemaError } from './validation.js';

export const BODY_LIMIT_BYTES = 1024 * 1024;
const INVALID_JSON = 'the request body is not valid JSON; send a JSON object such as {"script": "echo hello"}';

interface FastifyLikeError {
  code?: unknown;
  statusCode?: unknown;
  message?: unknown;
  validation?: unknown;
  validationContext?: unknown;
}

export interface HttpError {
  status: number;
  body: ErrorBody;
  /** Whether this is a server fault worth logging as an error. */
  internal: boolean;
}

export function toHttpError(err: unknown): HttpError {
  if (err instanceof MagsError) {
    return { status: err.status, body: err.toJSON(), internal: err.status >= 500 };
  }
  const e = (typeof err === 'object' && err !== null ? err : {}) as FastifyLikeError;
  const message = typeof e.message === 'string' ? e.message : '';
  const fail = (status: number, code: string, sentence: string): HttpError => ({
    status,
    body: { error: sentence, code },
    internal: false,
  });

  if (Array.isArray(e.validation)) {
    const part = typeof e.validationContext === 'string' ? e.validationContext : undefined;
    return fail(400, 'invalid_request', describeValidation(e.validation as SchemaError[], part));
  }
  switch (e.code) {
    case 'FST_ERR_CTP_BODY_TOO_LARGE':
      return fail(
        413,
        'payload_too_large',
        `the request body is larger than the ${BODY_LIMIT_BYTES / 1024 / 1024} MiB limit; send a smaller body (an inline script may be at most 256 KiB)`,
      );
    case 'FST_ERR_CTP_INVALID_MEDIA_TYPE':
      return fail(
        415,
        'unsupported_media_type',
        'send the request body as JSON with the header "Content-Type: application/json"',
      );
    case 'FST_ERR_CTP_EMPTY_JSON_BODY':
      return fail(400, 'invalid_request', 'the request body is empty; send a JSON object');
    case 'FST_ERR_CTP_INVALID_CONTENT_LENGTH':
      return fail(400, 'invalid_request', 'the Content-Length header does not match the body that was sent');
    case 'FST_ERR_CTP_INVALID_JSON':
    case 'FST_ERR_CTP_INVALID_JSON_BODY':
      return fail(400, 'invalid_request', INVALID_JSON);
  }
  const status = typeof e.statusCode === 'number' ? e.statusCode : 500;
  if (err instanceof SyntaxError && status === 400) {
    return fail(400, 'invalid_request', `${INVALID_JSON} (${sentence(message)})`);
  }
  if (status === 503) return fail(503, 'unavailable', 'the server is shutting down; try again in a moment');
  if (status >= 400 && status < 500) {
    return fail(
      status,
      status === 404 ? 'not_found' : 'invalid_request',
      message ? sentence(message) : 'the request is not valid',
    );
  }
  return {
    status: 500,
    body: { error: 'the server failed to handle this request; the error has been logged', code: 'internal' },
    internal: true,
  };
}

/** Fastify's own messages start with a capital and end without a stop; ours are lower-case sentences. */
function sentence(message: string): string {
  return message.charAt(0).toLowerCase() + message.slice(1);
}
