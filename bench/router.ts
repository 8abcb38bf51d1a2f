// The router's cost: requests/s and p50/p99 latency of GET /hello through the router (by the URL's host name) and
// straight to the sandbox's veth address, side by side in one run with the same load generator (a small Node one:
// keep-alive connections, each sending its next request when the last answer ended), alternating rounds; then the
// first-byte latency of a URL request that wakes a frozen and a stopped sandbox.
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { type Job, Mags } from '@mags/sdk';
import { ROOT, startServer } from '../test/harness.js';
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

function merge(runs: Load[]): Load {
  return {
    requests: runs.reduce((n, r) => n + r.requests, 0),
    latencies: runs.flatMap((r) => r.latencies),
    ms: runs.reduce((n, r) => n + r.ms, 0),
  };
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

async function main(): Promise<void> {
  const instance = `b${randomBytes(2).toString('hex')}`;
  const server = await startServer(['--instance', instance, '--sleep-after', '3s', '--stop-after', '8s']);
  try {
    const mags = new Mags({ apiUrl: server.url, apiToken: server.token });
    const name = `bench-${randomBytes(3).toString('hex')}`;
    const job = await mags.new(name, { persistent: true, url: true, port: 3000 });
    await startApp(mags, name);
    await mags.updateJob(name, { startupCommand: 'node /root/app.cjs 3000', noSleep: true });
    const address = (await mags.exec(name, "ip -4 -o addr show eth0 | awk '{print $4}' | cut -d/ -f1")).stdout.trim();
    const host = `${job.subdomain}.localhost:${server.routerPort}`;
    const viaRouter = { host: '127.0.0.1', port: server.routerPort, hostHeader: host };
    const direct = { host: address, port: 3000, hostHeader: `${address}:3000` };
    await load(viaRouter, 500);
    await load(direct, 500);
    const routed: Load[] = [];
    const straight: Load[] = [];
    for (let i = 0; i < ROUNDS; i++) {
      straight.push(await load(direct, ROUND_MS));
      routed.push(await load(viaRouter, ROUND_MS));
    }
    console.log(
      `load: ${CONNECTIONS} keep-alive connections, ${ROUNDS} alternating rounds of ${ROUND_MS} ms each (Node http client)`,
    );
    console.log(`load average: ${loadavg()}`);
    const line = (what: string, l: Load) => {
      const s = summary(l.latencies);
      const rps = (l.requests / l.ms) * 1000;
      console.log(`${what.padEnd(28)} ${rps.toFixed(0).padStart(7)} req/s   p50 ${fmt(s.p50)}   p99 ${fmt(s.p99)}`);
      return { rps, p50: s.p50 };
    };
    const d = line(`direct (${address}:3000)`, merge(straight));
    const r = line('through the router', merge(routed));
    console.log(
      `router/direct: ${((r.rps / d.rps) * 100).toFixed(0)} % of the requests/s, p50 +${(r.p50 - d.p50).toFixed(2)} ms`,
    );

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
    w('first byte, waking a frozen sandbox', frozen);
    w('first byte, starting a stopped sandbox', stopped);
    await mags.stop(name);
  } finally {
    await server.stop();
  }
}

await main();
