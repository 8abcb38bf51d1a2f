// The S3 server the tests use: MAGS_TEST_S3_URL if set, else a throwaway Ceph RGW started with scripts/start-rgw.sh
// (on free loopback ports, in a temp dir) and stopped by PID with scripts/stop-rgw.sh.
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { after, before } from 'node:test';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { type ObjectStore, openObjectStore } from '../../src/index.js';

const run = promisify(execFile);
const repo = resolve(dirname(fileURLToPath(import.meta.url)), '../../../..');

export interface TestS3 {
  /** s3://KEY:SECRET@bucket/<fresh prefix>?endpoint=… — a prefix of its own, so runs never see each other's keys. */
  url: string;
  stop(): Promise<void>;
}

async function freePort(): Promise<number> {
  return new Promise((res, rej) => {
    const s = createServer();
    s.on('error', rej);
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => res(port));
    });
  });
}

function withPrefix(url: string): string {
  const u = new URL(url);
  u.pathname = `${u.pathname.replace(/\/+$/, '')}/t-${Date.now()}-${randomBytes(3).toString('hex')}`;
  return u.toString();
}

export async function startTestS3(): Promise<TestS3> {
  const given = process.env.MAGS_TEST_S3_URL;
  if (given) return { url: withPrefix(given), stop: async () => {} };
  const dir = await mkdtemp(join(tmpdir(), 'mags-rgw-'));
  const env = {
    ...process.env,
    MAGS_TEST_RGW_PORT: String(await freePort()),
    MAGS_TEST_RGW_MON_PORT: String(await freePort()),
  };
  let endpoint: string;
  try {
    const { stdout } = await run('bash', [join(repo, 'scripts/start-rgw.sh'), dir], { env, timeout: 600_000 });
    endpoint = stdout.trim().split('\n').pop()!;
  } catch (e) {
    await run('bash', [join(repo, 'scripts/stop-rgw.sh'), dir]).catch(() => {});
    await rm(dir, { recursive: true, force: true });
    throw e;
  }
  return {
    url: withPrefix(
      `s3://TESTACCESSKEY:TESTSECRETKEY@mags-test?endpoint=${encodeURIComponent(endpoint)}&region=us-east-1`,
    ),
    stop: async () => {
      await run('bash', [join(repo, 'scripts/stop-rgw.sh'), dir]);
      await rm(dir, { recursive: true, force: true });
    },
  };
}

/** Starts RGW (or uses MAGS_TEST_S3_URL) before the file's tests and opens a store on it; both end after them. */
export function useTestS3Store(): { store: () => ObjectStore; url: () => string } {
  let s3: TestS3 | undefined;
  let store: ObjectStore | undefined;
  before(async () => {
    s3 = await startTestS3();
    store = openObjectStore(s3.url);
  });
  after(async () => {
    await store?.close();
    await s3?.stop();
  });
  return { store: () => store!, url: () => s3!.url };
}
