// Details the hosted service's clients rely on: a submit field it accepts (rootfs_type) is ignored, not refused;
// workspaces carry workspace_id; a name that breaks the rule is told the rule in words.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { TestServer } from './helpers.js';
import { errorBody, startTestServer } from './helpers.js';

describe('compatibility with the hosted service', () => {
  let t: TestServer;
  before(async () => {
    t = await startTestServer();
  });
  after(async () => {
    await t?.close();
  });

  const post = (url: string, payload: unknown) =>
    t.server.app.inject({ method: 'POST', url, headers: t.auth, payload: payload as object });

  test('rootfs_type is accepted and ignored', async () => {
    const res = await post('/api/v1/mags-jobs', { script: 'echo hi', rootfs_type: 'ubuntu-22.04' });
    assert.equal(res.statusCode, 202, res.body);
  });

  test('workspace list items carry workspace_id (the name)', async () => {
    assert.equal((await post('/api/v1/mags-workspaces', { name: 'compat-ws' })).statusCode, 201);
    const list = (await t.server.app.inject({ method: 'GET', url: '/api/v1/mags-workspaces', headers: t.auth })).json();
    const ws = list.workspaces.find((w: { name: string }) => w.name === 'compat-ws');
    assert.equal(ws.workspace_id, 'compat-ws');
  });

  test('a bad name is answered with the rule in words, not a regular expression', async () => {
    const body = errorBody(await post('/api/v1/mags-workspaces', { name: '-bad' }), 400, 'invalid_request');
    assert.match(body.error, /names are 1–63 letters, digits, "\.", "_" or "-", starting with a letter or digit/);
    assert.doesNotMatch(body.error, /\[A-Za-z/);
  });
});
