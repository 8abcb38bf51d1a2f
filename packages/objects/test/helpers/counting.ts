// An ObjectStore wrapper that counts calls, so tests can assert what a sync or restore sent to the store.
import type { Readable } from 'node:stream';
import type { CasResult, ListOptions, ObjectHead, ObjectInfo, ObjectStore, PutOptions } from '../../src/index.js';

export class CountingStore implements ObjectStore {
  /** buffered: the whole object went through memory as one Buffer (put of a Buffer, getBuffer). */
  readonly calls: { op: string; key: string; buffered?: boolean }[] = [];
  constructor(readonly inner: ObjectStore) {}
  get description(): string {
    return this.inner.description;
  }
  count(op: string, keyPrefix = ''): number {
    return this.calls.filter((c) => c.op === op && c.key.startsWith(keyPrefix)).length;
  }
  reset(): void {
    this.calls.length = 0;
  }
  put(key: string, body: Buffer | Readable, opts?: PutOptions): Promise<void> {
    this.calls.push({ op: 'put', key, buffered: Buffer.isBuffer(body) });
    return this.inner.put(key, body, opts);
  }
  get(key: string): Promise<Readable> {
    this.calls.push({ op: 'get', key });
    return this.inner.get(key);
  }
  getBuffer(key: string): Promise<Buffer> {
    this.calls.push({ op: 'get', key, buffered: true });
    return this.inner.getBuffer(key);
  }
  getRange(key: string, start: number, length: number): Promise<Buffer> {
    this.calls.push({ op: 'get', key, buffered: true });
    return this.inner.getRange(key, start, length);
  }
  head(key: string): Promise<ObjectHead | undefined> {
    this.calls.push({ op: 'head', key });
    return this.inner.head(key);
  }
  list(prefix: string, opts?: ListOptions): AsyncIterable<ObjectInfo> {
    this.calls.push({ op: 'list', key: prefix });
    return this.inner.list(prefix, opts);
  }
  delete(keys: string[]): Promise<void> {
    for (const key of keys) this.calls.push({ op: 'delete', key });
    return this.inner.delete(keys);
  }
  deleteIfOlder(key: string, cutoff: Date): Promise<boolean> {
    this.calls.push({ op: 'delete', key });
    return this.inner.deleteIfOlder(key, cutoff);
  }
  /** Runs once, just before the next casPut reaches the store: lets a test make that compare-and-swap lose a race. */
  beforeNextCas?: () => Promise<void>;
  async casPut(key: string, body: Buffer, expectedEtag: string | null): Promise<CasResult> {
    this.calls.push({ op: 'cas', key });
    const hook = this.beforeNextCas;
    this.beforeNextCas = undefined;
    if (hook) await hook();
    return this.inner.casPut(key, body, expectedEtag);
  }
  close(): Promise<void> {
    return this.inner.close();
  }
}
