// The E2B-compatible API (`mags server --e2b-port`): a Fastify app of its own, so that the official `e2b` SDK runs
// unchanged against Mags. The control plane (routes.ts; `X-API-KEY` is a Mags API token) and envd (envd/, reached by
// the `E2b-Sandbox-Id` header or a `49983-<id>.<domain>` host). Every error answers E2B's `{ code: <int>, message }`.
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import { MagsError } from '@mags/api';
import Fastify, { LogController } from 'fastify';
import type { Logger } from 'pino';
import type { Auth } from '../http/auth.js';
import { BODY_LIMIT_BYTES, toHttpError } from '../http/errors.js';
import type { MagsApp } from '../http/request.js';
import { validatorCompiler } from '../http/validation.js';
import type { ExecService } from '../jobs/exec.js';
import type { SandboxLifecycle } from '../jobs/lifecycle.js';
import { registerEnvd } from './envd/routes.js';
import { registerE2bRoutes } from './routes.js';
import type { E2bSandboxes } from './sandboxes.js';

export interface E2bAppOptions {
  logger: Logger;
  auth: Auth;
  sandboxes: E2bSandboxes;
  exec: ExecService;
  lifecycle: SandboxLifecycle;
  /** The `domain` sandboxes report (`getHost(port)` is `<port>-<id>.<domain>`); a function: the router's port is known late. */
  domain: () => string;
  /** Aborted when the server closes: requests from then on are answered 503. */
  shutdown: AbortSignal;
}

/** E2B's error body. */
export interface E2bError {
  code: number;
  message: string;
}

export async function buildE2bApp(options: E2bAppOptions): Promise<MagsApp> {
  const app = Fastify({
    loggerInstance: options.logger,
    logController: new LogController({ disableRequestLogging: true }),
    bodyLimit: BODY_LIMIT_BYTES,
    return503OnClosing: false,
    forceCloseConnections: 'idle',
    routerOptions: { ignoreTrailingSlash: true, maxParamLength: 500 },
    schemaErrorFormatter: (_errors, dataVar) =>
      Object.assign(new Error(`invalid ${dataVar}`), { validationContext: dataVar }),
  }).withTypeProvider<TypeBoxTypeProvider>() as unknown as MagsApp;
  app.setValidatorCompiler(validatorCompiler);
  app.decorateRequest('user', null);

  // An empty JSON body (the SDK's bare POSTs) is no body, not a parse error.
  const parseJson = app.getDefaultJsonParser('error', 'error');
  app.removeContentTypeParser('application/json');
  app.addContentTypeParser('application/json', { parseAs: 'string' }, (request, body, done) => {
    if (typeof body === 'string' && body.trim() === '') return done(null, undefined);
    parseJson(request, body as string, done);
  });

  // JSON only (the SDK sends nothing else): any other body is a 415 that says so.
  app.removeContentTypeParser('text/plain');

  // The one error mapping of the server, in E2B's shape: { code: <HTTP status>, message: <the sentence> }.
  app.setErrorHandler((err, request, reply) => {
    const http = toHttpError(err);
    if (http.internal) request.log.error({ err, method: request.method, url: request.url }, 'e2b request failed');
    const body: E2bError = { code: http.status, message: http.body.error };
    return reply.code(http.status).send(body);
  });
  app.setNotFoundHandler((request, reply) => {
    const path = request.url.split('?')[0].slice(0, 200);
    const body: E2bError = {
      code: 404,
      message: `there is no ${request.method} ${path} route in Mags' E2B-compatible API (see the README, "E2B compatibility")`,
    };
    return reply.code(404).send(body);
  });
  app.addHook('onRequest', async (_request, reply) => {
    if (options.shutdown.aborted) {
      reply.header('connection', 'close');
      throw new MagsError(503, 'unavailable', 'the server is shutting down; try again in a moment');
    }
  });
  app.addHook('onResponse', async (request, reply) => {
    const fields = {
      method: request.method,
      url: request.url,
      status: reply.statusCode,
      ms: Math.round(reply.elapsedTime),
    };
    if (reply.statusCode >= 500) request.log.warn(fields, 'e2b request answered');
    else request.log.debug(fields, 'e2b request answered');
  });

  // The control plane: every route needs X-API-KEY (a Mags API token).
  await app.register(async (control) => {
    const scoped = control as unknown as MagsApp;
    scoped.addHook('onRequest', async (request) => {
      if (request.is404) return;
      const key = request.headers['x-api-key'];
      if (typeof key !== 'string' || key.trim() === '') {
        throw MagsError.unauthorized(
          'send a Mags API token in the X-API-KEY header (E2B_API_KEY=<token>; `mags token create` makes one)',
        );
      }
      try {
        request.user = await options.auth.authenticate(`Bearer ${key.trim()}`);
      } catch (err) {
        if (err instanceof MagsError && err.status === 401) {
          throw MagsError.unauthorized(
            'the X-API-KEY is not a valid Mags API token (revoked, expired or mistyped): set E2B_API_KEY to a token from `mags token create`',
          );
        }
        throw err;
      }
    });
    registerE2bRoutes(scoped, { sandboxes: options.sandboxes, domain: options.domain });
  });

  // envd: its own access token (X-Access-Token), checked by its routes.
  await app.register(async (envd) => {
    // Returned, so that a registerEnvd that works asynchronously is awaited.
    return registerEnvd(envd, {
      resolve: options.sandboxes.resolve,
      exec: options.exec,
      lifecycle: options.lifecycle,
      logger: options.logger,
    });
  });
  return app;
}
