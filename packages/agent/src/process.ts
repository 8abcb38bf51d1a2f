// The agent's external programs (crun, ip, nft, mount) run through the project's one process runner in
// @mags/objects; this adds text output and the shell helpers the agent's batched host commands use.
import { accessSync, constants } from 'node:fs';
import path from 'node:path';
import { type RunOptions as BaseOptions, CommandError, killGroup, runCommand } from '@mags/objects';

export { CommandError, killGroup };

export type RunOptions = Omit<BaseOptions, 'fd3' | 'cwd' | 'input'> & { input?: string };

export interface RunResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

export async function run(file: string, args: string[], opts: RunOptions = {}): Promise<RunResult> {
  const result = await runCommand(file, args, { timeoutMs: 30_000, ...opts });
  return { ...result, stdout: result.stdout.toString() };
}

/** Runs a shell script with `set -e`; used to batch several host commands into one process on the hot path. */
export function sh(script: string, opts: RunOptions = {}): Promise<RunResult> {
  return run('/bin/sh', ['-ec', script], opts);
}

/** Quote a string for /bin/sh. */
export function shq(s: string): string {
  return `'${s.replace(/'/g, `'\\''`)}'`;
}

/** The absolute path of a program found along PATH (a path is kept as it is; an unknown name too, to fail later). */
export function resolveExecutable(
  name: string,
  searchPath = process.env.PATH ?? '/usr/sbin:/usr/bin:/sbin:/bin',
): string {
  if (name.includes('/')) return name;
  for (const dir of searchPath.split(':')) {
    if (!dir) continue;
    const file = path.join(dir, name);
    try {
      accessSync(file, constants.X_OK);
      return file;
    } catch {
      /* not here */
    }
  }
  return name;
}
