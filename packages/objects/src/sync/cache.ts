// The host's content cache: blobs by sha256 under CACHE/blobs, filled by snapshots (a stable copy of what was hashed,
// so the upload is exactly the hashed bytes even if the file changes meanwhile) and by restores (what was fetched).
import { createHash, randomBytes } from 'node:crypto';
import {
  createReadStream,
  createWriteStream,
  constants as fsConstants,
  readFileSync,
  statSync,
  unlinkSync,
  writeFileSync,
} from 'node:fs';
import { copyFile, type FileHandle, mkdir, open, readFile, rename, stat, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import { type Readable, Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { ObjectStore } from '../store.js';
import { SyncFault } from './paths.js';

/** Files up to this size are read into memory whole (one read, one hash, one upload from the buffer). */
export const SMALL_FILE = 1024 * 1024;

export interface Ingested {
  sha256: string;
  size: number;
  /** The content, for small files. */
  buffer?: Buffer;
}

export class BlobCache {
  readonly blobsDir: string;
  readonly tmpDir: string;
  private ready: Promise<void> | undefined;

  constructor(readonly dir: string) {
    this.blobsDir = join(dir, 'blobs');
    this.tmpDir = join(dir, 'tmp');
  }

  init(): Promise<void> {
    this.ready ??= (async () => {
      await mkdir(this.blobsDir, { recursive: true });
      await mkdir(this.tmpDir, { recursive: true });
    })();
    return this.ready;
  }

  path(sha256: string): string {
    return join(this.blobsDir, sha256);
  }

  private tmp(): string {
    return join(this.tmpDir, `${process.pid}-${randomBytes(8).toString('hex')}`);
  }

  /** Whether the cache holds the blob with the expected size (content is verified when it is copied out). */
  async has(sha256: string, size: number): Promise<boolean> {
    const st = await stat(this.path(sha256)).catch(() => undefined);
    return st?.isFile() === true && st.size === size;
  }

  /** has() with one synchronous stat (restore checks thousands of entries). */
  hasSync(sha256: string, size: number): boolean {
    const st = statSync(this.path(sha256), { throwIfNoEntry: false });
    return st?.isFile() === true && st.size === size;
  }

  /** Reads a file once: hashes it and keeps a copy in the cache. The size is what was read, not what stat said. */
  async ingest(file: string): Promise<Ingested> {
    const fh = await open(file, 'r');
    try {
      return await this.ingestHandle(fh);
    } finally {
      await fh.close();
    }
  }

  /**
   * ingest() from a file already open (the caller checked, with fstat, that it is the file it meant): reads through
   * the descriptor, never a path, so it is that file even if the name is replaced meanwhile.
   */
  async ingestHandle(fh: FileHandle): Promise<Ingested> {
    const st = await fh.stat();
    if (st.size <= SMALL_FILE) {
      const buffer = await fh.readFile();
      const sha256 = createHash('sha256').update(buffer).digest('hex');
      if (buffer.length > 0) await this.putSmall(sha256, buffer);
      return { sha256, size: buffer.length, buffer };
    }
    const tmp = this.tmp();
    try {
      const { sha256, size } = await hashInto(createReadStream('', { fd: fh.fd, autoClose: false, start: 0 }), tmp);
      await rename(tmp, this.path(sha256));
      return { sha256, size };
    } catch (e) {
      await unlink(tmp).catch(() => {});
      throw e;
    }
  }

  /**
   * Adds small content whose hash the caller checked, under its final name directly (no temp file): if a crash
   * tears it, its size or hash gives it away when it is next used (`has` checks the size, copyOut the hash).
   */
  async putSmall(sha256: string, data: Buffer): Promise<void> {
    try {
      await writeNew(this.path(sha256), data);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
    }
  }

  /** putSmall with synchronous calls, for restores writing thousands of small files (see restore.ts). */
  putSmallSync(sha256: string, data: Buffer): void {
    try {
      writeFileSync(this.path(sha256), data, { mode: 0o600, flag: 'wx' });
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
    }
  }

  /** The cached content of a small blob if the cache has it intact, else undefined (and a bad entry is dropped). */
  async readVerified(sha256: string, size: number): Promise<Buffer | undefined> {
    const data = await readFile(this.path(sha256)).catch(() => undefined);
    if (data === undefined || intact(data, sha256, size)) return data;
    await unlink(this.path(sha256)).catch(() => {});
    return undefined;
  }

  /** readVerified with synchronous calls. */
  readVerifiedSync(sha256: string, size: number): Buffer | undefined {
    let data: Buffer;
    try {
      data = readFileSync(this.path(sha256));
    } catch {
      return undefined;
    }
    if (intact(data, sha256, size)) return data;
    try {
      unlinkSync(this.path(sha256));
    } catch {
      /* already gone */
    }
    return undefined;
  }

  /** Downloads a small blob into memory and the cache, verifying hash and size. */
  async fetchSmall(store: ObjectStore, sha256: string, size: number): Promise<Buffer> {
    const data = await store.getBuffer(`blobs/${sha256}`);
    const got = createHash('sha256').update(data).digest('hex');
    if (got !== sha256 || data.length !== size) throw corrupt(store, sha256, size, data.length, got);
    await this.putSmall(sha256, data);
    return data;
  }

  /** Downloads a blob into the cache, verifying its hash and size; returns the bytes fetched. */
  async fetch(store: ObjectStore, sha256: string, size: number): Promise<number> {
    const tmp = this.tmp();
    try {
      const got = await hashInto(await store.get(`blobs/${sha256}`), tmp);
      if (got.sha256 !== sha256 || got.size !== size) throw corrupt(store, sha256, size, got.size, got.sha256);
      await rename(tmp, this.path(sha256));
      return got.size;
    } finally {
      await unlink(tmp).catch(() => {});
    }
  }

  /**
   * Writes the cached blob to dest (created, mode 0600 until the caller sets the real one). With verify, the copy
   * is hashed on the way and a mismatch throws CacheCorruptError (the cache entry is dropped).
   */
  async copyOut(sha256: string, dest: string, verify: boolean): Promise<void> {
    if (!verify) {
      // EXCL: never through a name that exists (a symlink there would be followed otherwise).
      await copyFile(this.path(sha256), dest, fsConstants.COPYFILE_EXCL);
      return;
    }
    const got = await hashInto(createReadStream(this.path(sha256)), dest);
    if (got.sha256 !== sha256) {
      await unlink(this.path(sha256)).catch(() => {});
      await unlink(dest).catch(() => {});
      throw new CacheCorruptError(sha256);
    }
  }
}

function intact(data: Buffer, sha256: string, size: number): boolean {
  return data.length === size && createHash('sha256').update(data).digest('hex') === sha256;
}

// Not MagsError: this module runs in the scan worker too, which does not load @mags/api (see paths.ts).
function corrupt(store: ObjectStore, sha256: string, size: number, gotSize: number, gotSha: string): SyncFault {
  return new SyncFault(
    500,
    'internal',
    `blob ${sha256} in ${store.description} is corrupt: it has ${gotSize} bytes hashing to ${gotSha}, expected ${size} bytes`,
  );
}

export class CacheCorruptError extends Error {
  constructor(readonly sha256: string) {
    super(`cached blob ${sha256} does not match its hash`);
    this.name = 'CacheCorruptError';
  }
}

async function writeNew(path: string, data: Buffer): Promise<void> {
  const fh = await open(path, 'wx', 0o600);
  try {
    await fh.writeFile(data);
  } finally {
    await fh.close();
  }
}

/** Streams src into a new file at dest while hashing it. */
async function hashInto(src: Readable, dest: string): Promise<{ sha256: string; size: number }> {
  const hash = createHash('sha256');
  let size = 0;
  await pipeline(
    src,
    new Transform({
      transform(chunk: Buffer, _enc, cb) {
        hash.update(chunk);
        size += chunk.length;
        cb(null, chunk);
      },
    }),
    createWriteStream(dest, { flags: 'wx', mode: 0o600 }),
  );
  return { sha256: hash.digest('hex'), size };
}
