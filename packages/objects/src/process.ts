// The external programs this package needs (flock, mknod, getfattr, setfattr: Node has no API for them) run here:
// stderr is captured into the error, and on timeout the whole process group is killed.
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
}

export interface RunResult {
  code: number | null;
  stdout: Buffer;
  stderr: string;
}

export function run(file: string, args: string[], opts: RunOptions = {}): Promise<RunResult> {
  const command = [file, ...args].join(' ');
  const timeoutMs = opts.timeoutMs ?? 60_000;
  return new Promise((resolve, reject) => {
    const stdio: ('pipe' | 'ignore' | number)[] = ['pipe', 'pipe', 'pipe'];
    if (opts.fd3 !== undefined) stdio.push(opts.fd3);
    const child = spawn(file, args, { stdio, detached: true, cwd: opts.cwd });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      if (child.pid !== undefined) {
        try {
          process.kill(-child.pid, 'SIGKILL');
        } catch {
          /* already gone */
        }
      }
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
