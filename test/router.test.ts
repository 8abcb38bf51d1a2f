// The router as users meet it, against a real `mags server` and real sandboxes: a web app in a sandbox reached by
// its URL (curl, Node, a WebSocket client, headless Chromium), by an alias that follows its workspace to a new
// sandbox, streamed downloads and uploads with the server's memory flat, SSE as events come, the error pages, a
// frozen and a stopped sandbox woken by a request, private URLs, and another user kept out.
import assert from 'node:assert/strict';
import { execFile, execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import { after, before, describe, test } from 'node:test';
import { Mags } from '@mags/sdk';
import { generateToken, Store } from '@mags/server';
import { chromium } from 'playwright-core';
import WebSocket from 'ws';
import { api, removeInstance, runCli, startServer, type TestServer, waitJob } from './harness.js';
import { hostOf, startApp } from './router-app.js';

const unique = (prefix: string) => `${prefix}-${randomBytes(3).toString('hex')}`;

interface Answer {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: string;
}

/** One request to the router for `host` (a URL's host name), as a browser or curl would send it. */
function request(
  server: TestServer,
  host: string,
  route: string,
  opts: { method?: string; headers?: Record<string, string>; body?: Readable } = {},
): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = http.request(
      {
        host: '127.0.0.1',
        port: server.routerPort,
        path: route,
        method: opts.method ?? 'GET',
        headers: { host: `${host}:${server.routerPort}`, ...opts.headers },
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (b: Buffer) => chunks.push(b));
        res.on('end', () =>
          resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks).toString() }),
        );
        res.on('error', reject);
      },
    );
    req.on('error', reject);
    if (opts.body) opts.body.pipe(req);
    else req.end();
  });
}

/** The server process's resident memory, in MiB. */
function rssMb(pid: number): number {
  const kb = Number(/^VmRSS:\s+(\d+)/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] ?? 0);
  return kb / 1024;
}

describe('router: URLs into sandboxes', () => {
  const instance = `r${randomBytes(2).toString('hex')}`;
  let server: TestServer;
  let mags: Mags;
  let web: string;
  let webUrl: string;
  before(async () => {
    server = await startServer(['--instance', instance]);
    mags = new Mags({ apiUrl: server.url, apiToken: server.token });
    web = unique('web');
    // The sandbox with a URL, as a user makes it; the app is put in the workspace and started after.
    const made = await runCli(server, ['new', web, '-p', '--url', '--port', '3000']);
    assert.equal(made.code, 0, made.stderr);
    const printed = /URL: (\S+)/.exec(made.stdout)?.[1];
    assert.ok(printed, `mags new prints the URL: ${made.stdout}`);
    webUrl = printed;
    await startApp(mags, web, 3000);
    // From the next start on, the sandbox starts the app itself.
    const set = await runCli(server, ['set', web, '--startup-command', 'node /root/app.cjs 3000']);
    assert.equal(set.code, 0, set.stderr);
  });
  after(async () => {
    await server?.stop();
    removeInstance(instance);
  });

  test('mags new --url: status shows the subdomain and URL; curl reaches the app by it', async () => {
    const job = await mags.status(web);
    assert.match(job.subdomain ?? '', /^[0-9a-f]{12}$/, 'a 12-hex subdomain');
    assert.equal(job.url, webUrl);
    assert.equal(webUrl, `http://${job.subdomain}.localhost:${server.routerPort}`);
    // curl resolves *.localhost to loopback by itself: no DNS set-up.
    const out = await new Promise<string>((resolve, reject) =>
      execFile('curl', ['-sS', '--fail', `${webUrl}/hello`], (err, stdout, stderr) =>
        err ? reject(new Error(stderr)) : resolve(stdout),
      ),
    );
    assert.match(out, /^hello /);
    // Keep-alive and headers: the app sees the forwarding headers, not the router's hop-by-hop ones.
    const h = JSON.parse((await request(server, hostOf(webUrl), '/headers')).body) as Record<string, string>;
    assert.equal(h['x-forwarded-proto'], 'http');
    assert.equal(h['x-forwarded-host'], `${hostOf(webUrl)}:${server.routerPort}`);
  });

  test('mags url NAME PORT and the access route answer { success, url, port }; port 22 still gives SSH', async () => {
    const cli = await runCli(server, ['url', web, '3000']);
    assert.equal(cli.code, 0, cli.stderr);
    assert.equal(cli.stdout.trim(), webUrl, 'the subdomain stays for the job');
    const rest = await api(server, 'POST', `/api/v1/mags-jobs/${web}/access`, { port: 3000 });
    assert.equal(rest.status, 200);
    assert.equal(rest.body.success, true);
    assert.equal(rest.body.url, webUrl);
    assert.equal(rest.body.port, 3000);
    const ssh = await api(server, 'POST', `/api/v1/mags-jobs/${web}/access`, { port: 22 });
    assert.equal(ssh.status, 200);
    assert.match(ssh.body.ssh_private_key, /OPENSSH PRIVATE KEY/);
    const sdk = await mags.url(web, 3000);
    assert.equal(sdk.url, webUrl);
    assert.equal((await api(server, 'POST', '/api/v1/mags-jobs/nope-nope/access', { port: 3000 })).status, 404);
    assert.equal((await api(server, 'POST', `/api/v1/mags-jobs/${web}/access`, { port: 0 })).status, 400);
  });

  test('error pages: unknown host 404, a port nothing listens on 502 naming the port; HTML or JSON', async () => {
    const unknown = await request(server, 'abcdefabcdef.localhost', '/');
    assert.equal(unknown.status, 404);
    assert.match(unknown.headers['content-type'] ?? '', /text\/html/);
    assert.match(unknown.body, /no sandbox has the URL/);
    const bare = await request(server, 'localhost', '/', { headers: { accept: 'application/json' } });
    assert.equal(bare.status, 404);
    assert.equal(JSON.parse(bare.body).code, 'not_found');

    const other = unique('noport');
    await mags.new(other, { persistent: true, url: true, port: 4999 });
    const url = (await mags.status(other)).url!;
    const down = await request(server, hostOf(url), '/', { headers: { accept: 'application/json' } });
    assert.equal(down.status, 502);
    const body = JSON.parse(down.body) as { error: string; code: string };
    assert.match(body.error, /port 4999/);
    assert.equal(body.code, 'bad_gateway');
    const html = await request(server, hostOf(url), '/');
    assert.equal(html.status, 502);
    assert.match(html.body, /<html/);

    // A stopped job's URL: 410 with a sentence.
    await mags.stop(other);
    await waitJob(mags, other, (j) => j.status === 'stopped', 'stopped');
    const gone = await request(server, hostOf(url), '/', { headers: { accept: 'application/json' } });
    assert.equal(gone.status, 410);
    assert.match(JSON.parse(gone.body).error, /has ended \(stopped\)/);
  });

  test('walls: the sandbox reaches neither the router nor the API on the host; a URL reaches only its own port', async () => {
    const hostIp = (await new Promise<string>((resolve) => execFile('hostname', ['-I'], (_e, out) => resolve(out))))
      .trim()
      .split(/\s+/)[0];
    const tryConnect = (host: string, port: number) =>
      `node -e "const s=require('net').connect(${port},'${host}');s.setTimeout(3000,()=>{console.log('${host}:${port} timeout');process.exit(0)});` +
      `s.on('connect',()=>{console.log('${host}:${port} OPEN');process.exit(0)}).on('error',e=>{console.log('${host}:${port} '+e.code);process.exit(0)})"`;
    const targets: Array<[string, number]> = [
      ['$GW', server.routerPort],
      ['$GW', server.port],
      ['127.0.0.1', server.routerPort],
      ['127.0.0.1', server.port],
    ];
    if (hostIp) targets.push([hostIp, server.routerPort], [hostIp, server.port]);
    const script = `GW=$(ip route | awk '/default/ {print $3}'); ${targets.map(([h, p]) => tryConnect(h, p)).join('; ')}`;
    const r = await mags.exec(web, script);
    assert.equal(r.exitCode, 0, r.stderr);
    assert.equal(r.stdout.trim().split('\n').length, targets.length, r.stdout);
    assert.doesNotMatch(r.stdout, /OPEN/, `the host's router and API ports are closed to the sandbox:\n${r.stdout}`);

    // A second server in the sandbox on another port: the URL still reaches port 3000 alone, whatever the Host says.
    await mags.exec(web, 'setsid -f node /root/app.cjs 3001 >/dev/null 2>&1 </dev/null; sleep 1');
    const viaUrl = await request(server, hostOf(webUrl), '/hello');
    const otherPort = await request(server, hostOf(webUrl), '/hello', { headers: { host: `${hostOf(webUrl)}:3001` } });
    assert.equal(otherPort.body.split(' ')[1], viaUrl.body.split(' ')[1], 'the same app (port 3000) answers');
  });

  test('a WebSocket echo through the router: messages both ways', async () => {
    // Node resolves no *.localhost names (browsers and curl do): connect to loopback, with the URL's host.
    const ws = new WebSocket(`ws://127.0.0.1:${server.routerPort}/ws`, { headers: { host: new URL(webUrl).host } });
    const got: string[] = [];
    await new Promise<void>((resolve, reject) => {
      ws.on('open', () => {
        ws.send('one');
        ws.send('tick');
        ws.send('x'.repeat(5000));
      });
      ws.on('message', (data) => {
        got.push(data.toString());
        if (got.length === 4) resolve();
      });
      ws.on('error', reject);
    });
    ws.close();
    assert.deepEqual(got, ['echo: one', 'echo: tick', 'tock', `echo: ${'x'.repeat(5000)}`]);
  });

  test('Server-Sent Events pass as they come', async () => {
    const events: string[] = [];
    await new Promise<void>((resolve, reject) => {
      const req = http.get(
        {
          host: '127.0.0.1',
          port: server.routerPort,
          path: '/sse',
          headers: { host: `${hostOf(webUrl)}:${server.routerPort}`, accept: 'text/event-stream' },
        },
        (res) => {
          assert.match(res.headers['content-type'] ?? '', /text\/event-stream/);
          res.setEncoding('utf8');
          res.on('data', (text: string) => {
            for (const m of text.matchAll(/data: (.*)\n/g)) {
              events.push(m[1]!);
              // The app sends the next event only once asked: an event held back by the router would hang here.
              if (events.length < 3) void request(server, hostOf(webUrl), '/sse-next');
            }
          });
          res.on('end', resolve);
        },
      );
      req.on('error', reject);
    });
    assert.deepEqual(events, ['event 1', 'event 2', 'event 3']);
  });

  test('a 1 GB download and a 1 GB upload stream through with the server memory flat', async () => {
    const before = rssMb(server.pid);
    let peak = before;
    const timer = setInterval(() => {
      peak = Math.max(peak, rssMb(server.pid));
    }, 100);
    try {
      const bytes = await new Promise<number>((resolve, reject) => {
        http
          .get(
            {
              host: '127.0.0.1',
              port: server.routerPort,
              path: '/big?mb=1024',
              headers: { host: `${hostOf(webUrl)}:${server.routerPort}` },
            },
            (res) => {
              let n = 0;
              res.on('data', (b: Buffer) => {
                n += b.length;
              });
              res.on('end', () => resolve(n));
              res.on('error', reject);
            },
          )
          .on('error', reject);
      });
      assert.equal(bytes, 1024 * 1024 * 1024);
      let sent = 0;
      const chunk = Buffer.alloc(1024 * 1024, 7);
      const body = new Readable({
        read() {
          if (sent === 1024) return void this.push(null);
          sent++;
          this.push(chunk);
        },
      });
      const up = await request(server, hostOf(webUrl), '/upload', { method: 'POST', body });
      assert.equal(up.status, 200);
      assert.equal(Number(up.body), 1024 * 1024 * 1024);
    } finally {
      clearInterval(timer);
    }
    assert.ok(
      peak - before < 150,
      `the server's memory stays flat (${before.toFixed(0)} → peak ${peak.toFixed(0)} MiB)`,
    );
  });

  test('an alias reaches the workspace, and follows it to a new sandbox after mags stop + mags new', async () => {
    const sub = `app-${randomBytes(3).toString('hex')}`;
    const made = await runCli(server, ['url', 'alias', sub, web]);
    assert.equal(made.code, 0, made.stderr);
    assert.match(made.stdout, new RegExp(`http://${sub}\\.localhost:${server.routerPort}`));
    const first = await request(server, `${sub}.localhost`, '/hello');
    assert.equal(first.status, 200);
    const list = await runCli(server, ['url', 'alias', 'list', '--json']);
    assert.ok((JSON.parse(list.stdout) as Array<{ subdomain: string }>).some((a) => a.subdomain === sub));
    assert.equal((await runCli(server, ['url', 'alias', sub, web])).code, 1, 'a name is taken once');
    const bad = await api(server, 'POST', '/api/v1/mags-url-aliases', { subdomain: 'Bad_Name', workspace_id: web });
    assert.equal(bad.status, 400);
    assert.match(bad.body.error, /DNS label/);

    await mags.stop(web);
    const idle = await request(server, `${sub}.localhost`, '/', { headers: { accept: 'application/json' } });
    assert.equal(idle.status, 404);
    assert.match(JSON.parse(idle.body).error, /no sandbox runs on workspace/);
    // A new sandbox on the workspace: its startup command starts the app again; the alias reaches it.
    const again = await mags.new(web, {
      persistent: true,
      url: true,
      port: 3000,
      startupCommand: 'node /root/app.cjs 3000',
    });
    webUrl = again.url!;
    let second: Answer | undefined;
    for (let i = 0; i < 100; i++) {
      second = await request(server, `${sub}.localhost`, '/hello');
      if (second.status === 200) break;
      await new Promise((r) => setTimeout(r, 100));
    }
    assert.equal(second?.status, 200, second?.body);
    assert.notEqual(second!.body.split(' ')[1], first.body.split(' ')[1], 'another process of the app answers');
    assert.equal((await runCli(server, ['url', 'alias', 'remove', sub])).code, 0);
    assert.equal((await request(server, `${sub}.localhost`, '/')).status, 404);
  });

  test("another user cannot use, take or remove a user's URLs and aliases; a private URL wants the token", async () => {
    const store = await Store.open(path.join(server.home, 'mags.db'));
    let token: string;
    try {
      const other = await store.users.create(`other-${randomBytes(2).toString('hex')}`);
      const secret = generateToken();
      await store.users.insertToken(other.id, { hash: secret.hash, prefix: secret.prefix, name: 'test' });
      token = secret.token;
    } finally {
      await store.close();
    }
    const theirs = new Mags({ apiUrl: server.url, apiToken: token });
    const sub = `mine-${randomBytes(3).toString('hex')}`;
    await mags.urlAliasCreate(sub, web);
    // They cannot open a URL to this user's sandbox, nor take, see or remove the alias, nor point one at it.
    await assert.rejects(theirs.url(web, 3000), (e: { status: number }) => e.status === 404);
    const job = await mags.status(web);
    await assert.rejects(theirs.url(job.requestId, 3000), (e: { status: number }) => e.status === 404);
    await assert.rejects(
      theirs.urlAliasCreate(sub, web),
      (e: { status: number }) => e.status === 404 || e.status === 409,
    );
    assert.deepEqual(await theirs.urlAliasList(), []);
    await assert.rejects(theirs.urlAliasDelete(sub), (e: { status: number }) => e.status === 404);
    assert.equal((await request(server, `${sub}.localhost`, '/hello')).status, 200, 'the alias still works');
    // Their own workspace of the same name: their alias reaches theirs, never this user's sandbox.
    await theirs.new(web, { persistent: true });
    const theirSub = `theirs-${randomBytes(3).toString('hex')}`;
    await theirs.urlAliasCreate(theirSub, web);
    const reached = await request(server, `${theirSub}.localhost`, '/hello', {
      headers: { accept: 'application/json' },
    });
    assert.equal(reached.status, 502, 'their sandbox, where nothing listens');
    await theirs.stop(web);

    // Private: only the owner's token (never passed on to the app) or the login link's cookie.
    const priv = await mags.url(web, 3000, { private: true });
    assert.equal(priv.private, true);
    const host = hostOf(priv.url);
    assert.equal((await request(server, host, '/hello')).status, 401);
    assert.equal(
      (await request(server, host, '/hello', { headers: { authorization: `Bearer ${token}` } })).status,
      401,
      "another user's token is refused",
    );
    const withToken = await request(server, host, '/headers', { headers: { authorization: `Bearer ${server.token}` } });
    assert.equal(withToken.status, 200);
    assert.equal(JSON.parse(withToken.body).authorization, undefined, 'the token does not reach the sandbox');
    const login = await request(server, host, new URL(priv.loginUrl!).pathname + new URL(priv.loginUrl!).search);
    assert.equal(login.status, 303);
    const cookie = String(login.headers['set-cookie']).split(';')[0]!;
    assert.equal((await request(server, host, '/hello', { headers: { cookie } })).status, 200);
    const reused = await request(server, host, new URL(priv.loginUrl!).pathname + new URL(priv.loginUrl!).search);
    assert.equal(reused.status, 401, 'a login link works once');
    // Public again.
    await mags.url(web, 3000);
    assert.equal((await request(server, host, '/hello')).status, 200);
    await mags.urlAliasDelete(sub);
  });

  test('a browser: headless Chromium renders the page and its script gets a WebSocket message', async () => {
    const browser = await chromium.launch({ executablePath: '/usr/bin/chromium', args: ['--no-sandbox'] });
    try {
      const page = await browser.newPage();
      await page.goto(webUrl);
      assert.equal(await page.textContent('#title'), 'hello from the sandbox');
      await page.waitForFunction("document.getElementById('ws').textContent.startsWith('echo')", undefined, {
        timeout: 15_000,
      });
      assert.equal(await page.textContent('#ws'), 'echo: from the page');
    } finally {
      await browser.close();
    }
  });
});

describe('router: wake on request', () => {
  const instance = `w${randomBytes(2).toString('hex')}`;
  let server: TestServer;
  let mags: Mags;
  before(async () => {
    server = await startServer(['--instance', instance, '--sleep-after', '2s', '--stop-after', '6s']);
    mags = new Mags({ apiUrl: server.url, apiToken: server.token });
  });
  after(async () => {
    await server?.stop();
    removeInstance(instance, false);
  });

  test('a frozen sandbox and a stopped one are woken by a URL request, which completes; the startup command runs again', async () => {
    const name = unique('sleepy');
    const job = await mags.new(name, { persistent: true, url: true, port: 3000 });
    await startApp(mags, name, 3000);
    // From the next start on, the app is started by the sandbox itself.
    await mags.updateJob(name, { startupCommand: 'node /root/app.cjs 3000' });
    const host = hostOf(job.url!);
    const first = await request(server, host, '/hello');
    assert.equal(first.status, 200, first.body);

    const frozen = await waitJob(mags, name, (j) => j.status === 'sleeping' && j.vmId !== null, 'frozen', 20_000);
    assert.equal(frozen.vmId, job.vmId);
    const thawed = await request(server, host, '/hello');
    assert.equal(thawed.status, 200, thawed.body);
    assert.equal(thawed.body, first.body, 'the same process answers: the sandbox was thawed');

    await waitJob(mags, name, (j) => j.status === 'sleeping' && j.vmId === null, 'stopped asleep', 30_000);
    const restarted = await request(server, host, '/hello');
    assert.equal(restarted.status, 200, restarted.body);
    assert.notEqual(restarted.body.split(' ')[1], first.body.split(' ')[1], 'a new process: the startup command ran');
    assert.match(restarted.body, /starts=2/);
    assert.equal((await mags.status(name)).status, 'running');

    // URL traffic is activity: while requests keep coming (one every 300 ms, for over twice --sleep-after), the
    // sandbox stays awake, though its app uses almost no CPU.
    for (let i = 0; i < 17; i++) {
      assert.equal((await request(server, host, '/hello')).status, 200);
      await new Promise((r) => setTimeout(r, 300));
    }
    assert.equal((await mags.status(name)).status, 'running', 'traffic kept it awake');
    await mags.stop(name);
  });
});

describe('router: HTTPS with --tls-cert and --tls-key', () => {
  const instance = `t${randomBytes(2).toString('hex')}`;
  const dir = mkdtempSync(path.join(tmpdir(), 'mags-tls-'));
  let server: TestServer;
  let mags: Mags;
  before(async () => {
    execFileSync(
      'openssl',
      [
        'req',
        '-x509',
        '-newkey',
        'ec',
        '-pkeyopt',
        'ec_paramgen_curve:P-256',
        '-nodes',
        '-days',
        '1',
        '-subj',
        '/CN=*.apps.test',
        '-addext',
        'subjectAltName=DNS:*.apps.test',
        '-keyout',
        path.join(dir, 'key.pem'),
        '-out',
        path.join(dir, 'cert.pem'),
      ],
      { stdio: 'ignore' },
    );
    server = await startServer([
      '--instance',
      instance,
      '--apps-domain',
      'apps.test',
      '--tls-cert',
      path.join(dir, 'cert.pem'),
      '--tls-key',
      path.join(dir, 'key.pem'),
    ]);
    mags = new Mags({ apiUrl: server.url, apiToken: server.token });
  });
  after(async () => {
    await server?.stop();
    rmSync(dir, { recursive: true, force: true });
    removeInstance(instance, false);
  });

  test('the URL is https under the apps domain; HTTPS reaches the app and plain HTTP on the port redirects', async () => {
    const name = unique('tls');
    const job = await mags.new(name, { persistent: true, url: true, port: 3000 });
    assert.equal(job.url, `https://${job.subdomain}.apps.test:${server.routerPort}`);
    await startApp(mags, name, 3000);
    const host = `${job.subdomain}.apps.test`;
    const body = await new Promise<{ status: number; text: string }>((resolve, reject) => {
      https
        .get(
          {
            host: '127.0.0.1',
            port: server.routerPort,
            path: '/hello',
            servername: host,
            headers: { host: `${host}:${server.routerPort}` },
            ca: readFileSync(path.join(dir, 'cert.pem')),
          },
          (res) => {
            let text = '';
            res.on('data', (b: Buffer) => {
              text += b.toString();
            });
            res.on('end', () => resolve({ status: res.statusCode ?? 0, text }));
          },
        )
        .on('error', reject);
    });
    assert.equal(body.status, 200);
    assert.match(body.text, /^hello /);
    const plain = await request(server, host, '/hello?x=1');
    assert.equal(plain.status, 308);
    assert.equal(plain.headers.location, `https://${host}:${server.routerPort}/hello?x=1`);
    await mags.stop(name);
  });
});
