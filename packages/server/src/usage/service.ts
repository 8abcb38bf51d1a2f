// Usage: what each user's sandboxes used (the agents meter the cgroups and the network and report cumulative figures
// per sandbox; what is new in each report is added to the user's day) and what the store holds for them (measured
// when asked, and hourly for every user holding anything), answered per UTC day for a window of days.
import type { UsageDay, UsageReport } from '@mags/api';
import type { Logger } from 'pino';
import type { UsageReport as AgentUsageReport } from '../agents/registry.js';
import { type Store, utcDay } from '../store/index.js';

export interface UsageDeps {
  store: Store;
  logger: Logger;
  /** How often every user's storage figure is recorded for the day (default hourly). */
  storageSampleMs?: number;
}

const DAY_MS = 86_400_000;
const MiB = 1024 * 1024;
const GiB = 1024 * MiB;

export class UsageService {
  private timer?: NodeJS.Timeout;
  private sampling?: Promise<void>;

  constructor(private readonly deps: UsageDeps) {}

  /** An agent's report about one sandbox: its new figures go to the job owner's day. */
  async report(agentId: string, m: AgentUsageReport, log: Logger): Promise<void> {
    try {
      const known = await this.deps.store.usage.record({
        jobId: m.jobId,
        sandboxId: m.sandboxId,
        sandboxMs: m.sandboxMs,
        cpuMs: m.cpuMs,
        memoryMibMs: m.memoryMibMs,
        egressBytes: m.egressBytes,
        // The agent's clock decides the day; one far off is not trusted with it.
        ts: Math.abs(m.ts - Date.now()) < DAY_MS ? m.ts : Date.now(),
      });
      if (!known) log.warn({ jobId: m.jobId, agentId }, 'usage reported for a job that is gone');
    } catch (err) {
      log.error({ err, jobId: m.jobId, agentId }, 'could not record usage');
    }
  }

  /** Records every user's storage now, and then every storageSampleMs. */
  start(): void {
    const every = this.deps.storageSampleMs ?? 3_600_000;
    this.sampling = this.sampleStorage();
    this.timer = setInterval(() => {
      this.sampling = this.sampleStorage();
    }, every);
    this.timer.unref();
  }

  async close(): Promise<void> {
    clearInterval(this.timer);
    await this.sampling;
  }

  private async sampleStorage(): Promise<void> {
    const { store, logger } = this.deps;
    try {
      for (const userId of await store.usage.usersHolding()) {
        await store.usage.recordStorage(userId, await store.usage.storageHeld(userId));
      }
    } catch (err) {
      logger.warn({ err }, 'could not record the storage figures for usage');
    }
  }

  /** A user's usage for the last `windowDays` UTC days, today included, oldest first. */
  async get(userId: string, windowDays: number, now = Date.now()): Promise<UsageReport> {
    const { store } = this.deps;
    const held = await store.usage.storageHeld(userId);
    await store.usage.recordStorage(userId, held, now);
    const first = utcDay(now - (windowDays - 1) * DAY_MS);
    const rows = new Map((await store.usage.days(userId, first)).map((r) => [r.day, r]));
    let storage = (await store.usage.storageBefore(userId, first)) ?? 0;
    const days: UsageDay[] = [];
    for (let i = windowDays - 1; i >= 0; i--) {
      const date = utcDay(now - i * DAY_MS);
      const row = rows.get(date);
      if (row?.storage_bytes !== null && row?.storage_bytes !== undefined) storage = Number(row.storage_bytes);
      days.push({
        date,
        jobs: Number(row?.jobs ?? 0),
        sandbox_seconds: round(Number(row?.sandbox_ms ?? 0) / 1000),
        cpu_seconds: round(Number(row?.cpu_ms ?? 0) / 1000),
        memory_gb_seconds: round((Number(row?.memory_mib_ms ?? 0) * MiB) / GiB / 1000),
        egress_bytes: Number(row?.egress_bytes ?? 0),
        storage_bytes: storage,
      });
    }
    const sum = (key: 'jobs' | 'sandbox_seconds' | 'cpu_seconds' | 'memory_gb_seconds' | 'egress_bytes') =>
      round(days.reduce((total, d) => total + d[key], 0));
    return {
      window_days: windowDays,
      days,
      totals: {
        jobs: sum('jobs'),
        sandbox_seconds: sum('sandbox_seconds'),
        cpu_seconds: sum('cpu_seconds'),
        memory_gb_seconds: sum('memory_gb_seconds'),
        egress_bytes: sum('egress_bytes'),
        storage_bytes: held,
      },
    };
  }
}

/** Three decimals: figures for people, not float noise. */
function round(n: number): number {
  return Math.round(n * 1000) / 1000;
}
