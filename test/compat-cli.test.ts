// The CLI as the reference's users type it: `-n NAME` names the job and the workspace, `mags --help | head -3`
// ends quietly (no EPIPE stack trace), `mags resize --help` says that disks only grow.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { after, before, describe, test } from 'node:test';
import { CLI, runCli, startServer, type TestServer } from './harness.js';

describe('CLI compatibility details', () => {
  let server: TestServer;
  before(async () => {
    server = await startServer();
  });
  after(async () => {
    await server?.stop();
  });

  test('-n NAME sets both the job name and the workspace', async () => {
    const r = await runCli(server, ['run', '-n', 'compat-n', 'echo named']);
    assert.equal(r.code, 0, r.stderr);
    const s = await runCli(server, ['status', 'compat-n', '--json']);
    assert.equal(s.code, 0, s.stderr);
    const job = JSON.parse(s.stdout) as { name: string; workspaceId: string };
    assert.equal(job.name, 'compat-n');
    assert.equal(job.workspaceId, 'compat-n');
  });

  test('output cut short by a pipe ends quietly', () => {
    const r = spawnSync('bash', ['-o', 'pipefail', '-c', `"${process.execPath}" "${CLI}" --help | head -3`], {
      encoding: 'utf8',
    });
    assert.ok(r.stdout.startsWith('Usage: mags'));
    assert.equal(r.stderr, '', 'no EPIPE stack trace');
    assert.equal(r.status, 0);
  });

  test('resize --help says disks only grow', async () => {
    const r = await runCli(server, ['resize', '--help']);
    assert.match(r.stdout, /only grow/);
  });
});
