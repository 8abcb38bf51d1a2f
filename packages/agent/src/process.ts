// Every external program the agent runs (crun, ip, nft, mount) goes through here: the command is logged,
// stderr is captured into the error, and on timeout the whole process group is killed.
import { spawn } from 'node:child_process';
import type { Logger } from 'pino';

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
  input?: string;
  timeoutMs?: number;
  /** Resolve with the result instead of throwing on a non-zero exit. */
  allowFailure?: boolean;
  logger?: Logger;
}

export interface RunResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

export function run(file: string, args: string[], opts: RunOptions = {}): Promise<RunResult> {
  const command = [file, ...args].join(' ');
  opts.logger?.debug({ command }, 'exec');
  return new Promise((resolve, reject) => {
    const child = spawn(file, args, { stdio: ['pipe', 'pipe', 'pipe'], detached: true });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      killGroup(child.pid);
    }, opts.timeoutMs ?? 30_000);
    child.stdout.on('data', (b: Buffer) => out.push(b));
    child.stderr.on('data', (b: Buffer) => err.push(b));
    child.on('error', (e) => {
      clearTimeout(timer);
      reject(new CommandError(command, null, e.message));
    });
    child.on('close', (code) => {
      clearTimeout(timer);
      const result = { code, stdout: Buffer.concat(out).toString(), stderr: Buffer.concat(err).toString() };
      if (timedOut) return reject(new CommandError(command, code, `timed out after ${opts.timeoutMs ?? 30_000} ms`));
      if (code !== 0 && !opts.allowFailure) return reject(new CommandError(command, code, result.stderr || result.stdout));
      resolve(result);
    });
    child.stdin.on('error', () => {});
    child.stdin.end(opts.input ?? '');
  });
}

/** Runs a shell script with `set -e`; used to batch several host commands into one process on the hot path. */
export function sh(script: string, opts: RunOptions = {}): Promise<RunResult> {
  return run('/bin/sh', ['-ec', script], opts);
}

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

/** Quote a string for /bin/sh. */
export function shq(s: string): string {
  return `'${s.replace(/'/g, `'\\''`)}'`;
}
