// envd's Connect JSON codec (e2b/envd/connect.ts) read by the client E2B's SDK uses (@connectrpc/connect 2.x with
// the SDK's own process.proto and filesystem.proto descriptors, taken from the e2b package): what a user would notice
// is a stream the client cannot parse ("missing EndStreamResponse", a wrong content type), errors that arrive with
// the wrong code (a `kill` that throws instead of returning false), enum or int64 shapes it rejects, or a deadline
// that is not kept.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { createRequire } from 'node:module';
import type { AddressInfo } from 'node:net';
import { after, before, describe, test } from 'node:test';
import { fileDesc } from '@bufbuild/protobuf/codegenv2';
import { file_google_protobuf_timestamp } from '@bufbuild/protobuf/wkt';
import { ConnectError as ClientError, Code, createClient } from '@connectrpc/connect';
import { createConnectTransport } from '@connectrpc/connect-web';
import {
  ConnectError,
  ConnectStream,
  parseEnvelopedRequest,
  parseMessage,
  parseTimeout,
  readBody,
  sendUnary,
  timestamp,
} from '../src/e2b/envd/connect.js';

/** The SDK's own descriptors (its bundle embeds them as base64 FileDescriptorProtos). */
function sdkDescriptors() {
  const require = createRequire(import.meta.url);
  const bundle = readFileSync(require.resolve('e2b').replace(/index\.js$/, 'index.mjs'), 'utf8');
  const found: Record<string, string> = {};
  for (const [, b64] of bundle.matchAll(/fileDesc\("([A-Za-z0-9+/=]+)"/g)) {
    const text = Buffer.from(b64!, 'base64').toString('latin1');
    if (text.includes('process/process.proto')) found.process = b64!;
    if (text.includes('filesystem/filesystem.proto')) found.filesystem = b64!;
  }
  assert.ok(found.process && found.filesystem, 'the e2b bundle embeds its envd descriptors');
  return {
    process: fileDesc(found.process).services[0]!,
    filesystem: fileDesc(found.filesystem, [file_google_protobuf_timestamp]).services[0]!,
  };
}

let server: Server;
let baseUrl: string;
const seen: { headers?: Record<string, unknown>; message?: unknown } = {};

before(async () => {
  server = createServer((req, res) => {
    void (async () => {
      const path = req.url ?? '';
      seen.headers = req.headers;
      try {
        if (path === '/process.Process/Start') {
          const timeout = parseTimeout(req.headers['connect-timeout-ms']);
          seen.message = parseEnvelopedRequest(await readBody(req));
          const stream = new ConnectStream(res);
          if (timeout !== undefined) stream.expireAfter(timeout);
          stream.send({ event: { start: { pid: 7 } } });
          stream.send({ event: { data: { stdout: Buffer.from('hé\n').toString('base64') } } });
          stream.send({ event: { keepalive: {} } });
          const args = (seen.message as { process: { args: string[] } }).process.args;
          if (args.includes('hang')) return; // the deadline ends it
          if (args.includes('fail')) return stream.end(new ConnectError('not_found', 'process vanished'));
          stream.send({ event: { end: { exitCode: 3, exited: true, status: 'exit status 3' } } });
          return stream.end();
        }
        seen.message = parseMessage(await readBody(req));
        if (path === '/process.Process/List') {
          return sendUnary(res, {
            message: {
              processes: [{ config: { cmd: '/bin/bash', args: ['-l'], envs: { A: 'b' } }, pid: 4, tag: 't' }],
            },
          });
        }
        if (path === '/process.Process/SendSignal') {
          return sendUnary(res, { error: new ConnectError('not_found', 'process with pid 9 not found') });
        }
        if (path === '/filesystem.Filesystem/Stat') {
          return sendUnary(res, {
            message: {
              entry: {
                name: 'x',
                type: 'FILE_TYPE_SYMLINK',
                path: '/tmp/x',
                size: '5000000000',
                mode: 0o777,
                permissions: 'Lrwxrwxrwx',
                owner: 'root',
                group: 'root',
                modifiedTime: timestamp(1700000000, 123000000),
                symlinkTarget: '/etc/hostname',
              },
            },
          });
        }
        if (path === '/filesystem.Filesystem/MakeDir') {
          return sendUnary(res, { error: new ConnectError('unavailable', 'sandbox gone', 502) });
        }
        sendUnary(res, { error: new ConnectError('unimplemented', 'no') });
      } catch (err) {
        sendUnary(res, { error: err instanceof ConnectError ? err : new ConnectError('internal', String(err)) });
      }
    })();
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  baseUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});
after(() => new Promise<void>((r) => server.close(() => r())));

describe('the Connect JSON codec, read by the SDK client', () => {
  const services = sdkDescriptors();
  const transport = () => createConnectTransport({ baseUrl, useBinaryFormat: false });

  test('a streamed Start: envelope request, start/data/keepalive/end events and the end-stream frame', async () => {
    const client: any = createClient(services.process, transport());
    const events: Array<{ case?: string; value?: unknown }> = [];
    for await (const r of client.start({ process: { cmd: '/bin/bash', args: ['-l', '-c', 'x'] }, stdin: false })) {
      events.push(r.event!.event as { case?: string; value?: unknown });
    }
    assert.deepEqual(
      events.map((e) => e.case),
      ['start', 'data', 'keepalive', 'end'],
    );
    assert.equal((events[0]!.value as { pid: number }).pid, 7);
    const data = events[1]!.value as { output: { case: string; value: Uint8Array } };
    assert.equal(data.output.case, 'stdout');
    assert.equal(Buffer.from(data.output.value).toString(), 'hé\n');
    assert.equal((events[3]!.value as { exitCode: number }).exitCode, 3);
    assert.deepEqual(seen.message, { process: { cmd: '/bin/bash', args: ['-l', '-c', 'x'] }, stdin: false });
    assert.equal(seen.headers?.['content-type'], 'application/connect+json');
  });

  test('an error in the end-stream frame reaches the client with its code', async () => {
    const client: any = createClient(services.process, transport());
    await assert.rejects(
      (async () => {
        for await (const _ of client.start({ process: { cmd: 'x', args: ['fail'] } })) {
          /* events before the error */
        }
      })(),
      (e: unknown) => e instanceof ClientError && e.code === Code.NotFound && e.rawMessage === 'process vanished',
    );
  });

  test('Connect-Timeout-Ms ends a quiet stream with deadline_exceeded', async () => {
    const client: any = createClient(services.process, transport());
    await assert.rejects(
      (async () => {
        // The header alone (no client-side abort): the server's deadline must end the stream.
        for await (const _ of client.start(
          { process: { cmd: 'x', args: ['hang'] } },
          { headers: { 'connect-timeout-ms': '300' } },
        )) {
          /* start, data, keepalive */
        }
      })(),
      (e: unknown) => e instanceof ClientError && e.code === Code.DeadlineExceeded,
    );
  });

  test('unary answers: maps, optional fields, int64 strings, enum names and timestamps parse', async () => {
    const proc: any = createClient(services.process, transport());
    const list = await proc.list({});
    assert.equal(list.processes[0]!.pid, 4);
    assert.equal(list.processes[0]!.tag, 't');
    assert.deepEqual(list.processes[0]!.config!.envs, { A: 'b' });
    const fs: any = createClient(services.filesystem, transport());
    const st = await fs.stat({ path: '/tmp/x' });
    assert.equal(st.entry!.size, 5000000000n);
    assert.equal(st.entry!.type, 3); // FILE_TYPE_SYMLINK
    assert.equal(st.entry!.symlinkTarget, '/etc/hostname');
    assert.equal(st.entry!.modifiedTime!.seconds, 1700000000n);
    assert.equal(st.entry!.modifiedTime!.nanos, 123000000);
    assert.deepEqual(seen.message, { path: '/tmp/x' });
  });

  test('unary errors carry their code: not_found (kill → false), and a gone sandbox as 502 unavailable', async () => {
    const proc: any = createClient(services.process, transport());
    await assert.rejects(
      proc.sendSignal({ process: { selector: { case: 'pid', value: 9 } }, signal: 9 }),
      (e: unknown) => e instanceof ClientError && e.code === Code.NotFound,
    );
    assert.deepEqual(seen.message, { process: { pid: 9 }, signal: 'SIGNAL_SIGKILL' });
    const fs: any = createClient(services.filesystem, transport());
    await assert.rejects(
      fs.makeDir({ path: '/x' }),
      (e: unknown) => e instanceof ClientError && e.code === Code.Unavailable,
    );
  });

  test('timestamps: RFC 3339 in UTC with 0, 3, 6 or 9 fraction digits', () => {
    assert.equal(timestamp(0), '1970-01-01T00:00:00Z');
    assert.equal(timestamp(1700000000, 5_000_000), '2023-11-14T22:13:20.005Z');
    assert.equal(timestamp(1700000000, 5_000), '2023-11-14T22:13:20.000005Z');
    assert.equal(timestamp(1700000000, 5), '2023-11-14T22:13:20.000000005Z');
  });

  test('malformed requests are refused with invalid_argument', () => {
    assert.throws(() => parseEnvelopedRequest(Buffer.from([0, 0, 0])), /not a Connect envelope/);
    assert.throws(() => parseEnvelopedRequest(Buffer.from([1, 0, 0, 0, 0])), /compressed/);
    assert.throws(() => parseMessage(Buffer.from('[1]')), /JSON object/);
    assert.throws(() => parseTimeout('12345678901'), /Connect-Timeout-Ms/);
  });
});
