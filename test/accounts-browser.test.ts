// Accounts end to end in a real headless Chromium (Debian's chromium, driven by playwright-core) against a real
// `mags server`: a new user signs in from the owner's one-time link, approves a `mags login` the test started (the
// CLI then runs a job with its new token), creates a token from the browser session and uses it from the SDK,
// revokes it and sees 401; a page of another site cannot approve a login; `mags logout` revokes the CLI's token.
// Screenshots of each page are kept in $MAGS_TEST_ARTIFACTS (default: test-artifacts/browser in the repository).
import assert from 'node:assert/strict';
import { readFileSync, statSync } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { before, describe, test } from 'node:test';
import { Mags, MagsApiError } from '@mags/sdk';
import Database from 'better-sqlite3';
import type { Browser, Page } from 'playwright-core';
import { ARTIFACTS, browserSuite, type Cli, cli } from './browser.js';
import type { TestServer } from './harness.js';

describe('accounts in a browser', () => {
  const suite = browserSuite();
  let server: TestServer;
  let browser: Browser;
  let page: Page;
  const laptop = suite.laptop;
  const shot = async (name: string) => suite.shot(page, name);

  before(async () => {
    ({ server, browser } = suite);
    page = await browser.newPage();
  });

  test('a new user signs in, approves a mags login, and the CLI works with its new token', async () => {
    const added = await cli(['user', 'add', 'ann', '--json'], server.env);
    assert.equal(added.code, 0, added.stderr);
    const ann = JSON.parse(added.stdout) as { signinUrl: string; token: string };

    await page.goto(ann.signinUrl);
    await shot('choose-password');
    await page.fill('#password', 'ann-password-1');
    await page.click('#set-password');
    await page.waitForURL(/\/account$/);
    assert.equal(await page.textContent('#user'), 'ann');
    await shot('account');

    // The session cookie is HTTP-only: the page's scripts cannot read it.
    const cookie = (await page.context().cookies()).find((c) => c.name === 'mags_session');
    assert.equal(cookie?.httpOnly, true);
    assert.equal(cookie?.sameSite, 'Lax');

    const env = laptop();
    let link: string | undefined;
    let loginEnded: (r: Cli) => void = () => undefined;
    const loginDone = new Promise<Cli>((r) => {
      loginEnded = r;
    });
    const linked = new Promise<string>((resolve) => {
      const seen = (text: string) => {
        const m = /(http:\/\/\S+\/device\?code=\S+)/.exec(text);
        if (m && !link) {
          link = m[1]!;
          resolve(link);
        }
      };
      void cli(['login', server.url], env, undefined, seen).then((r) => loginEnded(r));
    });
    const url = await linked;
    await page.goto(url);
    await shot('approve');
    const shown = await page.textContent('#user-code');
    assert.equal(shown, new URL(url).searchParams.get('code'));
    await page.click('#approve');
    await page.waitForSelector('text=The terminal is signed in');
    await shot('approved');
    const login = await loginDone;
    assert.equal(login.code, 0, login.stderr);
    assert.match(login.stdout, /signed in as ann/);

    const config = path.join(env.MAGS_HOME!, 'config.json');
    assert.equal(statSync(config).mode & 0o777, 0o600, 'the token file is readable by its owner only');
    const saved = JSON.parse(readFileSync(config, 'utf8'));
    assert.equal(saved.api_url, server.url);
    assert.match(saved.api_token, /^mags_/);

    const who = await cli(['whoami'], env);
    assert.equal(who.code, 0, who.stderr);
    assert.equal(who.stdout.trim(), `ann on ${server.url}`);
    const run = await cli(['run', 'echo hello from ann'], env);
    assert.equal(run.code, 0, run.stderr);
    assert.match(run.stdout, /hello from ann/);

    // The owner's jobs are not ann's.
    const list = await cli(['list', '--json'], env);
    assert.equal(JSON.parse(list.stdout).total, 1);

    const out = await cli(['logout'], env);
    assert.equal(out.code, 0, out.stderr);
    const gone = await new Mags({ apiUrl: server.url, apiToken: saved.api_token, env: {} }).whoami().catch((e) => e);
    assert.ok(gone instanceof MagsApiError && gone.status === 401, 'logout revoked the token on the server');
    const whoAfter = await cli(['whoami'], env);
    assert.equal(whoAfter.code, 1);
    assert.match(whoAfter.stderr, /not signed in to .*mags login/);
  });

  test('a token made from the browser session works from the SDK until it is revoked: then 401 at once', async () => {
    const created = await page.evaluate(async () => {
      const me = (await (await fetch('/api/v1/me')).json()) as { csrf_token: string };
      const res = await fetch('/api/v1/tokens', {
        method: 'POST',
        headers: { 'content-type': 'application/json', 'x-csrf-token': me.csrf_token },
        body: JSON.stringify({ name: 'from the browser', expires_in_days: 7 }),
      });
      return { status: res.status, body: (await res.json()) as { token: string; id: string } };
    });
    assert.equal(created.status, 201);
    const sdk = new Mags({ apiUrl: server.url, apiToken: created.body.token, env: {} });
    assert.equal((await sdk.whoami()).name, 'ann');
    const r = await sdk.runAndWait('echo via sdk');
    assert.equal(r.exitCode, 0);

    // Without the CSRF token the session changes nothing.
    const forged = await page.evaluate(
      async (id) => (await fetch(`/api/v1/tokens/${id}`, { method: 'DELETE' })).status,
      created.body.id,
    );
    assert.equal(forged, 403);
    assert.equal((await sdk.whoami()).name, 'ann');

    const revoked = await page.evaluate(async (id) => {
      const me = (await (await fetch('/api/v1/me')).json()) as { csrf_token: string };
      return (await fetch(`/api/v1/tokens/${id}`, { method: 'DELETE', headers: { 'x-csrf-token': me.csrf_token } }))
        .status;
    }, created.body.id);
    assert.equal(revoked, 204);
    const err = await sdk.whoami().catch((e) => e);
    assert.ok(err instanceof MagsApiError && err.status === 401, `revoked token refused at once (got ${err})`);
  });

  test('a page of another site cannot approve a login in the signed-in user’s name', async () => {
    const start = await new Mags({ apiUrl: server.url, env: {} }).startLogin('attacker');
    // The attacker's page, on another site (localhost is not 127.0.0.1), posts the approval form by itself.
    const evil = http.createServer((_req, res) => {
      res.setHeader('content-type', 'text/html');
      res.end(`<form id="f" method="post" action="${server.url}/device">
<input name="code" value="${start.userCode}"><input name="action" value="approve"><input name="csrf" value="x"></form>
<script>document.getElementById('f').submit()</script>`);
    });
    await new Promise<void>((r) => evil.listen(0, '127.0.0.1', r));
    try {
      const port = (evil.address() as AddressInfo).port;
      await page.goto(`http://localhost:${port}/`);
      await page.waitForLoadState('networkidle');
      await shot('cross-site-approval-refused');
    } finally {
      evil.close();
    }
    const poll = await new Mags({ apiUrl: server.url, env: {} }).pollLogin(start.deviceCode);
    assert.deepEqual(poll, { status: 'pending' }, 'nothing was approved');
  });

  test('mags login --token reads a token from stdin; mags user remove stops the user’s sandboxes and keeps its data', async () => {
    const added = JSON.parse((await cli(['user', 'add', 'bob', '--json'], server.env)).stdout) as { token: string };
    const env = laptop();
    const bad = await cli(['login', '--token', server.url], env, 'mags_not-a-real-token\n');
    assert.equal(bad.code, 1);
    assert.match(bad.stderr, /not valid/);
    const login = await cli(['login', '--token', server.url], env, `${added.token}\n`);
    assert.equal(login.code, 0, login.stderr);
    assert.equal((await cli(['whoami'], env)).stdout.trim(), `bob on ${server.url}`);
    // MAGS_API_TOKEN still wins over the file.
    const owner = await cli(['whoami'], { ...env, MAGS_API_TOKEN: server.token });
    assert.equal(owner.stdout.trim(), `owner (owner) on ${server.url}`);

    const started = await cli(['run', '-d', '--job-name', 'bobs-loop', 'sleep 600'], env);
    assert.equal(started.code, 0, started.stderr);
    const sdk = new Mags({ apiUrl: server.url, apiToken: added.token, env: {} });
    for (let i = 0; i < 600 && (await sdk.status('bobs-loop')).status !== 'running'; i++) {
      await new Promise((r) => setTimeout(r, 100));
    }
    const jobId = (await sdk.status('bobs-loop')).requestId;

    const removed = await cli(['user', 'remove', 'bob', '--json'], server.env);
    assert.equal(removed.code, 0, removed.stderr);
    assert.deepEqual(JSON.parse(removed.stdout), { name: 'bob', jobsStopped: 1, dataDeleted: false });
    const who = await cli(['whoami'], env);
    assert.equal(who.code, 1, 'the removed user’s token is refused at once');
    const users = JSON.parse((await cli(['user', 'list', '--json'], server.env)).stdout) as {
      users: Array<{ name: string }>;
    };
    assert.ok(!users.users.some((u) => u.name === 'bob'));
    // The sandbox is stopped; the job (its data) is kept: read in the server's database, as no user may see it now.
    let status = '';
    for (let i = 0; i < 300; i++) {
      const conn = new Database(path.join(server.home, 'mags.db'), { readonly: true });
      status =
        (conn.prepare('select status from jobs where id = ?').get(jobId) as { status: string } | undefined)?.status ??
        'gone';
      conn.close();
      if (status === 'stopped') break;
      await new Promise((r) => setTimeout(r, 100));
    }
    assert.equal(status, 'stopped');
  });

  test('the owner sets a password with mags user password and signs in on the sign-in page; a wrong one is refused', async () => {
    const short = await cli(['user', 'password'], server.env, 'short\n');
    assert.equal(short.code, 1);
    assert.match(short.stderr, /at least 10 characters/);
    const set = await cli(['user', 'password'], server.env, 'owner-password-1\n');
    assert.equal(set.code, 0, set.stderr);

    const context = await browser.newContext();
    const p = await context.newPage();
    try {
      await p.goto(`${server.url}/signin`);
      await p.fill('#name', 'owner');
      await p.fill('#password', 'not-the-password');
      await p.click('#signin');
      assert.match((await p.textContent('[role=alert]')) ?? '', /name or password is wrong/);
      await p.screenshot({ path: path.join(ARTIFACTS, 'signin-refused.png'), fullPage: true });
      await p.fill('#password', 'owner-password-1');
      await p.click('#signin');
      await p.waitForURL(/\/account$/);
      assert.equal(await p.textContent('#user'), 'owner');
      await p.screenshot({ path: path.join(ARTIFACTS, 'signin.png'), fullPage: true });
      await p.click('#signout');
      await p.waitForURL(/\/signin$/);
    } finally {
      await context.close();
    }
  });
});
