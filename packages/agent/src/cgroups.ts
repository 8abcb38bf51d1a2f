// Each sandbox's own cgroup (cgroup v1): the limits are set here, and the runtime's cgroup is created inside it.
// Owning the level above the runtime's lets the agent set limits without spawning anything, and read what
// happened (e.g. hitting the memory limit) after the runtime has removed its own cgroup.
import { existsSync, mkdirSync, readdirSync, readFileSync, rmdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import type { Limits } from './bundle.js';

const ROOT = '/sys/fs/cgroup';
/** Name of the runtime's cgroup inside the sandbox's own. */
export const RUNTIME_LEAF = 'c';

/**
 * Every hierarchy mounted under /sys/fs/cgroup, the v2 one of a hybrid host (`unified`) included: the runtime makes
 * the sandbox's cgroup in each, so each must be cleaned (on a hybrid host, `unified` held one empty cgroup per
 * sandbox ever run).
 */
let mounted: string[] | undefined;
function controllers(): string[] {
  // Looked up once: the host's hierarchies do not change while the agent runs (read per sandbox, it showed in profiles).
  mounted ??= readdirSync(ROOT).filter((c) => !c.includes(',') && existsSync(path.join(ROOT, c, 'cgroup.procs')));
  return mounted;
}

export class SandboxCgroup {
  constructor(
    readonly parent: string,
    readonly id: string,
  ) {}

  /** Path the runtime is told to use (absolute, from each hierarchy's root). */
  get runtimePath(): string {
    return `/${this.parent}/${this.id}/${RUNTIME_LEAF}`;
  }

  private file(controller: string, name: string): string {
    return path.join(ROOT, controller, this.parent, this.id, name);
  }

  create(limits: Limits): void {
    // cpuacct at this level too: its usage counts every process below, and outlives the runtime's own cgroup.
    for (const c of ['memory', 'cpu', 'cpuacct', 'pids'])
      mkdirSync(path.join(ROOT, c, this.parent, this.id), { recursive: true });
    this.setLimits(limits);
  }

  setLimits(limits: Limits): void {
    const mem = limits.memoryMb * 1024 * 1024;
    const current = Number(readFileSync(this.file('memory', 'memory.limit_in_bytes'), 'utf8'));
    // memory+swap may never be below memory, so the order depends on the direction.
    const memory: Array<[string, number]> = [
      ['memory.limit_in_bytes', mem],
      ['memory.memsw.limit_in_bytes', mem],
    ];
    if (mem > current) memory.reverse();
    for (const [f, v] of memory) {
      if (f.includes('memsw') && !existsSync(this.file('memory', f))) continue; // no swap accounting on this host
      writeFileSync(this.file('memory', f), String(v));
    }
    writeFileSync(this.file('cpu', 'cpu.cfs_period_us'), '100000');
    writeFileSync(this.file('cpu', 'cpu.cfs_quota_us'), String(Math.round(limits.vcpus * 100_000)));
    writeFileSync(this.file('pids', 'pids.max'), String(limits.pids));
  }

  /** True when the sandbox's memory use peaked at its limit (the kernel then reclaims, and kills when it can't). */
  hitMemoryLimit(): boolean {
    try {
      const peak = Number(readFileSync(this.file('memory', 'memory.max_usage_in_bytes'), 'utf8'));
      const limit = Number(readFileSync(this.file('memory', 'memory.limit_in_bytes'), 'utf8'));
      // failcnt is not kept for hierarchical limits on recent kernels, so compare the peak with the limit.
      return peak >= limit - 1024 * 1024;
    } catch {
      return false;
    }
  }

  /** A file of the runtime's own cgroup (where every process of the sandbox, exec'd ones too, is). */
  private leafFile(controller: string, name: string): string {
    return path.join(ROOT, controller, this.parent, this.id, RUNTIME_LEAF, name);
  }

  /** CPU time used by every process of the sandbox so far, in nanoseconds (undefined once the cgroup is gone). */
  cpuUsageNs(): number | undefined {
    try {
      return Number(readFileSync(this.leafFile('cpuacct', 'cpuacct.usage'), 'utf8'));
    } catch {
      return undefined;
    }
  }

  /**
   * CPU time of every process the sandbox ever had, in nanoseconds: the sandbox's own cpuacct (hierarchical, so it
   * keeps what the runtime's cgroup used after that is removed). Undefined once the sandbox's cgroup is gone.
   */
  totalCpuNs(): number | undefined {
    try {
      return Number(readFileSync(this.file('cpuacct', 'cpuacct.usage'), 'utf8'));
    } catch {
      return undefined;
    }
  }

  /** Memory charged to the sandbox now (its processes, page cache and kernel memory), in bytes. */
  memoryUsageBytes(): number | undefined {
    try {
      return Number(readFileSync(this.file('memory', 'memory.usage_in_bytes'), 'utf8'));
    } catch {
      return undefined;
    }
  }

  /**
   * Freezes (true) or thaws (false) every process of the sandbox with the cgroup freezer, and waits until the kernel
   * says so (freezing waits for tasks in uninterruptible sleep; at most `timeoutMs`). False when it did not settle, or
   * when `wanted()` stopped holding meanwhile (a thaw asked for while the freeze was settling wins: the freeze never
   * writes FROZEN again after it).
   */
  async setFrozen(frozen: boolean, wanted: () => boolean = () => true, timeoutMs = 5000): Promise<boolean> {
    const file = this.leafFile('freezer', 'freezer.state');
    const want = frozen ? 'FROZEN' : 'THAWED';
    const deadline = Date.now() + timeoutMs;
    for (let wait = 1; ; wait = Math.min(wait * 2, 50)) {
      if (!wanted()) return false;
      writeFileSync(file, want);
      if (readFileSync(file, 'utf8').trim() === want) return true;
      if (Date.now() > deadline) return false;
      await new Promise((r) => setTimeout(r, wait));
    }
  }

  /** Removes the runtime's cgroup (if left) and the sandbox's own, in every hierarchy. */
  remove(): void {
    for (const c of controllers()) removeTree(path.join(ROOT, c, this.parent, this.id));
  }
}

/** rmdir a cgroup and its children, deepest first; cgroups still holding processes stay. */
export function removeTree(dir: string): void {
  if (!existsSync(dir)) return;
  for (const child of readdirSync(dir, { withFileTypes: true })) {
    if (child.isDirectory()) removeTree(path.join(dir, child.name));
  }
  try {
    rmdirSync(dir);
  } catch {
    /* busy: processes still inside */
  }
}

/** Removes every sandbox cgroup under an agent's parent (after a crash). */
export function removeAllUnder(parent: string): void {
  for (const c of controllers()) {
    const dir = path.join(ROOT, c, parent);
    if (!existsSync(dir)) continue;
    for (const child of readdirSync(dir, { withFileTypes: true }))
      if (child.isDirectory()) removeTree(path.join(dir, child.name));
  }
}
