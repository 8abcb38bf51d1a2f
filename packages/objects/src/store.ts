// The object-store contract every backend (local directory, S3) implements, and key validation shared by them.
import type { Readable } from 'node:stream';
import { invalidKey } from './errors.js';

export interface PutOptions {
  /** Byte length of a stream body; lets S3 send it in one request instead of a multipart upload. */
  contentLength?: number;
  /** Create only: throws ObjectExistsError if the key exists (atomic on both backends). */
  ifNoneMatch?: '*';
}

export interface ListOptions {
  /** Keys per request to the backend (S3 MaxKeys, at most 1000). */
  pageSize?: number;
  /** Only keys that sort after this one. */
  startAfter?: string;
}

export interface ObjectInfo {
  key: string;
  size: number;
  lastModified: Date;
}

export interface ObjectHead {
  size: number;
  /** Opaque; changes whenever the object is rewritten with different content. The value to pass to casPut. */
  etag: string;
  lastModified: Date;
}

export type CasResult = { ok: true; etag: string } | { ok: false };

export interface ObjectStore {
  /** Where the store is, for logs and errors; never contains a secret. */
  readonly description: string;
  /** Writes the whole object atomically: a reader sees the old object or the new one, never a torn one. */
  put(key: string, body: Buffer | Readable, opts?: PutOptions): Promise<void>;
  /** Throws ObjectNotFoundError. */
  get(key: string): Promise<Readable>;
  /** Throws ObjectNotFoundError. */
  getBuffer(key: string): Promise<Buffer>;
  /**
   * Bytes [start, start + length) of the object, in memory (for reading a few blobs out of a pack). Throws
   * ObjectNotFoundError, and ObjectStoreError if the object is shorter than that.
   */
  getRange(key: string, start: number, length: number): Promise<Buffer>;
  head(key: string): Promise<ObjectHead | undefined>;
  /** Keys starting with prefix, in byte order, fetched a page at a time. */
  list(prefix: string, opts?: ListOptions): AsyncIterable<ObjectInfo>;
  /** Deletes the keys; missing keys are not an error. */
  delete(keys: string[]): Promise<void>;
  /**
   * Deletes key only if it was last written before `cutoff`, atomically with respect to a concurrent put of the
   * same key (which then survives). Returns whether it deleted. Used by blob garbage collection.
   */
  deleteIfOlder(key: string, cutoff: Date): Promise<boolean>;
  /**
   * Compare-and-swap for small pointer objects: writes body only if the object's current etag is expectedEtag
   * (null: only if the key does not exist). Exactly one of several concurrent callers with the same expectation wins.
   */
  casPut(key: string, body: Buffer, expectedEtag: string | null): Promise<CasResult>;
  /** Releases connections and handles. */
  close(): Promise<void>;
}

/** Keys are `/`-separated relative paths of non-empty segments, without `.`/`..` and without control characters. */
export function checkKey(key: string): void {
  if (key.length === 0) throw invalidKey(key, 'it is empty');
  if (key.length > 900) throw invalidKey(`${key.slice(0, 40)}…`, 'it is longer than 900 characters');
  if (/[\x00-\x1f\x7f\\]/.test(key)) throw invalidKey(key, 'it contains a control character or a backslash');
  for (const seg of key.split('/')) {
    if (seg === '' || seg === '.' || seg === '..') throw invalidKey(key, 'it has an empty, "." or ".." segment');
    if (seg.startsWith('.mags-')) throw invalidKey(key, 'segments starting with ".mags-" are reserved');
  }
}

/** A prefix may end with `/` (or be empty); otherwise it follows the key rules. */
export function checkPrefix(prefix: string): void {
  if (prefix === '') return;
  checkKey(prefix.endsWith('/') ? prefix.slice(0, -1) : prefix);
}
