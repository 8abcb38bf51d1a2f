// Sync at scale, end to end (issue 7, item 8): a persistent workspace of many small files synced by a real
// `mags server`, with the server's RSS, the sync processes' RSS and /health latency sampled while it syncs.
// Run: node --import tsx bench/workspace-scale.ts [files, default 300000]   (root; starts its own server instance)
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import path from 'node:path';
import { startServer } from '../test/harness.js';

const FILES = Number(process.argv[2] ?? 300_000);

function rssKb(pid: number): number {
  try {
    return Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] ?? 0);
  } catch {
    return 0;
  }
}

/** Every descendant of pid (the sync service, its scan worker). */
function descendants(pid: number): number[] {
  const children = new Map<number, number[]>();
  for (const d of readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    try {
      const ppid = Number(readFileSync(`/proc/${d}/stat`, 'utf8').split(') ')[1]!.split(' ')[1]);
      children.set(ppid, [...(children.get(ppid) ?? []), Number(d)]);
    } catch {
      /* gone */
    }
  }
  const out: number[] = [];
  const walk = (p: number): void => {
    for (const c of children.get(p) ?? []) {
      out.push(c);
      walk(c);
    }
  };
  walk(pid);
  return out;
}

function cmdline(pid: number): string {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').replace(/\0/g, ' ');
  } catch {
    return '';
  }
}

interface Sample {
  serverMaxKb: number;
  workersMaxKb: number;
  serviceMaxKb: number;
  scanMaxKb: number;
  healthMaxMs: number;
  healthP99Ms: number;
  healthN: number;
}

/** Samples while fn runs: server RSS, the sync processes' RSS (sum), /health latency (sequential probes). */
async function sampled<T>(
  url: string,
  pid: number,
  fn: () => Promise<T>,
): Promise<{ result: T; s: Sample; ms: number }> {
  let stop = false;
  const s: Sample = {
    serverMaxKb: 0,
    workersMaxKb: 0,
    serviceMaxKb: 0,
    scanMaxKb: 0,
    healthMaxMs: 0,
    healthP99Ms: 0,
    healthN: 0,
  };
  const lat: number[] = [];
  const rss = (async () => {
    while (!stop) {
      s.serverMaxKb = Math.max(s.serverMaxKb, rssKb(pid));
      const workers = descendants(pid).filter((p) => /service-worker|scan-worker/.test(cmdline(p)));
      s.workersMaxKb = Math.max(
        s.workersMaxKb,
        workers.reduce((a, p) => a + rssKb(p), 0),
      );
      for (const p of workers) {
        if (/service-worker/.test(cmdline(p))) s.serviceMaxKb = Math.max(s.serviceMaxKb, rssKb(p));
        else if (/node/.test(cmdline(p))) s.scanMaxKb = Math.max(s.scanMaxKb, rssKb(p));
      }
      await new Promise((r) => setTimeout(r, 100));
    }
  })();
  const health = (async () => {
    while (!stop) {
      const t = performance.now();
      await fetch(`${url}/api/v1/health`).then((r) => r.text());
      lat.push(performance.now() - t);
      await new Promise((r) => setTimeout(r, 50));
    }
  })();
  const t0 = performance.now();
  const result = await fn();
  const ms = performance.now() - t0;
  stop = true;
  await Promise.all([rss, health]);
  lat.sort((a, b) => a - b);
  s.healthN = lat.length;
  s.healthMaxMs = lat[lat.length - 1] ?? 0;
  s.healthP99Ms = lat[Math.min(lat.length - 1, Math.floor(lat.length * 0.99))] ?? 0;
  return { result, s, ms };
}

const fmt = (s: Sample) =>
  `server RSS max ${(s.serverMaxKb / 1024).toFixed(0)} MB, sync processes RSS max ${(s.workersMaxKb / 1024).toFixed(0)} MB ` +
  `(service ${(s.serviceMaxKb / 1024).toFixed(0)}, scan worker ${(s.scanMaxKb / 1024).toFixed(0)}), ` +
  `/health p99 ${s.healthP99Ms.toFixed(0)} ms, max ${s.healthMaxMs.toFixed(0)} ms (n=${s.healthN})`;

async function main(): Promise<void> {
  const instance = `b${randomBytes(2).toString('hex')}`;
  const objects = mkdtempSync(path.join(tmpdir(), 'mags-bench-scale-objects-'));
  const server = await startServer([
    '--instance',
    instance,
    '--objects',
    objects,
    '--warm',
    '600',
    '--sync-interval',
    '0',
  ]);
  const headers = { authorization: `Bearer ${server.token}`, 'content-type': 'application/json' };
  const post = async (route: string, body?: unknown) => {
    const r = await fetch(`${server.url}${route}`, {
      method: 'POST',
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    return { status: r.status, body: (await r.json()) as any };
  };
  const wait = async (id: string) => {
    for (;;) {
      const r = (await (await fetch(`${server.url}/api/v1/mags-jobs/${id}/status?wait=30`, { headers })).json()) as {
        status: string;
        error_message: string | null;
      };
      if (['completed', 'failed', 'error', 'stopped'].includes(r.status)) return r;
    }
  };
  try {
    console.log(
      `workspace sync at scale: ${FILES.toLocaleString('en')} small files; load average at start: ${loadavg()
        .map((l) => l.toFixed(2))
        .join(' ')}`,
    );
    const baseKb = rssKb(server.pid);
    // The run writes the files, then prints a marker: from there to "completed" is the after-run sync.
    const script = `python3 -c "
import os
for d in range(${Math.ceil(FILES / 1000)}):
    os.makedirs(f'/data/d{d}', exist_ok=True)
    for i in range(min(1000, ${FILES} - d * 1000)):
        with open(f'/data/d{d}/f{i}', 'w') as f: f.write(f'{d}-{i}')
"; echo WRITTEN`;
    const submit = await post('/api/v1/mags-jobs', {
      script,
      workspace_id: 'scale',
      persistent: true,
      disk_gb: 4,
      timeout_s: 3600,
    });
    const id = submit.body.request_id as string;
    for (;;) {
      const logs = (await (await fetch(`${server.url}/api/v1/mags-jobs/${id}/logs`, { headers })).json()) as {
        logs: { message: string }[];
      };
      if (logs.logs.some((l) => l.message === 'WRITTEN')) break;
      await new Promise((r) => setTimeout(r, 200));
    }
    const first = await sampled(server.url, server.pid, () => wait(id));
    console.log(
      `  first sync (after the run):    ${(first.ms / 1000).toFixed(1)} s; ${fmt(first.s)}; job ${first.result.status}${first.result.error_message ? `: ${first.result.error_message}` : ''}`,
    );
    console.log(`  server RSS before: ${(baseKb / 1024).toFixed(0)} MB`);
    const touch = await post('/api/v1/mags-jobs', {
      script: 'echo changed > /data/d0/f0',
      workspace_id: 'scale',
      persistent: true,
      disk_gb: 4,
    });
    if (touch.status !== 202) throw new Error(`submit: ${touch.status} ${JSON.stringify(touch.body)}`);
    const second = await sampled(server.url, server.pid, () => wait(touch.body.request_id));
    console.log(
      `  one file changed, run + sync:  ${(second.ms / 1000).toFixed(1)} s; ${fmt(second.s)}; job ${second.result.status}${second.result.error_message ? `: ${second.result.error_message}` : ''}`,
    );
    const third = await sampled(server.url, server.pid, () => post('/api/v1/mags-workspaces/scale/sync'));
    console.log(`  mags sync with nothing changed: ${(third.ms / 1000).toFixed(1)} s; ${fmt(third.s)}`);
    console.log(
      `load average at end: ${loadavg()
        .map((l) => l.toFixed(2))
        .join(' ')}`,
    );
  } finally {
    await server.stop();
    for (const dir of ['workspaces', 'bases', 'cache'])
      rmSync(`/var/lib/mags/${dir}/${instance}`, { recursive: true, force: true });
    rmSync(objects, { recursive: true, force: true });
  }
}

await main();
