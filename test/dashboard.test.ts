// The web dashboard in a real headless Chromium (Debian's chromium, driven by playwright-core) against a real
// `mags server`: a visitor is sent to sign in and comes back; a `mags login` is approved from the signed-in browser;
// a token made on the tokens page works from the SDK until it is revoked there; a job's output arrives line by line
// while it runs; a cron job shows its next run; a command runs from a sandbox's exec box; an API refusal is shown as
// its sentence; another user's session never shows the owner's jobs; the page works at 360 px and from the keyboard;
// the static files are cached and typed right and no path reaches outside them. A screenshot of every page is kept
// in $MAGS_TEST_ARTIFACTS.
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { before, describe, test } from 'node:test';
import { Mags, MagsApiError } from '@mags/sdk';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { browserSuite, type Cli, cli } from './browser.js';
import type { TestServer } from './harness.js';

const PASSWORD = 'owner-password-1';

/** A GET with the path sent exactly as written (no client-side clean-up of `..`). */
function rawGet(url: string, rawPath: string, headers: Record<string, string> = {}) {
  const { hostname, port } = new URL(url);
  return new Promise<{ status: number; headers: http.IncomingHttpHeaders; body: Buffer }>((resolve, reject) => {
    const req = http.request({ host: hostname, port, path: rawPath, method: 'GET', headers }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) }));
    });
    req.once('error', reject);
    req.end();
  });
}

describe('the web dashboard', () => {
  const suite = browserSuite();
  let server: TestServer;
  let browser: Browser;
  let context: BrowserContext;
  let page: Page;
  let sdk: Mags;
  const shot = async (name: string, p: Page = page) => suite.shot(p, `dashboard-${name}`);
  const go = async (to: string) => {
    await page.getByRole('navigation', { name: 'Pages' }).getByRole('link', { name: to, exact: true }).click();
    await page.getByRole('heading', { level: 1, name: to }).waitFor();
  };

  before(async () => {
    ({ server, browser } = suite);
    sdk = new Mags({ apiUrl: server.url, apiToken: server.token, env: {} });
    const set = await cli(['user', 'password'], server.env, `${PASSWORD}\n`);
    assert.equal(set.code, 0, set.stderr);
    context = await browser.newContext({ viewport: { width: 1200, height: 900 } });
    await context.grantPermissions(['clipboard-read', 'clipboard-write'], { origin: server.url });
    page = await context.newPage();
  });

  test('a visitor who is not signed in is sent to the sign-in page and comes back to the page asked for', async () => {
    const bare = await fetch(`${server.url}/tokens`, { redirect: 'manual' });
    assert.equal(bare.status, 303);
    assert.equal(bare.headers.get('location'), '/signin?next=%2Ftokens');

    await page.goto(`${server.url}/tokens`);
    await page.waitForURL(/\/signin\?next=%2Ftokens$/);
    await shot('signin');
    await page.fill('#name', 'owner');
    await page.fill('#password', PASSWORD);
    await page.click('#signin');
    await page.waitForURL(/\/tokens$/);
    await page.getByRole('heading', { level: 1, name: 'Tokens' }).waitFor();
    assert.equal(await page.textContent('#signed-in-user'), 'owner');
  });

  test('a mags login started in a terminal is approved from the signed-in browser; the CLI then works', async () => {
    const env = suite.laptop();
    let ended: (r: Cli) => void = () => undefined;
    const done = new Promise<Cli>((r) => {
      ended = r;
    });
    const link = await new Promise<string>((resolve) => {
      let seen = false;
      void cli(['login', server.url], env, undefined, (text) => {
        const m = /(http:\/\/\S+\/device\?code=\S+)/.exec(text);
        if (m && !seen) {
          seen = true;
          resolve(m[1]!);
        }
      }).then((r) => ended(r));
    });
    await page.goto(link);
    await page.click('#approve');
    await page.waitForSelector('text=The terminal is signed in');
    const login = await done;
    assert.equal(login.code, 0, login.stderr);
    const run = await cli(['run', 'echo the laptop works'], env);
    assert.equal(run.code, 0, run.stderr);
    assert.match(run.stdout, /the laptop works/);
    const out = await cli(['logout'], env);
    assert.equal(out.code, 0, out.stderr);
  });

  test('a token created on the tokens page is shown once with a copy button, works from the SDK, and is refused once revoked', async () => {
    await page.goto(`${server.url}/tokens`);
    await page.fill('#token-name', 'dash token');
    await page.click('#token-create');
    const secret = await page.locator('#token-secret').inputValue();
    assert.match(secret, /^mags_/);
    await page.getByRole('button', { name: 'Copy', exact: true }).click();
    await page.getByText('Copied').waitFor();
    assert.equal(await page.evaluate<string>('navigator.clipboard.readText()'), secret);
    await shot('tokens');

    const mine = new Mags({ apiUrl: server.url, apiToken: secret, env: {} });
    assert.equal((await mine.whoami()).name, 'owner');
    // Shown once: after Done, and on a fresh load, the page has no secret.
    await page.getByRole('button', { name: 'Done' }).click();
    await page.reload();
    await page.locator('tr[data-token="dash token"]').waitFor();
    assert.equal(await page.locator('#token-secret').count(), 0);
    assert.ok(!(await page.content()).includes(secret), 'the secret is not on the page again');

    const row = page.locator('tr[data-token="dash token"]');
    await row.getByRole('button', { name: 'Revoke' }).click();
    await row.getByRole('button', { name: 'Revoke dash token' }).click();
    await row.waitFor({ state: 'detached' });
    const err = await mine.whoami().catch((e) => e);
    assert.ok(err instanceof MagsApiError && err.status === 401, `revoked token refused (got ${err})`);
  });

  test("a job's output lines appear live, in order, before the job ends; the list shows it", async () => {
    await go('Jobs');
    await page.fill('#run-script', 'for i in 1 2 3 4 5 6 7 8; do echo line-$i; sleep 1; done; echo done >&2');
    await page.fill('#run-name', 'counting');
    await page.click('#run-submit');
    await page.waitForURL(/\/jobs\/[0-9a-f-]{36}$/);
    const id = page.url().split('/').pop()!;
    await page.locator('#logs').getByText('line-2', { exact: true }).waitFor({ timeout: 60_000 });
    // The second line is on the page while the script still has seconds to run.
    const during = await sdk.status(id);
    assert.equal(during.status, 'running', 'the lines arrived while the job ran');
    const early = await page.locator('#logs .line').allTextContents();
    assert.ok(!early.some((l) => l.includes('line-8')), 'not everything at once at the end');
    await shot('job-running');
    await page.getByText('The job has ended.').waitFor({ timeout: 60_000 });
    const lines = (await page.locator('#logs .line.stdout').allTextContents()).map((l) => l.trim());
    assert.deepEqual(lines, ['line-1', 'line-2', 'line-3', 'line-4', 'line-5', 'line-6', 'line-7', 'line-8']);
    assert.equal(await page.locator('#logs .line.stderr').textContent(), 'done\n');
    assert.equal((await page.locator('#job-status').textContent())?.trim(), 'completed');
    await shot('job');

    await go('Jobs');
    await page.locator(`#jobs-table tr[data-job="${id}"]`).getByText('completed').waitFor();
    // The list is live: a job submitted elsewhere appears without a reload.
    const other = await sdk.run('echo from elsewhere', { name: 'from-elsewhere' });
    await page.locator(`#jobs-table tr[data-job="${other.requestId}"]`).getByText('from-elsewhere').waitFor();
    await shot('jobs');

    // A long job is stopped from the list.
    await page.fill('#run-script', 'sleep 600');
    await page.fill('#run-name', 'sleeper');
    await page.click('#run-submit');
    await page.waitForURL(/\/jobs\/[0-9a-f-]{36}$/);
    const sleeper = page.url().split('/').pop()!;
    await page.locator('#job-status').getByText('running').waitFor({ timeout: 60_000 });
    await page.getByRole('button', { name: 'Stop', exact: true }).click();
    await page.locator('#job-status').getByText('stopped').waitFor({ timeout: 30_000 });
    assert.equal((await sdk.status(sleeper)).status, 'stopped');
  });

  test('a cron job added on the cron page shows its next run; it can be disabled, enabled and removed', async () => {
    await go('Cron');
    await page.fill('#cron-name', 'nightly');
    await page.fill('#cron-schedule', '30 3 * * *');
    await page.fill('#cron-script', 'echo nightly');
    await page.click('#cron-add');
    const item = page.locator('[data-cron="nightly"]');
    await item.waitFor();
    const next = await item.locator('.next-run').getAttribute('title');
    const listed = (await sdk.cronList()).find((c) => c.name === 'nightly');
    assert.ok(listed?.nextRunAt, 'the API has a next run');
    assert.equal(next, new Date(listed.nextRunAt).toISOString());
    const at = new Date(next!);
    assert.equal(`${at.getUTCHours()}:${at.getUTCMinutes()}`, '3:30', 'the next run is 03:30 UTC');
    assert.ok(at.getTime() > Date.now() && at.getTime() <= Date.now() + 86_400_000, 'within the next day');
    await item.getByText('Latest firings').click();
    await item.getByText('It has not fired yet.').waitFor();
    await shot('cron');

    await item.getByRole('button', { name: 'Disable' }).click();
    await item.getByText('none while disabled').waitFor();
    await item.getByRole('button', { name: 'Enable' }).click();
    await item.locator('.next-run', { hasNotText: 'none while disabled' }).waitFor();
    await item.getByRole('button', { name: 'Remove', exact: true }).click();
    await item.getByRole('button', { name: 'Remove nightly' }).click();
    await item.waitFor({ state: 'detached' });
    assert.equal((await sdk.cronList()).length, 0);
  });

  test("a command runs from a sandbox's exec box; an API refusal is shown as its sentence", async () => {
    await go('Sandboxes');
    await page.fill('#new-workspace', 'dash-dev');
    await page.click('#new-sandbox');
    const card = page.locator('[data-sandbox="dash-dev"]');
    await card.locator('.exec-command').waitFor({ timeout: 60_000 });
    await card.getByText('running').first().waitFor({ timeout: 60_000 });
    await card.locator('.exec-command').fill('echo hello from the exec box; echo oops >&2; exit 3');
    await card.locator('.exec-run').click();
    await card.locator('.exec-exit').waitFor({ timeout: 60_000 });
    assert.equal(await card.locator('.exec-output').textContent(), 'hello from the exec box\noops\n');
    assert.match((await card.locator('.exec-exit').textContent()) ?? '', /exit code 3/);

    // A local workspace cannot be kept always on: the server's sentence is what the page shows.
    // The box is ticked only once the server agrees.
    await card.locator('.no-sleep').click();
    const alert = card.getByRole('alert');
    await alert.waitFor();
    assert.match((await alert.textContent()) ?? '', /no_sleep requires a persistent workspace/);
    assert.equal(await card.locator('.no-sleep').isChecked(), false);
    await shot('sandboxes');
    await card.getByRole('button', { name: 'Stop', exact: true }).click();
    await card.waitFor({ state: 'detached', timeout: 30_000 });

    // A sandbox started with a URL links to it (the router's address for its subdomain).
    await page.fill('#new-workspace', 'dash-web');
    await page.check('#new-url');
    await page.click('#new-sandbox');
    // A URL needs a persistent workspace: the form shows the server's sentence, then starts it once that is ticked.
    const refused = page.locator('form', { has: page.locator('#new-sandbox') }).getByRole('alert');
    await refused.waitFor();
    assert.match((await refused.textContent()) ?? '', /url requires persistent/);
    await page.check('#new-persistent');
    await page.click('#new-sandbox');
    const web = page.locator('[data-sandbox="dash-web"]');
    const link = web.getByRole('link', { name: /^http:/ });
    await link.waitFor({ timeout: 60_000 });
    const href = (await link.getAttribute('href')) ?? '';
    assert.match(href, new RegExp(`^http://[0-9a-f]{12}\\.localhost:${server.routerPort}/?$`));
    assert.equal((await sdk.status('dash-web')).url?.replace(/\/$/, ''), href.replace(/\/$/, ''));
    await web.getByRole('button', { name: 'Stop', exact: true }).click();
    await web.waitFor({ state: 'detached', timeout: 30_000 });
  });

  test('workspaces, files and usage pages show what the API has', async () => {
    // Two versions of a persistent workspace; the page rolls it back to the first, then deletes it.
    for (const text of ['one', 'two']) {
      const r = await sdk.runAndWait(`echo ${text} > /root/f`, { workspaceId: 'dash-p', persistent: true });
      assert.equal(r.exitCode, 0);
    }
    await go('Workspaces');
    await page.locator('[data-workspace="dash-dev"]').waitFor();
    const ws = page.locator('[data-workspace="dash-p"]');
    await ws.getByRole('button', { name: 'Versions' }).click();
    await ws.getByRole('button', { name: 'Restore' }).first().waitFor();
    await shot('workspaces');
    const current = (await sdk.workspaceVersions('dash-p')).versions.find((v) => v.current)!.version;
    const first = Math.min(...(await sdk.workspaceVersions('dash-p')).versions.map((v) => v.version));
    await ws
      .locator('tr', { hasText: new RegExp(`^${first}`) })
      .getByRole('button', { name: 'Restore' })
      .click();
    await ws.getByRole('button', { name: `Roll back to version ${first}` }).click();
    await ws.getByText(`Restored version ${first} as version ${current + 1}.`).waitFor();
    const after = await sdk.runAndWait('cat /root/f', { workspaceId: 'dash-p', persistent: true });
    assert.equal(after.logs.find((l) => l.stream === 'stdout')?.message, 'one', 'the rollback is what runs next');
    await ws.getByRole('button', { name: 'Delete', exact: true }).click();
    await ws.getByRole('button', { name: 'Delete dash-p and all its versions' }).click();
    await ws.waitFor({ state: 'detached' });
    assert.ok(!(await sdk.listWorkspaces()).workspaces.some((w) => w.name === 'dash-p'));

    const dir = suite.tempDir('mags-upload-');
    const file = path.join(dir, 'notes.txt');
    writeFileSync(file, 'x'.repeat(3000));
    await go('Files');
    await page.setInputFiles('#upload-file', file);
    await page.click('#upload');
    await page.locator('#files-table').getByText('notes.txt').waitFor();
    assert.match((await page.locator('#files-table').textContent()) ?? '', /2\.9 KiB/);
    assert.deepEqual(
      (await sdk.listFiles()).files.map((f) => [f.name, f.size]),
      [['notes.txt', 3000]],
    );
    await shot('files');

    await go('Usage');
    await page.locator('svg.chart').waitFor();
    assert.equal(await page.locator('svg.chart rect.bar').count(), 30, 'one bar per day of the window');
    assert.match((await page.locator('#usage-totals').textContent()) ?? '', /Jobs\s*[1-9]/);
    await shot('usage');
  });

  test("the owner adds a user who signs in from the link; that user's session never shows the owner's jobs", async () => {
    await go('Users');
    await page.fill('#user-name', 'bea');
    await page.click('#user-add');
    const link = await page.locator('#user-link').inputValue();
    assert.match(link, /\/signin\/link\?code=/);
    await page.locator('tr[data-user="bea"]').waitFor();
    await shot('users');

    const bea = await browser.newContext();
    try {
      const p = await bea.newPage();
      await p.goto(link);
      await p.fill('#password', 'bea-password-1');
      await p.click('#set-password');
      await p.waitForURL(/\/account$/);
      await p.click('#dashboard');
      await p.getByRole('heading', { level: 1, name: 'Jobs' }).waitFor();
      await p.getByText('No jobs yet.').waitFor();
      assert.equal(await p.textContent('#signed-in-user'), 'bea');
      assert.equal(await p.getByRole('link', { name: 'Users' }).count(), 0, 'only the owner sees Users');
      // The owner's job, asked for by its id, is not found for bea.
      const ownerJob = (await sdk.list()).jobs[0]!.requestId;
      await p.goto(`${server.url}/jobs/${ownerJob}`);
      const alert = p.getByRole('alert').first();
      await alert.waitFor();
      assert.match((await alert.textContent()) ?? '', /not found/);
      assert.ok(!(await p.content()).includes('line-1'), "none of the owner's output");
      await shot('other-user', p);
    } finally {
      await bea.close();
    }
  });

  test('at 360 px wide nothing overflows sideways, and the keyboard reaches every page', async () => {
    const phone = await browser.newContext({ viewport: { width: 360, height: 740 } });
    try {
      const p = await phone.newPage();
      await phone.addCookies(await context.cookies());
      for (const where of ['jobs', 'sandboxes', 'tokens', 'cron', 'usage']) {
        await p.goto(`${server.url}/${where}`);
        await p.locator('h1').waitFor();
        await p.waitForLoadState('networkidle');
        const width = await p.evaluate<number>('document.documentElement.scrollWidth');
        // What sticks out, named in the failure.
        const wide = await p.evaluate<string[]>(
          `[...document.querySelectorAll('body *')].filter((e) => e.getBoundingClientRect().right > 361 &&
              e.parentElement.getBoundingClientRect().right <= 361)
            .map((e) => e.tagName + '.' + e.className + ' ' + Math.round(e.getBoundingClientRect().right) + ' ' +
              (e.textContent ?? '').slice(0, 30)).slice(0, 8)`,
        );
        await shot(`phone-${where}`, p);
        assert.ok(width <= 360, `${where}: the page is ${width} px wide at 360: ${wide.join(', ')}`);
      }
    } finally {
      await phone.close();
    }

    await page.goto(`${server.url}/jobs`);
    await page.locator('h1').waitFor();
    let reached = '';
    for (let i = 0; i < 15 && reached !== 'Usage'; i++) {
      await page.keyboard.press('Tab');
      reached = await page.evaluate<string>("document.activeElement?.textContent ?? ''");
    }
    assert.equal(reached, 'Usage', 'Tab reaches the navigation');
    const outline = await page.evaluate<string>('getComputedStyle(document.activeElement).outlineStyle');
    assert.equal(outline, 'solid', 'the focused link shows it');
    await page.keyboard.press('Enter');
    await page.waitForURL(/\/usage$/);
  });

  test('static files: hashed assets cached for ever with their types, index revalidated; traversal is 404', async () => {
    const cookie = (await context.cookies()).find((c) => c.name === 'mags_session')!;
    const index = await rawGet(server.url, '/', { cookie: `mags_session=${cookie.value}`, 'accept-encoding': 'gzip' });
    assert.equal(index.status, 200);
    assert.equal(index.headers['content-type'], 'text/html; charset=utf-8');
    assert.equal(index.headers['cache-control'], 'no-cache');
    assert.match(String(index.headers['content-security-policy']), /default-src 'self'/);
    const html = (await rawGet(server.url, '/', { cookie: `mags_session=${cookie.value}` })).body.toString();
    const assets = [...html.matchAll(/(?:src|href)="(\/assets\/[^"]+)"/g)].map((m) => m[1]!);
    assert.ok(assets.some((a) => a.endsWith('.js')) && assets.some((a) => a.endsWith('.css')), html);
    let cold = index.body.length;
    for (const a of assets) {
      const res = await rawGet(server.url, a, { 'accept-encoding': 'gzip' });
      assert.equal(res.status, 200, a);
      assert.equal(res.headers['cache-control'], 'public, max-age=31536000, immutable');
      assert.equal(res.headers['content-encoding'], 'gzip');
      assert.equal(
        res.headers['content-type'],
        a.endsWith('.js') ? 'text/javascript; charset=utf-8' : 'text/css; charset=utf-8',
      );
      const again = await rawGet(server.url, a, { 'if-none-match': String(res.headers.etag) });
      assert.equal(again.status, 304);
      cold += res.body.length;
    }
    process.stderr.write(`dashboard cold load: ${(cold / 1024).toFixed(1)} KiB gzipped (index.html + JS + CSS)\n`);

    for (const attack of [
      '/..%2f..%2fetc/passwd',
      '/assets/../../package.json',
      '/assets/..%2f..%2fpackage.json',
      '/assets/%2e%2e/%2e%2e/package.json',
      '/..%5c..%5cetc%5cpasswd',
      '/assets/',
      '/routes.json',
      '/src/main.tsx',
    ]) {
      const res = await rawGet(server.url, attack, { cookie: `mags_session=${cookie.value}` });
      assert.equal(res.status, 404, `${attack} answered ${res.status}`);
      assert.ok(!res.body.toString().includes('"workspaces"'), attack);
    }
  });

  test('Sign out ends the session: the browser is on the sign-in page and the old cookie is refused', async () => {
    const cookie = (await context.cookies()).find((c) => c.name === 'mags_session')!;
    await page.goto(`${server.url}/jobs`);
    await page.click('#signout');
    await page.waitForURL(/\/signin$/);
    const me = await fetch(`${server.url}/api/v1/me`, { headers: { cookie: `mags_session=${cookie.value}` } });
    assert.equal(me.status, 401);
    await page.goto(`${server.url}/jobs`);
    await page.waitForURL(/\/signin\?next=%2Fjobs$/);
  });
});
