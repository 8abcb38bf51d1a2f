// Accounts: users (owner-managed), API tokens, the signed-in user, browser sessions and the `mags login` device flow.
import { type Static, Type } from 'typebox';
import { NAME_PATTERN } from './jobs.js';

const Nullable = <T extends ReturnType<typeof Type.String>>(t: T) => Type.Union([t, Type.Null()]);
const when = (description: string) => Type.String({ description: `${description} (ISO-8601)` });

/** Shortest password accepted. */
export const MIN_PASSWORD = 10;

export const UserInfo = Type.Object(
  {
    user_id: Type.String(),
    name: Type.String(),
    owner: Type.Boolean({ description: "Whether this is the server's owner (the first user)" }),
    created_at: when('When the user was added'),
    has_password: Type.Boolean({ description: 'Whether the user can sign in to the browser pages with a password' }),
  },
  { $id: 'UserInfo' },
);
export type UserInfo = Static<typeof UserInfo>;

export const UserList = Type.Object({ users: Type.Array(UserInfo) });
export type UserList = Static<typeof UserList>;

export const UserCreate = Type.Object(
  { name: Type.String({ minLength: 1, maxLength: 63, pattern: NAME_PATTERN, description: 'The new user’s name' }) },
  { additionalProperties: false },
);
export type UserCreate = Static<typeof UserCreate>;

export const UserCreated = Type.Object({
  user_id: Type.String(),
  name: Type.String(),
  token: Type.String({ description: 'An API token for the new user; shown once, stored only hashed' }),
  signin_url: Type.String({
    description: 'A one-time link (valid 7 days) where the user chooses a password for the browser sign-in',
  }),
});
export type UserCreated = Static<typeof UserCreated>;

export const UserRemoved = Type.Object({
  name: Type.String(),
  jobs_stopped: Type.Integer({ minimum: 0 }),
  data_deleted: Type.Boolean({ description: 'Whether jobs, workspaces and files were deleted (delete_data=true)' }),
});
export type UserRemoved = Static<typeof UserRemoved>;

export const TokenInfo = Type.Object(
  {
    id: Type.String(),
    name: Type.String(),
    prefix: Type.String({ description: 'The first characters of the token, to recognise it' }),
    created_at: when('When it was created'),
    last_used_at: Nullable(when('When it was last used (recorded at most once a minute)')),
    expires_at: Nullable(when('When it stops working; null: never')),
  },
  { $id: 'TokenInfo' },
);
export type TokenInfo = Static<typeof TokenInfo>;

export const TokenList = Type.Object({ tokens: Type.Array(TokenInfo) });
export type TokenList = Static<typeof TokenList>;

/** Longest token lifetime one can ask for: 10 years. */
export const MAX_TOKEN_DAYS = 3650;

export const TokenCreate = Type.Object(
  {
    name: Type.String({ minLength: 1, maxLength: 100, description: 'What the token is for (shown in listings)' }),
    expires_in_days: Type.Optional(
      Type.Integer({ minimum: 1, maximum: MAX_TOKEN_DAYS, description: 'Days until it stops working; default never' }),
    ),
  },
  { additionalProperties: false },
);
export type TokenCreate = Static<typeof TokenCreate>;

export const TokenCreated = Type.Intersect([
  TokenInfo,
  Type.Object({ token: Type.String({ description: 'The secret; shown this once, stored only hashed' }) }),
]);
export type TokenCreated = Static<typeof TokenCreated>;

export const Me = Type.Object({
  user_id: Type.String(),
  name: Type.String(),
  owner: Type.Boolean(),
  token_id: Nullable(Type.String({ description: 'The token this request was made with (null: a browser session)' })),
  csrf_token: Nullable(
    Type.String({
      description:
        'With a browser session: the value to send as the X-CSRF-Token header on every request that changes something',
    }),
  ),
});
export type Me = Static<typeof Me>;

export const PasswordSet = Type.Object(
  { password: Type.String({ minLength: MIN_PASSWORD, maxLength: 1024 }) },
  { additionalProperties: false },
);
export type PasswordSet = Static<typeof PasswordSet>;

export const SessionCreate = Type.Object(
  { name: Type.String({ minLength: 1, maxLength: 63 }), password: Type.String({ minLength: 1, maxLength: 1024 }) },
  { additionalProperties: false },
);
export type SessionCreate = Static<typeof SessionCreate>;

export const DeviceLoginStart = Type.Object(
  { client_name: Type.Optional(Type.String({ maxLength: 100, description: 'Names the token, e.g. the host name' })) },
  { additionalProperties: false },
);
export type DeviceLoginStart = Static<typeof DeviceLoginStart>;

export const DeviceLoginStarted = Type.Object({
  device_code: Type.String({ description: 'The secret the CLI polls with; never shown to the browser' }),
  user_code: Type.String({ description: 'The code the browser page shows, to compare with the terminal' }),
  verification_uri: Type.String(),
  verification_uri_complete: Type.String({ description: 'The approval page with the code filled in' }),
  expires_in: Type.Integer({ description: 'Seconds until the code expires' }),
  interval: Type.Integer({ description: 'Seconds to wait between polls' }),
});
export type DeviceLoginStarted = Static<typeof DeviceLoginStarted>;

export const DeviceLoginPoll = Type.Object(
  { device_code: Type.String({ minLength: 1, maxLength: 200 }) },
  { additionalProperties: false },
);
export type DeviceLoginPoll = Static<typeof DeviceLoginPoll>;

export const DeviceLoginResult = Type.Object({
  status: Type.Union([Type.Literal('pending'), Type.Literal('approved')]),
  token: Type.Optional(Type.String({ description: 'When approved: the new API token (answered once)' })),
  user: Type.Optional(Type.String({ description: 'When approved: the user who approved' })),
});
export type DeviceLoginResult = Static<typeof DeviceLoginResult>;
