// Small pure pieces shared by the sync engine and its scan worker, kept free of @mags/api so the worker starts fast
// (loading the API schemas costs ~250 ms per start): path order, how a user's path is shown, the empty hash, and
// the worker's error (the same status/code/message as a MagsError; turned into one in scan.ts).

/** Byte order of UTF-8, the order S3 lists keys in and the order entries are kept in. */
export function comparePaths(a: string, b: string): number {
  return Buffer.compare(Buffer.from(a), Buffer.from(b));
}

/** A path for a message: user content, so cut and with control characters escaped. */
export function showPath(p: string): string {
  const cut = p.length > 120 ? `${p.slice(0, 60)}…${p.slice(-40)}` : p;
  return JSON.stringify(cut);
}

export const EMPTY_SHA256 = 'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855';

/** A failure the user can act on, raised where MagsError is not loaded; carries a MagsError's fields. */
export class SyncFault extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
    this.name = 'SyncFault';
  }
}
