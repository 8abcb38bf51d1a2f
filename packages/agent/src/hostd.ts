// The agent's host helper (native/mags-hostd.c): one long-lived root child that mounts and unmounts layers and
// overlay roots and makes and removes network namespaces with their veth, by system call, on request over its
// stdin/stdout pipes. A sandbox then costs no program per host step. The pipes are the only way to talk to it
// (only the agent holds their other ends); it accepts only paths under the agent's sandboxes directory (layer
// templates under their own) and namespace names of this agent, and it dies with the agent.
import { type ChildProcessWithoutNullStreams, spawn } from 'node:child_process';
import path from 'node:path';
import type { Logger } from 'pino';

/** Built beside the agent's sources (packages/agent/native) by scripts/build-tool.sh, from src/ and dist/ alike. */
export const HOSTD_BINARY = path.resolve(import.meta.dirname, '../native/mags-hostd');

/** A request the helper refused or could not do: its errno and its sentence. */
export class HostdError extends Error {
  constructor(
    readonly errno: number,
    message: string,
  ) {
    super(message);
  }
}

export interface HostdOptions {
  /** The directory every path of a request must lie under (the agent's sandboxes). */
  sandboxes: string;
  /** Where the layer templates are (the source of copy-layer). */
  templates: string;
  /** The prefix of every network namespace name of this agent. */
  netnsPrefix: string;
  logger: Logger;
  binary?: string;
}

export type HostdRequest =
  | ['copy-layer', string, string]
  | ['mount-layer', string, string]
  | ['mount-overlay', string, string]
  | ['bind-layer', string, string]
  | ['umount', string]
  | ['netns-add', string]
  | ['netns-add', string, string, string, string]
  | ['netns-del', string];

interface Pending {
  resolve: (text: string) => void;
  reject: (err: Error) => void;
  what: string;
}

/**
 * Several helper processes, each serial: one slow request (a loop device's detach waits for the kernel) holds up
 * only the requests sent to the same one. A request goes to the one with the fewest outstanding.
 */
export class HostHelper {
  private readonly helpers: HelperProcess[];
  private closed = false;

  constructor(options: HostdOptions, count = 3) {
    this.helpers = Array.from({ length: count }, () => new HelperProcess(options));
  }

  /** Performs a request; resolves with the helper's note ("lazy": an unmount left for the kernel to finish). */
  request(...req: HostdRequest): Promise<string> {
    if (this.closed) return Promise.reject(new Error('the host helper is closed'));
    let best = this.helpers[0];
    for (const h of this.helpers) if (h.outstanding < best.outstanding) best = h;
    return best.request(...req);
  }

  close(): void {
    this.closed = true;
    for (const h of this.helpers) h.close();
  }
}

class HelperProcess {
  private child?: ChildProcessWithoutNullStreams;
  private readonly pending = new Map<number, Pending>();
  private next = 1;
  private closed = false;
  /** Requests made in this tick, written to the helper together. */
  private queued: string[] = [];

  constructor(private readonly options: HostdOptions) {}

  get outstanding(): number {
    return this.pending.size;
  }

  private start(): ChildProcessWithoutNullStreams {
    const { options } = this;
    const child = spawn(
      options.binary ?? HOSTD_BINARY,
      ['--sandboxes', options.sandboxes, '--templates', options.templates, '--netns-prefix', options.netnsPrefix],
      { stdio: ['pipe', 'pipe', 'pipe'] },
    );
    this.child = child;
    let partial = '';
    let stderr = '';
    child.stdout.on('data', (b: Buffer) => {
      const lines = (partial + b.toString()).split('\n');
      partial = lines.pop() ?? '';
      for (const line of lines) {
        const [id, code, ...text] = line.split('\t');
        const p = this.pending.get(Number(id));
        if (!p) continue;
        this.pending.delete(Number(id));
        if (code === '0') p.resolve(text.join(' '));
        else p.reject(new HostdError(Number(code), `${p.what}: ${text.join(' ') || `errno ${code}`}`));
      }
    });
    child.stderr.on('data', (b: Buffer) => {
      stderr = (stderr + b.toString()).slice(-2000);
    });
    child.stdin.on('error', () => {});
    const gone = (why: string) => {
      if (this.child !== child) return;
      this.child = undefined;
      if (!this.closed) options.logger.error({ why, stderr }, 'the host helper ended; a new one starts on demand');
      for (const [id, p] of this.pending) {
        this.pending.delete(id);
        p.reject(new Error(`${p.what}: the host helper ended (${why}) ${stderr.trim()}`));
      }
    };
    child.on('error', (err) => gone(err.message));
    child.on('exit', (code, signal) => gone(`code ${code}, signal ${signal}`));
    return child;
  }

  /** Performs one request; requests made in the same tick go to the helper in one write. */
  request(...req: HostdRequest): Promise<string> {
    if (this.closed) return Promise.reject(new Error('the host helper is closed'));
    for (const a of req)
      if (/[\t\n]/.test(a)) return Promise.reject(new Error(`a host request may not hold a tab or newline: ${a}`));
    const id = this.next++;
    return new Promise<string>((resolve, reject) => {
      this.pending.set(id, { resolve, reject, what: req.join(' ') });
      if (this.queued.length === 0) queueMicrotask(() => this.flush());
      this.queued.push(`${id}\t${req.join('\t')}\n`);
    });
  }

  private flush(): void {
    const lines = this.queued.splice(0);
    if (!lines.length) return;
    const child = this.child ?? this.start();
    child.stdin.write(lines.join(''));
  }

  close(): void {
    this.closed = true;
    this.child?.stdin.end();
    this.child = undefined;
  }
}
