// The dashboard's static files as the server serves them (an in-process server on a small build made here): each
// file at its own path with its type and cache rule, index.html at the app's pages only, sign-in first without a
// session, nothing else reachable; a server whose dashboard is not built says so.
import assert from 'node:assert/strict';
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { gunzipSync } from 'node:zlib';
import { startTestServer, type TestServer, tempDir } from './helpers.js';

describe('the dashboard files', () => {
  const build = tempDir();
  let t: TestServer;
  const js = `console.log(${JSON.stringify('x'.repeat(2000))});`;
  before(async () => {
    const dist = path.join(build.path, 'dist');
    mkdirSync(path.join(dist, 'assets'), { recursive: true });
    writeFileSync(
      path.join(dist, 'index.html'),
      '<!doctype html><script type="module" src="/assets/app-1a2b.js"></script>',
    );
    writeFileSync(path.join(dist, 'routes.json'), JSON.stringify(['/jobs', '/jobs/:id']));
    writeFileSync(path.join(dist, 'assets', 'app-1a2b.js'), js);
    writeFileSync(path.join(dist, 'favicon.svg'), '<svg xmlns="http://www.w3.org/2000/svg"/>');
    writeFileSync(path.join(dist, '.hidden.js'), 'no');
    // Beside the build, not in it.
    writeFileSync(path.join(build.path, 'secret.txt'), 'not for the web');
    t = await startTestServer({ agent: false, config: { dashboardDir: dist } });
  });
  after(async () => {
    await t?.close();
    build.remove();
  });
  const get = (url: string, headers: Record<string, string> = {}) =>
    t.server.app.inject({ method: 'GET', url, headers });
  const session = { cookie: 'mags_session=anything' };

  test("the app's pages answer index.html (revalidated, framed by no one) once there is a session cookie", async () => {
    for (const url of ['/', '/jobs', '/jobs/0123-abc', '/jobs/']) {
      const res = await get(url, session);
      assert.equal(res.statusCode, 200, url);
      assert.equal(res.headers['content-type'], 'text/html; charset=utf-8');
      assert.equal(res.headers['cache-control'], 'no-cache');
      assert.equal(res.headers['x-frame-options'], 'DENY');
      assert.match(String(res.headers['content-security-policy']), /script-src 'self'/);
      assert.match(res.body, /app-1a2b\.js/);
    }
    const bare = await get('/jobs/0123?x=1');
    assert.equal(bare.statusCode, 303);
    assert.equal(bare.headers.location, '/signin?next=%2Fjobs%2F0123%3Fx%3D1');
  });

  test('hashed assets are cached for ever, gzipped when asked, and 304 when unchanged', async () => {
    const res = await get('/assets/app-1a2b.js', { 'accept-encoding': 'gzip, br' });
    assert.equal(res.statusCode, 200);
    assert.equal(res.headers['content-type'], 'text/javascript; charset=utf-8');
    assert.equal(res.headers['cache-control'], 'public, max-age=31536000, immutable');
    assert.equal(res.headers['content-encoding'], 'gzip');
    assert.equal(gunzipSync(res.rawPayload).toString(), js);
    const plain = await get('/assets/app-1a2b.js');
    assert.equal(plain.headers['content-encoding'], undefined);
    assert.equal(plain.body, js);
    const again = await get('/assets/app-1a2b.js', { 'if-none-match': String(res.headers.etag) });
    assert.equal(again.statusCode, 304);
    const icon = await get('/favicon.svg');
    assert.equal(icon.headers['content-type'], 'image/svg+xml');
    assert.equal(icon.headers['cache-control'], 'no-cache');
  });

  test('no other path reaches a file: not beside the build, not hidden ones, not the route list', async () => {
    for (const url of [
      '/secret.txt',
      '/../secret.txt',
      '/assets/../../secret.txt',
      '/assets/..%2f..%2fsecret.txt',
      '/..%2fsecret.txt',
      '/.hidden.js',
      '/routes.json',
      '/index.html',
      '/assets/',
      '/assets/APP-1A2B.JS',
      '/nowhere',
    ]) {
      const res = await get(url, session);
      assert.equal(res.statusCode, 404, `${url}: ${res.statusCode}`);
      assert.ok(!res.body.includes('not for the web'), url);
    }
  });

  test('a server without a built dashboard answers / with a sentence saying how to build it', async () => {
    const bare = await startTestServer({ agent: false, config: { dashboardDir: path.join(build.path, 'none') } });
    try {
      const res = await bare.server.app.inject({ method: 'GET', url: '/' });
      assert.equal(res.statusCode, 404);
      assert.match(res.json().error, /dashboard is not built.*npm run build/);
      assert.equal((await bare.server.app.inject({ method: 'GET', url: '/api/v1/health' })).statusCode, 200);
    } finally {
      await bare.close();
    }
  });
});
