// One error type for the whole project: a stable machine code, an HTTP status, and a sentence a user can act on.
import { type Static, Type } from 'typebox';

export const ErrorBody = Type.Object(
  {
    error: Type.String({ description: 'A sentence a person can act on' }),
    code: Type.String({ description: 'Stable machine-readable code' }),
  },
  { $id: 'Error' },
);
export type ErrorBody = Static<typeof ErrorBody>;

export type ErrorCode =
  | 'invalid_request'
  | 'unauthorized'
  | 'forbidden'
  | 'not_found'
  | 'conflict'
  | 'payload_too_large'
  | 'unsupported_media_type'
  | 'unavailable'
  | 'unsupported_option'
  | 'invalid_name'
  | 'too_many_requests'
  | 'no_capacity'
  | 'insufficient_storage'
  | 'disk_quota_exceeded'
  | 'agent_unavailable'
  | 'sandbox_failed'
  | 'timeout'
  | 'network_error'
  | 'internal';

export class MagsError extends Error {
  readonly code: ErrorCode | string;
  readonly status: number;
  constructor(status: number, code: ErrorCode | string, message: string) {
    super(message);
    this.name = 'MagsError';
    this.status = status;
    this.code = code;
  }
  toJSON(): ErrorBody {
    return { error: this.message, code: this.code };
  }
  static invalid(message: string): MagsError {
    return new MagsError(400, 'invalid_request', message);
  }
  static notFound(message: string): MagsError {
    return new MagsError(404, 'not_found', message);
  }
  static unauthorized(
    message = 'a valid API token is required: pass "Authorization: Bearer <token>" or set MAGS_API_TOKEN',
  ): MagsError {
    return new MagsError(401, 'unauthorized', message);
  }
  static conflict(message: string): MagsError {
    return new MagsError(409, 'conflict', message);
  }
  static unsupported(message: string): MagsError {
    return new MagsError(422, 'unsupported_option', message);
  }
}
