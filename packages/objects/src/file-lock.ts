// An exclusive lock on a file that works across threads of one process and across processes, and is released by
// the kernel if the holder dies (flock(2) via util-linux flock(1), since Node has no flock).
import { open } from 'node:fs/promises';
import { ObjectStoreError } from './errors.js';
import { run } from './process.js';

/**
 * Runs fn while holding an exclusive flock on lockPath. flock(1) locks our open file description (handed over as
 * its fd 3) and exits; the lock stays with our descriptor until we close it, or until the process dies.
 */
export async function withFileLock<T>(lockPath: string, timeoutMs: number, fn: () => Promise<T>): Promise<T> {
  const fh = await open(lockPath, 'a');
  try {
    const seconds = Math.max(1, Math.ceil(timeoutMs / 1000));
    const r = await run('flock', ['--exclusive', '--wait', String(seconds), '3'], {
      fd3: fh.fd,
      allowFailure: true,
      timeoutMs: timeoutMs + 10_000,
    });
    if (r.code !== 0) {
      throw new ObjectStoreError(
        `could not lock ${lockPath} within ${seconds} s (${r.stderr.trim() || `flock exit ${r.code}`})`,
      );
    }
    return await fn();
  } finally {
    await fh.close();
  }
}
