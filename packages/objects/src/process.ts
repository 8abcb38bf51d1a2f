// Every external program the project runs goes through here (this package's flock, mknod, getfattr, setfattr;
// the agent's crun, ip, nft, mount): the command is logged, stderr is captured into the error, and on timeout the
// whole process group is killed.
import { spawn } from 'node:child_process';

export class CommandError extends Error {
  constructor(
    readonly command: string,
    readonly exitCode: number | null,
    readonly stderr: string,
  ) {
    super(`${command} failed (exit ${exitCode ?? 'signal'}): ${stderr.trim().slice(0, 2000) || 'no error output'}`);
    this.name = 'CommandError';
  }
}

export interface RunOptions {
  timeoutMs?: number;
  /** Resolve with the result instead of throwing on a non-zero exit. */
  allowFailure?: boolean;
  /** An open file descriptor handed to the child as its fd 3. */
  fd3?: number;
  cwd?: string;
  input?: string | Buffer;
  /** Where the command is logged (at debug level) before it runs. */
  logger?: { debug(obj: object, msg: string): void };
}

export interface RunResult {
  code: number | null;
  stdout: Buffer;
  stderr: string;
}

export function run(file: string, args: string[], opts: RunOptions = {}): Promise<RunResult> {
  const command = [file, ...args].join(' ');
  const timeoutMs = opts.timeoutMs ?? 60_000;
  opts.logger?.debug({ command: command.slice(0, 2000) }, 'exec');
  return new Promise((resolve, reject) => {
    const stdio: ('pipe' | 'ignore' | number)[] = ['pipe', 'pipe', 'pipe'];
    if (opts.fd3 !== undefined) stdio.push(opts.fd3);
    const child = spawn(file, args, { stdio, detached: true, cwd: opts.cwd });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      killGroup(child.pid);
    }, timeoutMs);
    child.stdout!.on('data', (b: Buffer) => out.push(b));
    child.stderr!.on('data', (b: Buffer) => err.push(b));
    child.on('error', (e) => {
      clearTimeout(timer);
      reject(new CommandError(command.slice(0, 300), null, e.message));
    });
    child.on('close', (code) => {
      clearTimeout(timer);
      const result = { code, stdout: Buffer.concat(out), stderr: Buffer.concat(err).toString() };
      if (timedOut) return reject(new CommandError(command.slice(0, 300), code, `timed out after ${timeoutMs} ms`));
      if (code !== 0 && !opts.allowFailure) return reject(new CommandError(command.slice(0, 300), code, result.stderr));
      resolve(result);
    });
    child.stdin!.on('error', () => {});
    child.stdin!.end(opts.input ?? '');
  });
}

/** Kills a process group started with `detached: true` (or the single process if it has no group). */
export function killGroup(pid: number | undefined, signal: NodeJS.Signals = 'SIGKILL'): void {
  if (!pid) return;
  try {
    process.kill(-pid, signal);
  } catch {
    try {
      process.kill(pid, signal);
    } catch {
      /* already gone */
    }
  }
}
