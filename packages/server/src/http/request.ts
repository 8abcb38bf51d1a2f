// Request typing shared by every route: the Fastify instance with TypeBox types, the caller the auth hook sets, the
// per-route `public` flag, and the error responses a route declares.
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import { ErrorBody, MagsError } from '@mags/api';
import type {
  FastifyBaseLogger,
  FastifyInstance,
  FastifyRequest,
  RawReplyDefaultExpression,
  RawRequestDefaultExpression,
  RawServerDefault,
} from 'fastify';
import type { AuthenticatedUser } from './auth.js';

export type MagsApp = FastifyInstance<
  RawServerDefault,
  RawRequestDefaultExpression,
  RawReplyDefaultExpression,
  FastifyBaseLogger,
  TypeBoxTypeProvider
>;

declare module 'fastify' {
  interface FastifyRequest {
    /** The caller, set by the auth hook on every route that is not public. */
    user: AuthenticatedUser | null;
  }
  interface FastifyContextConfig {
    /** Routes anyone may call without a token (health, the OpenAPI document). */
    public?: boolean;
  }
}

/** The authenticated caller; routes that are not public always have one. */
export function callerOf(request: FastifyRequest): AuthenticatedUser {
  if (!request.user) throw MagsError.unauthorized();
  return request.user;
}

/** The error responses of a route, for its schema: each answers `{ error, code }`. */
export const errors = (...codes: number[]) => Object.fromEntries(codes.map((c) => [c, ErrorBody]));
