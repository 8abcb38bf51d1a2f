// Uploaded files (`mags run -f PATH`): upload as a raw streamed body, list, delete. A job names them in
// `file_ids` and finds them at /uploads/<name>.
import type { FastifyReply, FastifyRequest } from 'fastify';
import type { Readable } from 'node:stream';
import { Type } from 'typebox';
import { ErrorBody, FileInfo, FileList, MagsError } from '@mags/api';
import { type MagsApp, callerOf } from '../app.js';
import type { ServerContext } from '../context.js';
import { checkName, fileView, receiveUpload, tooLarge } from '../uploads.js';

const UploadQuery = Type.Object({
  name: Type.String({ minLength: 1, maxLength: 1024, description: 'The basename the file appears as under /uploads/' }),
});
const FileParams = Type.Object({ id: Type.String({ minLength: 1, maxLength: 200 }) });

const errors = (...codes: number[]) => Object.fromEntries(codes.map((c) => [c, ErrorBody]));
const OCTET_STREAM = 'application/octet-stream';

export function registerFileRoutes(app: MagsApp, ctx: ServerContext): void {
  // Encapsulated so that only the upload route takes raw bodies; elsewhere octet-stream stays a 415.
  void app.register(async (scope) => {
    const files = scope as unknown as MagsApp;
    // Hands the route the request stream itself: nothing is buffered.
    files.addContentTypeParser(OCTET_STREAM, (_request, payload, done) => done(null, payload));

    files.post(
      '/api/v1/mags-files',
      {
        schema: {
          tags: ['files'],
          summary: 'Upload a file (the raw request body); a job names it in file_ids and finds it at /uploads/<name>',
          description:
            'Send the bytes as the request body with "Content-Type: application/octet-stream" (and Content-Length when known). ' +
            'The body is streamed to the object store while its sha256 is computed; a body over the server\'s limit is 413 and nothing is kept. ' +
            'A name holding a control character (CR, LF, TAB, ESC, …) or a text-direction mark (U+202E, U+2066–2069, …) is 422 invalid_name.',
          consumes: [OCTET_STREAM],
          querystring: UploadQuery,
          response: { 201: FileInfo, ...errors(400, 401, 413, 415, 422, 503) },
        },
        // Before the body is read: refuse what will not be accepted without receiving it first.
        onRequest: async (request: FastifyRequest, reply: FastifyReply) => {
          const type = (request.headers['content-type'] ?? '').split(';')[0].trim().toLowerCase();
          if (type !== OCTET_STREAM) {
            reply.header('connection', 'close');
            throw new MagsError(
              415,
              'unsupported_media_type',
              'send the file as the raw request body with the header "Content-Type: application/octet-stream"',
            );
          }
          const length = contentLength(request);
          if (length !== undefined && length > ctx.config.maxUploadBytes) {
            reply.header('connection', 'close');
            throw tooLarge(ctx.config.maxUploadBytes);
          }
        },
      },
      async (request, reply) => {
        const user = callerOf(request);
        const name = request.query.name;
        try {
          checkName(name);
          const body = request.body as Readable | undefined;
          if (!body || typeof (body as Readable).pipe !== 'function') {
            throw new MagsError(415, 'unsupported_media_type', 'send the file as the raw request body with "Content-Type: application/octet-stream"');
          }
          const row = await receiveUpload(
            { store: ctx.store, objects: ctx.objects, logger: ctx.logger, maxBytes: ctx.config.maxUploadBytes },
            user.id,
            name,
            body,
            contentLength(request),
          );
          request.log.info({ fileId: row.id, size: row.size }, 'file uploaded');
          return reply.code(201).send(fileView(row));
        } catch (err) {
          // The rest of the body is not read: close the connection after the answer rather than drain it.
          reply.header('connection', 'close');
          throw err;
        }
      },
    );
  });

  app.get(
    '/api/v1/mags-files',
    {
      schema: { tags: ['files'], summary: "The caller's uploaded files, newest first", response: { 200: FileList, ...errors(401) } },
    },
    async (request) => ({ files: (await ctx.store.listFiles(callerOf(request).id)).map(fileView) }),
  );

  app.delete(
    '/api/v1/mags-files/:id',
    {
      schema: {
        tags: ['files'],
        summary: 'Delete an uploaded file',
        params: FileParams,
        response: { 204: Type.Null({ description: 'Deleted' }), ...errors(401, 404, 503) },
      },
    },
    async (request, reply) => {
      const userId = callerOf(request).id;
      const file = await ctx.store.getFile(userId, request.params.id);
      if (!file) throw MagsError.notFound(`file "${request.params.id}" not found`);
      // The bytes first: a failure leaves the row, so the delete can be repeated.
      await ctx.objects.delete([file.object_key]);
      await ctx.store.deleteFile(userId, file.id);
      request.log.info({ fileId: file.id }, 'file deleted');
      return reply.code(204).send(null);
    },
  );
}

function contentLength(request: FastifyRequest): number | undefined {
  const raw = request.headers['content-length'];
  if (raw === undefined || !/^\d{1,16}$/.test(raw.trim())) return undefined;
  return Number(raw.trim());
}
