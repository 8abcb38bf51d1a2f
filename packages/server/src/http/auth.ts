// API tokens: `mags_` + 32 random bytes (base64url). Only the sha256 of a token and a short prefix are stored.
// A small in-memory cache maps hash → user so that authenticating a request is not a database round trip.
import { createHash, randomBytes } from 'node:crypto';
import { MagsError } from '@mags/api';
import type { UserStore } from '../store/index.js';

export const TOKEN_PREFIX = 'mags_';
const TOKEN_PATTERN = /^mags_[A-Za-z0-9_-]{43}$/;
/** How long a token stays trusted without asking the store again (bounds how late a revocation takes effect). */
const CACHE_TTL_MS = 60_000;
const CACHE_MAX = 1000;

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
}

export class Auth {
  private readonly cache = new Map<string, { user: AuthenticatedUser; expires: number }>();

  constructor(private readonly users: UserStore) {}

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
    const t = generateToken();
    await this.users.insertToken(userId, { hash: t.hash, prefix: t.prefix, name });
    return t.token;
  }

  /** The user of an `Authorization` header value, or a 401 MagsError saying what is wrong. */
  async authenticate(header: string | undefined): Promise<AuthenticatedUser> {
    if (header === undefined || header.trim() === '') throw MagsError.unauthorized();
    const match = /^bearer\s+(\S+)\s*$/i.exec(header.trim());
    if (!match) throw MagsError.unauthorized('the Authorization header must be "Bearer <token>" with a Mags API token');
    const token = match[1];
    const invalid = MagsError.unauthorized(
      'the API token is not valid: check MAGS_API_TOKEN or run "mags login" to get a new one',
    );
    if (!TOKEN_PATTERN.test(token)) throw invalid;

    const hash = hashToken(token);
    const now = Date.now();
    const cached = this.cache.get(hash);
    if (cached && cached.expires > now) return cached.user;

    const found = await this.users.findByTokenHash(hash);
    if (!found) {
      this.cache.delete(hash);
      throw invalid;
    }
    const user: AuthenticatedUser = { id: found.user.id, name: found.user.name };
    if (this.cache.size >= CACHE_MAX) {
      // Drop the oldest entry (Map keeps insertion order).
      const oldest = this.cache.keys().next();
      if (!oldest.done) this.cache.delete(oldest.value);
    }
    this.cache.set(hash, { user, expires: now + CACHE_TTL_MS });
    // Recorded once per cache fill, not on every request.
    void this.users.touchToken(found.token.id, now).catch(() => undefined);
    return user;
  }

  /** Refuses (403) a caller who is not the server's owner; `what` completes "only the server's owner may …". */
  async requireOwner(user: AuthenticatedUser, what: string): Promise<void> {
    if ((await this.users.ownerId()) === user.id) return;
    throw new MagsError(403, 'forbidden', `only the server's owner may ${what}`);
  }
}
