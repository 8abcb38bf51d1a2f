// Step 1 of the router-front work: one sandbox running the router app, measured in one run, alternating rounds, with
// two load generators (the Node one of bench/router.ts and Debian's wrk): direct to the sandbox, through today's
// router, and through HAProxy in front (a static backend, and a Host → address:port map with set-dst).
import { execFile, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { Mags } from '@mags/sdk';
import { ROOT, startServer } from '../test/harness.js';
import { fmt, loadavg, summary } from './stats.js';

const CONNECTIONS = Number(process.env.BENCH_CONNECTIONS ?? 8);
const ROUND_MS = Number(process.env.BENCH_ROUND_MS ?? 3000);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3);
const APP = readFileSync(path.join(ROOT, 'test/fixtures/router-app.cjs'), 'utf8');
const run = promisify(execFile);

interface Target {
  name: string;
  host: string;
  port: number;
  hostHeader: string;
}
interface Result {
  rps: number;
  p50: number;
  p99: number;
}

async function nodeLoad(t: Target, ms: number): Promise<Result> {
  const agent = new http.Agent({ keepAlive: true, maxSockets: CONNECTIONS });
  const latencies: number[] = [];
  const end = Date.now() + ms;
  const one = () =>
    new Promise<void>((resolve, reject) => {
      const t0 = process.hrtime.bigint();
      http
        .get({ host: t.host, port: t.port, path: '/hello', agent, headers: { host: t.hostHeader } }, (res) => {
          res.resume();
          res.on('end', () => {
            if (res.statusCode !== 200) return reject(new Error(`${t.name}: HTTP ${res.statusCode}`));
            latencies.push(Number(process.hrtime.bigint() - t0) / 1e6);
            resolve();
          });
        })
        .on('error', reject);
    });
  const started = Date.now();
  await Promise.all(
    Array.from({ length: CONNECTIONS }, async () => {
      while (Date.now() < end) await one();
    }),
  );
  const elapsed = Date.now() - started;
  agent.destroy();
  const s = summary(latencies);
  return { rps: (latencies.length / elapsed) * 1000, p50: s.p50, p99: s.p99 };
}

function wrkMs(s: string): number {
  const m = /^([\d.]+)(us|ms|s)$/.exec(s.trim());
  if (!m) throw new Error(`wrk latency ${s}`);
  const v = Number(m[1]);
  return m[2] === 'us' ? v / 1000 : m[2] === 'ms' ? v : v * 1000;
}

async function wrkLoad(t: Target, ms: number): Promise<Result> {
  const { stdout } = await run('wrk', [
    '-t1',
    `-c${CONNECTIONS}`,
    `-d${Math.round(ms / 1000)}s`,
    '--latency',
    '-H',
    `Host: ${t.hostHeader}`,
    `http://${t.host}:${t.port}/hello`,
  ]);
  if (/Non-2xx/.test(stdout)) throw new Error(`${t.name}: wrk saw non-2xx answers\n${stdout}`);
  const rps = Number(/Requests\/sec:\s+([\d.]+)/.exec(stdout)?.[1]);
  const p50 = wrkMs(/\n\s+50%\s+(\S+)/.exec(stdout)?.[1] ?? '');
  const p99 = wrkMs(/\n\s+99%\s+(\S+)/.exec(stdout)?.[1] ?? '');
  return { rps, p50, p99 };
}

async function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const s = net.createServer().listen(0, '127.0.0.1', () => {
      const p = (s.address() as net.AddressInfo).port;
      s.close(() => resolve(p));
    });
  });
}

async function startApp(mags: Mags, name: string): Promise<void> {
  const encoded = Buffer.from(APP).toString('base64');
  const probe = `node -e "require('net').connect(3000,'127.0.0.1').on('connect',()=>process.exit(0)).on('error',()=>process.exit(1))"`;
  const r = await mags.exec(
    name,
    `echo ${encoded} | base64 -d > /root/app.cjs && (setsid -f node /root/app.cjs 3000 >/root/app.log 2>&1 </dev/null) && ` +
      `for i in $(seq 100); do ${probe} && exit 0; sleep 0.1; done; exit 1`,
  );
  if (r.exitCode !== 0) throw new Error(`the app did not start: ${r.stderr}`);
}

async function main(): Promise<void> {
  const instance = `b${randomBytes(2).toString('hex')}`;
  const server = await startServer(['--instance', instance]);
  const dir = mkdtempSync(path.join(tmpdir(), 'mags-front-bench-'));
  let haproxy: ReturnType<typeof spawn> | undefined;
  try {
    const mags = new Mags({ apiUrl: server.url, apiToken: server.token });
    const name = `bench-${randomBytes(3).toString('hex')}`;
    const job = await mags.new(name, { persistent: true, url: true, port: 3000 });
    await startApp(mags, name);
    await mags.updateJob(name, { noSleep: true });
    const address = (await mags.exec(name, "ip -4 -o addr show eth0 | awk '{print $4}' | cut -d/ -f1")).stdout.trim();
    const hpStatic = await freePort();
    const hpMap = await freePort();
    const sub = `${job.subdomain}.localhost`;
    writeFileSync(path.join(dir, 'hosts.map'), `${sub} ${address}:3000\n`);
    writeFileSync(
      path.join(dir, 'haproxy.cfg'),
      `global
  maxconn 4096
defaults
  mode http
  timeout connect 5s
  timeout client 60s
  timeout server 60s
frontend static
  bind 127.0.0.1:${hpStatic}
  default_backend app
frontend mapped
  bind 127.0.0.1:${hpMap}
  http-request set-var(txn.to) req.hdr(host),lower,field(1,:),map(${dir}/hosts.map)
  http-request return status 404 if !{ var(txn.to) -m found }
  default_backend dyn
backend app
  server s ${address}:3000
backend dyn
  http-request set-dst var(txn.to),field(1,:)
  http-request set-dst-port var(txn.to),field(2,:)
  server s 0.0.0.0:0
`,
    );
    haproxy = spawn('haproxy', ['-db', '-f', path.join(dir, 'haproxy.cfg')], { stdio: 'inherit' });
    await new Promise((r) => setTimeout(r, 500));
    const targets: Target[] = [
      { name: `direct (${address}:3000)`, host: address, port: 3000, hostHeader: `${address}:3000` },
      { name: 'Node router', host: '127.0.0.1', port: server.routerPort, hostHeader: `${sub}:${server.routerPort}` },
      { name: 'HAProxy static backend', host: '127.0.0.1', port: hpStatic, hostHeader: `${sub}:${hpStatic}` },
      { name: 'HAProxy Host map + set-dst', host: '127.0.0.1', port: hpMap, hostHeader: `${sub}:${hpMap}` },
    ];
    for (const [gen, fn] of [
      ['Node http client', nodeLoad],
      ['wrk -t1', wrkLoad],
    ] as const) {
      for (const t of targets) await fn(t, 1000);
      const results = new Map<string, Result[]>(targets.map((t) => [t.name, []]));
      for (let i = 0; i < ROUNDS; i++) for (const t of targets) results.get(t.name)!.push(await fn(t, ROUND_MS));
      console.log(
        `\nload generator: ${gen}, ${CONNECTIONS} keep-alive connections, ${ROUNDS} alternating rounds of ${ROUND_MS} ms`,
      );
      console.log(`load average: ${loadavg()}`);
      const avg = (rs: Result[]) => ({
        rps: rs.reduce((n, r) => n + r.rps, 0) / rs.length,
        p50: rs.map((r) => r.p50).sort((a, b) => a - b)[Math.floor(rs.length / 2)],
        p99: rs.map((r) => r.p99).sort((a, b) => a - b)[Math.floor(rs.length / 2)],
      });
      const d = avg(results.get(targets[0].name)!);
      for (const t of targets) {
        const a = avg(results.get(t.name)!);
        const rel =
          t === targets[0]
            ? ''
            : `   ${((a.rps / d.rps) * 100).toFixed(0)} % of direct, p50 +${(a.p50 - d.p50).toFixed(2)} ms`;
        const rounds = results
          .get(t.name)!
          .map((r) => r.rps.toFixed(0))
          .join('/');
        console.log(
          `${t.name.padEnd(30)} ${a.rps.toFixed(0).padStart(7)} req/s (${rounds})  p50 ${a.p50.toFixed(2)} ms  p99 ${fmt(a.p99)}${rel}`,
        );
      }
    }
    await mags.stop(name);
  } finally {
    haproxy?.kill();
    await server.stop();
  }
}

await main();
