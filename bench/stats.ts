import os from 'node:os';

// Small statistics shared by the benchmarks.
export function percentile(sorted: number[], p: number): number {
  if (!sorted.length) return NaN;
  const i = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[i];
}

export function summary(samples: number[]): { n: number; p50: number; p99: number; min: number; max: number } {
  const s = [...samples].sort((a, b) => a - b);
  return { n: s.length, p50: percentile(s, 50), p99: percentile(s, 99), min: s[0], max: s[s.length - 1] };
}

export function fmt(ms: number): string {
  return `${ms.toFixed(1)} ms`;
}

/** The 1/5/15-minute load averages, to read a run's figures against. */
export function loadavg(): string {
  return os
    .loadavg()
    .map((n) => n.toFixed(2))
    .join(' ');
}
