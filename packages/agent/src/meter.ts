// Metering one job's sandbox: what it used since it started the job, read from the kernel (cpuacct, the memory
// cgroup integrated over time, the host side of its veth), reported to the server as cumulative `usage` messages:
// every USAGE_REPORT_MS while it runs, and once more when it ends.
import { readFileSync } from 'node:fs';
import { type AgentToServer, USAGE_REPORT_MS } from '@mags/api';

/** What a meter reads: the sandbox's cgroup, and its network link (none for `--network none`). */
export interface Metered {
  readonly id: string;
  readonly cgroup: { totalCpuNs(): number | undefined; memoryUsageBytes(): number | undefined };
  readonly link?: { hostIf: string } | undefined;
}

/** How often memory is sampled for its integral over time. */
const SAMPLE_MS = 500;
const MiB = 1024 * 1024;

/** Bytes the sandbox sent: what its veth's host side received. Undefined without a link (or once it is gone). */
function egressBytes(link: { hostIf: string } | undefined): number | undefined {
  if (!link) return undefined;
  try {
    return Number(readFileSync(`/sys/class/net/${link.hostIf}/statistics/rx_bytes`, 'utf8'));
  } catch {
    return undefined;
  }
}

export class UsageMeter {
  private readonly startedAt = Date.now();
  private readonly cpuBase: number;
  private readonly egressBase: number;
  private cpuNs = 0;
  private egress = 0;
  private memoryMibMs = 0;
  private lastSampleAt = this.startedAt;
  private lastMemoryMib = 0;
  private readonly sampler: NodeJS.Timeout;
  private readonly reporter: NodeJS.Timeout;
  private ended = false;

  constructor(
    private readonly jobId: string,
    private readonly sandbox: Metered,
    private readonly send: (m: Extract<AgentToServer, { type: 'usage' }>) => void,
    reportMs = USAGE_REPORT_MS,
  ) {
    // A warm sandbox existed before its job: only what it uses from now on is the job's.
    this.cpuBase = sandbox.cgroup.totalCpuNs() ?? 0;
    this.egressBase = egressBytes(sandbox.link) ?? 0;
    this.lastMemoryMib = (sandbox.cgroup.memoryUsageBytes() ?? 0) / MiB;
    this.sampler = setInterval(() => this.sample(), SAMPLE_MS);
    this.reporter = setInterval(() => this.report(false), reportMs > 0 ? reportMs : USAGE_REPORT_MS);
    this.sampler.unref();
    this.reporter.unref();
  }

  /** Reads the counters; memory is integrated with the figure of the previous sample over the time since. */
  private sample(): void {
    const now = Date.now();
    this.memoryMibMs += this.lastMemoryMib * Math.max(0, now - this.lastSampleAt);
    this.lastSampleAt = now;
    const memory = this.sandbox.cgroup.memoryUsageBytes();
    if (memory !== undefined) this.lastMemoryMib = memory / MiB;
    const cpu = this.sandbox.cgroup.totalCpuNs();
    if (cpu !== undefined) this.cpuNs = Math.max(this.cpuNs, cpu - this.cpuBase);
    const sent = egressBytes(this.sandbox.link);
    if (sent !== undefined) this.egress = Math.max(this.egress, sent - this.egressBase);
  }

  private report(final: boolean): void {
    this.sample();
    const ts = Date.now();
    this.send({
      type: 'usage',
      jobId: this.jobId,
      sandboxId: this.sandbox.id,
      sandboxMs: Math.max(0, ts - this.startedAt),
      cpuMs: Math.round(this.cpuNs / 1e6),
      memoryMibMs: Math.round(this.memoryMibMs),
      egressBytes: Math.max(0, Math.round(this.egress)),
      final,
      ts,
    });
  }

  /** The sandbox finished the job: the last report (once). */
  end(): void {
    if (this.ended) return;
    this.close();
    this.report(true);
  }

  /** Stops metering without a report (the job ended some other way: its `exited` may be sent already). */
  close(): void {
    this.ended = true;
    clearInterval(this.sampler);
    clearInterval(this.reporter);
  }
}
