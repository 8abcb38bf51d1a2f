// Accounts as the SDK shows them: the caller, API tokens, users (owner only) and the `mags login` device flow.
import type {
  DeviceLoginResult as WireDeviceResult,
  DeviceLoginStarted as WireDeviceStarted,
  Me as WireMe,
  TokenInfo as WireToken,
  TokenCreated as WireTokenCreated,
  UserInfo as WireUser,
  UserCreated as WireUserCreated,
  UserRemoved as WireUserRemoved,
} from '@mags/api';

export interface WhoAmI {
  userId: string;
  name: string;
  /** Whether the caller is the server's owner. */
  owner: boolean;
  /** The token the call was made with (null: a browser session). */
  tokenId: string | null;
}

export interface ApiToken {
  id: string;
  name: string;
  /** Its first characters, to recognise it. */
  prefix: string;
  createdAt: string;
  lastUsedAt: string | null;
  /** null: never expires. */
  expiresAt: string | null;
}

export interface CreatedToken extends ApiToken {
  /** The secret: shown this once. */
  token: string;
}

export interface CreateTokenOptions {
  /** Days until it stops working (default: never). */
  expiresInDays?: number;
}

export interface User {
  userId: string;
  name: string;
  owner: boolean;
  createdAt: string;
  hasPassword: boolean;
}

export interface AddedUser {
  userId: string;
  name: string;
  /** The new user's first API token (shown once). */
  token: string;
  /** A one-time link (7 days) where the user chooses a password for the browser sign-in. */
  signinUrl: string;
}

export interface RemovedUser {
  name: string;
  jobsStopped: number;
  dataDeleted: boolean;
}

export interface DeviceLogin {
  /** The secret to poll with. */
  deviceCode: string;
  /** The code the approval page shows. */
  userCode: string;
  verificationUri: string;
  /** The approval page with the code filled in: open it in a browser. */
  verificationUriComplete: string;
  expiresIn: number;
  interval: number;
}

export type DeviceLoginPoll = { status: 'pending' } | { status: 'approved'; token: string; user: string };

export const fromWireMe = (m: WireMe): WhoAmI => ({
  userId: m.user_id,
  name: m.name,
  owner: m.owner,
  tokenId: m.token_id,
});

export const fromWireToken = (t: WireToken): ApiToken => ({
  id: t.id,
  name: t.name,
  prefix: t.prefix,
  createdAt: t.created_at,
  lastUsedAt: t.last_used_at,
  expiresAt: t.expires_at,
});

export const fromWireTokenCreated = (t: WireTokenCreated): CreatedToken => ({ ...fromWireToken(t), token: t.token });

export const fromWireUser = (u: WireUser): User => ({
  userId: u.user_id,
  name: u.name,
  owner: u.owner,
  createdAt: u.created_at,
  hasPassword: u.has_password,
});

export const fromWireUserCreated = (u: WireUserCreated): AddedUser => ({
  userId: u.user_id,
  name: u.name,
  token: u.token,
  signinUrl: u.signin_url,
});

export const fromWireUserRemoved = (u: WireUserRemoved): RemovedUser => ({
  name: u.name,
  jobsStopped: u.jobs_stopped,
  dataDeleted: u.data_deleted,
});

export const fromWireDeviceStarted = (d: WireDeviceStarted): DeviceLogin => ({
  deviceCode: d.device_code,
  userCode: d.user_code,
  verificationUri: d.verification_uri,
  verificationUriComplete: d.verification_uri_complete,
  expiresIn: d.expires_in,
  interval: d.interval,
});

export function fromWireDeviceResult(r: WireDeviceResult): DeviceLoginPoll {
  if (r.status === 'approved' && r.token && r.user) return { status: 'approved', token: r.token, user: r.user };
  return { status: 'pending' };
}
