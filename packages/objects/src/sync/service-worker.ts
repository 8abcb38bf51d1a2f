// The sync service's process (started by service.ts): runs snapshots and restores for its parent, so that a
// workspace's manifest (one object per file: ~1 KB each in memory), its hashing, packing and uploads never live in
// the parent (the agent, inside `mags server`). Manifests cross as files, never as messages.
//
// Protocol (NDJSON): stdin = {objects, credentials} then requests {id, op, ...}; stdout = {id, ok: true, result} or
// {id, ok: false, error: {status, code, message, detail?}}. Requests run concurrently; the parent serialises per
// workspace. Exits when stdin closes.
import { randomBytes } from 'node:crypto';
import { readFile, rename, writeFile } from 'node:fs/promises';
import { createInterface } from 'node:readline';
import { openObjectStore } from '../open.js';
import type { ObjectStore } from '../store.js';
import { decodeManifest, encodeManifest, type Manifest } from './manifest.js';
import { type RestoreOptions, restore, restoreManifest } from './restore.js';
import { type SnapshotOptions, snapshot } from './snapshot.js';
import { readManifestObject } from './versions.js';

export interface ServiceConfig {
  objects: string;
  credentials?: { accessKeyId?: string; secretAccessKey?: string };
}

export type ServiceRequest =
  | {
      id: number;
      op: 'snapshot';
      upperDir: string;
      options: Omit<SnapshotOptions, 'previous'>;
      previousFile?: string;
      manifestOut: string;
    }
  | {
      id: number;
      op: 'restore';
      ref: { owner: string; name: string; version?: number };
      targetDir: string;
      options: RestoreOptions;
      manifestOut?: string;
    }
  | {
      id: number;
      op: 'restoreKey';
      manifestKey: string;
      targetDir: string;
      options: RestoreOptions;
      manifestOut?: string;
    };

async function writeManifest(file: string, m: Manifest): Promise<void> {
  const tmp = `${file}.tmp-${randomBytes(4).toString('hex')}`;
  await writeFile(tmp, encodeManifest(m), { mode: 0o600 });
  await rename(tmp, file);
}

async function readPrevious(file: string | undefined): Promise<Manifest | undefined> {
  if (!file) return undefined;
  let bytes: Buffer;
  try {
    bytes = await readFile(file);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw e;
  }
  try {
    return decodeManifest(bytes, 'previous');
  } catch {
    return undefined; // a torn file only costs hashing everything again
  }
}

async function handle(store: ObjectStore, r: ServiceRequest): Promise<unknown> {
  switch (r.op) {
    case 'snapshot': {
      const previous = await readPrevious(r.previousFile);
      const s = await snapshot(r.upperDir, store, { ...r.options, previous });
      await writeManifest(r.manifestOut, s.manifest);
      return {
        version: s.version,
        unchanged: s.unchanged,
        stats: s.stats,
        versions: s.versions,
        files: s.manifest.files,
        bytes: s.manifest.bytes,
      };
    }
    case 'restore': {
      const res = await restore(store, r.ref, r.targetDir, r.options);
      if (r.manifestOut) await writeManifest(r.manifestOut, res.manifest);
      return { version: res.version, stats: res.stats, files: res.manifest.files, bytes: res.manifest.bytes };
    }
    case 'restoreKey': {
      const { manifest } = await readManifestObject(store, r.manifestKey);
      const res = await restoreManifest(store, manifest, r.targetDir, r.options);
      if (r.manifestOut) await writeManifest(r.manifestOut, res.manifest);
      return { version: res.version, stats: res.stats, files: res.manifest.files, bytes: res.manifest.bytes };
    }
  }
}

function send(line: unknown): void {
  process.stdout.write(`${JSON.stringify(line)}\n`);
}

async function main(): Promise<void> {
  const lines = createInterface({ input: process.stdin, crlfDelay: Infinity });
  let store: ObjectStore | undefined;
  const running = new Set<Promise<void>>();
  lines.on('line', (line) => {
    if (line === '') return;
    if (!store) {
      const c = JSON.parse(line) as ServiceConfig;
      store = openObjectStore(c.objects, c.credentials);
      return;
    }
    const r = JSON.parse(line) as ServiceRequest;
    const p = handle(store, r).then(
      (result) => send({ id: r.id, ok: true, result }),
      (err: unknown) => {
        const e = err as { status?: unknown; code?: unknown; message?: string; stack?: string; detail?: string };
        const known = typeof e?.status === 'number';
        send({
          id: r.id,
          ok: false,
          error: {
            status: known ? e.status : 500,
            code: known ? String(e.code) : 'internal',
            message: e?.message ?? String(err),
            detail: e?.detail ?? (known ? undefined : e?.stack),
          },
        });
      },
    );
    running.add(p);
    void p.finally(() => running.delete(p));
  });
  await new Promise<void>((resolve) => lines.once('close', () => resolve()));
  await Promise.allSettled([...running]);
  await store?.close().catch(() => {});
}

process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';
main().then(
  () => process.exit(0),
  (err: unknown) => {
    process.stderr.write(`${(err as Error)?.stack ?? String(err)}\n`);
    process.exit(1);
  },
);
