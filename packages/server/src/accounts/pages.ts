// The browser pages: sign in, choose a password from a one-time link, approve a `mags login`, sign out. Every form
// carries a CSRF token: before sign-in a double-submit cookie, after it the session's own token. The pages refuse
// to be framed (clickjacking the Approve button) and send no Referer (the login code is in the URL).

import { randomBytes } from 'node:crypto';
import formbody from '@fastify/formbody';
import { MagsError } from '@mags/api';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { SESSION_COOKIE, sameSecret } from '../http/auth.js';
import { toHttpError } from '../http/errors.js';
import type { MagsApp } from '../http/request.js';
import type { OidcSignIn } from './oidc.js';
import { baseUrlOf, setSessionCookie } from './routes.js';
import type { Accounts } from './service.js';
import { accountPage, approvePage, choosePasswordPage, enterCodePage, messagePage, signInPage } from './views.js';

/** The double-submit cookie of the forms shown before sign-in (SameSite=Strict, HTTP-only). */
const FORM_COOKIE = 'mags_form';

type Form = Record<string, string | undefined>;

function html(reply: FastifyReply, status: number, body: string) {
  return reply
    .code(status)
    .header(
      'content-security-policy',
      "default-src 'none'; style-src 'unsafe-inline'; connect-src 'self'; form-action 'self'; frame-ancestors 'none'",
    )
    .header('x-frame-options', 'DENY')
    .header('referrer-policy', 'no-referrer')
    .header('cache-control', 'no-store')
    .type('text/html; charset=utf-8')
    .send(body);
}

/** A path on this server to go to after sign-in (never another site: "//host" and "/\\host" are refused). */
function safeNext(next: string | undefined): string {
  if (!next?.startsWith('/') || next.startsWith('//') || next.startsWith('/\\')) return '/account';
  return next.slice(0, 2000);
}

function formCsrf(request: FastifyRequest, reply: FastifyReply): string {
  const existing = request.cookies[FORM_COOKIE];
  if (existing && /^[A-Za-z0-9_-]{32}$/.test(existing)) return existing;
  const value = randomBytes(24).toString('base64url');
  reply.setCookie(FORM_COOKIE, value, {
    path: '/',
    httpOnly: true,
    sameSite: 'strict',
    secure: request.protocol === 'https',
  });
  return value;
}

function field(body: unknown, name: string): string | undefined {
  const v = (body as Form | undefined)?.[name];
  return typeof v === 'string' ? v : undefined;
}

const formSchema = { hide: true } as const;

export function registerAccountPages(root: MagsApp, accounts: Accounts, oidc?: OidcSignIn): void {
  // Form bodies are parsed in this scope only: the REST API keeps answering them 415.
  root.register(async (app) => {
    await app.register(formbody, { bodyLimit: 64 * 1024 });
    pages(app as unknown as MagsApp, accounts, oidc);
  });
}

/** The cookie that carries a single sign-on's state, nonce and PKCE verifier to its callback (10 minutes). */
const OIDC_COOKIE = 'mags_oidc';

function pages(app: MagsApp, accounts: Accounts, oidc: OidcSignIn | undefined): void {
  const pub = { config: { public: true }, schema: formSchema };
  const sso = oidc !== undefined;

  if (oidc) {
    app.get('/signin/oidc', pub, async (request, reply) => {
      const next = safeNext((request.query as Form).next);
      const { url, cookie } = await oidc.start(`${baseUrlOf(request)}/signin/oidc/callback`, next);
      reply.setCookie(OIDC_COOKIE, cookie, {
        path: '/signin/oidc',
        httpOnly: true,
        sameSite: 'lax',
        secure: request.protocol === 'https',
        maxAge: 600,
      });
      return reply.redirect(url, 303);
    });

    app.get('/signin/oidc/callback', pub, async (request, reply) => {
      reply.clearCookie(OIDC_COOKIE, { path: '/signin/oidc' });
      try {
        const current = new URL(request.url, baseUrlOf(request));
        const { identity, next } = await oidc.finish(current, request.cookies[OIDC_COOKIE]);
        const session = await accounts.signInOidc(identity);
        setSessionCookie(request, reply, session);
        return reply.redirect(safeNext(next), 303);
      } catch (err) {
        if (!(err instanceof MagsError)) throw err;
        const e = toHttpError(err);
        return html(reply, e.status, messagePage('Single sign-on', 'You are not signed in.', e.body.error));
      }
    });
  }

  app.get('/signin', pub, async (request, reply) => {
    const next = safeNext((request.query as Form).next);
    if (await accounts.sessionOf(request.cookies[SESSION_COOKIE])) return reply.redirect(next, 303);
    return html(reply, 200, signInPage(formCsrf(request, reply), next, undefined, '', sso));
  });

  app.post('/signin', pub, async (request, reply) => {
    const next = safeNext(field(request.body, 'next'));
    const name = field(request.body, 'name') ?? '';
    const csrf = formCsrf(request, reply);
    if (!sameSecret(field(request.body, 'csrf'), request.cookies[FORM_COOKIE] ?? '\0')) {
      return html(
        reply,
        403,
        signInPage(csrf, next, 'The form expired or came from another site: try again.', name, sso),
      );
    }
    try {
      const session = await accounts.signIn(name, field(request.body, 'password') ?? '', request.ip);
      setSessionCookie(request, reply, session);
      return reply.redirect(next, 303);
    } catch (err) {
      if (!(err instanceof MagsError)) throw err;
      const e = toHttpError(err);
      return html(reply, e.status, signInPage(csrf, next, e.body.error, name, sso));
    }
  });

  app.get('/signin/link', pub, async (request, reply) => {
    const code = (request.query as Form).code ?? '';
    const user = code ? await accounts.linkUser(code) : undefined;
    if (!user) {
      return html(
        reply,
        404,
        messagePage(
          'Sign-in link',
          'This sign-in link is unknown, used or expired: ask the server’s owner for a new one.',
        ),
      );
    }
    return html(reply, 200, choosePasswordPage(formCsrf(request, reply), code, user.name));
  });

  app.post('/signin/link', pub, async (request, reply) => {
    const code = field(request.body, 'code') ?? '';
    const csrf = formCsrf(request, reply);
    const user = code ? await accounts.linkUser(code) : undefined;
    if (!user) {
      return html(
        reply,
        404,
        messagePage(
          'Sign-in link',
          'This sign-in link is unknown, used or expired: ask the server’s owner for a new one.',
        ),
      );
    }
    if (!sameSecret(field(request.body, 'csrf'), request.cookies[FORM_COOKIE] ?? '\0')) {
      return html(
        reply,
        403,
        choosePasswordPage(csrf, code, user.name, 'The form expired or came from another site: try again.'),
      );
    }
    try {
      const session = await accounts.useLink(code, field(request.body, 'password') ?? '');
      setSessionCookie(request, reply, session);
      return reply.redirect('/account', 303);
    } catch (err) {
      if (!(err instanceof MagsError)) throw err;
      const e = toHttpError(err);
      return html(reply, e.status, choosePasswordPage(csrf, code, user.name, e.body.error));
    }
  });

  app.get('/account', pub, async (request, reply) => {
    const user = await accounts.sessionOf(request.cookies[SESSION_COOKIE]);
    if (!user?.session) return reply.redirect('/signin', 303);
    return html(reply, 200, accountPage(user.session.csrf, user.name));
  });

  app.post('/signout', pub, async (request, reply) => {
    const user = await accounts.sessionOf(request.cookies[SESSION_COOKIE]);
    if (user?.session) {
      if (!sameSecret(field(request.body, 'csrf'), user.session.csrf)) {
        return html(reply, 403, messagePage('Sign out', 'The form expired or came from another site: try again.'));
      }
      await accounts.signOut(user.session.idHash);
    }
    reply.clearCookie(SESSION_COOKIE, { path: '/' });
    return reply.redirect('/signin', 303);
  });

  app.get('/device', pub, async (request, reply) => {
    const code = (request.query as Form).code;
    const user = await accounts.sessionOf(request.cookies[SESSION_COOKIE]);
    if (!user?.session) {
      const next = code ? `/device?code=${encodeURIComponent(code)}` : '/device';
      return reply.redirect(`/signin?next=${encodeURIComponent(next)}`, 303);
    }
    if (!code) return html(reply, 200, enterCodePage());
    const login = await accounts.pendingLogin(code);
    if (login?.status !== 'pending') {
      return html(reply, 404, enterCodePage('This code is unknown, expired or already used: run "mags login" again.'));
    }
    return html(reply, 200, approvePage(user.session.csrf, code.toUpperCase(), login.clientName, user.name));
  });

  app.post('/device', pub, async (request, reply) => {
    const user = await accounts.sessionOf(request.cookies[SESSION_COOKIE]);
    if (!user?.session) return reply.redirect('/signin?next=%2Fdevice', 303);
    if (!sameSecret(field(request.body, 'csrf'), user.session.csrf)) {
      return html(
        reply,
        403,
        messagePage('Approve a mags login', 'The form expired or came from another site: nothing was approved.'),
      );
    }
    const code = field(request.body, 'code') ?? '';
    try {
      if (field(request.body, 'action') === 'approve') {
        await accounts.approveLogin(user.id, code);
        return html(reply, 200, messagePage('Login approved', 'The terminal is signed in: you can close this page.'));
      }
      await accounts.denyLogin(code);
      return html(reply, 200, messagePage('Login denied', 'Nothing was given to the terminal.'));
    } catch (err) {
      if (!(err instanceof MagsError)) throw err;
      const e = toHttpError(err);
      return html(reply, e.status, enterCodePage(e.body.error));
    }
  });
}
