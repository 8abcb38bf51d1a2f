// API tokens: `mags_` + 32 random bytes (base64url). Only the sha256 of a token and a short prefix are stored.
// Browser sessions (a cookie plus a CSRF token) authenticate as well; both are looked up in the store every time.
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { MagsError } from '@mags/api';
import type { SessionStore, TokenRow, UserStore } from '../store/index.js';

export const TOKEN_PREFIX = 'mags_';
const TOKEN_PATTERN = /^mags_[A-Za-z0-9_-]{43}$/;
/** A token's last_used_at is written at most this often. */
const TOUCH_EVERY_MS = 60_000;
const TOUCH_MAX = 10_000;

export interface NewToken {
  token: string;
  hash: string;
  prefix: string;
}

export function generateToken(): NewToken {
  const token = TOKEN_PREFIX + randomBytes(32).toString('base64url');
  return { token, hash: hashToken(token), prefix: token.slice(0, 12) };
}

export function hashToken(token: string): string {
  return createHash('sha256').update(token).digest('hex');
}

export interface AuthenticatedUser {
  id: string;
  name: string;
  /** The API token the request carried (absent for a browser session). */
  tokenId?: string;
  /** The browser session the request carried (absent for an API token). */
  session?: { idHash: string; csrf: string };
}

/** The browser session cookie (HTTP-only, SameSite=Lax); its sha256 is the sessions table's key. */
export const SESSION_COOKIE = 'mags_session';
/** The header a browser session must send on every request that changes something (its CSRF token). */
export const CSRF_HEADER = 'x-csrf-token';
/** Methods that change nothing: a session needs no CSRF token for them. */
const SAFE_METHODS = new Set(['GET', 'HEAD', 'OPTIONS']);

export interface AuthRequest {
  method: string;
  authorization: string | undefined;
  /** The session cookie's value, if any. */
  session: string | undefined;
  /** The X-CSRF-Token header, if any. */
  csrf: string | undefined;
}

export class Auth {
  /** token id → when its last_used_at was last written (written at most once a minute per token). */
  private readonly touched = new Map<string, number>();

  constructor(
    private readonly users: UserStore,
    private readonly sessions: SessionStore,
  ) {}

  /**
   * Creates the local owner and a token when the store has no user yet. Returns the token on the start that
   * created it, else undefined.
   */
  async bootstrapOwner(name = 'owner'): Promise<string | undefined> {
    if ((await this.users.count()) > 0) return undefined;
    const t = generateToken();
    const user = await this.users.createFirst(name, { hash: t.hash, prefix: t.prefix, name: 'local owner token' });
    return user ? t.token : undefined;
  }

  /** Creates a token for a user; the returned token is the only copy. */
  async createToken(userId: string, name: string): Promise<string> {
    return (await this.issueToken(userId, name)).token;
  }

  /** Creates a token (expiring at `expiresAt`, if given): the secret (its only copy) and the stored row. */
  async issueToken(userId: string, name: string, expiresAt?: number): Promise<{ token: string; row: TokenRow }> {
    const t = generateToken();
    const row = await this.users.insertToken(userId, { hash: t.hash, prefix: t.prefix, name }, Date.now(), expiresAt);
    return { token: t.token, row };
  }

  /**
   * The caller of a request: its bearer token, else its session cookie (which must bring its CSRF token on any
   * method that changes something), or a 401/403 MagsError saying what is wrong.
   */
  async authenticateRequest(r: AuthRequest): Promise<AuthenticatedUser> {
    if (r.authorization !== undefined || r.session === undefined) return this.authenticate(r.authorization);
    const found = await this.sessions.find(hashToken(r.session));
    if (!found) throw MagsError.unauthorized('your browser session has ended: sign in again at /signin');
    if (!SAFE_METHODS.has(r.method.toUpperCase()) && !sameSecret(r.csrf, found.session.csrf)) {
      throw new MagsError(
        403,
        'forbidden',
        `a request made with a browser session must send its CSRF token in the ${CSRF_HEADER} header (GET /api/v1/me answers it as csrf_token)`,
      );
    }
    return {
      id: found.session.user_id,
      name: found.name,
      session: { idHash: found.session.id_hash, csrf: found.session.csrf },
    };
  }

  /**
   * The user of an `Authorization` header value, or a 401 MagsError saying what is wrong. Every request asks the
   * store (an indexed lookup), so that a revoked or expired token, or a removed user, is refused at once on every
   * replica.
   */
  async authenticate(header: string | undefined): Promise<AuthenticatedUser> {
    if (header === undefined || header.trim() === '') throw MagsError.unauthorized();
    const match = /^bearer\s+(\S+)\s*$/i.exec(header.trim());
    if (!match) throw MagsError.unauthorized('the Authorization header must be "Bearer <token>" with a Mags API token');
    const token = match[1];
    const invalid = MagsError.unauthorized(
      'the API token is not valid (revoked, expired or mistyped): check MAGS_API_TOKEN or run "mags login" to get a new one',
    );
    if (!TOKEN_PATTERN.test(token)) throw invalid;

    const now = Date.now();
    const found = await this.users.findByTokenHash(hashToken(token), now);
    if (!found) throw invalid;
    const last = this.touched.get(found.token.id);
    if (last === undefined || now - last > TOUCH_EVERY_MS) {
      if (this.touched.size >= TOUCH_MAX) this.touched.clear();
      this.touched.set(found.token.id, now);
      void this.users.touchToken(found.token.id, now).catch(() => undefined);
    }
    return { id: found.user.id, name: found.user.name, tokenId: found.token.id };
  }

  /** Refuses (403) a caller who is not the server's owner; `what` completes "only the server's owner may …". */
  async requireOwner(user: AuthenticatedUser, what: string): Promise<void> {
    if ((await this.users.ownerId()) === user.id) return;
    throw new MagsError(403, 'forbidden', `only the server's owner may ${what}`);
  }
}

/** Whether two secrets are equal, in time that does not depend on where they differ. */
export function sameSecret(given: string | undefined, expected: string): boolean {
  if (given === undefined) return false;
  const a = createHash('sha256').update(given).digest();
  const b = createHash('sha256').update(expected).digest();
  return timingSafeEqual(a, b);
}
