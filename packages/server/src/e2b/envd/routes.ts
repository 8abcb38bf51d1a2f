// envd on the E2B app: GET /health, GET/POST /files, POST /process.Process/* and /filesystem.Filesystem/* in
// Connect's JSON codec. The sandbox comes from the `E2b-Sandbox-Id` header, else from a `49983-<id>.…` host; every
// call but /health (and signed /files URLs) must carry the sandbox's `X-Access-Token`. An unknown, ended, or
// another user's sandbox (a token that does not match) is answered as gone: 502, as E2B's proxy answers.
import { timingSafeEqual } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { Logger } from 'pino';
import type { ExecService } from '../../jobs/exec.js';
import type { SandboxLifecycle } from '../../jobs/lifecycle.js';
import {
  CONNECT_JSON,
  CONNECT_STREAM_JSON,
  ConnectError,
  ConnectStream,
  keepaliveInterval,
  parseEnvelopedRequest,
  parseMessage,
  parseTimeout,
  readBody,
  sendUnary,
} from './connect.js';
import { checkSignature, EnvdFiles, FilesError, sendFilesError } from './files.js';
import { EnvdFilesystem } from './filesystem.js';
import { EnvdProcesses } from './process.js';
import { type EnvdSandbox, execError, goneError } from './sandbox.js';

/** The port envd listens on in an E2B sandbox: host names `49983-<id>.<domain>` reach it. */
export const ENVD_PORT = 49983;
/** The envd version reported to the SDK is E1's; this is what the calls here implement. */
const HOST_PATTERN = new RegExp(`^${ENVD_PORT}-([a-z0-9-]+)\\.`, 'i');

export interface EnvdDeps {
  resolve(sandboxId: string): Promise<EnvdSandbox | undefined>;
  exec: ExecService;
  lifecycle: SandboxLifecycle;
  logger: Logger;
}

type Unary = (sb: EnvdSandbox, message: Record<string, unknown>) => unknown;
/** `open` starts the response stream; `onDeadline` runs when the call's Connect-Timeout-Ms passes. */
type Open = (onDeadline?: () => void) => ConnectStream;
type Streaming = (sb: EnvdSandbox, message: Record<string, unknown>, open: Open) => Promise<void> | void;

/** The sandbox id a request names: the `E2b-Sandbox-Id` header, else the `49983-<id>` label of its host. */
export function sandboxIdOf(req: IncomingMessage): string | undefined {
  const header = req.headers['e2b-sandbox-id'];
  const id = Array.isArray(header) ? header[0] : header;
  if (id) return id.trim().toLowerCase();
  const host = req.headers.host ?? '';
  return HOST_PATTERN.exec(host)?.[1]?.toLowerCase();
}

function tokenMatches(req: IncomingMessage, token: string): boolean {
  const given = req.headers['x-access-token'];
  if (typeof given !== 'string') return false;
  const a = Buffer.from(given);
  const b = Buffer.from(token);
  return a.length === b.length && timingSafeEqual(a, b);
}

export function registerEnvd(app: FastifyInstance, deps: EnvdDeps): void {
  const { logger, exec } = deps;
  const gone = async (id: string) => (await deps.resolve(id)) === undefined;
  const processes = new EnvdProcesses({ exec, gone, logger });
  const filesystem = new EnvdFilesystem(exec, gone);
  const files = new EnvdFiles(exec);

  /** The sandbox of a request with its token checked; undefined: gone (or not the caller's). */
  const sandboxOf = async (req: IncomingMessage, tokenNeeded: boolean): Promise<EnvdSandbox | undefined> => {
    const id = sandboxIdOf(req);
    if (!id || !/^[a-z0-9-]{1,100}$/.test(id)) return undefined;
    const sb = await deps.resolve(id);
    if (!sb) return undefined;
    if (tokenNeeded && !tokenMatches(req, sb.envdToken)) return undefined;
    return sb;
  };

  const unary: Record<string, Record<string, Unary>> = {
    'process.Process': {
      List: (sb) => processes.list(sb),
      SendInput: (sb, m) => processes.sendInput(sb, m),
      SendSignal: (sb, m) => processes.sendSignal(sb, m),
      CloseStdin: (sb, m) => processes.closeStdin(sb, m),
      Update: (sb, m) => processes.update(sb, m),
    },
    'filesystem.Filesystem': {
      Stat: (sb, m) => filesystem.stat(sb, m),
      ListDir: (sb, m) => filesystem.listDir(sb, m),
      MakeDir: (sb, m) => filesystem.makeDir(sb, m),
      Move: (sb, m) => filesystem.move(sb, m),
      Remove: (sb, m) => filesystem.remove(sb, m),
    },
  };
  const streaming: Record<string, Record<string, Streaming>> = {
    'process.Process': {
      Start: (sb, m, open) => processes.start(sb, m, open),
      Connect: (sb, m, open) => processes.connect(sb, m, open),
    },
    'filesystem.Filesystem': {
      WatchDir: (sb, m, open) => filesystem.watchDir(sb, m, open),
    },
  };

  const rpc = async (request: FastifyRequest, service: string, method: string, res: ServerResponse) => {
    const req = request.raw;
    const type = String(req.headers['content-type'] ?? '')
      .split(';')[0]!
      .trim()
      .toLowerCase();
    const unaryCall: Unary | undefined = own(unary[service], method);
    const streamCall: Streaming | undefined = own(streaming[service], method);
    const log = logger.child({ sandboxId: sandboxIdOf(req), rpc: `${service}/${method}` });
    if (streamCall && type === CONNECT_STREAM_JSON) {
      let stream: ConnectStream | undefined;
      try {
        const timeoutMs = parseTimeout(req.headers['connect-timeout-ms']);
        const message = parseEnvelopedRequest(await readBody(req));
        const sb = await sandboxOf(req, true);
        if (!sb) throw goneError(sandboxIdOf(req) ?? '');
        const interval = keepaliveInterval(req.headers['keepalive-ping-interval']);
        const keepalive = service === 'process.Process' ? { event: { keepalive: {} } } : { keepalive: {} };
        await streamCall(sb, message, (onDeadline) => {
          stream = new ConnectStream(res);
          stream.keepAlive(interval, () => keepalive);
          if (timeoutMs !== undefined && timeoutMs > 0) stream.expireAfter(timeoutMs, onDeadline);
          return stream;
        });
      } catch (err) {
        const error = connectError(err, sandboxIdOf(req) ?? '', log);
        if (stream) stream.end(error);
        else if (error.status === 502)
          sendUnary(res, { error }); // gone before the stream opened: 502, as E2B
        else {
          // Errors of a stream before it opened still come as a stream: the SDK reads them from the end frame.
          new ConnectStream(res).end(error);
        }
      }
      return;
    }
    if (unaryCall && type === CONNECT_JSON) {
      try {
        parseTimeout(req.headers['connect-timeout-ms']);
        const message = parseMessage(await readBody(req));
        const sb = await sandboxOf(req, true);
        if (!sb) throw goneError(sandboxIdOf(req) ?? '');
        sendUnary(res, { message: await unaryCall(sb, message) });
      } catch (err) {
        sendUnary(res, { error: connectError(err, sandboxIdOf(req) ?? '', log) });
      }
      return;
    }
    req.resume();
    if (!unaryCall && !streamCall) {
      return sendUnary(res, { error: new ConnectError('unimplemented', `${service}/${method} is not implemented`) });
    }
    const want = unaryCall ? CONNECT_JSON : CONNECT_STREAM_JSON;
    const body = `${service}/${method} takes Content-Type ${want} (Connect with the JSON codec)`;
    res.writeHead(415, { 'content-type': 'text/plain; charset=utf-8', 'accept-post': want });
    res.end(body);
  };

  app.register(async (scope) => {
    // Bodies are read by the handlers themselves (Connect envelopes, streamed uploads).
    scope.removeAllContentTypeParsers();
    scope.addContentTypeParser('*', (_request, _payload, done) => done(null));

    scope.get('/health', async (request, reply) => {
      reply.hijack();
      const sb = await sandboxOf(request.raw, false).catch(() => undefined);
      const res = reply.raw;
      res.writeHead(sb ? 204 : 502, sb ? {} : { 'content-type': 'application/json' });
      res.end(
        sb ? undefined : JSON.stringify({ code: 502, message: goneError(sandboxIdOf(request.raw) ?? '').message }),
      );
    });

    const filesRoute =
      (operation: 'read' | 'write') =>
      async (request: FastifyRequest, reply: { hijack(): void; raw: ServerResponse }) => {
        reply.hijack();
        const req = request.raw;
        const res = reply.raw;
        const query = new URL(req.url ?? '/', 'http://envd').searchParams;
        try {
          const signed = query.has('signature');
          const sb = await sandboxOf(req, !signed);
          if (!sb) throw new FilesError(502, goneError(sandboxIdOf(req) ?? '').message);
          if (signed && !tokenMatches(req, sb.envdToken)) checkSignature(query, operation, sb.envdToken);
          if (operation === 'read') await files.read(sb, query, req, res);
          else await files.write(sb, query, req, res);
        } catch (err) {
          req.resume();
          if (err instanceof FilesError) return sendFilesError(res, err.status, err.message);
          const mapped = execError(err, sandboxIdOf(req) ?? '');
          if (mapped instanceof ConnectError) {
            return sendFilesError(
              res,
              mapped.status ?? (mapped.code === 'resource_exhausted' ? 429 : 503),
              mapped.message,
            );
          }
          logger.error({ err, sandboxId: sandboxIdOf(req) }, 'envd /files failed');
          sendFilesError(res, 500, 'the file operation failed on the server');
        }
      };
    scope.get('/files', filesRoute('read'));
    scope.post('/files', filesRoute('write'));

    for (const service of ['process.Process', 'filesystem.Filesystem']) {
      scope.post(`/${service}/:method`, async (request, reply) => {
        const { method } = request.params as { method: string };
        reply.hijack();
        await rpc(request, service, method, reply.raw);
      });
    }
  });
}

/** A method of a service table: its own entries only (never `constructor` or `__proto__`). */
function own<T>(table: Record<string, T> | undefined, key: string): T | undefined {
  return table && Object.hasOwn(table, key) ? table[key] : undefined;
}

function connectError(err: unknown, sandboxId: string, log: Logger): ConnectError {
  const mapped = execError(err, sandboxId);
  if (mapped instanceof ConnectError) return mapped;
  log.error({ err }, 'envd call failed');
  return new ConnectError('internal', 'the call failed on the server');
}
