// Slows password guessing: after a few failures for one name (or from one address) each further attempt must wait,
// twice as long each time, up to 15 minutes. Kept in memory per server process; a success clears the name's count.
import { MagsError } from '@mags/api';

const FREE_PER_NAME = 3;
const FREE_PER_ADDRESS = 20;
const MAX_WAIT_MS = 15 * 60_000;
/** A count is forgotten this long after its last failure. */
const FORGET_MS = 60 * 60_000;
const MAX_KEYS = 100_000;

interface Count {
  failures: number;
  last: number;
  until: number;
}

export class SignInThrottle {
  private readonly counts = new Map<string, Count>();

  constructor(private readonly baseWaitMs = 1000) {}

  /** Throws a 429 when a name or address must still wait. */
  check(name: string, address: string, now = Date.now()): void {
    const until = Math.max(this.get(`n:${name}`, now)?.until ?? 0, this.get(`a:${address}`, now)?.until ?? 0);
    if (until > now) {
      const s = Math.ceil((until - now) / 1000);
      throw new MagsError(
        429,
        'too_many_requests',
        `too many failed sign-ins: wait ${s} second${s === 1 ? '' : 's'} before trying again`,
      );
    }
  }

  failed(name: string, address: string, now = Date.now()): void {
    this.bump(`n:${name}`, FREE_PER_NAME, now);
    this.bump(`a:${address}`, FREE_PER_ADDRESS, now);
  }

  succeeded(name: string): void {
    this.counts.delete(`n:${name}`);
  }

  private get(key: string, now: number): Count | undefined {
    const c = this.counts.get(key);
    if (c && now - c.last > FORGET_MS) {
      this.counts.delete(key);
      return undefined;
    }
    return c;
  }

  private bump(key: string, free: number, now: number): void {
    const c = this.get(key, now) ?? { failures: 0, last: now, until: 0 };
    c.failures += 1;
    c.last = now;
    if (c.failures >= free) c.until = now + Math.min(MAX_WAIT_MS, this.baseWaitMs * 2 ** (c.failures - free));
    if (!this.counts.has(key) && this.counts.size >= MAX_KEYS) this.counts.clear();
    this.counts.set(key, c);
  }
}
