// When a long-lived sandbox sleeps. A sandbox with no exec open (an SSH session is one) and whose processes used
// almost no CPU for `afterS` seconds is frozen with the cgroup freezer: its memory is kept and it wakes in
// milliseconds. Once it has been frozen for `stopAfterS` seconds, or sooner when the host runs short of memory, it is
// stopped: the agent ends the sandbox (a persistent workspace is synced) and the job sleeps on without one.
import { readFileSync } from 'node:fs';
import type { SleepTimers } from '@mags/api';

/** Below this share of one CPU, averaged over a tick, a sandbox counts as idle (a shell prompt, `sleep`, a parked server). */
export const IDLE_CPU_SHARE = 0.02;
/** Under memory pressure a sandbox frozen at least this long is stopped at once instead of at its timer. */
const PRESSURE_MIN_FROZEN_MS = 10_000;
/** Below this share of the host's memory available, frozen sandboxes are stopped. */
const PRESSURE_AVAILABLE_SHARE = 0.1;

export interface SleepTarget {
  /** CPU time of all the sandbox's processes so far (ns); undefined once gone. */
  cpuUsageNs(): number | undefined;
  /** True while something uses the sandbox (an exec or SSH session is open). */
  busy(): boolean;
  frozen(): boolean;
  /** Freeze it now; resolves once done (false: it could not be frozen and still runs). */
  freeze(): Promise<boolean>;
  /** Stop it now: it has slept long enough. */
  stop(): void;
}

/** The host's available memory as a share of its total (1 when it cannot be read). */
export function availableMemoryShare(): number {
  try {
    const info = readFileSync('/proc/meminfo', 'utf8');
    const total = Number(/^MemTotal:\s+(\d+)/m.exec(info)?.[1]);
    const available = Number(/^MemAvailable:\s+(\d+)/m.exec(info)?.[1]);
    return total > 0 && Number.isFinite(available) ? available / total : 1;
  } catch {
    return 1;
  }
}

export class SleepWatch {
  private timer?: NodeJS.Timeout;
  private lastUsage?: number;
  private lastTick = Date.now();
  /** When the sandbox was last seen in use (or woken). */
  private activeAt = Date.now();
  private frozenAt?: number;
  private acting = false;
  private readonly tickMs: number;

  constructor(
    private timers: SleepTimers,
    private readonly target: SleepTarget,
    private readonly memoryShare: () => number = availableMemoryShare,
  ) {
    this.tickMs = tickFor(timers);
    this.timer = setInterval(() => void this.tick(), this.tickMs);
    this.timer.unref();
  }

  /** The sandbox was used or woken just now: its idle time starts again. */
  touch(): void {
    this.activeAt = Date.now();
    this.frozenAt = undefined;
    this.lastUsage = undefined;
  }

  close(): void {
    clearInterval(this.timer);
    this.timer = undefined;
  }

  private async tick(): Promise<void> {
    if (this.acting || !this.timer) return;
    const now = Date.now();
    if (this.target.frozen()) {
      this.frozenAt ??= now;
      const frozenMs = now - this.frozenAt;
      const pressed = frozenMs >= PRESSURE_MIN_FROZEN_MS && this.memoryShare() < PRESSURE_AVAILABLE_SHARE;
      if (frozenMs >= this.timers.stopAfterS * 1000 || pressed) {
        this.close();
        this.target.stop();
      }
      return;
    }
    this.frozenAt = undefined;
    const usage = this.target.cpuUsageNs();
    const elapsedMs = now - this.lastTick;
    const used = usage !== undefined && this.lastUsage !== undefined ? (usage - this.lastUsage) / 1e6 : undefined;
    this.lastUsage = usage;
    this.lastTick = now;
    if (this.target.busy() || used === undefined || used > IDLE_CPU_SHARE * elapsedMs) {
      this.activeAt = now;
      return;
    }
    if (now - this.activeAt < this.timers.afterS * 1000) return;
    this.acting = true;
    try {
      if (await this.target.freeze()) this.frozenAt = Date.now();
      else this.activeAt = Date.now();
    } finally {
      this.acting = false;
    }
  }
}

/** How often a sandbox is looked at: a quarter of its idle time, between 250 ms and 5 s. */
function tickFor(timers: SleepTimers): number {
  return Math.min(5000, Math.max(250, Math.floor((Math.min(timers.afterS, timers.stopAfterS) * 1000) / 4)));
}
