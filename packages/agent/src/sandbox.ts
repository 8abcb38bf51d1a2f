// One sandbox on this host: its overlay root, network namespace, cgroup and the OCI container that holds them.
// A sandbox is created ahead of time with `crun run` in the foreground: PID 1 is a reaping init, PID 2 a launcher
// waiting on stdin. A job is started by writing it to that stdin, so nothing is spawned on the start path; its
// output comes back on the runtime's stdout/stderr pipes and its exit code is the runtime's.
import { type ChildProcessWithoutNullStreams, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import {
  chownSync,
  existsSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { rm } from 'node:fs/promises';
import path from 'node:path';
import { SANDBOX_TOOL } from '@mags/api';
import type { Logger } from 'pino';
import { type Limits, ociConfig, processSpec, READY_LINE } from './bundle.js';
import { SandboxCgroup } from './cgroups.js';
import { type AgentConfig, hostNames, imagePath } from './config.js';
import type { DiskLedger } from './disks.js';
import type { HostHelper } from './hostd.js';
import type { Layer, LayerPool } from './layers.js';
import {
  addNetns,
  type Link,
  type NetnsPool,
  removeNetns,
  resolvConf,
  type SlotAllocator,
  writeHostsFile,
} from './network.js';
import { killGroup, run } from './process.js';
import type { RuntimeProcess, RuntimeSpawner } from './spawner.js';

export interface HostContext {
  config: AgentConfig;
  logger: Logger;
  slots: SlotAllocator;
  netnsPool: NetnsPool;
  /** The disks this agent has promised; an ephemeral layer is made only if it fits. */
  disks: DiskLedger;
  /** Mounts, unmounts and network namespaces, by system call in the host helper. */
  hostd: HostHelper;
  /** Ephemeral writable layers, emptied and handed from one sandbox to the next. */
  layers: LayerPool;
  /** Starts `crun run` (a fork of a small process, not of the server). */
  spawner: RuntimeSpawner;
  /** The seccomp program crun compiled for the first sandbox, given to the next ones. */
  seccomp: SeccompCache;
}

/**
 * The seccomp filter as crun compiled it from the bundle's `seccomp` section (it is the same for every sandbox):
 * taken from the first sandbox's runtime state (`<runtime root>/<id>/seccomp.bpf`, which crun writes for its own
 * `crun exec`s) once that sandbox runs, and handed to later sandboxes as crun's raw-filter annotation, so crun loads
 * the very same program without compiling ~400 rules again at every sandbox start. The runtime's state directory is
 * root's alone (0700, never inside a sandbox). Until it is known (or if reading it failed) crun compiles the section.
 */
export class SeccompCache {
  bpf?: string;

  /** Takes the program from a sandbox that was started from the section (not from the annotation). */
  learn(runtimeRoot: string, id: string, logger: Logger): void {
    if (this.bpf) return;
    try {
      const program = readFileSync(path.join(runtimeRoot, id, 'seccomp.bpf'));
      // A program is whole 8-byte instructions (struct sock_filter), at most the kernel's 4096 of them.
      if (program.length === 0 || program.length % 8 !== 0 || program.length > 4096 * 8)
        throw new Error(`a seccomp program of ${program.length} bytes`);
      this.bpf = program.toString('base64');
    } catch (err) {
      logger.warn(
        { err, sandbox: id },
        'could not take the compiled seccomp filter: crun compiles it for each sandbox',
      );
    }
  }
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

const SIGNALS: Record<string, number> = {
  SIGHUP: 1,
  SIGINT: 2,
  SIGQUIT: 3,
  SIGABRT: 6,
  SIGKILL: 9,
  SIGSEGV: 11,
  SIGPIPE: 13,
  SIGTERM: 15,
};

/** How often a running job's script process is looked at; a sandbox outlives its script by one to two of these. */
const SCRIPT_WATCH_MS = 1000;
/** After the agent kills a sandbox whose script has ended, how long the runtime gets before its processes are killed directly. */
const KILL_GRACE_MS = 10_000;

/** A process on the host, identified by pid and start time (so a reused pid is not mistaken for it). */
interface HostProcess {
  pid: number;
  start: string;
}

/** Fields 3.. of /proc/<pid>/stat (after the parenthesised name, which may hold spaces). */
function statFields(pid: number): string[] | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  } catch {
    return undefined;
  }
}

/** Pids of a process's children (one thread's; the runtime and the init fork from their main thread). */
function children(pid: number): number[] {
  try {
    return readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').trim().split(' ').filter(Boolean).map(Number);
  } catch {
    return [];
  }
}

/**
 * The first process below `root` (children first, then their children, `depth` levels) whose pid in its own
 * (innermost) PID namespace is `nsPid`.
 */
function descendantWithNsPid(root: number, nsPid: number, depth: number): HostProcess | undefined {
  let level = children(root);
  for (let d = 0; d < depth && level.length; d++) {
    for (const pid of level) {
      try {
        const nspid = /^NSpid:\s+(.*)$/m
          .exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1]
          .trim()
          .split(/\s+/);
        const start = statFields(pid)?.[19];
        if (nspid && Number(nspid[nspid.length - 1]) === nsPid && start) return { pid, start };
      } catch {
        /* exited meanwhile */
      }
    }
    level = level.flatMap(children);
  }
  return undefined;
}

/**
 * The script's process as the host sees it: it is the launcher, PID 2 of the sandbox, the init's (PID 1's) first
 * child, and the job's shell replaced it by exec. The init is the runtime's child (or grandchild, should the runtime
 * fork in between).
 */
function findScript(runtimePid: number): HostProcess | undefined {
  const init = descendantWithNsPid(runtimePid, 1, 2);
  return init && descendantWithNsPid(init.pid, 2, 1);
}

/**
 * Whether the script has ended: its exit code (128+n when killed by signal n) while it is a zombie its init has not
 * reaped, 'gone' once it has been reaped (or its pid reused), undefined while it runs.
 */
function scriptEnded(p: HostProcess): number | 'gone' | undefined {
  const f = statFields(p.pid);
  if (!f || f[19] !== p.start) return 'gone';
  if (f[0] !== 'Z' && f[0] !== 'X') return undefined;
  const status = Number(f[49]); // field 52: the exit status as wait(2) reports it
  if (!Number.isInteger(status)) return 'gone';
  return (status & 0x7f) === 0 ? (status >> 8) & 0xff : 128 + (status & 0x7f);
}

/**
 * What the launcher (`/.mags/tool launch`) reads on its stdin: each variable `NAME=VALUE` ended by a NUL, an empty
 * entry, then the script, which it runs as `/bin/sh -c SCRIPT` in /root. Names are checked by the protocol's schema
 * (letters, digits, `_`); a NUL inside a value could not reach a program anyway and is dropped.
 */
export function jobInput(script: string, env: Record<string, string>): string {
  const entries = Object.entries(env).map(([k, v]) => `${k}=${v.replaceAll('\0', '')}\0`);
  return `${entries.join('')}\0${script}`;
}

/** The launcher's program for a long-lived sandbox: the static init again, in pause mode, until the sandbox is stopped. */
export const KEEPER_PROGRAM = 'exec /.mags/init -P';

/** A command started in a running sandbox by `crun exec`. */
export interface ExecProcess {
  /** The runtime's process on the host; its stdio are the command's. */
  child: ChildProcessWithoutNullStreams;
  /** The command's process group on the host, once it runs (undefined if it never did). */
  group: Promise<number | undefined>;
  /** Resizes the command's terminal (a no-op without one). */
  resize(cols: number, rows: number): void;
  /**
   * With a terminal, the command runs in a session of its own under the tool (not in the exec's group): SIGKILLs
   * every process of that session, as signalling the group does without one. A no-op without a terminal.
   */
  killTerminal(): Promise<void>;
}

/** SIGKILLs every process whose session is led by a child of `leader` (the sessions the tool made). */
export function killChildSessions(leader: number): void {
  const sessions = new Set(children(leader));
  if (sessions.size === 0) return;
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    if (!sessions.has(Number(statFields(Number(entry))?.[3]))) continue;
    try {
      process.kill(Number(entry), 'SIGKILL');
    } catch {
      /* gone */
    }
  }
}

/** A terminal for an exec: its type and size. */
export interface ExecTerminal {
  term: string;
  cols: number;
  rows: number;
}

export class Sandbox {
  private destroyed = false;
  private runtime?: RuntimeProcess;
  private sink?: (stream: 'stdout' | 'stderr', chunk: Buffer) => void;
  private runtimeExit?: Promise<number | null>;
  readonly cgroup: SandboxCgroup;

  private constructor(
    readonly id: string,
    readonly dir: string,
    readonly options: SandboxOptions,
    /** Network namespace name (the sandbox's own: made with it, or ahead of it by the NetnsPool). */
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
    // A network namespace of its own, made ahead or now; never one an earlier sandbox had (see NetnsPool).
    const spare = options.network === 'internet' ? ctx.netnsPool.take() : undefined;
    const link = spare?.link ?? (options.network === 'internet' ? ctx.slots.take() : undefined);
    const sandbox = new Sandbox(id, dir, options, spare?.name ?? id, link, ctx);
    try {
      // Before any host work: a layer that does not fit is refused with a sentence (507).
      // 0710, group = the sandbox's root: crun, already inside the user namespace, must reach rootfs/ and the files
      // it binds; no other host user may (a sandbox's layer holds whatever its script made: setuid files, …).
      mkdirSync(dir, { mode: 0o710 });
      chownSync(dir, 0, config.userns.hostId);
      mkdirSync(path.join(dir, 'rootfs'));
      mkdirSync(sandbox.files);
      writeHostsFile(path.join(sandbox.files, 'hosts'));
      writeFileSync(path.join(sandbox.files, 'resolv.conf'), resolvConf(link));
      sandbox.cgroup.create(options.limits);
      const oci = ociConfig({
        rootfs: path.join(dir, 'rootfs'),
        netnsPath: `/run/netns/${sandbox.netns}`,
        cgroupsPath: sandbox.cgroup.runtimePath,
        hostsFile: path.join(sandbox.files, 'hosts'),
        resolvFile: path.join(sandbox.files, 'resolv.conf'),
        initBinary: path.join(names.filesDir, 'init'),
        toolBinary: path.join(names.filesDir, 'tool'),
        userns: config.userns,
        seccompBpf: ctx.seccomp.bpf,
      });
      writeFileSync(path.join(dir, 'config.json'), JSON.stringify(oci));
      // The host side, by the host helper (no process): namespace and veth, the size-limited upper layer, the
      // overlay root. An ephemeral upper layer is a sparse ext4 of `diskGb` (made here, in the warm pool, off the
      // start path): writing past it gives the script ENOSPC (a tmpfs charged to the memory limit was an OOM kill),
      // and it can't fill the host disk. Its upper directory (the sandbox's /) belongs to the sandbox's root. Every
      // mount is nosuid,nodev: a setuid file or a device node a sandbox makes is inert on the host.
      // The overlay is mounted from the sandbox's directory with relative paths (links to the layers), because the
      // sandbox reads its root's mount options in /proc/self/mountinfo: they name no host path.
      const lowers = [...(options.lowers ?? []), imagePath(config)].map((layer, i) => {
        symlinkSync(layer, path.join(dir, `l${i}`));
        return `l${i}`;
      });
      if (options.upper) {
        symlinkSync(options.upper.upper, path.join(dir, 'upper'));
        symlinkSync(options.upper.work, path.join(dir, 'work'));
      }
      const upper = options.upper ? ['upperdir=upper', 'workdir=work'] : ['upperdir=fs/upper', 'workdir=fs/work'];
      const { hostd } = ctx;
      // An emptied layer of an earlier sandbox, or a new one (507 if its disk does not fit: before any other work).
      const layer = async () => {
        if (options.upper) return;
        sandbox.layer = await ctx.layers.take(options.diskGb);
        // Bound at the sandbox's fs/ (not linked): the overlay's options name it relatively, and an unmount of the
        // bind is all the layer's handing on needs.
        mkdirSync(path.join(dir, 'fs'), { mode: 0o700 });
        await hostd.request('bind-layer', sandbox.layer.mount, path.join(dir, 'fs'));
      };
      await Promise.all([spare ? undefined : addNetns(hostd, sandbox.netns, link), layer()]);
      await hostd.request(
        'mount-overlay',
        dir,
        ['nosuid', 'nodev', `lowerdir=${lowers.join(':')}`, ...upper, 'xino=off'].join(','),
      );
      await sandbox.startRuntime();
      if (!oci.annotations) ctx.seccomp.learn(config.runtimeRoot, id, ctx.logger);
      return sandbox;
    } catch (err) {
      await sandbox.destroy().catch(() => {});
      throw err;
    }
  }

  private async startRuntime(): Promise<void> {
    // `crun run --bundle <dir> <id>` in a session of its own, started by the spawner.
    const child = await this.ctx.spawner.run(this.dir, this.id);
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
        if (!ready)
          reject(
            new Error(
              `the runtime exited (${code}) before the sandbox was ready: ${errText.trim() || 'no error output'}`,
            ),
          );
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
    runtime.stdin.end(jobInput(script, env));
    return {
      onOutput: (handler) => {
        for (const [s, c] of buffered.splice(0)) handler(s, c);
        this.sink = handler;
      },
      exited: this.watchScript(runtime, this.runtimeExit),
    };
  }

  /**
   * Starts `/bin/sh -c command` in the running sandbox with `crun exec`: the same process section as the init's
   * (user, capabilities, no new privileges, rlimits, oom score) and, from the container, its namespaces, cgroup and
   * seccomp filter, so an exec'd process is exactly as confined as the sandbox's own. Its stdio are the runtime's.
   */
  exec(command: string, env: Record<string, string>, cwd: string, tty?: ExecTerminal): ExecProcess {
    if (!this.alive) throw new Error(`sandbox ${this.id} is not running`);
    const { config } = this.ctx;
    const tag = `exec-${randomBytes(6).toString('hex')}`;
    const spec = path.join(this.dir, `${tag}.json`);
    const pidFile = path.join(this.dir, `${tag}.pid`);
    // The runtime starts the process in a new session of its own (made by an intermediate process, so its id is
    // known only once the process runs). The process waits for a line on fd 3 before it becomes the command, so the
    // agent reads that session's process group first, however quickly the command would end.
    // With a terminal, the command runs under the tool, which makes the terminal inside the sandbox (its own devpts)
    // and reads new sizes from fd 4.
    const run = tty
      ? `exec ${SANDBOX_TOOL} pty --size ${tty.cols}x${tty.rows} --control 4 -- /bin/sh -c "$1"`
      : 'exec /bin/sh -c "$1"';
    const args = ['/bin/sh', '-c', `read _ <&3; exec 3<&-; ${run}`, 'mags-exec', command];
    writeFileSync(spec, JSON.stringify(processSpec(args, tty ? { ...env, TERM: tty.term } : env, cwd)), {
      mode: 0o600,
    });
    const fds = tty ? 2 : 1;
    const child = spawn(
      config.runtime,
      [
        '--root',
        config.runtimeRoot,
        'exec',
        '--process',
        spec,
        '--pid-file',
        pidFile,
        '--preserve-fds',
        String(fds),
        this.id,
      ],
      { stdio: tty ? ['pipe', 'pipe', 'pipe', 'pipe', 'pipe'] : ['pipe', 'pipe', 'pipe', 'pipe'], detached: true },
    ) as ChildProcessWithoutNullStreams;
    const control = tty
      ? (child.stdio[4] as unknown as NodeJS.WritableStream & { on(e: 'error', f: () => void): void })
      : undefined;
    control?.on('error', () => {});
    child.stdin.on('error', () => {});
    const go = child.stdio[3] as unknown as NodeJS.WritableStream & {
      destroy(): void;
      on(e: 'error', f: () => void): void;
    };
    go.on('error', () => {});
    const group = new Promise<number | undefined>((resolve) => {
      let done = false;
      const finish = (pgrp: number | undefined) => {
        if (done) return;
        done = true;
        clearInterval(poll);
        rmSync(spec, { force: true });
        rmSync(pidFile, { force: true });
        if (pgrp !== undefined) go.write('\n');
        go.end();
        resolve(pgrp);
      };
      const poll = setInterval(() => {
        let pid: number;
        try {
          pid = Number(readFileSync(pidFile, 'utf8').trim());
        } catch {
          return; // not written yet
        }
        if (!Number.isInteger(pid) || pid <= 0) return; // created but not written yet (crun writes it in place)
        const pgrp = Number(statFields(pid)?.[2]);
        finish(Number.isInteger(pgrp) && pgrp > 0 ? pgrp : undefined);
      }, 1);
      child.once('exit', () => finish(undefined));
      child.once('error', () => finish(undefined));
    });
    const resize = (cols: number, rows: number) => {
      if (control?.writable) control.write(`${cols} ${rows}\n`);
    };
    const killTerminal = async () => {
      const leader = await group;
      if (tty && leader !== undefined) killChildSessions(leader);
    };
    return { child, group, resize, killTerminal };
  }

  /**
   * The job's exit code. Normally the runtime's: the init exits when the script does, and the PID namespace with it.
   * But a script can stop its init (ptrace, /proc/1/mem) so that it never reaps the script nor exits. So, once a
   * second (a timer: nothing on the start path), the agent looks at the script's process; when it has ended and the
   * runtime is still there a tick later, the agent takes the script's exit code from /proc and kills the sandbox.
   * The promise resolves once the runtime has gone, so all output has been read.
   */
  private watchScript(runtime: RuntimeProcess, runtimeExit: Promise<number | null>): Promise<number | null> {
    let script: HostProcess | undefined;
    let ended: number | 'gone' | undefined;
    let killed = false;
    let override: number | undefined;
    const timer = setInterval(() => {
      if (killed || this.destroyed) return;
      script ??= findScript(runtime.pid!);
      if (!script) return;
      const now = scriptEnded(script);
      if (now !== undefined && ended !== undefined) {
        // Ended a tick ago and the sandbox is still there. A zombie keeps its code; if the init did reap the script
        // but then did not exit, the code is the first one seen, or else the runtime's after the kill.
        killed = true;
        override = typeof ended === 'number' ? ended : typeof now === 'number' ? now : undefined;
        this.ctx.logger.warn(
          { sandbox: this.id, exitCode: override },
          'the script ended but its sandbox did not: killing the sandbox',
        );
        void this.kill();
        setTimeout(() => {
          if (runtime.exitCode !== null || runtime.signalCode !== null) return;
          const init = descendantWithNsPid(runtime.pid!, 1, 2);
          try {
            if (init) process.kill(init.pid, 'SIGKILL');
          } catch {
            /* gone meanwhile */
          }
          killGroup(runtime.pid);
        }, KILL_GRACE_MS).unref();
      }
      if (typeof ended !== 'number') ended = now;
    }, SCRIPT_WATCH_MS);
    return runtimeExit.then((code) => {
      clearInterval(timer);
      return override ?? code;
    });
  }

  /**
   * Unmounts the overlay root of a sandbox whose processes are all gone, so that its writable layer (a workspace)
   * may be mounted again at once; destroy() does the rest later.
   */
  async unmountRoot(): Promise<void> {
    if (this.alive) throw new Error(`sandbox ${this.id} is still running`);
    await this.ctx.hostd.request('umount', this.rootfs);
    this.rootUnmounted = true;
  }

  /** True once the root overlay is unmounted (its writable layer is free). */
  rootUnmounted = false;

  /** The ephemeral writable layer (none for a workspace sandbox). */
  layer?: Layer;

  /** This sandbox's files bound into it (hosts, resolv.conf), on the agent's tmpfs for them. */
  get files(): string {
    const names = hostNames(this.ctx.config);
    return path.join(names.filesDir, this.id.slice(names.sandboxPrefix.length));
  }

  /** The sandbox's root filesystem as the host sees it (the overlay mount). */
  get rootfs(): string {
    return path.join(this.dir, 'rootfs');
  }

  /** Kills every process in the sandbox (the PID namespace dies with its init). */
  async kill(): Promise<void> {
    await run(this.ctx.config.runtime, ['--root', this.ctx.config.runtimeRoot, 'kill', this.id, 'KILL'], {
      allowFailure: true,
      logger: this.ctx.logger,
    });
    // A frozen process dies of its SIGKILL only once thawed.
    if (this.frozen) await this.thaw().catch(() => {});
  }

  /** True while the sandbox's processes are frozen (asleep). */
  frozen = false;

  /**
   * Freezes every process of the sandbox (the cgroup freezer): they keep their memory and use no CPU until thaw().
   * Nothing is spawned. False if the kernel did not finish freezing them (the sandbox is then thawed again).
   */
  async freeze(): Promise<boolean> {
    if (!this.alive || this.frozen) return false;
    this.frozen = true;
    // A thaw asked for while the kernel is still freezing (an exec arrived) ends the freeze: it writes THAWED and
    // clears `frozen`, and the freeze never writes FROZEN after that.
    if ((await this.cgroup.setFrozen(true, () => this.frozen)) && this.frozen) return true;
    if (this.frozen) await this.thaw(); // the kernel did not finish freezing: run on
    return false;
  }

  async thaw(): Promise<void> {
    if (!this.frozen) return;
    this.frozen = false; // first, so that a freeze still settling stops
    await this.cgroup.setFrozen(false);
  }

  /** Removes everything the sandbox created on the host: container, cgroups, mounts, namespace, directory. */
  async destroy(): Promise<void> {
    if (this.destroyed) return;
    this.destroyed = true;
    // Frozen processes would not die of the runtime's kill.
    if (this.frozen) await this.thaw().catch(() => {});
    const { config, hostd, logger } = this.ctx;
    const log = (err: Error) => {
      logger.warn({ err, sandbox: this.id }, 'sandbox cleanup');
      return undefined;
    };
    // `crun run` removes its container when it ends: the runtime is only asked when it is still there.
    const running = this.runtime && this.runtime.exitCode === null && this.runtime.signalCode === null;
    if (this.layer && this.runtime && !running) this.ctx.layers.settle(this.layer);
    if (running || existsSync(path.join(config.runtimeRoot, this.id))) {
      await run(config.runtime, ['--root', config.runtimeRoot, 'delete', '-f', this.id], {
        allowFailure: true,
        logger,
      });
    }
    let root = await hostd.request('umount', this.rootfs).catch(log);
    if (this.layer && root !== undefined) {
      const bound = await hostd.request('umount', path.join(this.dir, 'fs')).catch(log);
      root = bound === undefined ? undefined : root || bound;
    }
    // The layer is emptied for another sandbox only if nothing of this one can still reach it: its processes had
    // all ended before (so the overlay was not busy, and was unmounted at once, not lazily).
    if (this.layer) await this.ctx.layers.give(this.layer, !running && root === '');
    // Never deleted through a mount that is still there (a workspace's layer, or the image below the overlay):
    // rm does not follow the links to the layers.
    if (root !== undefined) await rm(this.dir, { recursive: true, force: true }).catch(log);
    await removeNetns(hostd, this.netns).catch(log);
    if (this.runtime && this.runtime.exitCode === null && this.runtime.signalCode === null) killGroup(this.runtime.pid);
    await this.runtimeExit;
    rmSync(this.files, { recursive: true, force: true });
    this.cgroup.remove();
    if (this.link) this.ctx.slots.release(this.link.slot);
  }
}
