// One sandbox on this host: its overlay root, network namespace, cgroups and the OCI container that holds them.
// A sandbox is created ahead of time (init waiting as PID 1), runs one job through `crun exec`, then is destroyed.
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import type { Logger } from 'pino';
import { type Limits, ociConfig, processSpec } from './bundle.js';
import { type AgentConfig, hostNames, imagePath } from './config.js';
import { type Link, type SlotAllocator, netnsDownScript, netnsUpScript, resolvConf, writeHostsFile } from './network.js';
import { run, sh, shq } from './process.js';

export interface HostContext {
  config: AgentConfig;
  logger: Logger;
  slots: SlotAllocator;
}

export interface SandboxOptions {
  network: 'internet' | 'none';
  limits: Limits;
  diskGb: number;
}

const CGROUP_ROOT = '/sys/fs/cgroup';

export class Sandbox {
  private execCount = 0;
  private destroyed = false;

  private constructor(
    readonly id: string,
    readonly dir: string,
    readonly options: SandboxOptions,
    readonly link: Link | undefined,
    private readonly ctx: HostContext,
  ) {}

  get netns(): string {
    return this.id;
  }

  static async create(ctx: HostContext, options: SandboxOptions): Promise<Sandbox> {
    const { config } = ctx;
    const names = hostNames(config);
    const id = `${names.sandboxPrefix}${randomBytes(5).toString('hex')}`;
    const dir = path.join(names.sandboxesDir, id);
    const link = options.network === 'internet' ? ctx.slots.take() : undefined;
    const sandbox = new Sandbox(id, dir, options, link, ctx);
    try {
      mkdirSync(path.join(dir, 'rootfs'), { recursive: true });
      mkdirSync(path.join(dir, 'fs'), { recursive: true });
      writeHostsFile(path.join(dir, 'hosts'));
      writeFileSync(path.join(dir, 'resolv.conf'), resolvConf(link));
      const oci = ociConfig({
        rootfs: path.join(dir, 'rootfs'),
        netnsPath: `/run/netns/${id}`,
        cgroupsPath: `/${names.cgroupParent}/${id}`,
        hostsFile: path.join(dir, 'hosts'),
        resolvFile: path.join(dir, 'resolv.conf'),
        initBinary: config.initBinary,
        limits: options.limits,
      });
      writeFileSync(path.join(dir, 'config.json'), JSON.stringify(oci));
      // The container's init inherits the runtime's stdio, so none of it may be a pipe we wait on.
      // One process for the whole start: namespace, veth, the size-limited upper layer, the overlay root, the container.
      // The upper layer is a tmpfs, so what a sandbox writes is charged to its own memory limit and can't fill the host disk.
      const d = shq(dir);
      await sh(
        [
          netnsUpScript(id, link),
          `mount -t tmpfs -o size=${options.diskGb}g,mode=0755,nosuid,nodev mags-upper ${d}/fs`,
          `mkdir ${d}/fs/upper ${d}/fs/work`,
          `mount -t overlay -o lowerdir=${shq(imagePath(config))},upperdir=${d}/fs/upper,workdir=${d}/fs/work,xino=off mags-root ${d}/rootfs`,
          `${config.runtime} --root ${shq(config.runtimeRoot)} run -d --bundle ${d} ${id} </dev/null >/dev/null 2>${d}/runtime.log || { cat ${d}/runtime.log >&2; exit 1; }`,
        ].join('\n'),
        { logger: ctx.logger, timeoutMs: 30_000 },
      );
      return sandbox;
    } catch (err) {
      await sandbox.destroy().catch(() => {});
      throw err;
    }
  }

  /** Sets this sandbox's limits just before a job runs (the pool creates sandboxes with the defaults). */
  setLimits(limits: Limits): void {
    const cg = (controller: string, file: string) => path.join(CGROUP_ROOT, controller, hostNames(this.ctx.config).cgroupParent, this.id, file);
    const mem = String(limits.memoryMb * 1024 * 1024);
    const current = Number(readFileSync(cg('memory', 'memory.limit_in_bytes'), 'utf8'));
    // memsw must stay ≥ the memory limit at every step, so the order depends on the direction.
    const steps: Array<[string, string]> =
      Number(mem) > current
        ? [[cg('memory', 'memory.memsw.limit_in_bytes'), mem], [cg('memory', 'memory.limit_in_bytes'), mem]]
        : [[cg('memory', 'memory.limit_in_bytes'), mem], [cg('memory', 'memory.memsw.limit_in_bytes'), mem]];
    steps.push([cg('cpu', 'cpu.cfs_quota_us'), String(Math.round(limits.vcpus * 100_000))]);
    steps.push([cg('pids', 'pids.max'), String(limits.pids)]);
    for (const [file, value] of steps) writeFileSync(file, value);
  }

  /** True when the kernel killed something in this sandbox for exceeding its memory limit. */
  oomKilled(): boolean {
    try {
      const text = readFileSync(path.join(CGROUP_ROOT, 'memory', hostNames(this.ctx.config).cgroupParent, this.id, 'memory.oom_control'), 'utf8');
      const m = text.match(/oom_kill (\d+)/);
      return m ? Number(m[1]) > 0 : false;
    } catch {
      return false;
    }
  }

  /** Starts `/bin/sh -c script` inside the sandbox with the sandbox's full hardening. */
  exec(script: string, env: Record<string, string>): ChildProcessWithoutNullStreams {
    const file = path.join(this.dir, `exec-${++this.execCount}.json`);
    writeFileSync(file, JSON.stringify(processSpec(['/bin/sh', '-c', script], env)));
    return spawn(this.ctx.config.runtime, ['--root', this.ctx.config.runtimeRoot, 'exec', '--process', file, this.id], {
      stdio: ['pipe', 'pipe', 'pipe'],
    });
  }

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
    await run(
      '/bin/sh',
      [
        '-c',
        [
          `${this.ctx.config.runtime} --root ${shq(this.ctx.config.runtimeRoot)} delete -f ${this.id} >/dev/null 2>&1`,
          `umount ${d}/rootfs 2>/dev/null || umount -l ${d}/rootfs 2>/dev/null`,
          `umount ${d}/fs 2>/dev/null || umount -l ${d}/fs 2>/dev/null`,
          `rm -rf ${d}`,
          netnsDownScript(this.id),
          'true',
        ].join('; '),
      ],
      { allowFailure: true, logger: this.ctx.logger, timeoutMs: 30_000 },
    );
    if (this.link) this.ctx.slots.release(this.link.slot);
  }
}
