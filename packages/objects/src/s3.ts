// The S3 object store on @aws-sdk/client-s3 v3, tested against Ceph RGW 16.2. Compare-and-swap uses conditional
// PutObject (If-None-Match: * / If-Match), which RGW 16.2 applies atomically; see docs in the package README.
import { createHash } from 'node:crypto';
import http from 'node:http';
import https from 'node:https';
import { Readable } from 'node:stream';
import {
  DeleteObjectCommand,
  DeleteObjectsCommand,
  GetObjectCommand,
  HeadObjectCommand,
  ListObjectsV2Command,
  PutObjectCommand,
  S3Client,
} from '@aws-sdk/client-s3';
import { Upload } from '@aws-sdk/lib-storage';
import { MagsError } from '@mags/api';
import { ObjectExistsError, ObjectNotFoundError, ObjectStoreError } from './errors.js';
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

export interface S3StoreOptions {
  bucket: string;
  /** e.g. http://127.0.0.1:7480; omit for AWS. */
  endpoint?: string;
  region?: string;
  /** Omit both to use the SDK's default credential chain. */
  accessKeyId?: string;
  secretAccessKey?: string;
  /** Path-style URLs (http://host/bucket/key); what RGW and most self-hosted servers want. Default: true with an endpoint. */
  forcePathStyle?: boolean;
  /** Prepended to every key, so several deployments can share a bucket. */
  prefix?: string;
  /** Streams longer than this (or of unknown length) go up as a multipart upload. Default 16 MiB. */
  multipartThreshold?: number;
  /** Parallel connections to the server. Default 32. */
  maxSockets?: number;
}

const PART_SIZE = 8 * 1024 * 1024;

export class S3ObjectStore implements ObjectStore {
  readonly description: string;
  readonly client: S3Client;
  private readonly bucket: string;
  private readonly prefix: string;
  private readonly multipartThreshold: number;
  private conditionalDeleteChecked: Promise<void> | undefined;

  constructor(opts: S3StoreOptions) {
    if (!opts.bucket) throw MagsError.invalid('S3 object store: a bucket is required');
    this.bucket = opts.bucket;
    this.prefix = opts.prefix ? `${opts.prefix.replace(/^\/+|\/+$/g, '')}/` : '';
    if (this.prefix) checkPrefix(this.prefix);
    this.multipartThreshold = opts.multipartThreshold ?? 16 * 1024 * 1024;
    this.description = `s3://${opts.bucket}/${this.prefix}${opts.endpoint ? ` at ${opts.endpoint}` : ''}`;
    const maxSockets = opts.maxSockets ?? 32;
    this.client = new S3Client({
      endpoint: opts.endpoint,
      region: opts.region ?? 'us-east-1',
      forcePathStyle: opts.forcePathStyle ?? opts.endpoint !== undefined,
      credentials:
        opts.accessKeyId !== undefined && opts.secretAccessKey !== undefined
          ? { accessKeyId: opts.accessKeyId, secretAccessKey: opts.secretAccessKey }
          : undefined,
      // Since SDK 3.729 the default sends streaming bodies aws-chunked with a CRC trailer, which RGW (and most
      // S3-compatible servers) reject or mangle: only checksum what the API requires.
      requestChecksumCalculation: 'WHEN_REQUIRED',
      responseChecksumValidation: 'WHEN_REQUIRED',
      maxAttempts: 4,
      requestHandler: {
        httpAgent: new http.Agent({ keepAlive: true, maxSockets }),
        httpsAgent: new https.Agent({ keepAlive: true, maxSockets }),
        connectionTimeout: 10_000,
        requestTimeout: 120_000,
      },
    });
  }

  private k(key: string): string {
    checkKey(key);
    return this.prefix + key;
  }

  async put(key: string, body: Buffer | Readable, opts: PutOptions = {}): Promise<void> {
    const Key = this.k(key);
    const IfNoneMatch = opts.ifNoneMatch;
    try {
      if (Buffer.isBuffer(body)) {
        await this.client.send(
          new PutObjectCommand({ Bucket: this.bucket, Key, Body: body, ContentLength: body.length, IfNoneMatch }),
        );
      } else if (opts.contentLength !== undefined && (opts.contentLength <= this.multipartThreshold || IfNoneMatch)) {
        await this.client.send(
          new PutObjectCommand({
            Bucket: this.bucket,
            Key,
            Body: body,
            ContentLength: opts.contentLength,
            IfNoneMatch,
          }),
        );
      } else {
        if (IfNoneMatch) throw MagsError.invalid(`put ${key}: ifNoneMatch needs a Buffer or a contentLength`);
        // lib-storage sends one PutObject for short streams and a multipart upload (8 MiB parts, 4 in flight) otherwise.
        const upload = new Upload({
          client: this.client,
          params: { Bucket: this.bucket, Key, Body: body },
          partSize: PART_SIZE,
          queueSize: 4,
          leavePartsOnError: false,
        });
        await upload.done();
      }
    } catch (e) {
      if (statusOf(e) === 412) throw new ObjectExistsError(key, this.description);
      throw this.mapError(e, 'put', key);
    }
  }

  async get(key: string): Promise<Readable> {
    try {
      const res = await this.client.send(new GetObjectCommand({ Bucket: this.bucket, Key: this.k(key) }));
      const body = res.Body;
      if (!(body instanceof Readable)) throw new ObjectStoreError(`get ${key}: the S3 response had no body stream`);
      return body;
    } catch (e) {
      throw this.mapError(e, 'get', key);
    }
  }

  async getBuffer(key: string): Promise<Buffer> {
    try {
      const res = await this.client.send(new GetObjectCommand({ Bucket: this.bucket, Key: this.k(key) }));
      if (!res.Body) throw new ObjectStoreError(`get ${key}: the S3 response had no body`);
      return Buffer.from(await res.Body.transformToByteArray());
    } catch (e) {
      throw this.mapError(e, 'get', key);
    }
  }

  async getRange(key: string, start: number, length: number): Promise<Buffer> {
    const Range = `bytes=${start}-${start + length - 1}`;
    let data: Buffer;
    try {
      const res = await this.client.send(new GetObjectCommand({ Bucket: this.bucket, Key: this.k(key), Range }));
      if (!res.Body) throw new ObjectStoreError(`get ${key} ${Range}: the S3 response had no body`);
      const bytes = await res.Body.transformToByteArray();
      data = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    } catch (e) {
      throw this.mapError(e, 'get', key);
    }
    // A range that starts past the end is a 416; one that runs past it comes back short.
    if (data.length !== length)
      throw new ObjectStoreError(`get ${key} ${Range} in ${this.description}: got ${data.length} bytes, not ${length}`);
    return data;
  }

  async head(key: string): Promise<ObjectHead | undefined> {
    try {
      const res = await this.client.send(new HeadObjectCommand({ Bucket: this.bucket, Key: this.k(key) }));
      return { size: res.ContentLength ?? 0, etag: unquote(res.ETag), lastModified: res.LastModified ?? new Date(0) };
    } catch (e) {
      if (statusOf(e) === 404) return undefined;
      throw this.mapError(e, 'head', key);
    }
  }

  async *list(prefix: string, opts: ListOptions = {}): AsyncIterable<ObjectInfo> {
    checkPrefix(prefix);
    let token: string | undefined;
    let startAfter = opts.startAfter === undefined ? undefined : this.prefix + opts.startAfter;
    do {
      let res;
      try {
        res = await this.client.send(
          new ListObjectsV2Command({
            Bucket: this.bucket,
            Prefix: this.prefix + prefix,
            MaxKeys: opts.pageSize,
            ContinuationToken: token,
            StartAfter: token ? undefined : startAfter,
          }),
        );
      } catch (e) {
        throw this.mapError(e, 'list', prefix);
      }
      for (const o of res.Contents ?? []) {
        if (o.Key === undefined) continue;
        yield { key: o.Key.slice(this.prefix.length), size: o.Size ?? 0, lastModified: o.LastModified ?? new Date(0) };
      }
      token = res.IsTruncated ? res.NextContinuationToken : undefined;
      startAfter = undefined;
    } while (token);
  }

  async delete(keys: string[]): Promise<void> {
    for (let i = 0; i < keys.length; i += 1000) {
      const batch = keys.slice(i, i + 1000);
      let res;
      try {
        res = await this.client.send(
          new DeleteObjectsCommand({
            Bucket: this.bucket,
            Delete: { Objects: batch.map((key) => ({ Key: this.k(key) })), Quiet: true },
          }),
        );
      } catch (e) {
        throw this.mapError(e, 'delete', batch[0]!);
      }
      const failed = (res.Errors ?? []).filter((er) => er.Code !== 'NoSuchKey');
      if (failed.length > 0) {
        const f = failed[0]!;
        throw new ObjectStoreError(
          `delete ${f.Key ?? '?'} in ${this.description} failed: ${f.Code}: ${f.Message ?? ''} (${failed.length} keys failed)`,
        );
      }
    }
  }

  /**
   * RGW's `x-amz-delete-if-unmodified-since` makes the delete conditional on the object's mtime, checked by RGW
   * under the object's write tag. A server that ignores the header would delete unconditionally, so the first call
   * proves on a probe object that the condition is honoured, and refuses to go on otherwise.
   */
  async deleteIfOlder(key: string, cutoff: Date): Promise<boolean> {
    this.conditionalDeleteChecked ??= this.checkConditionalDelete();
    await this.conditionalDeleteChecked;
    return this.conditionalDelete(key, cutoff);
  }

  private async conditionalDelete(key: string, cutoff: Date): Promise<boolean> {
    const cmd = new DeleteObjectCommand({ Bucket: this.bucket, Key: this.k(key) });
    cmd.middlewareStack.add(
      (next) => async (args) => {
        const req = args.request as { headers: Record<string, string> };
        req.headers['x-amz-delete-if-unmodified-since'] = cutoff.toISOString();
        return next(args);
      },
      { step: 'build', name: 'magsDeleteIfUnmodifiedSince' },
    );
    try {
      await this.client.send(cmd);
      return true;
    } catch (e) {
      if (statusOf(e) === 412) return false;
      if (statusOf(e) === 404) return true;
      throw this.mapError(e, 'delete', key);
    }
  }

  private async checkConditionalDelete(): Promise<void> {
    const probe = `.mags-probe/${Date.now()}-${Math.random().toString(36).slice(2)}`;
    const Key = this.prefix + probe;
    try {
      await this.client.send(new PutObjectCommand({ Bucket: this.bucket, Key, Body: Buffer.from('probe') }));
    } catch (e) {
      throw this.mapError(e, 'put', probe);
    }
    const cmd = new DeleteObjectCommand({ Bucket: this.bucket, Key });
    const cutoff = new Date(Date.now() - 24 * 3600_000);
    cmd.middlewareStack.add(
      (next) => async (args) => {
        (args.request as { headers: Record<string, string> }).headers['x-amz-delete-if-unmodified-since'] =
          cutoff.toISOString();
        return next(args);
      },
      { step: 'build' },
    );
    let deleted = true;
    try {
      await this.client.send(cmd);
    } catch (e) {
      if (statusOf(e) !== 412) throw this.mapError(e, 'delete', probe);
      deleted = false;
    }
    await this.client.send(new DeleteObjectCommand({ Bucket: this.bucket, Key })).catch(() => {});
    if (deleted) {
      this.conditionalDeleteChecked = undefined;
      throw new MagsError(
        501,
        'unsupported_option',
        `${this.description} ignores x-amz-delete-if-unmodified-since, so deleting unreferenced blobs could race with a sync; garbage collection is disabled for this store`,
      );
    }
  }

  /**
   * RGW 16.2 compares If-Match with the stored ETag verbatim, and stores it without quotes, so a quoted ETag never
   * matches there: etags are kept and sent unquoted. RGW answers a writer that loses an If-Match race with 500 (not
   * 412), and the SDK retries 5xx, so a retry can see 412 although our first attempt won: after any failure the
   * object is read back, and if it holds exactly our body (its ETag is the body's MD5) we won.
   */
  async casPut(key: string, body: Buffer, expectedEtag: string | null): Promise<CasResult> {
    try {
      const res = await this.client.send(
        new PutObjectCommand({
          Bucket: this.bucket,
          Key: this.k(key),
          Body: body,
          ContentLength: body.length,
          ...(expectedEtag === null ? { IfNoneMatch: '*' } : { IfMatch: unquote(expectedEtag) }),
        }),
      );
      return { ok: true, etag: unquote(res.ETag) };
    } catch (e) {
      if (e instanceof MagsError) throw e;
      const status = statusOf(e);
      const now = await this.head(key);
      if (now && now.etag === createHash('md5').update(body).digest('hex')) return { ok: true, etag: now.etag };
      // 412: the condition failed; 409: AWS's answer to a conditional write racing another; 404: If-Match on a missing key.
      if (status === 412 || status === 409 || (status === 404 && expectedEtag !== null)) return { ok: false };
      // Any other failure: if someone else's write is there now we lost; if the object is as expected, nothing
      // happened and the error is real.
      const unchanged = expectedEtag === null ? now === undefined : now?.etag === unquote(expectedEtag);
      if (!unchanged) return { ok: false };
      throw this.mapError(e, 'put', key);
    }
  }

  async close(): Promise<void> {
    this.client.destroy();
  }

  private mapError(e: unknown, op: string, key: string): Error {
    if (e instanceof MagsError) return e;
    const status = statusOf(e);
    const name = (e as { name?: string }).name ?? 'Error';
    if (status === 404 || name === 'NoSuchKey' || name === 'NotFound') {
      if (name === 'NoSuchBucket')
        return new ObjectStoreError(`${this.description}: the bucket does not exist`, { cause: e });
      return new ObjectNotFoundError(key, this.description);
    }
    const detail = (e as Error).message || name;
    return new ObjectStoreError(
      `${op} ${key} in ${this.description} failed: ${name}${status ? ` (HTTP ${status})` : ''}: ${detail}`,
      { cause: e },
    );
  }
}

function statusOf(e: unknown): number | undefined {
  return (e as { $metadata?: { httpStatusCode?: number } })?.$metadata?.httpStatusCode;
}

function unquote(etag: string | undefined): string {
  return (etag ?? '').replace(/^W\//, '').replace(/^"|"$/g, '');
}
