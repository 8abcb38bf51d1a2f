// The HTTP application: Fastify with TypeBox validation, the OpenAPI document, bearer-token auth, one error
// format (`{ error, code }`) for every failure, and the routes under /api/v1.
import swagger from '@fastify/swagger';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import Fastify, {
  LogController,
  type FastifyBaseLogger,
  type FastifyInstance,
  type FastifyRequest,
  type RawReplyDefaultExpression,
  type RawRequestDefaultExpression,
  type RawServerDefault,
} from 'fastify';
import { MAGS_VERSION, MagsError } from '@mags/api';
import type { AuthenticatedUser } from './auth.js';
import type { ServerContext } from './context.js';
import { BODY_LIMIT_BYTES, toHttpError } from './http/errors.js';
import { validatorCompiler } from './http/validation.js';
import { registerFileRoutes } from './routes/files.js';
import { registerJobRoutes } from './routes/jobs.js';
import { registerSystemRoutes } from './routes/system.js';
import { registerWorkspaceRoutes } from './routes/workspaces.js';
import { registerReclaimRoutes } from './workspaces/reclaim-route.js';

export type MagsApp = FastifyInstance<
  RawServerDefault,
  RawRequestDefaultExpression,
  RawReplyDefaultExpression,
  FastifyBaseLogger,
  TypeBoxTypeProvider
>;

declare module 'fastify' {
  interface FastifyRequest {
    /** The caller, set by the auth hook on every route that is not public. */
    user: AuthenticatedUser | null;
  }
  interface FastifyContextConfig {
    /** Routes anyone may call without a token (health, the OpenAPI document). */
    public?: boolean;
  }
}

/** The authenticated caller; routes that are not public always have one. */
export function callerOf(request: FastifyRequest): AuthenticatedUser {
  if (!request.user) throw MagsError.unauthorized();
  return request.user;
}

export async function buildApp(ctx: ServerContext): Promise<MagsApp> {
  const app = Fastify({
    loggerInstance: ctx.logger,
    // One line per request is written by the onResponse hook below, with the fields we want.
    logController: new LogController({ disableRequestLogging: true }),
    bodyLimit: BODY_LIMIT_BYTES,
    // Answer closing-time requests ourselves (see the onRequest hook) in the error format.
    return503OnClosing: false,
    forceCloseConnections: 'idle',
    routerOptions: { ignoreTrailingSlash: true, maxParamLength: 500 },
    schemaErrorFormatter: (_errors, dataVar) => Object.assign(new Error(`invalid ${dataVar}`), { validationContext: dataVar }),
  }).withTypeProvider<TypeBoxTypeProvider>() as unknown as MagsApp;

  app.setValidatorCompiler(validatorCompiler);
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
    if (ctx.shutdown.aborted) {
      reply.header('connection', 'close');
      throw new MagsError(503, 'unavailable', 'the server is shutting down; try again in a moment');
    }
    if (request.is404 || request.routeOptions.config.public) return;
    request.user = await ctx.auth.authenticate(request.headers.authorization);
  });

  app.addHook('onResponse', async (request, reply) => {
    const fields = { method: request.method, url: request.url, status: reply.statusCode, ms: Math.round(reply.elapsedTime) };
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
          'Errors answer { "error": "<sentence>", "code": "<stable code>" }.',
      },
      components: { securitySchemes: { bearer: { type: 'http', scheme: 'bearer', description: 'A Mags API token (mags_…)' } } },
      security: [{ bearer: [] }],
      tags: [
        { name: 'jobs', description: 'Run scripts in sandboxes, follow their output, stop them' },
        { name: 'workspaces', description: 'Local and persistent workspaces: create, fork, sync, resize, versions, delete' },
        { name: 'files', description: 'Files uploaded for jobs (they appear as /uploads/<name>)' },
        { name: 'system', description: 'Health, status and this document' },
        { name: 'admin', description: "What the server's owner may do to the whole server" },
      ],
    },
  });

  registerSystemRoutes(app, ctx);
  registerJobRoutes(app, ctx);
  registerWorkspaceRoutes(app, ctx);
  registerFileRoutes(app, ctx);
  registerReclaimRoutes(app, ctx);
  return app;
}
