// The scan worker: a child process (started by scan.ts under `unshare --mount`) that walks a workspace layer, reads
// the extended attributes of what changed and hashes changed files into the blob cache. It first bind-mounts the
// layer onto itself read-only, nosymfollow, nosuid, nodev, noexec, in its own mount namespace (gone when it exits),
// and works from inside that view with relative paths: no path it opens can resolve through a symlink or leave the
// layer, whatever the sandbox swaps in meanwhile. Each file it hashes is opened O_NOFOLLOW and checked by fstat to
// be the regular file (device and inode) the walk saw; anything else is left out of this sync.
//
// Protocol (NDJSON), one request per worker: stdin = a header line, the previous manifest's entries, {"end": 1};
// stdout = the new entries in path order (unchanged ones as {"s": path}; small new contents inline), then
// {"done": stats} or {"error": {status, code, message}}, and the worker exits (its view goes with its namespace).
import { constants, lstatSync, readFileSync, realpathSync } from 'node:fs';
import { open } from 'node:fs/promises';
import { createInterface } from 'node:readline';
import { forEachLimit } from '../pool.js';
import { run } from '../process.js';
import { BlobCache, SMALL_FILE } from './cache.js';
import type { ManifestEntry } from './manifest.js';
import { SyncFault } from './paths.js';
import { dropVanished, type IdMap, vanished, walkLayer } from './walk.js';
import { readXattrs } from './xattr.js';

export interface ScanHeader {
  upperDir: string;
  cacheDir: string;
  ids?: IdMap;
  concurrency: number;
  /** New contents up to this size are sent inline (base64), so the parent packs them without reading them again. */
  inlineBytes: number;
  /** Make the nosymfollow view (false only where mounting is impossible; never in production). */
  view: boolean;
}

/** A previous entry as sent to the worker; `stale`: its content is not in the committed head (see snapshot.ts). */
export type PreviousEntry = ManifestEntry & { stale?: 1 };

export interface ScanDone {
  hashedFiles: number;
  hashedBytes: number;
  /** Files that vanished or were replaced between the walk and the read (left out of this sync). */
  vanishedFiles: number;
}

/** Most new small content held for sending inline; the rest the parent reads from the cache. */
const INLINE_TOTAL = 64 * 1024 * 1024;

let pending = '';
/** Queues a line for the parent; written in ~64 KB chunks (one write per line costs more than the walk). */
function out(line: unknown): Promise<void> {
  pending += `${JSON.stringify(line)}\n`;
  return pending.length >= 65536 ? flush() : Promise.resolve();
}
function flush(): Promise<void> {
  const chunk = pending;
  pending = '';
  return new Promise((resolve, reject) => process.stdout.write(chunk, (err) => (err ? reject(err) : resolve())));
}

async function main(): Promise<void> {
  // 'line' events, not an async iterator: a promise per line costs more than the parse.
  const lines = createInterface({ input: process.stdin, crlfDelay: Infinity });
  let header: ScanHeader | undefined;
  let previous = new Map<string, PreviousEntry>();
  let queue = Promise.resolve();
  lines.on('line', (line) => {
    if (line === '') return;
    const v = JSON.parse(line) as PreviousEntry & { end?: 1 };
    if (!v.end) {
      if (!header) header = v as unknown as ScanHeader;
      else previous.set(v.path, v);
      return;
    }
    const h = header;
    const p = previous;
    header = undefined;
    previous = new Map();
    if (!h) throw new Error('no scan header on stdin');
    queue = queue.then(() => scan(h, p));
    queue.catch(fail);
  });
  await new Promise<void>((resolve) => lines.once('close', () => resolve()));
  await queue;
}

async function scan(header: ScanHeader, previous: Map<string, PreviousEntry>): Promise<void> {
  const cache = new BlobCache(header.cacheDir);
  await cache.init();

  // The host's own path to the layer (canonical, as mountinfo shows it); host-controlled, no sandbox part in it.
  header.upperDir = realpathSync(header.upperDir);
  if (header.view) {
    await detachOthers([header.upperDir, realpathSync(header.cacheDir)]);
    // Our own mount namespace (unshare --mount, private propagation): the view exists for this process only. One
    // mount(8) call: util-linux >= 2.27 applies the options to the bind mount itself.
    await run('mount', ['--bind', '-o', 'ro,nosymfollow,nosuid,nodev,noexec', '--', header.upperDir, header.upperDir], {
      timeoutMs: 30_000,
    });
    checkView(header.upperDir);
  }
  process.chdir(header.upperDir);
  const rootDev = lstatSync('.', { bigint: true }).dev;

  const { entries, changed, unchanged } = await walkLayer(previous.size > 0 ? previous : undefined, header.ids);

  if (changed.length > 0) {
    const xa = await readXattrs(changed.map((e) => (e.path === '' ? '.' : e.path)));
    for (const e of changed) {
      const x = xa.get(e.path === '' ? '.' : e.path);
      if (!x) continue;
      if (x.opaque && e.type === 'dir') e.opaque = true;
      if (Object.keys(x.xattrs).length > 0) e.xattrs = x.xattrs;
    }
  }

  // What must be read: changed files, and unchanged ones whose content is neither in the head nor in the cache.
  const toRead: ManifestEntry[] = [];
  for (const e of entries) {
    if (e.type !== 'file') continue;
    if (e.sha256 === undefined) toRead.push(e);
    else if (previous.get(e.path)?.stale) {
      const size = e.size ?? 0;
      const cached =
        size <= SMALL_FILE ? cache.readVerifiedSync(e.sha256, size) !== undefined : cache.hasSync(e.sha256, size);
      if (!cached) {
        delete e.sha256;
        unchanged.delete(e);
        toRead.push(e);
      }
    }
  }
  previous.clear();

  const stats: ScanDone = { hashedFiles: 0, hashedBytes: 0, vanishedFiles: 0 };
  const lost = new Set<string>();
  const inline = new Map<string, Buffer>();
  let inlineTotal = 0;
  await forEachLimit(toRead, header.concurrency, async (e) => {
    let fh;
    try {
      fh = await open(e.path, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK);
    } catch (err) {
      if (!vanished(err) && (err as NodeJS.ErrnoException).code !== 'ENXIO') throw err;
      lost.add(e.path);
      return;
    }
    try {
      const st = await fh.stat({ bigint: true });
      if (!st.isFile() || st.ino.toString() !== e.ino || st.dev !== rootDev) {
        lost.add(e.path); // replaced since the walk: the next sync sees what is there
        return;
      }
      const got = await cache.ingestHandle(fh);
      stats.hashedFiles++;
      stats.hashedBytes += got.size;
      e.sha256 = got.sha256;
      e.size = got.size; // what we read, even if the file grew or shrank since lstat
      // Bounded: past INLINE_TOTAL the parent reads the cache copy instead.
      if (got.buffer && got.size > 0 && got.size <= header.inlineBytes && inlineTotal + got.size <= INLINE_TOTAL) {
        inline.set(e.path, got.buffer);
        inlineTotal += got.size;
      }
    } finally {
      await fh.close();
    }
  });
  stats.vanishedFiles = lost.size;

  for (const e of dropVanished(entries, lost)) {
    // An entry exactly as in the previous manifest is sent as its path alone: the parent has the rest.
    if (unchanged.has(e)) {
      await out({ s: e.path });
      continue;
    }
    const data = inline.get(e.path);
    await out(data ? { ...e, data: data.toString('base64') } : e);
  }
  await out({ done: stats });
  await flush();
}

function unescapeMount(p: string): string {
  return p.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8)));
}

/**
 * Our namespace began as a copy of the host's mount table: it would keep every other workspace disk (and sandbox
 * root) of the host alive while we run, even after the agent unmounts one (private propagation), so a disk grown
 * or mounted again meanwhile would be mounted twice. Detach (lazily) every mount but the ones on the way to what we
 * read and write, /proc and /dev.
 */
async function detachOthers(needed: string[]): Promise<void> {
  const isAncestor = (m: string, p: string) => m === '/' || p === m || p.startsWith(`${m}/`);
  const points = readFileSync('/proc/self/mountinfo', 'utf8')
    .split('\n')
    .map((l) => l.split(' ')[4])
    .filter((m): m is string => !!m)
    .map(unescapeMount);
  const keep = (m: string) =>
    m === '/proc' ||
    m.startsWith('/proc/') ||
    m === '/dev' ||
    m.startsWith('/dev/') ||
    needed.some((p) => isAncestor(m, p));
  const drop = [...new Set(points.filter((m) => !keep(m)))].sort((a, b) => b.length - a.length);
  for (let i = 0; i < drop.length; i += 200) {
    await run('umount', ['-l', '--no-canonicalize', '--', ...drop.slice(i, i + 200)], {
      allowFailure: true,
      timeoutMs: 60_000,
    });
  }
}

/** Refuses to go on unless the top mount at dir is read-only and nosymfollow (a mount(8) that ignored an option). */
function checkView(dir: string): void {
  const lines = readFileSync('/proc/self/mountinfo', 'utf8').split('\n');
  const at = lines.filter((l) => l.split(' ')[4] === dir.replace(/ /g, '\\040')).pop();
  const options = at?.split(' ')[5]?.split(',') ?? [];
  if (!options.includes('ro') || !options.includes('nosymfollow')) {
    throw new Error(`the read-only nosymfollow view of the layer was not made (mount options: ${options.join(',')})`);
  }
}

function fail(err: unknown): void {
  const e = err instanceof SyncFault ? err : undefined;
  // A failure's details go to stderr (the parent logs them); the line for users carries no host path.
  if (!e) process.stderr.write(`${(err as Error)?.stack ?? String(err)}\n`);
  pending = ''; // a partial result must not look like entries
  void out({
    error: {
      status: e?.status ?? 500,
      code: e?.code ?? 'internal',
      message: e?.message ?? 'the workspace could not be read for the sync',
    },
  })
    .then(flush)
    .finally(() => process.exit(1));
}

main().then(() => process.exit(0), fail);
