// How the CLI fails: a usage error (bad flags, exit 2) or anything else (exit 1), each as one sentence on stderr.

/** The command line itself is wrong (a flag, a value, a missing argument): exit code 2. */
export class UsageError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'UsageError';
  }
}

export const EXIT_OK = 0;
export const EXIT_FAILURE = 1;
export const EXIT_USAGE = 2;
/** What `mags run` exits with when its job was stopped (128 + SIGINT, as a shell reports an interrupted command). */
export const EXIT_STOPPED = 130;
