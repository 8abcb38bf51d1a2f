// The HTTP application: Fastify with TypeBox validation, the OpenAPI document, bearer-token auth, one error
// format (`{ error, code }`) for every failure, health, and the routes each domain registers under /api/v1.
import cookie from '@fastify/cookie';
import swagger from '@fastify/swagger';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import { MAGS_VERSION, MagsError } from '@mags/api';
import Fastify, { LogController } from 'fastify';
import type { Logger } from 'pino';
import { Type } from 'typebox';
import { type Auth, CSRF_HEADER, SESSION_COOKIE } from './auth.js';
import { BODY_LIMIT_BYTES, toHttpError } from './errors.js';
import type { MagsApp } from './request.js';
import { validatorCompiler } from './validation.js';

const Health = Type.Object({ ok: Type.Boolean(), version: Type.String() });

export interface AppOptions {
  logger: Logger;
  auth: Auth;
  /** Aborted when the server closes: requests from then on are answered 503. */
  shutdown: AbortSignal;
  /** Each domain's routes, registered in this order (it is the order of the OpenAPI document). */
  routes: Array<(app: MagsApp) => void>;
}

export async function buildApp(options: AppOptions): Promise<MagsApp> {
  const app = Fastify({
    loggerInstance: options.logger,
    // One line per request is written by the onResponse hook below, with the fields we want.
    logController: new LogController({ disableRequestLogging: true }),
    bodyLimit: BODY_LIMIT_BYTES,
    // Answer closing-time requests ourselves (see the onRequest hook) in the error format.
    return503OnClosing: false,
    forceCloseConnections: 'idle',
    routerOptions: { ignoreTrailingSlash: true, maxParamLength: 500 },
    schemaErrorFormatter: (_errors, dataVar) =>
      Object.assign(new Error(`invalid ${dataVar}`), { validationContext: dataVar }),
  }).withTypeProvider<TypeBoxTypeProvider>() as unknown as MagsApp;

  app.setValidatorCompiler(validatorCompiler);
  // Cookies carry browser sessions (the HTML pages parse their own form bodies: the API takes JSON only).
  await app.register(cookie);
  app.decorateRequest('user', null);

  // An empty JSON body (e.g. a bare POST …/stop with a JSON content type) is no body, not a parse error.
  const parseJson = app.getDefaultJsonParser('error', 'error');
  app.removeContentTypeParser('application/json');
  app.addContentTypeParser('application/json', { parseAs: 'string' }, (request, body, done) => {
    if (typeof body === 'string' && body.trim() === '') return done(null, undefined);
    parseJson(request, body as string, done);
  });

  app.setErrorHandler((err, request, reply) => {
    const http = toHttpError(err);
    if (http.internal) request.log.error({ err, method: request.method, url: request.url }, 'request failed');
    else request.log.debug({ status: http.status, code: http.body.code, error: http.body.error }, 'request refused');
    return reply.code(http.status).send(http.body);
  });

  app.setNotFoundHandler((request, reply) => {
    const path = request.url.split('?')[0];
    return reply.code(404).send({
      error: `there is no ${request.method} ${path.slice(0, 200)} route; the API is described at /api/v1/openapi.json`,
      code: 'not_found',
    });
  });

  app.addHook('onRequest', async (request, reply) => {
    if (options.shutdown.aborted) {
      reply.header('connection', 'close');
      throw new MagsError(503, 'unavailable', 'the server is shutting down; try again in a moment');
    }
    if (request.is404 || request.routeOptions.config.public) return;
    const csrf = request.headers[CSRF_HEADER];
    request.user = await options.auth.authenticateRequest({
      method: request.method,
      authorization: request.headers.authorization,
      session: request.cookies[SESSION_COOKIE],
      csrf: typeof csrf === 'string' ? csrf : undefined,
    });
  });

  app.addHook('onResponse', async (request, reply) => {
    const fields = {
      method: request.method,
      url: request.url,
      status: reply.statusCode,
      ms: Math.round(reply.elapsedTime),
    };
    if (reply.statusCode >= 500) request.log.warn(fields, 'request answered');
    else if (request.method === 'GET' && reply.statusCode < 400) request.log.debug(fields, 'request answered');
    else request.log.info(fields, 'request answered');
  });

  await app.register(swagger, {
    // Shared schemas (those with an $id, e.g. JobStatus, Error) become named components.
    refResolver: {
      buildLocalReference: (json, _baseUri, _fragment, i) => (typeof json.$id === 'string' ? json.$id : `def-${i}`),
    },
    openapi: {
      openapi: '3.1.0',
      info: {
        title: 'Mags API',
        version: MAGS_VERSION,
        description:
          'Self-hostable sandboxes. Every request but health and this document needs "Authorization: Bearer <token>". ' +
          "A browser may instead use its session cookie (POST /api/v1/session), sending the session's CSRF token as " +
          'the X-CSRF-Token header on every request that changes something. ' +
          'Errors answer { "error": "<sentence>", "code": "<stable code>" }.',
      },
      components: {
        securitySchemes: { bearer: { type: 'http', scheme: 'bearer', description: 'A Mags API token (mags_…)' } },
      },
      security: [{ bearer: [] }],
      tags: [
        { name: 'jobs', description: 'Run scripts in sandboxes, follow their output, stop them' },
        {
          name: 'workspaces',
          description: 'Local and persistent workspaces: create, fork, sync, resize, versions, delete',
        },
        { name: 'files', description: 'Files uploaded for jobs (they appear as /uploads/<name>)' },
        { name: 'ssh', description: 'SSH access to sandboxes: access keys and your own public keys' },
        { name: 'accounts', description: 'Users, API tokens, browser sessions and the `mags login` flow' },
        { name: 'system', description: 'Health, status and this document' },
        { name: 'admin', description: "What the server's owner may do to the whole server" },
      ],
    },
  });

  app.get(
    '/api/v1/health',
    {
      config: { public: true },
      schema: {
        tags: ['system'],
        summary: 'Whether the server is up (no token needed)',
        security: [],
        response: { 200: Health },
      },
    },
    async () => ({ ok: true, version: MAGS_VERSION }),
  );
  app.get(
    '/api/v1/openapi.json',
    {
      config: { public: true },
      schema: { tags: ['system'], summary: 'This OpenAPI document (no token needed)', security: [] },
    },
    async (_request, reply) => reply.type('application/json; charset=utf-8').send(app.swagger()),
  );
  for (const register of options.routes) register(app);
  return app;
}
