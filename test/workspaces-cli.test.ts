// Workspaces and uploads as CLI and Node SDK users see them, against a real `mags server`: what
// `mags workspace …`, `mags resize`, `mags sync` and `mags files …` print and exit with, the SDK's typed results
// and errors, and uploads that arrive byte for byte. (Files surviving across runs are tested in workspaces.test.ts.)
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { MAX_DISK_GB, MagsError } from '@mags/api';
import { Mags, MagsApiError, type UploadProgress, type Workspace } from '@mags/sdk';
import { type CliResult, removeInstance, runCli, startServer, type TestServer } from './harness.js';

const instance = `v${randomBytes(2).toString('hex')}`;
let server: TestServer;
let mags: Mags;
let dir: string;

before(async () => {
  dir = mkdtempSync(path.join(tmpdir(), 'mags-test-wscli-'));
  server = await startServer(['--instance', instance]);
  mags = new Mags({ apiUrl: server.url, apiToken: server.token });
});
after(async () => {
  await server?.stop();
  rmSync(dir, { recursive: true, force: true });
  removeInstance(instance, false);
});

type Result = CliResult;

/** Runs the built CLI against the test server (stdout and stderr piped, as in a script). */
function cli(args: string[]): Promise<Result> {
  return runCli(server, args);
}

async function cliJson<T>(args: string[]): Promise<T> {
  const r = await cli(args);
  assert.equal(r.code, 0, `mags ${args.join(' ')} failed: ${r.stderr}`);
  return JSON.parse(r.stdout) as T;
}

/** A failure as the CLI must report it: nothing on stdout, one `mags: …` sentence on stderr, the exit code. */
function assertFails(r: Result, code: number, pattern?: RegExp): void {
  assert.equal(r.code, code, `exit ${code} expected (stderr: ${r.stderr})`);
  assert.equal(r.stdout, '');
  assert.match(r.stderr, /^mags: \S/);
  assert.equal(r.stderr.trim().split('\n').length, 1, `one sentence, no stack trace: ${r.stderr}`);
  if (pattern) assert.match(r.stderr, pattern);
}

const unique = (prefix: string) => `${prefix}-${randomBytes(3).toString('hex')}`;

function writeRandomFile(name: string, bytes: number): { file: string; sha256: string } {
  const file = path.join(dir, name);
  const data = randomBytes(bytes);
  writeFileSync(file, data);
  return { file, sha256: createHash('sha256').update(data).digest('hex') };
}

type WorkspaceJson = Workspace;

describe('uploads', () => {
  const BIG = 20 * 1024 * 1024 + 13;
  let big: { file: string; sha256: string };
  before(() => {
    big = writeRandomFile('big.bin', BIG);
  });

  test('a 20 MB file uploaded with the SDK arrives whole: the sha256 the server computed is the file’s', async () => {
    const progress: UploadProgress[] = [];
    const info = await mags.upload(big.file, { onProgress: (p) => progress.push(p) });
    assert.equal(info.sha256, big.sha256);
    assert.equal(info.size, BIG);
    assert.equal(info.name, 'big.bin', 'named for its basename');
    assert.equal(typeof info.fileId, 'string');
    assert.ok(!Number.isNaN(Date.parse(info.createdAt)));
    assert.ok(progress.length > 1, 'progress is reported while the file is sent');
    assert.deepEqual(progress[progress.length - 1], { sent: BIG, total: BIG });
    for (let i = 1; i < progress.length; i++)
      assert.ok(progress[i].sent >= progress[i - 1].sent, 'progress only grows');

    const listed = (await mags.listFiles()).files.find((f) => f.fileId === info.fileId);
    assert.deepEqual(listed, info, 'listFiles reports the same record');
  });

  test('uploadFile answers the id; uploadFiles the ids in order; name renames it under /uploads', async () => {
    const a = writeRandomFile('a.txt', 100);
    const b = writeRandomFile('b.txt', 0);
    const id = await mags.uploadFile(a.file, { name: 'renamed.txt' });
    const ids = await mags.uploadFiles([a.file, b.file]);
    assert.equal(ids.length, 2);
    const files = (await mags.listFiles()).files;
    const byId = new Map(files.map((f) => [f.fileId, f]));
    assert.equal(byId.get(id)?.name, 'renamed.txt');
    assert.deepEqual([byId.get(ids[0])?.name, byId.get(ids[0])?.sha256], ['a.txt', a.sha256]);
    assert.deepEqual([byId.get(ids[1])?.name, byId.get(ids[1])?.size], ['b.txt', 0], 'an empty file uploads too');
  });

  test('mags files upload prints the id (and nothing on stderr when piped); --json has the sha256', async () => {
    const plain = await cli(['files', 'upload', big.file]);
    assert.equal(plain.code, 0, plain.stderr);
    assert.equal(plain.stderr, '', 'no progress when stderr is not a terminal');
    const id = plain.stdout.trim();
    assert.equal(plain.stdout, `${id}\n`, 'only the id');
    const json = await cliJson<{ files: Array<{ fileId: string; name: string; size: number; sha256: string }> }>([
      'files',
      'upload',
      big.file,
      '--json',
    ]);
    assert.equal(json.files.length, 1);
    assert.equal(json.files[0].sha256, big.sha256);
    assert.equal(json.files[0].size, BIG);
    assert.equal(json.files[0].name, 'big.bin');
    const listed = await cliJson<{ files: Array<{ fileId: string; sha256: string }> }>(['files', 'list', '--json']);
    assert.equal(listed.files.find((f) => f.fileId === id)?.sha256, big.sha256);
  });

  test('mags files delete removes an upload; deleting it again is an error', async () => {
    const id = (await cli(['files', 'upload', big.file])).stdout.trim();
    const r = await cli(['files', 'delete', id]);
    assert.equal(r.code, 0, r.stderr);
    assert.ok(!(await mags.listFiles()).files.some((f) => f.fileId === id), 'it is no longer listed');
    assertFails(await cli(['files', 'rm', id]), 1);
  });

  test('a missing local file: one clear sentence and exit 1, from the CLI and as a typed SDK error', async () => {
    const missing = path.join(dir, 'no-such-file.csv');
    assertFails(await cli(['files', 'upload', missing]), 1, /no-such-file\.csv: no such file/);
    await assert.rejects(mags.uploadFile(missing), (err: unknown) => {
      assert.ok(err instanceof MagsApiError);
      assert.match(err.message, /no such file/);
      return true;
    });
    await assert.rejects(
      mags.uploadFile(big.file, { name: '../escape' }),
      (err: unknown) => err instanceof MagsApiError && /basename/.test(err.message),
    );
    // `mags run -f` checks its files before anything is uploaded or submitted.
    const r = await cli(['run', '-f', missing, 'true']);
    assertFails(r, 2, /no such file/);
  });

  test('mags run -f uploads each file first; the script finds them in /uploads', { timeout: 120_000 }, async () => {
    const small = writeRandomFile('data.csv', 4096);
    const r = await cli([
      'run',
      '-f',
      big.file,
      '-f',
      small.file,
      'cd /uploads && sha256sum big.bin data.csv | cut -c1-64',
    ]);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, `${big.sha256}\n${small.sha256}\n`);
    assert.equal(r.stderr, '', 'no upload progress when stderr is piped');
  });
});

describe('workspaces through the CLI', () => {
  test('mags workspace create makes a workspace that workspace list shows, in JSON and as a table', async () => {
    const name = unique('new');
    const created = await cli(['workspace', 'create', name, '-p', '--disk', '3']);
    assert.equal(created.code, 0, created.stderr);
    assert.equal(created.stdout, `created persistent workspace ${name} (3 GB disk)\n`);

    const list = await cliJson<{ workspaces: WorkspaceJson[] }>(['workspace', 'list', '--json']);
    assert.ok(Array.isArray(list.workspaces));
    const ws = list.workspaces.find((w) => w.name === name);
    assert.ok(ws, `${name} is listed`);
    assert.equal(ws.mode, 'persistent');
    assert.equal(ws.diskGb, 3);
    assert.equal(typeof ws.sizeBytes, 'number');
    assert.equal(typeof ws.files, 'number');
    assert.equal(typeof ws.versions, 'number');
    assert.ok(ws.currentVersion === null || typeof ws.currentVersion === 'number');
    assert.equal(ws.base, null);
    assert.equal(ws.inUseBy, null);
    assert.ok(!Number.isNaN(Date.parse(ws.createdAt)));
    for (const key of ['lastUsedAt', 'expiresAt'] as const) assert.ok(key in ws, `${key} is present`);

    const local = unique('loc');
    const json = await cliJson<WorkspaceJson>(['workspace', 'create', local, '--json']);
    assert.deepEqual([json.name, json.mode, json.diskGb], [local, 'local', 2], 'local with a 2 GB disk by default');

    const table = await cli(['workspace', 'ls']);
    assert.equal(table.code, 0, table.stderr);
    assert.match(table.stdout, /^NAME\s+MODE\s+DISK\s+SIZE\s+VERSIONS\s+LAST USED\n/);
    assert.match(table.stdout, new RegExp(`^${name}\\s+persistent\\s+3 GB\\s+\\d+(\\.\\d)? [KMGT]?B\\s+\\d+\\s`, 'm'));
    assert.match(table.stdout, new RegExp(`^${local}\\s+local\\s+2 GB\\s`, 'm'));
  });

  test('mags workspace create with a name already taken fails with one sentence and exit 1', async () => {
    const name = unique('twice');
    assert.equal((await cli(['workspace', 'create', name])).code, 0);
    assertFails(await cli(['workspace', 'create', name, '-p']), 1, new RegExp(name));
  });

  test('mags resize grows a workspace; a smaller disk or a bad size is refused', async () => {
    const name = unique('rs');
    assert.equal((await cli(['workspace', 'create', name, '-p', '--disk', '3'])).code, 0);
    const grown = await cliJson<WorkspaceJson>(['resize', name, '--disk', '4', '--json']);
    assert.equal(grown.diskGb, 4);
    const text = await cli(['resize', name, '--disk', '5']);
    assert.equal(text.code, 0, text.stderr);
    assert.match(text.stdout, new RegExp(`^resized ${name}: 5 GB disk`));

    assertFails(await cli(['resize', name, '--disk', '1']), 1);
    assert.equal((await mags.getWorkspace(name)).diskGb, 5, 'a refused resize changes nothing');
    assertFails(await cli(['resize', name, '--disk', '0']), 2, /--disk/);
    assertFails(await cli(['resize', name]), 2, /--disk/);
    assertFails(await cli(['resize', unique('nope'), '--disk', '3']), 1, /not found/);
  });

  test('a disk larger than the host has free: mags run, mags workspace create and mags resize fail with one sentence; nothing is made', async (t) => {
    const freeGb =
      Number(execFileSync('df', ['-B1', '--output=avail', '/var/lib/mags']).toString().trim().split('\n')[1]) /
      1024 ** 3;
    const tooBig = Math.ceil(freeGb) + 1;
    assertFails(await cli(['run', '--disk', '100000', 'true']), 2, /--disk/);
    if (tooBig > MAX_DISK_GB)
      return t.skip(`this host has more than ${MAX_DISK_GB} GB free: no allowed disk size is too big for it`);
    const run = await cli(['run', '--disk', String(tooBig), 'true']);
    assertFails(run, 1, new RegExp(`a ${tooBig} GB disk does not fit: this server has \\d+ GB free for workspaces`));
    const name = unique('big');
    assertFails(
      await cli(['workspace', 'create', name, '--disk', String(tooBig)]),
      1,
      /does not fit: this server has \d+ GB free/,
    );
    await assert.rejects(
      mags.getWorkspace(name),
      (err: unknown) => err instanceof MagsApiError && err.status === 404,
      'no workspace was made',
    );
    assert.equal((await cli(['workspace', 'create', name, '--disk', '1'])).code, 0, 'a normal size is still accepted');
    assertFails(await cli(['resize', name, '--disk', String(tooBig)]), 1, /does not fit/);
    assert.equal((await mags.getWorkspace(name)).diskGb, 1, 'a refused resize changes nothing');
  });

  test('mags workspace delete removes it; afterwards it is gone everywhere', async () => {
    const name = unique('del');
    assert.equal((await cli(['workspace', 'create', name, '-p'])).code, 0);
    const r = await cli(['workspace', 'delete', name]);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, `deleted workspace ${name}\n`);
    const list = await cliJson<{ workspaces: WorkspaceJson[] }>(['workspace', 'list', '--json']);
    assert.ok(!list.workspaces.some((w) => w.name === name), 'no longer listed');
    await assert.rejects(mags.getWorkspace(name), (err: unknown) => err instanceof MagsApiError && err.status === 404);
    assertFails(await cli(['workspace', 'rm', name]), 1, /not found/);
  });

  test('a workspace in use is deleted only with --force, and the refusal says so', { timeout: 120_000 }, async () => {
    const name = unique('busy');
    const d = await cli(['run', '-d', '-w', name, 'sleep 120']);
    assert.equal(d.code, 0, d.stderr);
    const id = d.stdout.trim();
    try {
      for (let i = 0; i < 300 && (await mags.status(id)).status !== 'running'; i++)
        await new Promise((r) => setTimeout(r, 100));
      assertFails(await cli(['workspace', 'delete', name]), 1, /--force/);
      const forced = await cli(['workspace', 'delete', name, '--force']);
      assert.equal(forced.code, 0, forced.stderr);
      await assert.rejects(
        mags.getWorkspace(name),
        (err: unknown) => err instanceof MagsApiError && err.code === 'not_found',
      );
    } finally {
      await mags.stop(id).catch(() => undefined);
    }
  });

  test('mags workspace versions of a workspace never synced lists none; restore of a missing version fails', async () => {
    const name = unique('ver');
    assert.equal((await cli(['workspace', 'create', name, '-p'])).code, 0);
    const json = await cliJson<{ name: string; versions: unknown[] }>(['workspace', 'versions', name, '--json']);
    assert.deepEqual(json, { name, versions: [] });
    const text = await cli(['workspace', 'versions', name]);
    assert.equal(text.code, 0, text.stderr);
    assert.match(text.stdout, /no versions yet/);
    assertFails(await cli(['workspace', 'restore', name, '7']), 1);
    assertFails(await cli(['workspace', 'restore', name, 'latest']), 2, /VERSION/);
  });

  test('mags sync: a persistent workspace never run has nothing to sync; local ones and jobs without one are refused', {
    timeout: 120_000,
  }, async () => {
    const name = unique('sy');
    assert.equal((await cli(['workspace', 'create', name, '-p'])).code, 0);
    const r = await cli(['sync', name]);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, `${name}: nothing to sync yet (it has no version)\n`);
    assert.deepEqual(await cliJson(['sync', name, '--json']), { success: true, name, version: null, changed: false });

    const local = unique('syl');
    assert.equal((await cli(['workspace', 'create', local])).code, 0);
    assertFails(await cli(['sync', local]), 1, /local/);

    const job = await mags.runAndWait('true');
    assertFails(await cli(['sync', job.requestId]), 1, /no workspace/);

    const nothing = unique('nothing');
    assertFails(await cli(['sync', nothing]), 1, new RegExp(`no workspace or job named "${nothing}"`));
  });

  test('--help of every workspace and file command exits 0 and shows an example', async () => {
    const commands = [
      ['sync'],
      ['resize'],
      ['workspace'],
      ['workspace', 'create'],
      ['workspace', 'list'],
      ['workspace', 'delete'],
      ['workspace', 'versions'],
      ['workspace', 'restore'],
      ['files'],
      ['files', 'list'],
      ['files', 'upload'],
      ['files', 'delete'],
      ['run'],
    ];
    for (const cmd of commands) {
      const r = await cli([...cmd, '--help']);
      assert.equal(r.code, 0, `mags ${cmd.join(' ')} --help`);
      assert.match(r.stdout, /Usage: mags/);
      assert.match(
        r.stdout,
        new RegExp(`Examples:\\n\\s+\\$ mags ${cmd[0]}`),
        `mags ${cmd.join(' ')} --help shows an example`,
      );
    }
  });
});

describe('workspaces through the SDK', () => {
  test('create, get, list, resize and delete answer camelCase records', async () => {
    const name = unique('sdk');
    const created = await mags.createWorkspace(name, { persistent: true, diskGb: 3 });
    assert.deepEqual(
      [created.name, created.mode, created.diskGb, created.base, created.inUseBy],
      [name, 'persistent', 3, null, null],
    );
    assert.deepEqual(await mags.getWorkspace(name), created);
    assert.ok((await mags.listWorkspaces()).workspaces.some((w) => w.name === name));
    assert.equal((await mags.resize(name, 4)).diskGb, 4);
    assert.deepEqual(await mags.workspaceVersions(name), { name, versions: [] });
    assert.deepEqual(await mags.deleteWorkspace(name), { success: true, name });
    assert.ok(!(await mags.listWorkspaces()).workspaces.some((w) => w.name === name));
  });

  test('a name already taken is a MagsApiError with status 409', async () => {
    const name = unique('dup');
    await mags.createWorkspace(name);
    await assert.rejects(mags.createWorkspace(name), (err: unknown) => {
      assert.ok(err instanceof MagsApiError);
      assert.equal(err.status, 409);
      assert.match(err.message, new RegExp(name));
      return true;
    });
  });

  test('what does not exist is a MagsApiError with status 404 and code not_found', async () => {
    const nope = unique('nope');
    const calls: Array<[string, () => Promise<unknown>]> = [
      ['getWorkspace', () => mags.getWorkspace(nope)],
      ['deleteWorkspace', () => mags.deleteWorkspace(nope)],
      ['workspaceVersions', () => mags.workspaceVersions(nope)],
      ['restoreWorkspace', () => mags.restoreWorkspace(nope, 1)],
      ['syncWorkspace', () => mags.syncWorkspace(nope)],
      ['resize', () => mags.resize(nope, 3)],
      ['sync', () => mags.sync(nope)],
      ['deleteFile', () => mags.deleteFile(nope)],
    ];
    for (const [method, call] of calls) {
      await assert.rejects(call(), (err: unknown) => {
        assert.ok(err instanceof MagsApiError, `${method}: a MagsApiError`);
        assert.ok(err instanceof MagsError, `${method}: the project's one error type`);
        assert.equal(err.status, 404, `${method}: status`);
        assert.equal(err.code, 'not_found', `${method}: code`);
        assert.ok(err.message.length > 0);
        return true;
      });
    }
  });
});
