// Runs the scan worker (scan-worker.ts) for a snapshot: a child process in its own mount namespace that reads the
// layer through a read-only nosymfollow view. The caller's event loop only parses the entries it streams back.
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { MagsError } from '@mags/api';
import type { ManifestEntry } from './manifest.js';
import type { PreviousEntry, ScanDone, ScanHeader } from './scan-worker.js';

export interface ScanResult {
  entries: ManifestEntry[];
  /** New small contents the worker read (sha256 → bytes), so they need not be read again. */
  inline: Map<string, Buffer>;
  stats: ScanDone;
}

const here = dirname(fileURLToPath(import.meta.url));
// Built: scan-worker.js beside this file. From source (tests and benches under tsx) the built worker too, since
// compiling TypeScript at each start costs ~1 s (so build first: npm run build); scan-worker.ts through tsx if none.
const BUILT = [join(here, 'scan-worker.js'), join(here, '../../dist/sync/scan-worker.js')].find((p) => existsSync(p));
const WORKER = BUILT ?? join(here, 'scan-worker.ts');
const NODE_ARGS = BUILT ? [] : ['--import', 'tsx'];

/** Fields of a previous entry the worker needs to tell what changed and to carry over what did not. */
function slim(e: ManifestEntry, stale: boolean): PreviousEntry {
  const p: PreviousEntry = { path: e.path, type: e.type };
  for (const k of ['ino', 'ctimeNs', 'mtimeNs', 'size', 'sha256', 'target', 'opaque', 'xattrs'] as const) {
    if (e[k] !== undefined) (p as unknown as Record<string, unknown>)[k] = e[k];
  }
  if (stale) p.stale = 1;
  return p;
}

export async function scanLayer(
  header: ScanHeader,
  previous: ManifestEntry[] | undefined,
  isCommitted: (sha256: string) => boolean,
): Promise<ScanResult> {
  // unshare: a mount namespace of its own (private propagation), so the worker's view is invisible to the host and
  // disappears with it, even after a kill -9.
  const child = spawn(
    'unshare',
    ['--mount', '--propagation', 'private', '--', process.execPath, ...NODE_ARGS, WORKER],
    {
      stdio: ['pipe', 'pipe', 'pipe'],
      cwd: here,
    },
  );
  let stderr = '';
  child.stderr!.on('data', (b: Buffer) => {
    stderr = (stderr + b.toString()).slice(-4000);
  });
  const exited = new Promise<number | null>((resolve) => child.once('close', (code) => resolve(code)));
  const spawnError = new Promise<never>((_, reject) =>
    child.once('error', (e) =>
      reject(new MagsError(500, 'internal', `the sync could not start its scanner: ${e.message}`)),
    ),
  );
  spawnError.catch(() => {});

  const feed = (async () => {
    const stdin = child.stdin!;
    stdin.on('error', () => {}); // the worker may fail early; its error line says why
    let chunk = '';
    const write = async (line: unknown, last = false): Promise<void> => {
      chunk += `${JSON.stringify(line)}\n`;
      if (chunk.length < 65536 && !last) return;
      const ok = stdin.write(chunk);
      chunk = '';
      if (!ok) await new Promise<void>((r) => stdin.once('drain', () => r()));
    };
    await write(header);
    for (const e of previous ?? []) {
      if (e.type === 'hardlink') continue;
      await write(slim(e, e.sha256 !== undefined && !isCommitted(e.sha256)));
    }
    await write({ end: 1 }, true);
    stdin.end(); // one request per worker: it exits when done
  })();
  feed.catch(() => {});

  const entries: ManifestEntry[] = [];
  const inline = new Map<string, Buffer>();
  let done: ScanDone | undefined;
  let failure: { status: number; code: string; message: string } | undefined;
  // 'line' events, not an async iterator: a promise per line costs more than the parse.
  const lines = createInterface({ input: child.stdout!, crlfDelay: Infinity });
  let parseError: unknown;
  // Unchanged entries come as their path only; both lists are in path order, so a cursor finds them.
  const prev = (previous ?? []).filter((e) => e.type !== 'hardlink');
  let cursor = 0;
  lines.on('line', (line) => {
    if (line === '' || parseError) return;
    try {
      const v = JSON.parse(line) as ManifestEntry & {
        s?: string;
        data?: string;
        done?: ScanDone;
        error?: typeof failure;
      };
      if (v.s !== undefined) {
        while (cursor < prev.length && prev[cursor]!.path !== v.s) cursor++;
        if (cursor === prev.length)
          throw new Error(`the scanner named an unchanged entry that is not in the previous manifest`);
        entries.push({ ...prev[cursor++]! });
      } else if (v.done) done = v.done;
      else if (v.error) failure = v.error;
      else {
        if (v.data !== undefined) {
          inline.set(v.sha256!, Buffer.from(v.data, 'base64'));
          delete v.data;
        }
        entries.push(v);
      }
    } catch (e) {
      parseError = e;
    }
  });
  await new Promise<void>((resolve) => lines.once('close', () => resolve()));
  const code = await Promise.race([exited, spawnError]);
  if (failure) {
    const err = new MagsError(failure.status, failure.code, failure.message);
    if (stderr) (err as { detail?: string }).detail = stderr;
    throw err;
  }
  if (code !== 0 || !done || parseError) {
    const err = new MagsError(500, 'internal', 'the workspace could not be read for the sync (its scanner failed)');
    (err as { detail?: string }).detail = stderr;
    throw err;
  }
  return { entries, inline, stats: done };
}
