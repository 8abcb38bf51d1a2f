// LocalObjectStore: the shared store contract, plus what only a directory store can get wrong (torn writes, other
// processes racing on compare-and-swap, URL parsing).
process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';

import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { Readable } from 'node:stream';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { LocalObjectStore, openObjectStore, S3ObjectStore } from '../src/index.js';
import { storeContract } from './helpers/contract.js';

const here = dirname(fileURLToPath(import.meta.url));
let dir: string;
let store: LocalObjectStore;
before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'mags-objects-'));
  store = new LocalObjectStore(join(dir, 'store'));
});
after(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('LocalObjectStore: store contract', () => storeContract(() => store));

describe('LocalObjectStore', () => {
  it('a put whose stream fails midway leaves the previous object intact and no temp file behind', async () => {
    await store.put('torn/obj', Buffer.from('previous'));
    let sent = 0;
    const failing = new Readable({
      read() {
        if (sent++ < 3) this.push(Buffer.alloc(64 * 1024, 1));
        else this.destroy(new Error('connection reset'));
      },
    });
    await assert.rejects(store.put('torn/obj', failing), /connection reset/);
    assert.equal((await store.getBuffer('torn/obj')).toString(), 'previous');
    assert.deepEqual(await readdir(join(store.root, '.mags-tmp')), []);
  });

  it('compare-and-swap holds across processes: 4 processes × 15 increments end at exactly 60', async () => {
    const url = `file://${join(dir, 'shared')}`;
    const run = promisify(execFile);
    const fixture = join(here, 'fixtures/cas-increment.ts');
    const outs = await Promise.all(
      Array.from({ length: 4 }, () =>
        run(process.execPath, ['--import', 'tsx', fixture, url, 'counter', '15', '4'], { timeout: 120_000 }),
      ),
    );
    const shared = new LocalObjectStore(join(dir, 'shared'));
    assert.equal((await shared.getBuffer('counter')).toString(), '60');
    // The fixture makes all 4 write their first increment on the same read: exactly one of them may win that round,
    // so at least 3 compare-and-swaps were refused (more when the later rounds collide too).
    const losses = outs.map((o) => Number(/^losses (\d+)$/m.exec(o.stdout)?.[1]));
    assert.ok(losses.every(Number.isInteger), `every process reports its losses: ${outs.map((o) => o.stdout)}`);
    assert.ok(losses.reduce((a, b) => a + b) >= 3, `losses ${losses}`);
  });
});

describe('openObjectStore', () => {
  it('opens paths and file:// URLs as local stores', () => {
    assert.ok(openObjectStore('/var/lib/mags/objects') instanceof LocalObjectStore);
    assert.equal((openObjectStore('file:///var/lib/mags/x') as LocalObjectStore).root, '/var/lib/mags/x');
    assert.equal((openObjectStore('relative/dir') as LocalObjectStore).root, join(process.cwd(), 'relative/dir'));
  });

  it('opens s3:// URLs with credentials from the URL or passed in, never printing the secret', async () => {
    const s = openObjectStore('s3://AK:S%2Fecret@bucket/some/prefix?endpoint=http://127.0.0.1:7480&region=eu-west-1');
    assert.ok(s instanceof S3ObjectStore);
    assert.equal(s.description, 's3://bucket/some/prefix/ at http://127.0.0.1:7480');
    const creds = await s.client.config.credentials();
    assert.equal(creds.accessKeyId, 'AK');
    assert.equal(creds.secretAccessKey, 'S/ecret');
    assert.equal(await s.client.config.region(), 'eu-west-1');
    assert.equal(s.client.config.forcePathStyle, true);
    const t = openObjectStore('s3://bucket?endpoint=http://127.0.0.1:7480', {
      accessKeyId: 'K2',
      secretAccessKey: 'S2',
    }) as S3ObjectStore;
    assert.equal((await t.client.config.credentials()).accessKeyId, 'K2');
    await s.close();
    await t.close();
  });

  it('rejects URLs it cannot use, with a sentence that says why', () => {
    assert.throws(() => openObjectStore('ftp://x'), /unsupported object store URL/);
    assert.throws(() => openObjectStore('s3://bucket?endpoint=127.0.0.1:7480'), /must be an http/);
    assert.throws(() => openObjectStore('s3://bucket?endpont=http://x'), /unknown parameter "endpont"/);
    assert.throws(() => openObjectStore('s3://bucket', { accessKeyId: 'only-id' }), /both/);
    assert.throws(
      () => openObjectStore('s3://K:SECRET@bucket?bad=1'),
      (e: Error) => !e.message.includes('SECRET'),
    );
  });
});
