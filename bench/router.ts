// The router's cost: requests/s and p50/p99 latency of GET /hello through the router (by the URL's host name) and
// straight to the sandbox's veth address, side by side in one run, alternating rounds, with two load generators (a
// small Node one: keep-alive connections, each sending its next request when the last answer ended; and Debian's wrk
// when installed). Two servers: one with the router's default front (HAProxy when installed), one with
// --router-front node (the Node router alone). Then the first-byte latency of a URL request that wakes a frozen and
// a stopped sandbox, through the default front.
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { promisify } from 'node:util';
import { type Job, Mags } from '@mags/sdk';
import { ROOT, startServer, type TestServer } from '../test/harness.js';
import { fmt, loadavg, summary } from './stats.js';

const CONNECTIONS = Number(process.env.BENCH_CONNECTIONS ?? 8);
const ROUND_MS = Number(process.env.BENCH_ROUND_MS ?? 3000);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3);
const WAKES = Number(process.env.BENCH_WAKES ?? 3);
const APP = readFileSync(path.join(ROOT, 'test/fixtures/router-app.cjs'), 'utf8');

interface Load {
  requests: number;
  latencies: number[];
  ms: number;
}

interface Target {
  host: string;
  port: number;
  hostHeader: string;
}

interface Figures {
  rps: number;
  p50: number;
  p99: number;
}

function wrkMs(s: string): number {
  const m = /^([\d.]+)(us|ms|s)$/.exec(s.trim());
  if (!m) throw new Error(`wrk latency ${s}`);
  const v = Number(m[1]);
  return m[2] === 'us' ? v / 1000 : m[2] === 'ms' ? v : v * 1000;
}

/** wrk with one thread and CONNECTIONS connections for `ms`. */
async function wrk(target: Target, ms: number): Promise<Figures> {
  const { stdout } = await promisify(execFile)('wrk', [
    '-t1',
    `-c${CONNECTIONS}`,
    `-d${Math.max(1, Math.round(ms / 1000))}s`,
    '--latency',
    '-H',
    `Host: ${target.hostHeader}`,
    `http://${target.host}:${target.port}/hello`,
  ]);
  if (/Non-2xx/.test(stdout)) throw new Error(`wrk saw answers other than 200:\n${stdout}`);
  return {
    rps: Number(/Requests\/sec:\s+([\d.]+)/.exec(stdout)?.[1]),
    p50: wrkMs(/\n\s+50%\s+(\S+)/.exec(stdout)?.[1] ?? ''),
    p99: wrkMs(/\n\s+99%\s+(\S+)/.exec(stdout)?.[1] ?? ''),
  };
}

async function nodeLoad(target: Target, ms: number): Promise<Figures> {
  const l = await load(target, ms);
  const s = summary(l.latencies);
  return { rps: (l.requests / l.ms) * 1000, p50: s.p50, p99: s.p99 };
}

const hasWrk = await promisify(execFile)('wrk', ['--version']).then(
  () => true,
  (err: { stdout?: string }) => /wrk/.test(err.stdout ?? ''),
);

/** CONNECTIONS keep-alive loops for `ms`: each sends GET path to host:port with `hostHeader` and waits for the end. */
async function load(target: { host: string; port: number; hostHeader: string }, ms: number): Promise<Load> {
  const agent = new http.Agent({ keepAlive: true, maxSockets: CONNECTIONS });
  const latencies: number[] = [];
  const end = Date.now() + ms;
  const one = () =>
    new Promise<void>((resolve, reject) => {
      const t0 = process.hrtime.bigint();
      http
        .get(
          { host: target.host, port: target.port, path: '/hello', agent, headers: { host: target.hostHeader } },
          (res) => {
            res.resume();
            res.on('end', () => {
              if (res.statusCode !== 200) return reject(new Error(`HTTP ${res.statusCode}`));
              latencies.push(Number(process.hrtime.bigint() - t0) / 1e6);
              resolve();
            });
          },
        )
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
  return { requests: latencies.length, latencies, ms: elapsed };
}

async function firstByte(port: number, host: string): Promise<number> {
  const t0 = process.hrtime.bigint();
  return new Promise((resolve, reject) => {
    http
      .get({ host: '127.0.0.1', port, path: '/hello', headers: { host } }, (res) => {
        res.once('data', () => resolve(Number(process.hrtime.bigint() - t0) / 1e6));
        res.resume();
        if (res.statusCode !== 200) reject(new Error(`HTTP ${res.statusCode}`));
      })
      .on('error', reject);
  });
}

async function waitJob(mags: Mags, ref: string, until: (j: Job) => boolean, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!until(await mags.status(ref))) {
    if (Date.now() > deadline) throw new Error(`job ${ref} did not reach the state in time`);
    await new Promise((r) => setTimeout(r, 100));
  }
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

/** A sandbox running the app on port 3000 with a URL, on `server`: its router target and its direct one. */
async function appOn(server: TestServer): Promise<{ mags: Mags; name: string; host: string; address: string }> {
  const mags = new Mags({ apiUrl: server.url, apiToken: server.token });
  const name = `bench-${randomBytes(3).toString('hex')}`;
  const job = await mags.new(name, { persistent: true, url: true, port: 3000 });
  await startApp(mags, name);
  await mags.updateJob(name, { startupCommand: 'node /root/app.cjs 3000', noSleep: true });
  const address = (await mags.exec(name, "ip -4 -o addr show eth0 | awk '{print $4}' | cut -d/ -f1")).stdout.trim();
  return { mags, name, host: `${job.subdomain}.localhost:${server.routerPort}`, address };
}

async function main(): Promise<void> {
  const instance = `b${randomBytes(2).toString('hex')}`;
  const server = await startServer(['--instance', instance, '--sleep-after', '3s', '--stop-after', '8s']);
  const plainInstance = `b${randomBytes(2).toString('hex')}`;
  const plain = await startServer(['--instance', plainInstance, '--router-front', 'node']);
  try {
    const front = existsSync(path.join(server.home, 'router-front', 'haproxy.pid')) ? 'HAProxy' : 'Node (no haproxy)';
    const app = await appOn(server);
    const other = await appOn(plain);
    const { mags, name } = app;
    const host = app.host;
    const targets: Array<[string, Target]> = [
      [`direct (${app.address}:3000)`, { host: app.address, port: 3000, hostHeader: `${app.address}:3000` }],
      [`router, front: ${front}`, { host: '127.0.0.1', port: server.routerPort, hostHeader: host }],
      ['router, --router-front node', { host: '127.0.0.1', port: plain.routerPort, hostHeader: other.host }],
    ];
    const generators: Array<[string, (t: Target, ms: number) => Promise<Figures>]> = [['Node http client', nodeLoad]];
    if (hasWrk) generators.push(['wrk -t1', wrk]);
    else console.log('wrk is not installed: the Node load generator alone');
    for (const [gen, run] of generators) {
      for (const [, t] of targets) await run(t, 1000);
      const rounds = targets.map(() => [] as Figures[]);
      for (let i = 0; i < ROUNDS; i++)
        for (const [j, [, t]] of targets.entries()) rounds[j].push(await run(t, ROUND_MS));
      console.log(
        `\nload: ${gen}, ${CONNECTIONS} keep-alive connections, ${ROUNDS} alternating rounds of ${ROUND_MS} ms each`,
      );
      console.log(`load average: ${loadavg()}`);
      const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
      const figures = rounds.map((rs) => ({
        rps: rs.reduce((n, r) => n + r.rps, 0) / rs.length,
        p50: median(rs.map((r) => r.p50)),
        p99: median(rs.map((r) => r.p99)),
        each: rs.map((r) => r.rps.toFixed(0)).join('/'),
      }));
      for (const [j, [what]] of targets.entries()) {
        const f = figures[j];
        const rel =
          j === 0
            ? ''
            : `   ${((f.rps / figures[0].rps) * 100).toFixed(0)} % of direct, p50 +${(f.p50 - figures[0].p50).toFixed(2)} ms`;
        console.log(
          `${what.padEnd(30)} ${f.rps.toFixed(0).padStart(7)} req/s (${f.each})   p50 ${f.p50.toFixed(2)} ms   p99 ${fmt(f.p99)}${rel}`,
        );
      }
    }
    await other.mags.stop(other.name);

    // Wake: let the sandbox sleep again, then time the first byte of a URL request.
    await mags.updateJob(name, { noSleep: false });
    const frozen: number[] = [];
    const stopped: number[] = [];
    for (let i = 0; i < WAKES; i++) {
      await waitJob(mags, name, (j) => j.status === 'sleeping' && j.vmId !== null, 30_000);
      frozen.push(await firstByte(server.routerPort, host));
      await waitJob(mags, name, (j) => j.status === 'sleeping' && j.vmId === null, 60_000);
      stopped.push(await firstByte(server.routerPort, host));
    }
    const w = (what: string, xs: number[]) => {
      const s = summary(xs);
      console.log(`${what.padEnd(40)} p50 ${fmt(s.p50)}   max ${fmt(s.max)}   (n=${s.n})`);
    };
    console.log('');
    w('first byte, waking a frozen sandbox', frozen);
    w('first byte, starting a stopped sandbox', stopped);
    await mags.stop(name);
  } finally {
    await plain.stop();
    await server.stop();
  }
}

await main();
