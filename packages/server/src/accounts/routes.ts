// Accounts routes: the caller (/me), users (owner only), API tokens, the browser session API and the `mags login`
// device flow. The HTML pages a browser signs in and approves on are in pages.ts.
import {
  DeviceLoginPoll,
  DeviceLoginResult,
  DeviceLoginStart,
  DeviceLoginStarted,
  Me,
  PasswordSet,
  SessionCreate,
  TokenCreate,
  TokenCreated,
  TokenList,
  UserCreate,
  UserCreated,
  UserList,
  UserRemoved,
} from '@mags/api';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { Type } from 'typebox';
import { type Auth, SESSION_COOKIE } from '../http/auth.js';
import { callerOf, errors, type MagsApp } from '../http/request.js';
import { type Accounts, type NewSession, SESSION_DAYS } from './service.js';

const IdParams = Type.Object({ id: Type.String({ minLength: 1, maxLength: 200 }) });
const NameParams = Type.Object({ name: Type.String({ minLength: 1, maxLength: 63 }) });
const RemoveQuery = Type.Object({
  delete_data: Type.Optional(Type.Boolean({ description: "Also delete the user's jobs, workspaces and files" })),
});

/** The server's address as the caller reached it, for links it hands out. */
export function baseUrlOf(request: FastifyRequest): string {
  return `${request.protocol}://${request.host}`;
}

/** Sets the session cookie: HTTP-only (scripts cannot read it), SameSite=Lax, Secure behind HTTPS. */
export function setSessionCookie(request: FastifyRequest, reply: FastifyReply, session: NewSession): void {
  reply.setCookie(SESSION_COOKIE, session.cookie, {
    path: '/',
    httpOnly: true,
    sameSite: 'lax',
    secure: request.protocol === 'https',
    maxAge: SESSION_DAYS * 86_400,
  });
}

export function registerAccountRoutes(app: MagsApp, accounts: Accounts, auth: Auth): void {
  app.get(
    '/api/v1/me',
    {
      schema: {
        tags: ['accounts'],
        summary: 'Who the caller is (and, with a browser session, its CSRF token)',
        response: { 200: Me, ...errors(401) },
      },
    },
    async (request) => accounts.me(callerOf(request)),
  );

  app.put(
    '/api/v1/me/password',
    {
      schema: {
        tags: ['accounts'],
        summary: 'Set your password for the browser sign-in',
        body: PasswordSet,
        response: { 204: Type.Null({ description: 'Set' }), ...errors(400, 401, 403) },
      },
    },
    async (request, reply) => {
      await accounts.setPassword(callerOf(request).id, request.body.password);
      return reply.code(204).send(null);
    },
  );

  app.get(
    '/api/v1/users',
    {
      schema: {
        tags: ['accounts'],
        summary: "The server's users (owner only)",
        response: { 200: UserList, ...errors(401, 403) },
      },
    },
    async (request) => {
      await auth.requireOwner(callerOf(request), 'list the users');
      return { users: await accounts.listUsers() };
    },
  );

  app.post(
    '/api/v1/users',
    {
      schema: {
        tags: ['accounts'],
        summary: 'Add a user (owner only): answers its first token and a one-time link to choose a password',
        body: UserCreate,
        response: { 201: UserCreated, ...errors(400, 401, 403, 409) },
      },
    },
    async (request, reply) => {
      await auth.requireOwner(callerOf(request), 'add users');
      return reply.code(201).send(await accounts.addUser(request.body.name, baseUrlOf(request)));
    },
  );

  app.delete(
    '/api/v1/users/:name',
    {
      schema: {
        tags: ['accounts'],
        summary:
          'Remove a user (owner only): its tokens and sessions stop working at once and its sandboxes are stopped; its data is deleted only with delete_data=true',
        params: NameParams,
        querystring: RemoveQuery,
        response: { 200: UserRemoved, ...errors(400, 401, 403, 404, 409) },
      },
    },
    async (request) => {
      await auth.requireOwner(callerOf(request), 'remove users');
      return accounts.removeUser(callerOf(request), request.params.name, request.query.delete_data === true);
    },
  );

  app.get(
    '/api/v1/tokens',
    {
      schema: {
        tags: ['accounts'],
        summary: 'Your API tokens that still work (never their secrets)',
        response: { 200: TokenList, ...errors(401) },
      },
    },
    async (request) => ({ tokens: await accounts.listTokens(callerOf(request).id) }),
  );

  app.post(
    '/api/v1/tokens',
    {
      schema: {
        tags: ['accounts'],
        summary: 'Create an API token: its secret is answered this once and stored only hashed',
        body: TokenCreate,
        response: { 201: TokenCreated, ...errors(400, 401, 403) },
      },
    },
    async (request, reply) => reply.code(201).send(await accounts.createToken(callerOf(request).id, request.body)),
  );

  app.delete(
    '/api/v1/tokens/:id',
    {
      schema: {
        tags: ['accounts'],
        summary: 'Revoke one of your tokens: it is refused (401) from the next request on',
        params: IdParams,
        response: { 204: Type.Null({ description: 'Revoked' }), ...errors(401, 403, 404) },
      },
    },
    async (request, reply) => {
      await accounts.revokeToken(callerOf(request).id, request.params.id);
      return reply.code(204).send(null);
    },
  );

  app.post(
    '/api/v1/session',
    {
      config: { public: true },
      schema: {
        tags: ['accounts'],
        summary:
          'Sign in with a name and password: sets an HTTP-only session cookie and answers the CSRF token to send as X-CSRF-Token',
        security: [],
        body: SessionCreate,
        response: { 200: Me, ...errors(400, 401, 429) },
      },
    },
    async (request, reply) => {
      const session = await accounts.signIn(request.body.name, request.body.password, request.ip);
      setSessionCookie(request, reply, session);
      const me: Me = {
        user_id: session.user.id,
        name: session.user.name,
        owner: await accounts.isOwner(session.user.id),
        token_id: null,
        csrf_token: session.csrf,
      };
      return me;
    },
  );

  app.delete(
    '/api/v1/session',
    {
      schema: {
        tags: ['accounts'],
        summary: 'Sign out of the browser session (needs X-CSRF-Token)',
        response: { 204: Type.Null({ description: 'Signed out' }), ...errors(401, 403) },
      },
    },
    async (request, reply) => {
      const session = callerOf(request).session;
      if (session) await accounts.signOut(session.idHash);
      reply.clearCookie(SESSION_COOKIE, { path: '/' });
      return reply.code(204).send(null);
    },
  );

  app.post(
    '/api/v1/auth/device',
    {
      config: { public: true },
      schema: {
        tags: ['accounts'],
        summary: '`mags login`: ask for a code that a signed-in user approves in a browser (no token needed)',
        security: [],
        body: Type.Optional(DeviceLoginStart),
        response: { 200: DeviceLoginStarted, ...errors(400) },
      },
    },
    async (request) => accounts.startDeviceLogin(request.body?.client_name, baseUrlOf(request)),
  );

  app.post(
    '/api/v1/auth/device/token',
    {
      config: { public: true },
      schema: {
        tags: ['accounts'],
        summary: '`mags login`: poll for the token once the code is approved (answered once)',
        security: [],
        body: DeviceLoginPoll,
        response: { 200: DeviceLoginResult, ...errors(400, 404) },
      },
    },
    async (request) => accounts.pollDeviceLogin(request.body.device_code),
  );
}
