// One sandbox on this host: its overlay root, network namespace, cgroup and the OCI container that holds them.
// A sandbox is created ahead of time with `crun run` in the foreground: PID 1 is a reaping init, PID 2 a launcher
// waiting on stdin. A job is started by writing it to that stdin, so nothing is spawned on the start path; its
// output comes back on the runtime's stdout/stderr pipes and its exit code is the runtime's.
import { type ChildProcessWithoutNullStreams, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chownSync, mkdirSync, statfsSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { GiB } from '@mags/api';
import type { Logger } from 'pino';
import { type Limits, READY_LINE, ociConfig } from './bundle.js';
import { SandboxCgroup } from './cgroups.js';
import { type AgentConfig, hostNames, imagePath } from './config.js';
import { type DiskLedger, layerDiskScript, layerTemplatesDir } from './disks.js';
import { type Link, type NetnsPool, type SlotAllocator, netnsDownScript, netnsUpScript, resolvConf, writeHostsFile } from './network.js';
import { killGroup, run, sh, shq } from './process.js';

export interface HostContext {
  config: AgentConfig;
  logger: Logger;
  slots: SlotAllocator;
  netnsPool: NetnsPool;
  /** The disks this agent has promised; an ephemeral layer is made only if it fits. */
  disks: DiskLedger;
}

export interface SandboxOptions {
  network: 'internet' | 'none';
  limits: Limits;
  /** Size of the ephemeral writable layer (its own ext4 disk, so filling it gives ENOSPC); unused when `upper` is given. */
  diskGb: number;
  /** A workspace's writable layer (on its own disk) instead of an ephemeral one. */
  upper?: { upper: string; work: string };
  /** Read-only layers between the writable layer and the image, top first (a materialised base). */
  lowers?: string[];
}

export interface JobProcess {
  /** Output of the job, as it is written. */
  onOutput(handler: (stream: 'stdout' | 'stderr', chunk: Buffer) => void): void;
  /** Resolves with the job's exit code (128+n when killed by signal n) once every process in the sandbox is gone. */
  exited: Promise<number | null>;
}

const SIGNALS: Record<string, number> = { SIGHUP: 1, SIGINT: 2, SIGQUIT: 3, SIGABRT: 6, SIGKILL: 9, SIGSEGV: 11, SIGPIPE: 13, SIGTERM: 15 };

/** The shell program the launcher becomes: the job's environment, its working directory, then the script itself. */
export function jobProgram(script: string, env: Record<string, string>): string {
  const exports = Object.entries(env).map(([k, v]) => `export ${k}=${shq(v)}`);
  return [...exports, 'cd /root 2>/dev/null || cd /', `exec /bin/sh -c ${shq(script)}`].join('\n');
}

/** Bytes used on a sandbox's ephemeral layer filesystem (one statfs, no process); 0 if it can't be read. */
function layerUsedBytes(dir: string): number {
  try {
    const fs = statfsSync(path.join(dir, 'fs'));
    return (fs.blocks - fs.bfree) * fs.bsize;
  } catch {
    return 0;
  }
}

export class Sandbox {
  private destroyed = false;
  private runtime?: ChildProcessWithoutNullStreams;
  private sink?: (stream: 'stdout' | 'stderr', chunk: Buffer) => void;
  private runtimeExit?: Promise<number | null>;
  readonly cgroup: SandboxCgroup;

  private constructor(
    readonly id: string,
    readonly dir: string,
    readonly options: SandboxOptions,
    /** Network namespace name (a sandbox may reuse one an ended sandbox had). */
    readonly netns: string,
    readonly link: Link | undefined,
    private readonly ctx: HostContext,
  ) {
    this.cgroup = new SandboxCgroup(hostNames(ctx.config).cgroupParent, id);
  }

  static async create(ctx: HostContext, options: SandboxOptions): Promise<Sandbox> {
    const { config } = ctx;
    const names = hostNames(config);
    const id = `${names.sandboxPrefix}${randomBytes(5).toString('hex')}`;
    const dir = path.join(names.sandboxesDir, id);
    const spare = options.network === 'internet' ? ctx.netnsPool.take() : undefined;
    const link = spare?.link ?? (options.network === 'internet' ? ctx.slots.take() : undefined);
    const sandbox = new Sandbox(id, dir, options, spare?.name ?? id, link, ctx);
    try {
      // Before any host work: a layer that does not fit is refused with a sentence (507).
      if (!options.upper) ctx.disks.reserve(sandbox.layerImage, options.diskGb * GiB);
      // 0710, group = the sandbox's root: crun, already inside the user namespace, must reach rootfs/ and the files
      // it binds; no other host user may (a sandbox's layer holds whatever its script made: setuid files, …).
      mkdirSync(dir, { mode: 0o710 });
      chownSync(dir, 0, config.userns.hostId);
      mkdirSync(path.join(dir, 'rootfs'));
      mkdirSync(path.join(dir, 'fs'), { mode: 0o700 });
      writeHostsFile(path.join(dir, 'hosts'));
      writeFileSync(path.join(dir, 'resolv.conf'), resolvConf(link));
      sandbox.cgroup.create(options.limits);
      const oci = ociConfig({
        rootfs: path.join(dir, 'rootfs'),
        netnsPath: `/run/netns/${sandbox.netns}`,
        cgroupsPath: sandbox.cgroup.runtimePath,
        hostsFile: path.join(dir, 'hosts'),
        resolvFile: path.join(dir, 'resolv.conf'),
        initBinary: config.initBinary,
        userns: config.userns,
      });
      writeFileSync(path.join(dir, 'config.json'), JSON.stringify(oci));
      // One process for the host side: namespace, veth, the size-limited upper layer, the overlay root.
      // An ephemeral upper layer is a sparse ext4 of `diskGb` (made here, in the warm pool, off the start path):
      // writing past it gives the script ENOSPC (a tmpfs charged to the memory limit was an OOM kill), and it can't
      // fill the host disk. Its upper directory (the sandbox's /) belongs to the sandbox's root. Every mount is
      // nosuid,nodev: a setuid file or a device node a sandbox makes is inert on the host.
      const d = shq(dir);
      const root = config.userns.hostId;
      const lowerdir = [...(options.lowers ?? []), imagePath(config)].join(':');
      const upper = options.upper
        ? [`upperdir=${options.upper.upper}`, `workdir=${options.upper.work}`]
        : [`upperdir=${dir}/fs/upper`, `workdir=${dir}/fs/work`];
      await sh(
        [
          spare ? 'true' : netnsUpScript(id, link),
          options.upper
            ? 'true'
            : layerDiskScript(layerTemplatesDir(config), sandbox.layerImage, path.join(dir, 'fs'), options.diskGb, root),
          `mount -t overlay -o ${shq(['nosuid', 'nodev', `lowerdir=${lowerdir}`, ...upper, 'xino=off'].join(','))} mags-root ${d}/rootfs`,
        ].join('\n'),
        { logger: ctx.logger, timeoutMs: 30_000 },
      );
      if (!options.upper) sandbox.layerEmptyBytes = layerUsedBytes(dir);
      await sandbox.startRuntime();
      return sandbox;
    } catch (err) {
      await sandbox.destroy().catch(() => {});
      throw err;
    }
  }

  private startRuntime(): Promise<void> {
    const { config } = this.ctx;
    const child = spawn(config.runtime, ['--root', config.runtimeRoot, 'run', '--bundle', this.dir, this.id], {
      stdio: ['pipe', 'pipe', 'pipe'],
      detached: true,
    });
    this.runtime = child;
    child.stdin.on('error', () => {});
    this.runtimeExit = new Promise((resolve) => {
      child.on('error', () => resolve(null));
      // 'close' (not 'exit'): every holder of the output pipes is gone, so all output has been read.
      child.on('close', (code, signal) => resolve(code ?? (signal ? 128 + (SIGNALS[signal] ?? 0) : null)));
    });
    return new Promise((resolve, reject) => {
      let pending = Buffer.alloc(0);
      let ready = false;
      let errText = '';
      const onStdout = (chunk: Buffer) => {
        if (ready) return this.sink?.('stdout', chunk);
        pending = Buffer.concat([pending, chunk]);
        if (pending.length >= READY_LINE.length) {
          if (pending.subarray(0, READY_LINE.length).toString() !== READY_LINE) {
            return reject(new Error(`sandbox ${this.id} started wrongly: ${pending.toString().slice(0, 200)}`));
          }
          ready = true;
          const rest = pending.subarray(READY_LINE.length);
          if (rest.length) this.sink?.('stdout', rest);
          resolve();
        }
      };
      child.stdout.on('data', onStdout);
      child.stderr.on('data', (chunk: Buffer) => {
        if (ready) return this.sink?.('stderr', chunk);
        errText = (errText + chunk.toString()).slice(-4000);
      });
      void this.runtimeExit!.then((code) => {
        if (!ready) reject(new Error(`the runtime exited (${code}) before the sandbox was ready: ${errText.trim() || 'no error output'}`));
      });
    });
  }

  get network(): 'internet' | 'none' {
    return this.options.network;
  }

  /** False once the sandbox's runtime has ended (e.g. killed while waiting in the pool). */
  get alive(): boolean {
    return !!this.runtime && this.runtime.exitCode === null && this.runtime.signalCode === null && !this.destroyed;
  }

  /** Applies a job's limits (the pool creates sandboxes with the defaults). No process is spawned. */
  setLimits(limits: Limits): void {
    this.cgroup.setLimits(limits);
  }

  /** Starts the job: `/bin/sh -c script` with the sandbox's full hardening, as the launcher's replacement. */
  start(script: string, env: Record<string, string>): JobProcess {
    const runtime = this.runtime;
    if (!runtime || !this.runtimeExit) throw new Error(`sandbox ${this.id} is not running`);
    const buffered: Array<['stdout' | 'stderr', Buffer]> = [];
    this.sink = (stream, chunk) => buffered.push([stream, chunk]);
    runtime.stdin.end(jobProgram(script, env));
    return {
      onOutput: (handler) => {
        for (const [s, c] of buffered.splice(0)) handler(s, c);
        this.sink = handler;
      },
      exited: this.runtimeExit,
    };
  }

  /**
   * Unmounts the overlay root of a sandbox whose processes are all gone, so that its writable layer (a workspace)
   * may be mounted again at once; destroy() does the rest later.
   */
  async unmountRoot(): Promise<void> {
    if (this.alive) throw new Error(`sandbox ${this.id} is still running`);
    await run('umount', [this.rootfs], { logger: this.ctx.logger });
    this.rootUnmounted = true;
  }

  /** True once the root overlay is unmounted (its writable layer is free). */
  rootUnmounted = false;

  /** The ephemeral layer's disk image (a sparse file; absent for a workspace sandbox). */
  get layerImage(): string {
    return path.join(this.dir, 'layer.img');
  }

  /** The sandbox's root filesystem as the host sees it (the overlay mount). */
  get rootfs(): string {
    return path.join(this.dir, 'rootfs');
  }

  /** Whether the ephemeral layer holds enough that deleting it beats writing it back at unmount (one statfs, no process). */
  private layerWritten(): boolean {
    if (this.options.upper || this.layerEmptyBytes === undefined) return false;
    return layerUsedBytes(this.dir) - this.layerEmptyBytes > 64 * 1024 ** 2;
  }

  /** What the empty ephemeral layer's filesystem uses (its metadata), measured once it is mounted. */
  private layerEmptyBytes?: number;

  /** Kills every process in the sandbox (the PID namespace dies with its init). */
  async kill(): Promise<void> {
    await run(this.ctx.config.runtime, ['--root', this.ctx.config.runtimeRoot, 'kill', this.id, 'KILL'], {
      allowFailure: true,
      logger: this.ctx.logger,
    });
  }

  /** Removes everything the sandbox created on the host: container, cgroups, mounts, namespace, directory. */
  async destroy(): Promise<void> {
    if (this.destroyed) return;
    this.destroyed = true;
    const d = shq(this.dir);
    const rt = `${this.ctx.config.runtime} --root ${shq(this.ctx.config.runtimeRoot)}`;
    // Only a namespace whose processes are all gone (the runtime has exited) may be handed on.
    const runtimeGone = !this.runtime || this.runtime.exitCode !== null || this.runtime.signalCode !== null;
    const keepNetns = !!this.link && runtimeGone && this.ctx.netnsPool.give({ name: this.netns, link: this.link });
    await run(
      '/bin/sh',
      [
        '-c',
        [
          `${rt} delete -f ${this.id} >/dev/null 2>&1`,
          `umount ${d}/rootfs 2>/dev/null || umount -l ${d}/rootfs 2>/dev/null`,
          // What a script wrote to its ephemeral layer is deleted before the unmount, which would write it all to the image.
          this.layerWritten() ? `rm -rf --one-file-system ${d}/fs/upper ${d}/fs/work` : 'true',
          `umount ${d}/fs 2>/dev/null || umount -l ${d}/fs 2>/dev/null`,
          `rm -rf --one-file-system ${d}`,
          keepNetns ? 'true' : netnsDownScript(this.netns),
          'true',
        ].join('; '),
      ],
      { allowFailure: true, logger: this.ctx.logger, timeoutMs: 30_000 },
    );
    if (this.runtime && this.runtime.exitCode === null && this.runtime.signalCode === null) killGroup(this.runtime.pid);
    await this.runtimeExit;
    this.cgroup.remove();
    this.ctx.disks.release(this.layerImage);
    if (this.link && !keepNetns) this.ctx.slots.release(this.link.slot);
  }
}
