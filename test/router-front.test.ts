// HAProxy in front of the router, as users meet it: one keep-alive connection carrying requests for two sandboxes,
// a private URL and an unknown host, each answered for its own Host; a sandbox that sleeps leaves HAProxy's map and
// its next request wakes it; traffic through HAProxy (requests, an open WebSocket) keeps a sandbox awake; HAProxy
// killed is restarted; its runtime socket is out of a sandbox's reach and it listens on no other TCP port.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readFileSync, statSync } from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { type Job, Mags } from '@mags/sdk';
import WebSocket from 'ws';
import { removeInstance, startServer, type TestServer } from './harness.js';
import { hostOf, startApp } from './router-app.js';

const unique = (prefix: string) => `${prefix}-${randomBytes(3).toString('hex')}`;
const haproxyInstalled = (() => {
  try {
    execFileSync('haproxy', ['-v'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
})();

const frontDir = (server: TestServer) => path.join(server.home, 'router-front');

/** One command on HAProxy's runtime API, as the server sends them. */
function haproxy(server: TestServer, cmd: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = net.connect(path.join(frontDir(server), 'admin.sock'));
    let out = '';
    s.on('connect', () => s.end(`${cmd}\n`));
    s.on('data', (b) => {
      out += b.toString();
    });
    s.on('error', reject);
    s.on('close', () => resolve(out));
  });
}

/** The hosts in HAProxy's map (the public URLs it relays itself). */
async function mapped(server: TestServer): Promise<Map<string, string>> {
  const out = await haproxy(server, `show map ${path.join(frontDir(server), 'hosts.map')}`);
  const m = new Map<string, string>();
  for (const line of out.split('\n')) {
    const [, key, value] = line.trim().split(/\s+/);
    if (key && value) m.set(key, value);
  }
  return m;
}

async function until<T>(what: string, fn: () => Promise<T | undefined | false>, timeoutMs = 20_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`${what}: not within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

interface Answer {
  status: number;
  body: string;
  localPort: number;
}

function get(server: TestServer, host: string, route: string, agent?: http.Agent): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = http.request(
      {
        host: '127.0.0.1',
        port: server.routerPort,
        path: route,
        agent,
        headers: { host: `${host}:${server.routerPort}`, accept: 'application/json' },
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (b: Buffer) => chunks.push(b));
        res.on('end', () =>
          resolve({
            status: res.statusCode ?? 0,
            body: Buffer.concat(chunks).toString(),
            localPort: res.socket?.localPort ?? req.socket?.localPort ?? 0,
          }),
        );
      },
    );
    req.on('error', reject);
    req.end();
  });
}

async function webSandbox(mags: Mags, opts: { noSleep: boolean }): Promise<{ name: string; job: Job; host: string }> {
  const name = unique('front');
  const job = await mags.new(name, { persistent: true, url: true, port: 3000 });
  await startApp(mags, name, 3000);
  await mags.updateJob(name, { startupCommand: 'node /root/app.cjs 3000', noSleep: opts.noSleep });
  return { name, job, host: hostOf(job.url!) };
}

describe('router front: HAProxy on the router port', { skip: !haproxyInstalled && 'haproxy is not installed' }, () => {
  const instance = `f${randomBytes(2).toString('hex')}`;
  let server: TestServer;
  let mags: Mags;
  let a: { name: string; job: Job; host: string };
  let b: { name: string; job: Job; host: string };
  before(async () => {
    // 5 s: activity reaches the agent up to ~2 s late (a 1 s poll of HAProxy's counters, then the throttled wake
    // order), which a loaded machine stretches; 3 s left too little margin.
    server = await startServer(['--instance', instance, '--sleep-after', '5s', '--stop-after', '60s']);
    mags = new Mags({ apiUrl: server.url, apiToken: server.token });
    a = await webSandbox(mags, { noSleep: true });
    b = await webSandbox(mags, { noSleep: true });
  });
  after(async () => {
    await server?.stop();
    removeInstance(instance, false);
  });

  test('HAProxy serves the router port; its directory is root-only and its runtime socket 0600', async () => {
    const pid = Number(readFileSync(path.join(frontDir(server), 'haproxy.pid'), 'utf8'));
    assert.match(readFileSync(`/proc/${pid}/cmdline`, 'utf8'), /haproxy/);
    assert.equal(statSync(frontDir(server)).mode & 0o777, 0o700);
    assert.equal(statSync(path.join(frontDir(server), 'admin.sock')).mode & 0o777, 0o600);
    // HAProxy listens on TCP on the router port only: no stats or admin port.
    const ss = execFileSync('ss', ['-Hltnp'], { encoding: 'utf8' });
    const ports = ss
      .split('\n')
      .filter((l) => l.includes(`pid=${pid},`))
      .map((l) => Number(/:(\d+)\s/.exec(l)?.[1]));
    assert.deepEqual(ports, [server.routerPort], `haproxy's TCP listeners: ${ss}`);
  });

  test('one keep-alive connection: A, then B, then a private URL without token, then an unknown host', async () => {
    const c = await webSandbox(mags, { noSleep: true });
    await mags.url(c.name, 3000, { private: true });
    await until('A and B in the map, the private URL not', async () => {
      const m = await mapped(server);
      return m.has(a.host) && m.has(b.host) && !m.has(c.host);
    });
    const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
    try {
      const fromA = await get(server, a.host, '/hello', agent);
      const fromB = await get(server, b.host, '/hello', agent);
      const priv = await get(server, c.host, '/hello', agent);
      const unknown = await get(server, `nobody${randomBytes(2).toString('hex')}.localhost`, '/hello', agent);
      const againA = await get(server, a.host, '/hello', agent);
      assert.equal(fromA.status, 200, fromA.body);
      assert.equal(fromB.status, 200, fromB.body);
      const startedA = fromA.body.split(' ')[1];
      const startedB = fromB.body.split(' ')[1];
      assert.notEqual(startedA, startedB, 'B answered for B, not A again');
      assert.equal(againA.body.split(' ')[1], startedA, 'A answered for A');
      assert.equal(priv.status, 401, `the private URL without the token: ${priv.body}`);
      assert.match(priv.body, /private/);
      assert.equal(unknown.status, 404, unknown.body);
      assert.match(unknown.body, /no sandbox has the URL/);
      const ports = new Set([fromA, fromB, priv, unknown, againA].map((r) => r.localPort));
      assert.equal(ports.size, 1, 'all five went over one connection');
    } finally {
      agent.destroy();
      await mags.stop(c.name);
    }
  });

  test('the client address reaches the app through HAProxy and through the Node router behind it', async () => {
    const viaFront = JSON.parse((await get(server, a.host, '/headers')).body) as Record<string, string>;
    assert.equal(viaFront['x-forwarded-for'], '127.0.0.1');
    assert.equal(viaFront['x-forwarded-proto'], 'http');
    assert.equal(viaFront['x-forwarded-host'], `${a.host}:${server.routerPort}`);
    // The owner's token sends the request through the Node router (which strips it): it still sees the client.
    const viaNode = await new Promise<Record<string, string>>((resolve, reject) => {
      http
        .get(
          {
            host: '127.0.0.1',
            port: server.routerPort,
            path: '/headers',
            headers: { host: `${a.host}:${server.routerPort}`, authorization: `Bearer ${server.token}` },
          },
          (res) => {
            let body = '';
            res.on('data', (d) => {
              body += d;
            });
            res.on('end', () => resolve(JSON.parse(body) as Record<string, string>));
          },
        )
        .on('error', reject);
    });
    assert.equal(viaNode['x-forwarded-for'], '127.0.0.1', 'the PROXY header carried the client address');
    assert.equal(viaNode.authorization, undefined, "the owner's token never reaches the sandbox");
  });

  test('a sandbox that sleeps leaves the map; its next request wakes it through the front', async () => {
    const s = await webSandbox(mags, { noSleep: false });
    await until('in the map', async () => (await mapped(server)).has(s.host));
    const first = await get(server, s.host, '/hello');
    assert.equal(first.status, 200, first.body);
    await until('asleep', async () => (await mags.status(s.name)).status === 'sleeping', 30_000);
    await until('out of the map', async () => !(await mapped(server)).has(s.host));
    const woken = await get(server, s.host, '/hello');
    assert.equal(woken.status, 200, woken.body);
    assert.equal(woken.body, first.body, 'the same app process answered: thawed');
    await until('back in the map', async () => (await mapped(server)).has(s.host));
    await mags.stop(s.name);
    await until('out of the map once stopped', async () => !(await mapped(server)).has(s.host));
  });

  test('traffic through HAProxy keeps a sandbox awake: requests, and an open WebSocket', async () => {
    const s = await webSandbox(mags, { noSleep: false });
    await until('in the map', async () => (await mapped(server)).has(s.host));
    // Requests every 400 ms for well over twice --sleep-after (5 s).
    for (let i = 0; i < 30; i++) {
      assert.equal((await get(server, s.host, '/hello')).status, 200);
      await new Promise((r) => setTimeout(r, 400));
      assert.equal((await mags.status(s.name)).status, 'running', 'requests kept it awake');
    }
    assert.ok((await mapped(server)).has(s.host), 'the requests went through HAProxy');
    // A WebSocket left open and quiet: its connection counts.
    const ws = new WebSocket(`ws://127.0.0.1:${server.routerPort}/ws`, {
      headers: { host: `${s.host}:${server.routerPort}` },
    });
    await new Promise((resolve, reject) => ws.once('open', resolve).once('error', reject));
    try {
      for (let i = 0; i < 24; i++) {
        await new Promise((r) => setTimeout(r, 500));
        assert.equal((await mags.status(s.name)).status, 'running', 'the open WebSocket kept it awake');
      }
      const echoed = new Promise<string>((resolve) => ws.once('message', (d) => resolve(d.toString())));
      ws.send('still there');
      assert.match(await echoed, /still there/);
    } finally {
      ws.close();
    }
    await mags.stop(s.name);
  });

  test('HAProxy killed is restarted, with its map', async () => {
    const pidFile = path.join(frontDir(server), 'haproxy.pid');
    const pid = Number(readFileSync(pidFile, 'utf8'));
    process.kill(pid, 'SIGKILL');
    const next = await until('a new HAProxy', async () => {
      const p = Number(readFileSync(pidFile, 'utf8'));
      return p !== pid && (await haproxy(server, 'show info').catch(() => '')).includes('Pid:') && p;
    });
    assert.notEqual(next, pid);
    assert.ok((await mapped(server)).has(a.host), 'the map was rebuilt');
    const r = await get(server, a.host, '/hello');
    assert.equal(r.status, 200, r.body);
  });

  test("attack from inside: a sandbox cannot reach HAProxy's runtime socket or any admin port", async () => {
    const sock = path.join(frontDir(server), 'admin.sock');
    const r = await mags.exec(
      a.name,
      `ls -la ${frontDir(server)} 2>&1; node -e "require('net').connect('${sock}').on('connect',()=>{console.log('CONNECTED');process.exit(0)}).on('error',e=>{console.log(e.code);process.exit(1)})"; ` +
        // The host side of the sandbox's link: nothing of HAProxy's there but the router port the walls already shut.
        `gw=$(ip route | awk '/default/ {print $3}'); for p in 8404 9000 1936 ${server.routerPort}; do ` +
        `node -e "require('net').connect($p,'$gw').on('connect',()=>{console.log('OPEN $p');process.exit(0)}).on('error',()=>process.exit(1)).setTimeout(1500,()=>process.exit(1))"; done; true`,
    );
    assert.doesNotMatch(r.stdout, /CONNECTED/, r.stdout);
    assert.doesNotMatch(r.stdout, /OPEN/, r.stdout);
    assert.match(r.stdout, /ENOENT|No such file/, 'the state directory does not exist in the sandbox');
    // The host is unchanged: HAProxy still answers its owner.
    assert.match(await haproxy(server, 'show info'), /Pid:/);
  });
});

describe('router front: a server killed outright', { skip: !haproxyInstalled && 'haproxy is not installed' }, () => {
  const instance = `k${randomBytes(2).toString('hex')}`;
  let again: TestServer | undefined;
  after(async () => {
    await again?.stop();
    removeInstance(instance, false);
  });

  test('takes its HAProxy with it, and the next start serves the same router port', async () => {
    const first = await startServer(['--instance', instance]);
    const pid = Number(readFileSync(path.join(frontDir(first), 'haproxy.pid'), 'utf8'));
    process.kill(first.pid, 'SIGKILL');
    await until('HAProxy gone with its server', async () => {
      try {
        process.kill(pid, 0);
        return false;
      } catch {
        return true;
      }
    });
    again = await startServer(['--instance', instance, '--router-port', String(first.routerPort)], first.home);
    const r = await get(again, 'nobody.localhost', '/');
    assert.equal(r.status, 404, 'the new server answers on the router port');
    assert.notEqual(Number(readFileSync(path.join(frontDir(again), 'haproxy.pid'), 'utf8')), pid);
  });
});
