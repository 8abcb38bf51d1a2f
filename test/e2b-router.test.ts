// E2B host names through the URL router, for real: a wildcard certificate for *.e2b.test signed by a test CA, the
// name resolved by Debian's dnsmasq on a loopback address, and the official `e2b` SDK in a process of its own
// (test/fixtures/e2b-client.ts) inside a mount namespace whose /etc/resolv.conf names that dnsmasq, given only
// E2B_DOMAIN=e2b.test:<router port>, an API key and NODE_EXTRA_CA_CERTS. So `Sandbox.create` reaches
// https://api.e2b.test:<port>, envd https://49983-<id>.e2b.test:<port>, and `getHost(8000)` a server in the sandbox.
import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { randomBytes, randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { Mags } from '@mags/sdk';
import { Sandbox } from 'e2b';
import { type E2bServer, startE2b } from './e2b.js';
import { DOMAIN, makeCertificates, startDnsmasq, withResolvConf } from './e2b-tls.js';
import { freePort, ROOT, removeInstance, runCli, startServer, type TestServer } from './harness.js';

interface Answer {
  id: number;
  ok: boolean;
  value?: unknown;
  error?: string;
  name?: string;
}

/** The SDK's process: inside `unshare --mount`, with the test's resolv.conf bound over /etc/resolv.conf. */
class E2bClient {
  private readonly child: ChildProcess;
  private next = 1;
  private readonly pending = new Map<number, (a: Answer) => void>();
  private stderr = '';

  constructor(resolvConf: string, env: NodeJS.ProcessEnv) {
    this.child = spawn(
      'unshare',
      withResolvConf(resolvConf, [process.execPath, '--import', 'tsx', path.join(ROOT, 'test/fixtures/e2b-client.ts')]),
      { cwd: ROOT, env, stdio: ['pipe', 'pipe', 'pipe'] },
    );
    let partial = '';
    this.child.stdout?.on('data', (b: Buffer) => {
      const lines = (partial + b.toString()).split('\n');
      partial = lines.pop() ?? '';
      for (const line of lines) {
        if (!line.startsWith('{')) continue;
        const a = JSON.parse(line) as Answer;
        this.pending.get(a.id)?.(a);
        this.pending.delete(a.id);
      }
    });
    this.child.stderr?.on('data', (b: Buffer) => {
      this.stderr = (this.stderr + b.toString()).slice(-4000);
    });
    this.child.once('exit', (code) => {
      for (const [id, r] of this.pending) r({ id, ok: false, error: `client exited (${code}): ${this.stderr}` });
      this.pending.clear();
    });
  }

  /** An operation's answer, whether it succeeded or not. */
  attempt(op: string, args: Record<string, unknown> = {}): Promise<Answer> {
    const id = this.next++;
    return new Promise((resolve) => {
      this.pending.set(id, resolve);
      this.child.stdin?.write(`${JSON.stringify({ id, op, args })}\n`);
    });
  }

  /** An operation's value; its error fails the test. */
  async call<T>(op: string, args: Record<string, unknown> = {}): Promise<T> {
    const a = await this.attempt(op, args);
    if (!a.ok) throw new Error(`${op} failed: ${a.name}: ${a.error}`);
    return a.value as T;
  }

  async close(): Promise<void> {
    if (this.child.exitCode !== null || this.child.signalCode !== null) return;
    const exited = new Promise((r) => this.child.once('exit', r));
    this.child.stdin?.end();
    const timer = setTimeout(() => this.child.kill('SIGKILL'), 5_000);
    await exited;
    clearTimeout(timer);
  }
}

interface Fetched {
  status: number;
  body: string;
  contentType: string | null;
}

describe('E2B through the router: TLS with a wildcard certificate, wildcard DNS from dnsmasq', () => {
  const instance = `t${randomBytes(2).toString('hex')}`;
  const dir = mkdtempSync(path.join(tmpdir(), 'mags-e2b-router-'));
  let server: TestServer;
  let dns: { address: string; stop(): Promise<void> } | undefined;
  let client: E2bClient;
  let ownerKey: string;
  let otherKey: string;
  let domain: string;
  const created: string[] = [];

  before(async () => {
    const certs = makeCertificates(dir);
    dns = await startDnsmasq(dir);
    writeFileSync(path.join(dir, 'resolv.conf'), `nameserver ${dns.address}\n`);
    server = await startServer([
      '--instance',
      instance,
      '--apps-domain',
      DOMAIN,
      '--tls-cert',
      certs.cert,
      '--tls-key',
      certs.key,
      '--e2b-port',
      String(await freePort()),
    ]);
    domain = `${DOMAIN}:${server.routerPort}`;
    ownerKey = server.token;
    const added = await runCli(server, ['user', 'add', 'other', '--json']);
    assert.equal(added.code, 0, added.stderr);
    otherKey = (JSON.parse(added.stdout) as { token: string }).token;
    const env: NodeJS.ProcessEnv = { ...process.env, E2B_DOMAIN: domain, NODE_EXTRA_CA_CERTS: certs.ca };
    for (const k of ['E2B_API_URL', 'E2B_SANDBOX_URL', 'E2B_API_KEY', 'E2B_DEBUG', 'MAGS_API_URL', 'MAGS_API_TOKEN'])
      delete env[k];
    client = new E2bClient(path.join(dir, 'resolv.conf'), env);
  });

  after(async () => {
    for (const id of created) await client?.attempt('kill', { sandboxId: id });
    await client?.close();
    await server?.stop();
    await dns?.stop();
    rmSync(dir, { recursive: true, force: true });
    removeInstance(instance, false);
  });

  async function create(apiKey: string, network?: Record<string, unknown>): Promise<string> {
    const s = await client.call<{ sandboxId: string; domain: string }>('create', { apiKey, network });
    created.push(s.sandboxId);
    assert.equal(s.domain, domain, 'the sandbox domain the API gives is the router domain');
    return s.sandboxId;
  }

  /** Starts `python3 -m http.server 8000` in the sandbox, serving a file that names it. */
  async function serve(sandboxId: string, text: string): Promise<void> {
    await client.call('run', {
      sandboxId,
      background: true,
      cmd: `mkdir -p /srv/www && cd /srv/www && echo ${text} > index.html && exec python3 -m http.server 8000`,
    });
  }

  const fetchVia = (url: string, headers: Record<string, string> = {}) =>
    client.call<Fetched>('fetch', { url, headers });

  /** GETs the URL until the server in the sandbox answers (it takes a moment to start). */
  async function untilServed(url: string, headers: Record<string, string> = {}): Promise<Fetched> {
    const deadline = Date.now() + 30_000;
    for (;;) {
      const r = await fetchVia(url, headers);
      if (r.status !== 502 || Date.now() > deadline) return r;
      await new Promise((res) => setTimeout(res, 250));
    }
  }

  test('with only E2B_DOMAIN set, the SDK creates a sandbox, runs a command, and getHost(8000) over HTTPS reaches a server in it', async () => {
    const env = await client.call<Record<string, string | undefined>>('env');
    assert.deepEqual(env, { domain }, 'the SDK is given E2B_DOMAIN alone (no E2B_API_URL, no E2B_SANDBOX_URL)');
    const id = await create(ownerKey);
    // envd through 49983-<id>.e2b.test: the command runs in the sandbox.
    const r = await client.call<{ exitCode: number; stdout: string }>('run', { sandboxId: id, cmd: 'echo ok' });
    assert.deepEqual([r.exitCode, r.stdout], [0, 'ok\n']);
    // A signed download URL names the sandbox only by its host (49983-<id>): it works with no header at all.
    await client.call('writeFile', { sandboxId: id, path: '/tmp/signed.txt', data: 'signed-bytes' });
    const signed = await client.call<string>('downloadUrl', { sandboxId: id, path: '/tmp/signed.txt' });
    assert.ok(signed.startsWith(`https://49983-${id}.${domain}/files?`), signed);
    const got = await fetchVia(signed);
    assert.deepEqual([got.status, got.body], [200, 'signed-bytes']);
    await serve(id, `hello-${id}`);
    const host = await client.call<string>('getHost', { sandboxId: id, port: 8000 });
    assert.equal(host, `8000-${id}.${domain}`);
    const page = await untilServed(`https://${host}/index.html`);
    assert.equal(page.status, 200, page.body);
    assert.equal(page.body, `hello-${id}\n`);
  });

  test('a sandbox created with allowPublicTraffic false refuses a request without its traffic token, and serves one with it', async () => {
    const s = await client.call<{ sandboxId: string; trafficAccessToken: string | null }>('create', {
      apiKey: ownerKey,
      network: { allowPublicTraffic: false },
    });
    created.push(s.sandboxId);
    assert.ok(s.trafficAccessToken, 'the API gives the traffic access token');
    await serve(s.sandboxId, 'private-page');
    const url = `https://8000-${s.sandboxId}.${domain}/index.html`;
    const refused = await fetchVia(url);
    assert.equal(refused.status, 403);
    assert.match(refused.body, /e2b-traffic-access-token/);
    const wrong = await fetchVia(url, { 'e2b-traffic-access-token': `${s.trafficAccessToken}x` });
    assert.equal(wrong.status, 403);
    const served = await untilServed(url, { 'e2b-traffic-access-token': s.trafficAccessToken });
    assert.equal(served.status, 200, served.body);
    assert.equal(served.body, 'private-page\n');
  });

  test("another user reaches a public port (E2B ports are public by design) but not the sandbox's envd or control plane", async () => {
    const id = await create(ownerKey);
    await serve(id, 'public-page');
    // Anyone who knows the host name reaches a public port, with no key at all: as on E2B.
    const page = await untilServed(`https://8000-${id}.${domain}/index.html`);
    assert.equal(page.status, 200, page.body);
    // The other user's key does not connect to it (the control plane at api.e2b.test)...
    const connect = await client.attempt('connect', { sandboxId: id, apiKey: otherKey });
    assert.equal(connect.ok, false);
    assert.match(`${connect.name} ${connect.error}`, /not ?found/i);
    // ...and envd at 49983-<id> runs nothing without the sandbox's access token.
    const list = await fetchVia(`https://49983-${id}.${domain}/process.Process/List`, {
      'content-type': 'application/json',
    });
    assert.notEqual(list.status, 200, list.body);
  });

  test("an unknown sandbox id, or a killed sandbox's, is the router's not-found page", async () => {
    const unknown = await fetchVia(`https://8000-${randomUUID()}.${domain}/`, { accept: 'text/html' });
    assert.equal(unknown.status, 404);
    assert.match(unknown.contentType ?? '', /text\/html/);
    assert.match(unknown.body, /no sandbox/);
    const id = await create(ownerKey);
    assert.equal(await client.call('kill', { sandboxId: id }), true);
    const gone = await fetchVia(`https://8000-${id}.${domain}/`, { accept: 'application/json' });
    assert.equal(gone.status, 404);
    assert.equal((JSON.parse(gone.body) as { code: string }).code, 'not_found');
    // A port out of range is no E2B host at all: the router's ordinary page for an unknown URL.
    const bad = await fetchVia(`https://70000-${id}.${domain}/`);
    assert.equal(bad.status, 404);
  });

  test('a paused (sleeping) sandbox is woken by a request to its port', async () => {
    const id = await create(ownerKey);
    await serve(id, 'woken-page');
    const url = `https://8000-${id}.${domain}/index.html`;
    assert.equal((await untilServed(url)).status, 200);
    assert.equal(await client.call('pause', { sandboxId: id }), true);
    // The E2B sandbox is a Mags job: paused is its sleep.
    const mags = new Mags({ apiUrl: server.url, apiToken: server.token });
    assert.equal((await mags.status(id)).status, 'sleeping');
    const page = await untilServed(url);
    assert.equal(page.status, 200, page.body);
    assert.equal(page.body, 'woken-page\n');
    assert.equal((await mags.status(id)).status, 'running', 'the request woke it');
  });
});

describe('E2B host names over plain HTTP, behind the HAProxy front', () => {
  let e2b: E2bServer;
  let sandbox: Sandbox | undefined;

  before(async () => {
    e2b = await startE2b();
  });
  after(async () => {
    await sandbox?.kill().catch(() => undefined);
    await e2b?.server.stop();
  });

  /** A plain HTTP request to the router port with the given Host (no DNS needed: the Host header is what counts). */
  function viaRouter(
    host: string,
    urlPath: string,
    headers: Record<string, string> = {},
  ): Promise<{ status: number; body: string }> {
    return new Promise((resolve, reject) => {
      http
        .get(
          { host: '127.0.0.1', port: e2b.server.routerPort, path: urlPath, headers: { ...headers, host } },
          (res) => {
            let body = '';
            res.on('data', (b: Buffer) => {
              body += b.toString();
            });
            res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
          },
        )
        .on('error', reject);
    });
  }

  test('api, 49983-<id> and <port>-<id> under the apps domain miss the front’s map and are served by the Node router', async () => {
    sandbox = await Sandbox.create({ ...e2b.opts, timeoutMs: 300_000 });
    const id = sandbox.sandboxId;
    const port = e2b.server.routerPort;
    // The domain the API gives defaults to the apps domain with the router's port.
    assert.equal(sandbox.getHost(8000), `8000-${id}.localhost:${port}`);
    await sandbox.commands.run(
      'mkdir -p /srv/www && cd /srv/www && echo plain-page > index.html && exec python3 -m http.server 8000',
      { background: true },
    );
    const deadline = Date.now() + 30_000;
    let page = await viaRouter(`8000-${id}.localhost:${port}`, '/index.html');
    while (page.status === 502 && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 250));
      page = await viaRouter(`8000-${id}.localhost:${port}`, '/index.html');
    }
    assert.deepEqual(page, { status: 200, body: 'plain-page\n' });
    const health = await viaRouter(`49983-${id}.localhost:${port}`, '/health');
    assert.equal(health.status, 204);
    const listed = await viaRouter(`api.localhost:${port}`, '/v2/sandboxes', { 'x-api-key': e2b.opts.apiKey });
    assert.equal(listed.status, 200, listed.body);
    assert.ok((JSON.parse(listed.body) as Array<{ sandboxID: string }>).some((s) => s.sandboxID === id));
    const anonymous = await viaRouter(`api.localhost:${port}`, '/v2/sandboxes');
    assert.equal(anonymous.status, 401);
  });
});
