// Turns a store URL from configuration into an ObjectStore: a path or file:// URL is a local directory,
// s3://[KEY:SECRET@]bucket[/prefix]?endpoint=…&region=…&forcePathStyle=… is S3.
import { resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { MagsError } from '@mags/api';
import { LocalObjectStore } from './local.js';
import { S3ObjectStore } from './s3.js';
import type { ObjectStore } from './store.js';

export interface OpenStoreOptions {
  /** Used when the URL carries no credentials (the caller reads AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, not us). */
  accessKeyId?: string;
  secretAccessKey?: string;
}

export function openObjectStore(url: string, opts: OpenStoreOptions = {}): ObjectStore {
  if (url.startsWith('file:')) return new LocalObjectStore(fileURLToPath(url));
  if (!/^[a-z][a-z0-9+.-]*:/i.test(url)) {
    if (url === '') throw MagsError.invalid('object store URL is empty');
    return new LocalObjectStore(resolve(url));
  }
  if (!url.startsWith('s3://')) {
    throw MagsError.invalid(
      `unsupported object store URL "${redact(url)}": use a directory path, file:///path or s3://bucket?endpoint=…`,
    );
  }
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    throw MagsError.invalid(`invalid object store URL "${redact(url)}"`);
  }
  const bucket = u.hostname;
  if (!bucket) throw MagsError.invalid(`object store URL "${redact(url)}" names no bucket (s3://BUCKET?endpoint=…)`);
  const known = new Set(['endpoint', 'region', 'forcePathStyle']);
  for (const name of u.searchParams.keys()) {
    if (!known.has(name))
      throw MagsError.invalid(`object store URL: unknown parameter "${name}" (known: ${[...known].join(', ')})`);
  }
  const endpoint = u.searchParams.get('endpoint') ?? undefined;
  if (endpoint !== undefined && !/^https?:\/\/[^/]+/.test(endpoint)) {
    throw MagsError.invalid(`object store URL: endpoint "${endpoint}" must be an http:// or https:// URL`);
  }
  const fps = u.searchParams.get('forcePathStyle');
  const accessKeyId = u.username ? decodeURIComponent(u.username) : opts.accessKeyId;
  const secretAccessKey = u.password ? decodeURIComponent(u.password) : opts.secretAccessKey;
  if ((accessKeyId === undefined) !== (secretAccessKey === undefined)) {
    throw MagsError.invalid('object store: give both an access key id and a secret access key, or neither');
  }
  return new S3ObjectStore({
    bucket,
    endpoint,
    region: u.searchParams.get('region') ?? undefined,
    forcePathStyle: fps === null ? undefined : fps !== 'false' && fps !== '0',
    accessKeyId,
    secretAccessKey,
    prefix: decodeURIComponent(u.pathname.replace(/^\/+/, '')) || undefined,
  });
}

/** The URL without its credentials, for messages. */
export function redact(url: string): string {
  return url.replace(/^(s3:\/\/)[^@/?]*@/, '$1***@');
}
