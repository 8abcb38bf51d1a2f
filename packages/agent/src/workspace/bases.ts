// Base layers (`--base`): a persistent workspace version materialised once per host as a plain directory and used
// read-only as an overlay lower layer by every sandbox that names it. Keyed by the sha256 of the manifest's bytes,
// so two names for the same content (a version and a fork's copy of it) share one directory. Each is bind-mounted
// on itself read-only, nosuid and nodev while it exists, so a setuid file or device node in a base is inert on the host.

import { createHash } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { mkdir, readdir, rename, rm, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import type { BaseLayer } from '@mags/api';
import { MagsError } from '@mags/api';
import { type IdMap, ObjectNotFoundError, type ObjectStore, type SyncService } from '@mags/objects';
import type { Logger } from 'pino';
import { run, sh, shq } from '../process.js';

const COMPLETE = '.mags-base-complete';

export interface BaseHandle {
  /** The directory to use as a lower layer. */
  readonly dir: string;
  release(): void;
}

interface Entry {
  dir: string;
  refs: number;
  lastUsed: number;
  ready: Promise<void>;
}

export class BaseLayers {
  private readonly entries = new Map<string, Entry>();
  private sweeper?: NodeJS.Timeout;

  constructor(
    private readonly root: string,
    private readonly cacheDir: string,
    private readonly store: ObjectStore,
    /** Materialises bases in a child process (see SyncService). */
    private readonly syncs: SyncService,
    private readonly logger: Logger,
    /** Sandboxes' user namespace: a base's owners are as seen inside and are written shifted (undefined: as they are). */
    private readonly ids?: IdMap,
    /** Unused materialised bases are deleted after this long. */
    private readonly idleMs = 30 * 60_000,
  ) {}

  async start(): Promise<void> {
    await mkdir(this.root, { recursive: true, mode: 0o700 });
    await this.unmountAll(); // a crashed predecessor's

    // Half-made directories of a crashed agent are useless; complete ones are kept for reuse.
    for (const name of await readdir(this.root)) {
      if (!existsSync(path.join(this.root, name, COMPLETE)))
        await rm(path.join(this.root, name), { recursive: true, force: true });
    }
    this.sweeper = setInterval(() => void this.sweep(), Math.min(this.idleMs, 60_000));
    this.sweeper.unref();
  }

  /** Materialises the base (once per host) and holds it until release(). */
  async acquire(base: BaseLayer): Promise<BaseHandle> {
    // Only the manifest's bytes, for their hash (the key): the restore reads and checks it in the sync service.
    let bytes: Buffer;
    try {
      bytes = await this.store.getBuffer(base.manifestKey);
    } catch (err) {
      if (err instanceof ObjectNotFoundError) {
        throw new MagsError(404, 'not_found', `the base ${base.label} no longer exists in the object store`);
      }
      throw err;
    }
    const key = createHash('sha256').update(bytes).digest('hex');
    let entry = this.entries.get(key);
    if (!entry) {
      const dir = path.join(this.root, key);
      const ready = this.materialise(dir, base.manifestKey, base.label);
      entry = { dir: path.join(dir, 'root'), refs: 0, lastUsed: Date.now(), ready };
      this.entries.set(key, entry);
      ready.catch(() => this.entries.delete(key));
    }
    entry.refs++;
    try {
      await entry.ready;
    } catch (err) {
      entry.refs--;
      throw err;
    }
    const held = entry;
    let released = false;
    return {
      dir: held.dir,
      release: () => {
        if (released) return;
        released = true;
        held.refs--;
        held.lastUsed = Date.now();
      },
    };
  }

  private async materialise(dir: string, manifestKey: string, label: string): Promise<void> {
    if (existsSync(path.join(dir, COMPLETE))) return this.mountLayer(path.join(dir, 'root'));
    const started = Date.now();
    let files = 0;
    const tmp = `${dir}.tmp-${process.pid}-${Date.now()}`;
    await rm(tmp, { recursive: true, force: true });
    await mkdir(tmp, { recursive: true });
    try {
      const r = await this.syncs.restoreKey(manifestKey, path.join(tmp, 'root'), {
        cacheDir: this.cacheDir,
        ids: this.ids,
      });
      files = r.files;
      await writeFile(path.join(tmp, COMPLETE), `${label}\n`);
      await rm(dir, { recursive: true, force: true });
      await rename(tmp, dir);
    } catch (err) {
      await rm(tmp, { recursive: true, force: true }).catch(() => {});
      throw err;
    }
    await this.mountLayer(path.join(dir, 'root'));
    this.logger.info({ base: label, ms: Date.now() - started, files }, 'base layer materialised');
  }

  private mounts(): string[] {
    return readFileSync('/proc/self/mountinfo', 'utf8')
      .split('\n')
      .map((l) => l.split(' ')[4])
      .filter((m): m is string => !!m && m.startsWith(`${this.root}/`));
  }

  private async mountLayer(dir: string): Promise<void> {
    if (this.mounts().includes(dir)) return;
    const d = shq(dir);
    await sh(
      `mount --bind ${d} ${d} && mount -o remount,bind,ro,nosuid,nodev ${d} ${d} || { umount ${d} 2>/dev/null; exit 1; }`,
      { logger: this.logger },
    );
  }

  /** Deletes a materialised base (its directory holds `root/`, mounted on itself). */
  private async remove(dir: string): Promise<void> {
    const layer = path.join(dir, 'root');
    if (this.mounts().includes(layer)) await run('umount', [layer], { logger: this.logger });
    await rm(dir, { recursive: true, force: true });
  }

  private async unmountAll(): Promise<void> {
    // Deepest first; lazily, as sandboxes' overlays hold their own references to their lower layers.
    for (const m of this.mounts().sort((a, b) => b.length - a.length))
      await run('umount', ['-l', m], { allowFailure: true, logger: this.logger });
  }

  private async sweep(): Promise<void> {
    const now = Date.now();
    for (const [key, entry] of this.entries) {
      if (entry.refs > 0 || now - entry.lastUsed < this.idleMs) continue;
      this.entries.delete(key);
      await this.remove(path.dirname(entry.dir)).catch((err) =>
        this.logger.warn({ err }, 'could not delete a base layer'),
      );
    }
    // Complete directories no entry knows of (from a previous agent run) go once they are idle too.
    for (const name of await readdir(this.root).catch(() => [] as string[])) {
      if (this.entries.has(name)) continue;
      const s = await stat(path.join(this.root, name)).catch(() => undefined);
      if (s && now - s.mtimeMs > this.idleMs) await this.remove(path.join(this.root, name)).catch(() => {});
    }
  }

  /** Stops the sweeper and unmounts every base (the directories stay, for reuse by the next start). */
  async close(): Promise<void> {
    if (this.sweeper) clearInterval(this.sweeper);
    await this.unmountAll();
  }
}
