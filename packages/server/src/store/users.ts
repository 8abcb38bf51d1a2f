// The users and tokens tables. Only a token's sha256 and a short prefix are ever stored.
import { randomUUID } from 'node:crypto';
import { sql } from 'kysely';
import type { StoreKind } from '../config.js';
import type { TokenRow, UserRow } from './schema.js';
import { type Db, transaction } from './transaction.js';

/** A token as the store keeps it: its hash, a prefix to recognise it by, and a name. */
export interface TokenSecret {
  hash: string;
  prefix: string;
  name: string;
}

export class UserStore {
  constructor(
    private readonly db: Db,
    private readonly kind: StoreKind,
  ) {}

  async count(): Promise<number> {
    const row = await this.db
      .selectFrom('users')
      .select((eb) => eb.fn.countAll<number>().as('n'))
      .executeTakeFirstOrThrow();
    return Number(row.n);
  }

  /** The server's owner: the first user, made on the first start (Auth.bootstrapOwner). */
  async ownerId(): Promise<string | undefined> {
    const first = this.db.selectFrom('users').select('id').orderBy('created_at').orderBy('id').limit(1);
    return (await first.executeTakeFirst())?.id;
  }

  async get(id: string): Promise<UserRow | undefined> {
    return this.db.selectFrom('users').selectAll().where('id', '=', id).executeTakeFirst();
  }

  async create(name: string, now = Date.now()): Promise<UserRow> {
    const user = newUser(name, now);
    await this.db.insertInto('users').values(user).execute();
    return user;
  }

  /**
   * Adds a user with a first token, unless a user (removed or not) already has the name: undefined then. The name
   * check and the insert hold one lock on PostgreSQL, so that two owners' clicks make one user.
   */
  async createNamed(name: string, token: TokenSecret, now = Date.now()): Promise<UserRow | undefined> {
    return transaction(this.db, async (trx) => {
      if (this.kind === 'postgres') await sql`select pg_advisory_xact_lock(7373002)`.execute(trx);
      const existing = await trx.selectFrom('users').select('id').where('name', '=', name).executeTakeFirst();
      if (existing) return undefined;
      return insertUser(trx, name, token, now);
    });
  }

  /** The users that are not removed, oldest first (the owner first). */
  async list(): Promise<UserRow[]> {
    return this.db
      .selectFrom('users')
      .selectAll()
      .where('removed_at', 'is', null)
      .orderBy('created_at')
      .orderBy('id')
      .execute();
  }

  /** A user that is not removed, by name. */
  async getByName(name: string): Promise<UserRow | undefined> {
    return this.db
      .selectFrom('users')
      .selectAll()
      .where('name', '=', name)
      .where('removed_at', 'is', null)
      .executeTakeFirst();
  }

  /** Binds an OpenID Connect account to a user that has none yet; false when another is bound already. */
  async bindOidc(userId: string, subject: string): Promise<boolean> {
    const r = await this.db
      .updateTable('users')
      .set({ oidc_subject: subject })
      .where('id', '=', userId)
      .where((eb) => eb.or([eb('oidc_subject', 'is', null), eb('oidc_subject', '=', subject)]))
      .executeTakeFirst();
    return Number(r.numUpdatedRows) > 0;
  }

  async setPassword(userId: string, hash: string): Promise<void> {
    await this.db.updateTable('users').set({ password_hash: hash }).where('id', '=', userId).execute();
  }

  /** Removes a user but keeps its data: its credentials (tokens, sessions, pending logins, SSH keys) go at once. */
  async markRemoved(userId: string, now = Date.now()): Promise<void> {
    await transaction(this.db, async (trx) => {
      await trx.updateTable('users').set({ removed_at: now }).where('id', '=', userId).execute();
      await trx.updateTable('tokens').set({ revoked_at: now }).where('user_id', '=', userId).execute();
      await trx.deleteFrom('sessions').where('user_id', '=', userId).execute();
      await trx.deleteFrom('device_logins').where('user_id', '=', userId).execute();
      // An SSH key would otherwise still open (and wake) the user's sandboxes through the gateway.
      await trx.deleteFrom('ssh_keys').where('user_id', '=', userId).execute();
    });
  }

  /** Deletes a user and, by cascade, every row that is theirs (jobs, logs, workspaces, files, keys, tokens). */
  async delete(userId: string): Promise<void> {
    await this.db.deleteFrom('users').where('id', '=', userId).execute();
  }

  /** A user's tokens that still work (not revoked, not expired), newest first. */
  async listTokens(userId: string, now = Date.now()): Promise<TokenRow[]> {
    return this.db
      .selectFrom('tokens')
      .selectAll()
      .where('user_id', '=', userId)
      .where('revoked_at', 'is', null)
      .where((eb) => eb.or([eb('expires_at', 'is', null), eb('expires_at', '>', now)]))
      .orderBy('created_at', 'desc')
      .orderBy('id')
      .execute();
  }

  /** Revokes one of a user's tokens; false when the user has no such working token. */
  async revokeToken(userId: string, tokenId: string, now = Date.now()): Promise<boolean> {
    const r = await this.db
      .updateTable('tokens')
      .set({ revoked_at: now })
      .where('id', '=', tokenId)
      .where('user_id', '=', userId)
      .where('revoked_at', 'is', null)
      .executeTakeFirst();
    return Number(r.numUpdatedRows) > 0;
  }

  /**
   * Creates `name` with a token, only if there is no user at all yet. Returns the user, or undefined when
   * another user exists (also when another server replica won the race).
   */
  async createFirst(name: string, token: TokenSecret, now = Date.now()): Promise<UserRow | undefined> {
    return transaction(this.db, async (trx) => {
      if (this.kind === 'postgres') await sql`select pg_advisory_xact_lock(7373001)`.execute(trx);
      const existing = await trx.selectFrom('users').select('id').limit(1).executeTakeFirst();
      if (existing) return undefined;
      return insertUser(trx, name, token, now);
    });
  }

  async insertToken(userId: string, token: TokenSecret, now = Date.now(), expiresAt?: number): Promise<TokenRow> {
    const row = { ...tokenRow(userId, token, now), expires_at: expiresAt ?? null };
    await this.db.insertInto('tokens').values(row).execute();
    return row;
  }

  /** The user (not removed) owning the working (not revoked, not expired) token with this sha256 hash. */
  async findByTokenHash(hash: string, now = Date.now()): Promise<{ user: UserRow; token: TokenRow } | undefined> {
    const row = await this.db
      .selectFrom('tokens')
      .innerJoin('users', 'users.id', 'tokens.user_id')
      .select([
        'tokens.id as token_id',
        'tokens.name as token_name',
        'tokens.prefix',
        'tokens.created_at as token_created_at',
        'tokens.last_used_at',
        'tokens.revoked_at',
        'tokens.expires_at',
        'users.id as user_id',
        'users.name as user_name',
        'users.created_at as user_created_at',
      ])
      .where('tokens.token_hash', '=', hash)
      .where('tokens.revoked_at', 'is', null)
      .where('users.removed_at', 'is', null)
      .where((eb) => eb.or([eb('tokens.expires_at', 'is', null), eb('tokens.expires_at', '>', now)]))
      .executeTakeFirst();
    if (!row) return undefined;
    return {
      user: {
        id: row.user_id,
        name: row.user_name,
        created_at: row.user_created_at,
        password_hash: null,
        removed_at: null,
        oidc_subject: null,
      },
      token: {
        id: row.token_id,
        user_id: row.user_id,
        name: row.token_name,
        token_hash: hash,
        prefix: row.prefix,
        created_at: row.token_created_at,
        last_used_at: row.last_used_at,
        revoked_at: row.revoked_at,
        expires_at: row.expires_at,
      },
    };
  }

  async touchToken(id: string, now = Date.now()): Promise<void> {
    await this.db.updateTable('tokens').set({ last_used_at: now }).where('id', '=', id).execute();
  }
}

function tokenRow(userId: string, token: TokenSecret, now: number): TokenRow {
  return {
    id: randomUUID(),
    user_id: userId,
    name: token.name,
    token_hash: token.hash,
    prefix: token.prefix,
    created_at: now,
    last_used_at: null,
    revoked_at: null,
    expires_at: null,
  };
}

/** Stores a new user with its first token (inside the caller's transaction). */
async function insertUser(trx: Db, name: string, token: TokenSecret, now: number): Promise<UserRow> {
  const user = newUser(name, now);
  await trx.insertInto('users').values(user).execute();
  await trx
    .insertInto('tokens')
    .values(tokenRow(user.id, token, now))
    .execute();
  return user;
}

/** A new user's row: no password, not removed, not bound to a single sign-on account. */
function newUser(name: string, now: number): UserRow {
  return { id: randomUUID(), name, created_at: now, password_hash: null, removed_at: null, oidc_subject: null };
}
