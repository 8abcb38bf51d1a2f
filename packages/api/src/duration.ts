// Durations as flags and environment variables take them (`--gc-interval 1h`, `MAGS_GC_GRACE=2h`): one parser for
// the CLI, which names the flag in its error, and the server's configuration, which checks every other source.

const UNIT_MS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };

/**
 * Milliseconds of a duration such as `90s`, `15m`, `1h30m`, `500ms` or `2d`; a bare whole number is seconds, and
 * `off` is 0. Undefined when the text is none of these.
 */
export function parseDuration(text: string): number | undefined {
  const t = text.trim().toLowerCase();
  if (t === 'off') return 0;
  if (/^\d{1,12}$/.test(t)) return Number(t) * 1000;
  if (!/^(\d{1,12}(ms|s|m|h|d))+$/.test(t)) return undefined;
  let ms = 0;
  for (const [, n, unit] of t.matchAll(/(\d+)(ms|s|m|h|d)/g)) ms += Number(n) * UNIT_MS[unit];
  return Number.isSafeInteger(ms) ? ms : undefined;
}

/** A duration as people write it: `2h`, `1h30m`, `45s`, `250ms`. */
export function formatDuration(ms: number): string {
  if (ms === 0) return '0s';
  if (ms % 1000 !== 0) return `${ms}ms`;
  let s = ms / 1000;
  let out = '';
  for (const [unit, size] of [
    ['d', 86_400],
    ['h', 3600],
    ['m', 60],
    ['s', 1],
  ] as const) {
    if (s >= size) {
      out += `${Math.floor(s / size)}${unit}`;
      s %= size;
    }
  }
  return out;
}
