// Accounts: users (added and removed by the owner), API tokens, passwords, browser sessions, one-time sign-in links
// and the `mags login` device flow. Stopping a removed user's sandboxes and deleting its data are the other
// domains' work, handed in by index.ts.
import { randomBytes, randomInt } from 'node:crypto';
import {
  type DeviceLoginResult,
  type DeviceLoginStarted,
  MagsError,
  type Me,
  MIN_PASSWORD,
  type TokenCreate,
  type TokenCreated,
  type TokenInfo,
  type UserCreated,
  type UserInfo,
  type UserRemoved,
} from '@mags/api';
import type { Logger } from 'pino';
import { type Auth, type AuthenticatedUser, generateToken, hashToken } from '../http/auth.js';
import type { Store, TokenRow, UserRow } from '../store/index.js';
import type { OidcIdentity } from './oidc.js';
import { hashPassword, verifyPassword } from './passwords.js';
import { SignInThrottle } from './throttle.js';

const DAY_MS = 86_400_000;
export const SESSION_DAYS = 7;
const LINK_DAYS = 7;
const DEVICE_TTL_S = 600;
const DEVICE_INTERVAL_S = 2;
/** Letters that cannot be misread for one another (no vowels: no words), for the code shown on both screens. */
const CODE_ALPHABET = 'BCDFGHJKLMNPQRSTVWXZ';

export interface AccountsDeps {
  store: Store;
  auth: Auth;
  logger: Logger;
  /** Stops every unfinished job of a user; answers how many. */
  stopUserJobs(userId: string): Promise<number>;
  /** Deletes a user's workspaces (with their stored versions) and uploaded files. */
  deleteUserData(userId: string): Promise<void>;
  /** The base wait of the sign-in throttle (tests shorten it). */
  throttleBaseMs?: number;
}

export interface NewSession {
  /** The cookie's value (only the client keeps it). */
  cookie: string;
  csrf: string;
  user: UserRow;
}

const iso = (ms: number | null) => (ms === null ? null : new Date(Number(ms)).toISOString());

export function tokenInfo(t: TokenRow): TokenInfo {
  return {
    id: t.id,
    name: t.name,
    prefix: t.prefix,
    created_at: new Date(Number(t.created_at)).toISOString(),
    last_used_at: iso(t.last_used_at),
    expires_at: iso(t.expires_at),
  };
}

export class Accounts {
  private readonly throttle: SignInThrottle;

  constructor(private readonly deps: AccountsDeps) {
    this.throttle = new SignInThrottle(deps.throttleBaseMs);
  }

  private get store() {
    return this.deps.store;
  }

  async isOwner(userId: string): Promise<boolean> {
    return (await this.store.users.ownerId()) === userId;
  }

  async me(user: AuthenticatedUser): Promise<Me> {
    return {
      user_id: user.id,
      name: user.name,
      owner: await this.isOwner(user.id),
      token_id: user.tokenId ?? null,
      csrf_token: user.session?.csrf ?? null,
    };
  }

  async listUsers(): Promise<UserInfo[]> {
    const owner = await this.store.users.ownerId();
    return (await this.store.users.list()).map((u) => userInfo(u, owner));
  }

  async addUser(name: string, baseUrl: string): Promise<UserCreated> {
    const t = generateToken();
    const user = await this.store.users.createNamed(name, { hash: t.hash, prefix: t.prefix, name: 'first token' });
    if (!user) throw MagsError.conflict(`a user named "${name}" exists (or existed): choose another name`);
    const code = await this.createSigninLink(user.id);
    this.deps.logger.info({ user: user.id, name }, 'user added');
    return {
      user_id: user.id,
      name,
      token: t.token,
      signin_url: `${baseUrl}/signin/link?code=${code}`,
    };
  }

  /** A fresh one-time link where the user chooses a password; answers its code. */
  async createSigninLink(userId: string): Promise<string> {
    const code = randomBytes(24).toString('base64url');
    const now = Date.now();
    await this.store.signinLinks.insert(hashToken(code), userId, now, now + LINK_DAYS * DAY_MS);
    return code;
  }

  async removeUser(caller: AuthenticatedUser, name: string, deleteData: boolean): Promise<UserRemoved> {
    const user = await this.store.users.getByName(name);
    if (!user) throw MagsError.notFound(`user "${name}" not found: "mags user list" shows the users`);
    if (user.id === caller.id || (await this.isOwner(user.id))) {
      throw MagsError.conflict("the server's owner cannot be removed");
    }
    // Tokens and sessions first, so that nothing new starts while the jobs stop.
    await this.store.users.markRemoved(user.id);
    const stopped = await this.deps.stopUserJobs(user.id);
    if (deleteData) {
      await this.deps.deleteUserData(user.id);
      await this.store.users.delete(user.id);
    }
    this.deps.logger.info({ user: user.id, name, stopped, deleteData }, 'user removed');
    return { name, jobs_stopped: stopped, data_deleted: deleteData };
  }

  async setPassword(userId: string, password: string): Promise<void> {
    if (password.length < MIN_PASSWORD) {
      throw MagsError.invalid(`a password needs at least ${MIN_PASSWORD} characters`);
    }
    await this.store.users.setPassword(userId, await hashPassword(password));
  }

  async listTokens(userId: string): Promise<TokenInfo[]> {
    return (await this.store.users.listTokens(userId)).map(tokenInfo);
  }

  async createToken(userId: string, body: TokenCreate): Promise<TokenCreated> {
    const expires = body.expires_in_days === undefined ? undefined : Date.now() + body.expires_in_days * DAY_MS;
    const { token, row } = await this.deps.auth.issueToken(userId, body.name, expires);
    return { ...tokenInfo(row), token };
  }

  async revokeToken(userId: string, tokenId: string): Promise<void> {
    if (!(await this.store.users.revokeToken(userId, tokenId))) {
      throw MagsError.notFound(`token "${tokenId}" not found (or already revoked): "mags token list" shows yours`);
    }
  }

  /** Checks a name and password (slowed after failures) and opens a session. */
  async signIn(name: string, password: string, address: string): Promise<NewSession> {
    this.throttle.check(name, address);
    const user = await this.store.users.getByName(name);
    const ok = await verifyPassword(password, user?.password_hash ?? null);
    if (!user || !ok) {
      this.throttle.failed(name, address);
      throw MagsError.unauthorized('the name or password is wrong');
    }
    this.throttle.succeeded(name);
    return this.openSession(user);
  }

  /**
   * Opens a session for a single sign-on: the user named by the provider must exist (the owner adds it); its first
   * sign-on binds the provider's account to it, and from then on only that account signs in as it.
   */
  async signInOidc(identity: OidcIdentity): Promise<NewSession> {
    const user = await this.store.users.getByName(identity.name);
    if (!user) {
      throw new MagsError(
        403,
        'forbidden',
        `no Mags user is named "${identity.name}": ask the server's owner to add you (mags user add ${identity.name})`,
      );
    }
    if (!(await this.store.users.bindOidc(user.id, identity.subject))) {
      throw new MagsError(403, 'forbidden', `the Mags user "${identity.name}" signs in with another account`);
    }
    return this.openSession(user);
  }

  async openSession(user: UserRow): Promise<NewSession> {
    const cookie = randomBytes(32).toString('base64url');
    const csrf = randomBytes(24).toString('base64url');
    const now = Date.now();
    await this.store.sessions.insert({
      id_hash: hashToken(cookie),
      user_id: user.id,
      csrf,
      created_at: now,
      expires_at: now + SESSION_DAYS * DAY_MS,
    });
    void this.store.sessions.deleteExpired(now).catch(() => undefined);
    return { cookie, csrf, user };
  }

  /** The session of a cookie value (pages read it themselves: they are public routes). */
  async sessionOf(cookie: string | undefined): Promise<AuthenticatedUser | undefined> {
    if (!cookie) return undefined;
    const found = await this.store.sessions.find(hashToken(cookie));
    if (!found) return undefined;
    return {
      id: found.session.user_id,
      name: found.name,
      session: { idHash: found.session.id_hash, csrf: found.session.csrf },
    };
  }

  async signOut(idHash: string): Promise<void> {
    await this.store.sessions.delete(idHash);
  }

  /** The user a sign-in link is for, without using it up (undefined: unknown, used or expired). */
  async linkUser(code: string): Promise<UserRow | undefined> {
    const userId = await this.store.signinLinks.peek(hashToken(code));
    const user = userId === undefined ? undefined : await this.store.users.get(userId);
    return user && user.removed_at === null ? user : undefined;
  }

  /** Uses a sign-in link up: sets the password and opens a session. */
  async useLink(code: string, password: string): Promise<NewSession> {
    if (password.length < MIN_PASSWORD) {
      throw MagsError.invalid(`a password needs at least ${MIN_PASSWORD} characters`);
    }
    const userId = await this.store.signinLinks.take(hashToken(code));
    const user = userId === undefined ? undefined : await this.store.users.get(userId);
    if (!user || user.removed_at !== null) {
      throw MagsError.notFound('this sign-in link is unknown, used or expired: ask the server’s owner for a new one');
    }
    await this.store.users.setPassword(user.id, await hashPassword(password));
    return this.openSession(user);
  }

  async startDeviceLogin(clientName: string | undefined, baseUrl: string): Promise<DeviceLoginStarted> {
    const deviceCode = randomBytes(32).toString('base64url');
    let userCode = '';
    for (let i = 0; i < 8; i++) userCode += CODE_ALPHABET[randomInt(CODE_ALPHABET.length)];
    userCode = `${userCode.slice(0, 4)}-${userCode.slice(4)}`;
    const now = Date.now();
    await this.store.deviceLogins.insert({
      device_hash: hashToken(deviceCode),
      user_code: userCode,
      client_name: (clientName ?? 'mags login').slice(0, 100),
      status: 'pending',
      user_id: null,
      created_at: now,
      expires_at: now + DEVICE_TTL_S * 1000,
    });
    void this.store.deviceLogins.deleteExpired(now).catch(() => undefined);
    return {
      device_code: deviceCode,
      user_code: userCode,
      verification_uri: `${baseUrl}/device`,
      verification_uri_complete: `${baseUrl}/device?code=${userCode}`,
      expires_in: DEVICE_TTL_S,
      interval: DEVICE_INTERVAL_S,
    };
  }

  /** A pending login's client name, for the approval page (undefined: unknown or expired). */
  async pendingLogin(userCode: string): Promise<{ clientName: string; status: string } | undefined> {
    const row = await this.store.deviceLogins.byUserCode(normaliseCode(userCode));
    return row ? { clientName: row.client_name, status: row.status } : undefined;
  }

  async approveLogin(userId: string, userCode: string): Promise<void> {
    if (!(await this.store.deviceLogins.approve(normaliseCode(userCode), userId))) {
      throw MagsError.notFound('this login code is unknown, expired or already used: run "mags login" again');
    }
  }

  async denyLogin(userCode: string): Promise<void> {
    await this.store.deviceLogins.deny(normaliseCode(userCode));
  }

  /** The CLI's poll: pending, or approved with a new token (answered once). */
  async pollDeviceLogin(deviceCode: string): Promise<DeviceLoginResult> {
    const row = await this.store.deviceLogins.take(hashToken(deviceCode));
    if (!row) {
      throw MagsError.notFound('this login request is unknown, was denied, or expired: run "mags login" again');
    }
    if (row.status !== 'approved' || row.user_id === null) return { status: 'pending' };
    const user = await this.store.users.get(row.user_id);
    if (!user || user.removed_at !== null) throw MagsError.notFound('the user who approved this login was removed');
    const token = await this.deps.auth.createToken(user.id, row.client_name);
    this.deps.logger.info({ user: user.id }, 'mags login approved: token created');
    return { status: 'approved', token, user: user.name };
  }
}

export function normaliseCode(code: string): string {
  const c = code.toUpperCase().replace(/[^A-Z]/g, '');
  return c.length === 8 ? `${c.slice(0, 4)}-${c.slice(4)}` : code;
}

function userInfo(u: UserRow, ownerId: string | undefined): UserInfo {
  return {
    user_id: u.id,
    name: u.name,
    owner: u.id === ownerId,
    created_at: new Date(Number(u.created_at)).toISOString(),
    has_password: u.password_hash !== null,
  };
}
