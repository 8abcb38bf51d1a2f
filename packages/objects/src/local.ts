// The embedded object store: one file per key under a directory. Writes go to a temp file that is fsynced and
// renamed into place, so a crash never leaves a torn object; compare-and-swap holds a per-key flock.
import { createHash, randomBytes } from 'node:crypto';
import { createWriteStream, type Stats } from 'node:fs';
import { link, mkdir, open, readdir, readFile, rename, rmdir, stat, unlink } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { ObjectExistsError, ObjectNotFoundError, ObjectStoreError } from './errors.js';
import { withFileLock } from './file-lock.js';
import {
  type CasResult,
  checkKey,
  checkPrefix,
  type ListOptions,
  type ObjectHead,
  type ObjectInfo,
  type ObjectStore,
  type PutOptions,
} from './store.js';

/** Objects up to this size get a content etag (sha256); larger ones a fingerprint of the stored file, so head stays cheap. */
const CONTENT_ETAG_MAX = 1024 * 1024;
const TMP = '.mags-tmp';
const LOCKS = '.mags-locks';

export class LocalObjectStore implements ObjectStore {
  readonly root: string;
  readonly description: string;
  private ready: Promise<void> | undefined;
  private dirSyncs = new Map<string, { running: Promise<void>; queued?: Promise<void> }>();

  constructor(dir: string) {
    this.root = resolve(dir);
    this.description = `file://${this.root}`;
  }

  private init(): Promise<void> {
    this.ready ??= (async () => {
      await mkdir(join(this.root, TMP), { recursive: true });
      await mkdir(join(this.root, LOCKS), { recursive: true });
    })();
    return this.ready;
  }

  private path(key: string): string {
    checkKey(key);
    return join(this.root, key);
  }

  private tmpPath(): string {
    return join(this.root, TMP, `${process.pid}-${randomBytes(8).toString('hex')}`);
  }

  async put(key: string, body: Buffer | Readable, opts: PutOptions = {}): Promise<void> {
    const target = this.path(key);
    await this.init();
    const tmp = this.tmpPath();
    try {
      const written = await this.writeTemp(tmp, body);
      if (opts.contentLength !== undefined && written !== opts.contentLength) {
        throw new ObjectStoreError(
          `put ${key}: the body had ${written} bytes, not the ${opts.contentLength} announced`,
        );
      }
      await this.commit(tmp, target, key, opts.ifNoneMatch === '*');
    } finally {
      await unlink(tmp).catch(() => {});
    }
  }

  /** Writes body to tmp and fsyncs it; returns the byte count. */
  private async writeTemp(tmp: string, body: Buffer | Readable): Promise<number> {
    if (Buffer.isBuffer(body)) {
      const fh = await open(tmp, 'wx', 0o644);
      try {
        await fh.writeFile(body);
        await fh.sync();
      } finally {
        await fh.close();
      }
      return body.length;
    }
    // flush: fsync before the stream closes its file.
    const out = createWriteStream(tmp, { flags: 'wx', mode: 0o644, flush: true });
    await pipeline(body, out);
    return out.bytesWritten;
  }

  /** Moves a finished temp file into place (create-only via link, which fails if the key exists). */
  private async commit(tmp: string, target: string, key: string, createOnly: boolean): Promise<void> {
    // A concurrent delete may remove the (then empty) parent directory between mkdir and rename: retry.
    for (let attempt = 0; ; attempt++) {
      await mkdir(dirname(target), { recursive: true });
      try {
        if (createOnly) await link(tmp, target);
        else await rename(tmp, target);
        break;
      } catch (e) {
        const code = (e as NodeJS.ErrnoException).code;
        if (code === 'EEXIST' && createOnly) throw new ObjectExistsError(key, this.description);
        if (code === 'ENOENT' && attempt < 5) continue;
        throw e;
      }
    }
    await this.syncDir(dirname(target));
  }

  /** fsync a directory so a rename into it survives a power loss; callers arriving together share one fsync. */
  private syncDir(dir: string): Promise<void> {
    let state = this.dirSyncs.get(dir);
    if (!state) {
      state = { running: Promise.resolve() };
      this.dirSyncs.set(dir, state);
    }
    // A queued fsync that has not started yet covers our rename too.
    if (state.queued) return state.queued;
    const s = state;
    const p: Promise<void> = s.running
      .catch(() => {})
      .then(async () => {
        s.queued = undefined; // started: renames from now on need a later fsync
        const fh = await open(dir, 'r');
        try {
          await fh.sync();
        } finally {
          await fh.close();
        }
      });
    s.queued = p;
    s.running = p;
    p.catch(() => {}).finally(() => {
      if (s.running === p && this.dirSyncs.get(dir) === s) this.dirSyncs.delete(dir);
    });
    return p;
  }

  async get(key: string): Promise<Readable> {
    const p = this.path(key);
    try {
      const fh = await open(p, 'r');
      return fh.createReadStream();
    } catch (e) {
      throw this.mapError(e, key);
    }
  }

  async getBuffer(key: string): Promise<Buffer> {
    try {
      return await readFile(this.path(key));
    } catch (e) {
      throw this.mapError(e, key);
    }
  }

  async getRange(key: string, start: number, length: number): Promise<Buffer> {
    const p = this.path(key);
    let fh;
    try {
      fh = await open(p, 'r');
    } catch (e) {
      throw this.mapError(e, key);
    }
    try {
      const buf = Buffer.allocUnsafe(length);
      let got = 0;
      while (got < length) {
        const { bytesRead } = await fh.read(buf, got, length - got, start + got);
        if (bytesRead === 0) break;
        got += bytesRead;
      }
      if (got !== length)
        throw new ObjectStoreError(
          `get ${key} bytes ${start}-${start + length - 1} in ${this.description}: the object ends after ${start + got} bytes`,
        );
      return buf;
    } finally {
      await fh.close();
    }
  }

  async head(key: string): Promise<ObjectHead | undefined> {
    const p = this.path(key);
    let st: Stats;
    try {
      st = await stat(p);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT' || (e as NodeJS.ErrnoException).code === 'ENOTDIR')
        return undefined;
      throw e;
    }
    if (!st.isFile()) return undefined;
    const etag = await etagOfFile(p);
    if (etag === undefined) return undefined;
    return { size: st.size, etag, lastModified: st.mtime };
  }

  async *list(prefix: string, opts: ListOptions = {}): AsyncIterable<ObjectInfo> {
    checkPrefix(prefix);
    // Walk the deepest directory the prefix names, then filter and sort: S3 order is plain byte order of keys.
    const slash = prefix.lastIndexOf('/');
    const base = slash < 0 ? '' : prefix.slice(0, slash);
    const found: ObjectInfo[] = [];
    const walk = async (rel: string): Promise<void> => {
      let names: string[];
      try {
        names = await readdir(join(this.root, rel));
      } catch (e) {
        const code = (e as NodeJS.ErrnoException).code;
        if (code === 'ENOENT' || code === 'ENOTDIR') return;
        throw e;
      }
      await Promise.all(
        names.map(async (name) => {
          if (rel === '' && name.startsWith('.mags-')) return;
          const key = rel === '' ? name : `${rel}/${name}`;
          if (!key.startsWith(prefix) && !prefix.startsWith(`${key}/`)) return;
          let st: Stats;
          try {
            st = await stat(join(this.root, key));
          } catch {
            return; // deleted meanwhile
          }
          if (st.isDirectory()) await walk(key);
          else if (st.isFile() && key.startsWith(prefix)) found.push({ key, size: st.size, lastModified: st.mtime });
        }),
      );
    };
    await walk(base);
    found.sort((a, b) => Buffer.compare(Buffer.from(a.key), Buffer.from(b.key)));
    const after = opts.startAfter === undefined ? undefined : Buffer.from(opts.startAfter);
    for (const o of found) {
      if (after && Buffer.compare(Buffer.from(o.key), after) <= 0) continue;
      yield o;
    }
  }

  async delete(keys: string[]): Promise<void> {
    for (const key of keys) {
      const p = this.path(key);
      try {
        await unlink(p);
      } catch (e) {
        const code = (e as NodeJS.ErrnoException).code;
        if (code !== 'ENOENT' && code !== 'ENOTDIR') throw e;
        continue;
      }
      await this.pruneDirs(dirname(p));
    }
  }

  /** Removes now-empty parent directories up to the root; a concurrent put retries if it loses its directory. */
  private async pruneDirs(dir: string): Promise<void> {
    while (dir.startsWith(`${this.root}/`)) {
      try {
        await rmdir(dir);
      } catch {
        return;
      }
      dir = dirname(dir);
    }
  }

  async deleteIfOlder(key: string, cutoff: Date): Promise<boolean> {
    const p = this.path(key);
    await this.init();
    const st = await stat(p).catch(() => undefined);
    if (!st || st.mtimeMs >= cutoff.getTime()) return false;
    // rename takes exactly the file that is there now; if a put replaced it in between, put that one back.
    const trash = this.tmpPath();
    try {
      await rename(p, trash);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return false;
      throw e;
    }
    const moved = await stat(trash);
    if (moved.mtimeMs >= cutoff.getTime()) {
      await link(trash, p).catch((e: NodeJS.ErrnoException) => {
        if (e.code !== 'EEXIST') throw e; // a newer put landed meanwhile: it wins
      });
      await unlink(trash);
      return false;
    }
    await unlink(trash);
    await this.pruneDirs(dirname(p));
    return true;
  }

  async casPut(key: string, body: Buffer, expectedEtag: string | null): Promise<CasResult> {
    const target = this.path(key);
    await this.init();
    const lock = join(this.root, LOCKS, createHash('sha256').update(key).digest('hex'));
    return withFileLock(lock, 30_000, async () => {
      const current = await etagOfFile(target);
      if (expectedEtag === null ? current !== undefined : current !== expectedEtag) return { ok: false };
      const tmp = this.tmpPath();
      try {
        await this.writeTemp(tmp, body);
        const etag = body.length <= CONTENT_ETAG_MAX ? sha256(body) : fingerprint(await stat(tmp, { bigint: true }));
        await this.commit(tmp, target, key, false);
        return { ok: true, etag };
      } finally {
        await unlink(tmp).catch(() => {});
      }
    });
  }

  async close(): Promise<void> {}

  private mapError(e: unknown, key: string): Error {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ENOTDIR' || code === 'EISDIR')
      return new ObjectNotFoundError(key, this.description);
    return e as Error;
  }
}

function sha256(b: Buffer): string {
  return createHash('sha256').update(b).digest('hex');
}

function fingerprint(st: { size: bigint; mtimeNs: bigint; ino: bigint }): string {
  return `f-${st.size}-${st.mtimeNs}-${st.ino}`;
}

/** The etag of the file at p, or undefined if there is none: sha256 of small files, a stat fingerprint of large ones. */
async function etagOfFile(p: string): Promise<string | undefined> {
  let fh;
  try {
    fh = await open(p, 'r');
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ENOTDIR') return undefined;
    throw e;
  }
  try {
    const st = await fh.stat({ bigint: true });
    if (!st.isFile()) return undefined;
    if (st.size > BigInt(CONTENT_ETAG_MAX)) return fingerprint(st);
    return sha256(await fh.readFile());
  } finally {
    await fh.close();
  }
}
