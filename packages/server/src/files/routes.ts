// Uploaded files (`mags run -f PATH`): upload as a raw streamed body, list, delete. A job names them in
// `file_ids` and finds them at /uploads/<name>.

import type { Readable } from 'node:stream';
import { FileInfo, FileList, MagsError } from '@mags/api';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { Type } from 'typebox';
import { callerOf, errors, type MagsApp } from '../http/request.js';
import type { FileRow } from '../store/index.js';
import type { Files } from './service.js';
import { checkName, tooLarge } from './upload.js';

const UploadQuery = Type.Object({
  name: Type.String({ minLength: 1, maxLength: 1024, description: 'The basename the file appears as under /uploads/' }),
});
const FileParams = Type.Object({ id: Type.String({ minLength: 1, maxLength: 200 }) });

const OCTET_STREAM = 'application/octet-stream';

function fileView(row: FileRow): FileInfo {
  return {
    file_id: row.id,
    name: row.name,
    size: row.size,
    sha256: row.sha256,
    created_at: new Date(row.created_at).toISOString(),
  };
}

export function registerFileRoutes(app: MagsApp, files: Files, maxUploadBytes: number): void {
  // Encapsulated so that only the upload route takes raw bodies; elsewhere octet-stream stays a 415.
  void app.register(async (scope) => {
    const raw = scope as unknown as MagsApp;
    // Hands the route the request stream itself: nothing is buffered.
    raw.addContentTypeParser(OCTET_STREAM, (_request, payload, done) => done(null, payload));

    raw.post(
      '/api/v1/mags-files',
      {
        schema: {
          tags: ['files'],
          summary: 'Upload a file (the raw request body); a job names it in file_ids and finds it at /uploads/<name>',
          description:
            'Send the bytes as the request body with "Content-Type: application/octet-stream" (and Content-Length when known). ' +
            "The body is streamed to the object store while its sha256 is computed; a body over the server's limit is 413 and nothing is kept. " +
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
          if (length !== undefined && length > maxUploadBytes) {
            reply.header('connection', 'close');
            throw tooLarge(maxUploadBytes);
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
            throw new MagsError(
              415,
              'unsupported_media_type',
              'send the file as the raw request body with "Content-Type: application/octet-stream"',
            );
          }
          const row = await files.upload(user.id, name, body, contentLength(request));
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
      schema: {
        tags: ['files'],
        summary: "The caller's uploaded files, newest first",
        response: { 200: FileList, ...errors(401) },
      },
    },
    async (request) => ({ files: (await files.list(callerOf(request).id)).map(fileView) }),
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
      await files.delete(callerOf(request).id, request.params.id);
      return reply.code(204).send(null);
    },
  );
}

function contentLength(request: FastifyRequest): number | undefined {
  const raw = request.headers['content-length'];
  if (raw === undefined || !/^\d{1,16}$/.test(raw.trim())) return undefined;
  return Number(raw.trim());
}
