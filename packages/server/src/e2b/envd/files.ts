// envd's /files: GET streams a file of the sandbox out (gzip when asked), POST writes one or more files (multipart
// field `file`, whose filename carries the path in multi-file writes, or an `application/octet-stream` body, gzip or
// not). The bytes pass through the helper's exec stdin/stdout under its flow control, never held whole in memory.
// Signed URLs (`signature=v1_…`, SDK uploadUrl/downloadUrl) stand in for the access token.
import { createHash, timingSafeEqual } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { createGunzip, createGzip, deflateRawSync } from 'node:zlib';
import busboy from 'busboy';
import type { ExecService } from '../../jobs/exec.js';
import { CONNECT_HTTP_STATUS, ConnectError } from './connect.js';
import { type EnvdSandbox, HelperRun } from './sandbox.js';

/** Users a path may be read or written as: Mags sandboxes run as root, and E2B's default user maps to it. */
const USERS = new Set(['', 'root', 'user']);
/** Unsent bytes a download's socket may hold before the exec's output is held back. */
const SOCKET_BUFFER_BYTES = 2 * 1024 * 1024;
/** Files one multipart request may carry. */
const MAX_FILES_PER_REQUEST = 1000;

/** An error answered as envd's REST errors are: `{code: <http status>, message}`. */
export class FilesError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

export function sendFilesError(res: ServerResponse, status: number, message: string): void {
  if (res.headersSent) {
    res.destroy();
    return;
  }
  const body = Buffer.from(JSON.stringify({ code: status, message }), 'utf8');
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': body.length });
  res.end(body);
}

/** A helper's Connect error as a /files status (no space: 507 as envd). */
export function filesStatus(err: ConnectError): number {
  if (err.status) return err.status;
  if (err.code === 'resource_exhausted') return 507;
  return CONNECT_HTTP_STATUS[err.code];
}

/** `v1_` + unpadded base64 of sha256("path:operation:user:token[:expiration]"), as the SDK signs. */
export function fileSignature(path: string, operation: 'read' | 'write', user: string, token: string, exp?: string) {
  const raw = `${path}:${operation}:${user}:${token}${exp !== undefined ? `:${exp}` : ''}`;
  return `v1_${createHash('sha256').update(raw).digest('base64').replace(/=+$/, '')}`;
}

/**
 * Whether a /files request may proceed: the access token matched, or its signature is right for this path,
 * operation and user, and has not expired. Throws 401 with envd's sentence otherwise.
 */
export function checkSignature(query: URLSearchParams, operation: 'read' | 'write', token: string): void {
  const signature = query.get('signature');
  if (signature === null) throw new FilesError(401, 'an X-Access-Token header or a signed URL is required');
  const exp = query.get('signature_expiration') ?? undefined;
  const expected = fileSignature(query.get('path') ?? '', operation, query.get('username') ?? '', token, exp);
  const a = Buffer.from(signature);
  const b = Buffer.from(expected);
  if (a.length !== b.length || !timingSafeEqual(a, b)) throw new FilesError(401, 'invalid signature');
  if (exp !== undefined) {
    if (!/^\d{1,12}$/.test(exp)) throw new FilesError(401, 'invalid signature expiration');
    if (Number(exp) * 1000 < Date.now()) throw new FilesError(401, 'signature is already expired');
  }
}

function userOf(query: URLSearchParams): void {
  const user = query.get('username') ?? '';
  if (!USERS.has(user)) {
    throw new FilesError(
      400,
      `user "${user}" does not exist in this sandbox (Mags sandboxes run as root; use "root" or "user", or leave it out)`,
    );
  }
}

function checkPath(path: string, what: string): string {
  if (path === '') throw new FilesError(400, `${what} must name a file in the sandbox`);
  if (path.includes('\0') || path.length > 4096) throw new FilesError(400, `${what} is not a usable path`);
  return path;
}

function asFilesError(err: unknown): unknown {
  if (err instanceof ConnectError) return new FilesError(filesStatus(err), err.message);
  return err;
}

export class EnvdFiles {
  constructor(private readonly exec: ExecService) {}

  /** GET /files: the file's bytes, streamed as the socket takes them. */
  async read(sb: EnvdSandbox, query: URLSearchParams, req: IncomingMessage, res: ServerResponse): Promise<void> {
    userOf(query);
    const path = checkPath(query.get('path') ?? '', 'path');
    const helper = await HelperRun.open(this.exec, sb, { op: 'read', path }, false).catch((e) => {
      throw asFilesError(e);
    });
    let info: { size: number };
    try {
      info = (await helper.reply) as { size: number };
    } catch (err) {
      helper.run.kill();
      throw asFilesError(err);
    }
    // Every fetch() asks for gzip by default, so asking is not wanting: a file is gzipped only when its first bytes
    // compress (text, logs, JSON); already-compressed or random data goes as it is, which saves both ends the CPU.
    const accepts = /\bgzip\b/.test(String(req.headers['accept-encoding'] ?? ''));
    const name = path.split('/').pop() || 'file';
    let gzip = false;
    let sink: NodeJS.WritableStream & { writableLength: number } = res;
    let begun = false;
    const begin = (first: Buffer | undefined) => {
      begun = true;
      gzip = accepts && first !== undefined && compresses(first);
      res.writeHead(200, {
        'content-type': 'application/octet-stream',
        'content-disposition': `attachment; filename*=UTF-8''${encodeURIComponent(name)}`,
        ...(gzip ? { 'content-encoding': 'gzip', vary: 'Accept-Encoding' } : { 'content-length': info.size }),
      });
      if (gzip) {
        const out = createGzip();
        out.pipe(res);
        sink = out;
      }
      // Acknowledged once the socket holds at most SOCKET_BUFFER_BYTES unsent: the bytes in flight stay bounded by
      // that and the exec's window, without a round trip per chunk.
      sink.on('drain', () => {
        helper.ack(waiting);
        waiting = 0;
      });
    };
    let left = info.size;
    let waiting = 0;
    res.once('close', () => helper.run.kill());
    helper.onData((data) => {
      if (!begun) begin(data);
      // The file may have grown since it was opened: no more than the announced length is sent.
      const part = gzip ? data : data.subarray(0, Math.max(0, left));
      left -= part.length;
      if (part.length > 0) sink.write(part);
      if (waiting === 0 && sink.writableLength <= SOCKET_BUFFER_BYTES) helper.ack(data.length);
      else waiting += data.length;
    });
    const exit = await helper.run.exited;
    if (exit.reason !== 'exited' || (!gzip && left > 0)) {
      // Cut short (the sandbox ended, or the file shrank): the client must see an error, not a short file.
      res.destroy();
      return;
    }
    if (!begun) begin(undefined);
    sink.end();
  }

  /** POST /files: multipart or octet-stream; answers `[{name, type: "file", path}]`. */
  async write(sb: EnvdSandbox, query: URLSearchParams, req: IncomingMessage, res: ServerResponse): Promise<void> {
    userOf(query);
    const type = String(req.headers['content-type'] ?? '');
    const encoding = String(req.headers['content-encoding'] ?? 'identity').toLowerCase();
    if (encoding !== 'identity' && encoding !== 'gzip') {
      throw new FilesError(400, `Content-Encoding "${encoding}" is not supported; send gzip or no encoding`);
    }
    const body: Readable = encoding === 'gzip' ? req.pipe(createGunzip()) : req;
    let written: unknown[];
    if (type.startsWith('multipart/form-data')) {
      written = await this.multipart(sb, query, req, body);
    } else if (type === '' || type.startsWith('application/octet-stream')) {
      written = [await this.writeOne(sb, checkPath(query.get('path') ?? '', 'path'), body)];
    } else {
      req.resume();
      throw new FilesError(
        400,
        `Content-Type "${type}" is not supported: send multipart/form-data or application/octet-stream`,
      );
    }
    const json = Buffer.from(JSON.stringify(written), 'utf8');
    res.writeHead(200, { 'content-type': 'application/json', 'content-length': json.length });
    res.end(json);
  }

  /** Streams `data` into the file at `path` inside the sandbox (parents made); its entry once written. */
  private async writeOne(sb: EnvdSandbox, path: string, data: Readable): Promise<unknown> {
    const helper = await HelperRun.open(this.exec, sb, { op: 'write', path }, true).catch((e) => {
      data.resume();
      throw asFilesError(e);
    });
    let failed: unknown;
    // An early answer is an error (the path is a directory, …): the rest of the body is read and dropped.
    helper.reply.catch((err) => (failed = err));
    try {
      for await (const chunk of data as AsyncIterable<Buffer>) {
        if (failed) continue;
        if (!(await helper.run.input(chunk)))
          failed ??= new ConnectError('unknown', 'the write ended inside the sandbox');
      }
    } catch (err) {
      helper.run.kill();
      throw new FilesError(400, `the upload was cut short (${(err as Error).message})`);
    }
    helper.run.endInput();
    try {
      return await helper.reply;
    } catch (err) {
      throw asFilesError(err);
    }
  }

  private multipart(sb: EnvdSandbox, query: URLSearchParams, req: IncomingMessage, body: Readable): Promise<unknown[]> {
    return new Promise((resolve, reject) => {
      let parser: busboy.Busboy;
      try {
        parser = busboy({
          headers: req.headers,
          preservePath: true,
          limits: { files: MAX_FILES_PER_REQUEST, fields: 100 },
        });
      } catch (err) {
        req.resume();
        return reject(new FilesError(400, `the multipart body is malformed: ${(err as Error).message}`));
      }
      const results: unknown[] = [];
      let chain: Promise<void> = Promise.resolve();
      let failed: unknown;
      let count = 0;
      const queryPath = query.get('path') ?? '';
      parser.on('file', (field, file, info) => {
        if (field !== 'file' || failed) {
          file.resume();
          return;
        }
        count++;
        // One file with ?path: that path; several (or none given): each part's filename is its path.
        const path = queryPath !== '' && count === 1 ? queryPath : info.filename;
        chain = chain.then(async () => {
          if (failed) return void file.resume();
          try {
            results.push(await this.writeOne(sb, checkPath(path ?? '', "the file part's filename"), file));
          } catch (err) {
            failed = err;
            file.resume();
          }
        });
      });
      parser.on('error', (err: Error) => {
        failed ??= new FilesError(400, `the multipart body is malformed: ${err.message}`);
        req.resume();
        void chain.then(() => reject(failed));
      });
      parser.on('close', () => {
        void chain.then(() => {
          if (failed) return reject(failed);
          if (results.length === 0) return reject(new FilesError(400, 'the multipart body has no "file" part'));
          resolve(results);
        });
      });
      pipeline(body, parser).catch((err: Error) => {
        failed ??= new FilesError(400, `the upload was cut short (${err.message})`);
      });
    });
  }
}

/** Whether a download's first bytes shrink by a tenth at gzip's fastest level (a 64 KiB sample: about a millisecond). */
function compresses(first: Buffer): boolean {
  const sample = first.subarray(0, 64 * 1024);
  return deflateRawSync(sample, { level: 1 }).length < sample.length * 0.9;
}
