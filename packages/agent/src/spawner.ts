// The runtime spawner (native/mags-spawn.c): one long-lived root child that starts `crun run` for a sandbox on
// request. Node's spawn forks the whole server process (the agent lives in it): 5-8 ms of the event loop per
// sandbox, the largest CPU item of a job; the spawner's fork costs well under a millisecond. Each runtime's stdio
// are pipes the spawner made; the agent opens their other ends through /proc (root only), so the runtime looks to
// the sandbox code like a child it spawned: pid, stdin, stdout, stderr, `exit` and `close`.
import { type ChildProcessWithoutNullStreams, spawn } from 'node:child_process';
import { EventEmitter } from 'node:events';
import { closeSync, constants, openSync } from 'node:fs';
import { Socket } from 'node:net';
import path from 'node:path';
import type { Readable, Writable } from 'node:stream';
import type { Logger } from 'pino';

/** Built beside the agent's sources (packages/agent/native) by scripts/build-tool.sh, from src/ and dist/ alike. */
export const SPAWN_BINARY = path.resolve(import.meta.dirname, '../native/mags-spawn');

const SIGNAL_NAMES: Record<number, NodeJS.Signals> = {
  1: 'SIGHUP',
  2: 'SIGINT',
  3: 'SIGQUIT',
  6: 'SIGABRT',
  9: 'SIGKILL',
  11: 'SIGSEGV',
  13: 'SIGPIPE',
  15: 'SIGTERM',
};

/**
 * A runtime the spawner started, as the sandbox sees a child process: `exit` (code, signal) when it ends, then
 * `close` once its stdout and stderr are closed too (every holder of them is gone, so all output has been read).
 */
export class RuntimeProcess extends EventEmitter {
  exitCode: number | null = null;
  signalCode: NodeJS.Signals | null = null;
  readonly stdin: Writable;
  readonly stdout: Readable;
  readonly stderr: Readable;
  private open = 2;
  private ended = false;

  constructor(
    readonly pid: number,
    [inFd, outFd, errFd]: number[],
  ) {
    super();
    this.stdin = new Socket({ fd: inFd, readable: false, writable: true });
    this.stdout = new Socket({ fd: outFd, readable: true, writable: false });
    this.stderr = new Socket({ fd: errFd, readable: true, writable: false });
    for (const s of [this.stdout, this.stderr])
      s.once('close', () => {
        this.open--;
        this.maybeClose();
      });
  }

  /** The spawner reported its end: its exit code, or the signal that ended it (both null: unknown). */
  exited(code: number | null, signal: NodeJS.Signals | null): void {
    if (this.ended) return;
    this.ended = true;
    this.exitCode = code;
    this.signalCode = signal;
    this.emit('exit', code, signal);
    this.maybeClose();
  }

  private maybeClose(): void {
    if (!this.ended || this.open !== 0) return;
    this.open = -1;
    this.emit('close', this.exitCode, this.signalCode);
  }
}

export interface SpawnerOptions {
  runtime: string;
  runtimeRoot: string;
  sandboxes: string;
  prefix: string;
  logger: Logger;
  binary?: string;
}

interface Waiting {
  resolve: (proc: RuntimeProcess) => void;
  reject: (err: Error) => void;
}

export class RuntimeSpawner {
  private child?: ChildProcessWithoutNullStreams;
  private next = 1;
  private closed = false;
  /** Requests sent, by id, until answered. */
  private readonly pending = new Map<number, Waiting>();
  /** Runtimes started, by pid, until the spawner reports their end. */
  private readonly running = new Map<number, RuntimeProcess>();
  /** Requests made in this tick, written to the spawner together. */
  private queued: string[] = [];

  constructor(private readonly options: SpawnerOptions) {}

  /** Starts `runtime --root R run --bundle DIR NAME` in a session of its own; resolves once its pipes are open here. */
  run(bundle: string, name: string): Promise<RuntimeProcess> {
    if (this.closed) return Promise.reject(new Error('the runtime spawner is closed'));
    if (/[\t\n]/.test(bundle + name))
      return Promise.reject(new Error(`a sandbox path may not hold a tab or newline: ${bundle}`));
    const id = this.next++;
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      this.send(`${id}\trun\t${bundle}\t${name}\n`);
    });
  }

  private send(line: string): void {
    if (this.queued.length === 0) queueMicrotask(() => this.flush());
    this.queued.push(line);
  }

  private flush(): void {
    const lines = this.queued.splice(0);
    if (!lines.length || this.closed) return;
    const child = this.child ?? this.start();
    child.stdin.write(lines.join(''));
  }

  private start(): ChildProcessWithoutNullStreams {
    const { options } = this;
    const child = spawn(
      options.binary ?? SPAWN_BINARY,
      [
        '--runtime',
        options.runtime,
        '--runtime-root',
        options.runtimeRoot,
        '--sandboxes',
        options.sandboxes,
        '--prefix',
        options.prefix,
      ],
      { stdio: ['pipe', 'pipe', 'pipe'] },
    );
    this.child = child;
    let partial = '';
    let stderr = '';
    child.stdout.on('data', (b: Buffer) => {
      const lines = (partial + b.toString()).split('\n');
      partial = lines.pop() ?? '';
      for (const line of lines) this.answer(child.pid!, line);
    });
    child.stderr.on('data', (b: Buffer) => {
      stderr = (stderr + b.toString()).slice(-2000);
    });
    child.stdin.on('error', () => {});
    const gone = (why: string) => {
      if (this.child !== child) return;
      this.child = undefined;
      if (!this.closed) options.logger.error({ why, stderr }, 'the runtime spawner ended; a new one starts on demand');
      const err = new Error(`the runtime spawner ended (${why}) ${stderr.trim()}`);
      for (const [id, w] of this.pending) {
        this.pending.delete(id);
        w.reject(err);
      }
      // Runtimes it started run on, but their end can no longer be learnt: they count as failed once their output closes.
      for (const [pid, proc] of this.running) {
        this.running.delete(pid);
        proc.exited(null, null);
      }
    };
    child.on('error', (err) => gone(err.message));
    child.on('exit', (code, signal) => gone(`code ${code}, signal ${signal}`));
    return child;
  }

  private answer(spawnerPid: number, line: string): void {
    const f = line.split('\t');
    if (f[0] === 'x') {
      const pid = Number(f[1]);
      const proc = this.running.get(pid);
      if (!proc) return;
      this.running.delete(pid);
      const code = Number(f[2]);
      const signal = Number(f[3]);
      proc.exited(code >= 0 ? code : null, code >= 0 ? null : (SIGNAL_NAMES[signal] ?? 'SIGKILL'));
      return;
    }
    const id = Number(f[0]);
    const w = this.pending.get(id);
    if (!w) return; // a release's answer
    this.pending.delete(id);
    if (f[1] !== '0') {
      w.reject(new Error(`the runtime could not be started: ${f.slice(2).join(' ')}`));
      return;
    }
    const [pid, ...fds] = f[2].split(' ').map(Number);
    const opened: number[] = [];
    try {
      // Opened before the spawner lets go of them; O_NONBLOCK so that opening an end whose runtime has already
      // ended does not wait for a writer that will never come.
      for (const [i, fd] of fds.entries()) {
        const mode = (i === 0 ? constants.O_WRONLY : constants.O_RDONLY) | constants.O_NONBLOCK;
        opened.push(openSync(`/proc/${spawnerPid}/fd/${fd}`, mode));
      }
      const proc = new RuntimeProcess(pid, opened);
      this.running.set(pid, proc);
      w.resolve(proc);
    } catch (err) {
      for (const fd of opened) closeSync(fd);
      // A runtime nobody can talk to must not run on: its session is killed (it is not a sandbox of any job).
      try {
        process.kill(-pid, 'SIGKILL');
      } catch {
        /* gone */
      }
      w.reject(new Error(`the runtime's pipes could not be opened: ${(err as Error).message}`));
    } finally {
      this.send(`${this.next++}\trelease\t${pid}\n`);
    }
  }

  close(): void {
    this.closed = true;
    this.child?.stdin.end();
    this.child = undefined;
  }
}
