// Parsers for flag values; a bad value is a usage error naming the flag.

import { formatDuration, parseDuration } from '@mags/api';
import { InvalidArgumentError } from 'commander';

export function integer(flag: string, min: number, max: number): (value: string) => number {
  return (value) => {
    const n = /^\s*\d+\s*$/.test(value) ? Number(value) : NaN;
    if (!Number.isSafeInteger(n) || n < min || n > max) {
      throw new InvalidArgumentError(`${flag} takes a whole number from ${min} to ${max}`);
    }
    return n;
  };
}

export function positiveNumber(flag: string, max: number): (value: string) => number {
  return (value) => {
    const n = /^\s*(\d+(\.\d*)?|\.\d+)\s*$/.test(value) ? Number(value) : NaN;
    if (!Number.isFinite(n) || n <= 0 || n > max)
      throw new InvalidArgumentError(`${flag} takes a number above 0 and at most ${max}`);
    return n;
  };
}

/** A duration such as 90s, 15m or 2h (a bare number is seconds), in milliseconds; `off` also allows 0 / off. */
export function duration(flag: string, minMs: number, maxMs: number, off: boolean): (value: string) => number {
  return (value) => {
    const ms = parseDuration(value);
    if (ms === undefined || (ms === 0 ? !off : ms < minMs || ms > maxMs)) {
      const range = `from ${formatDuration(minMs)} to ${formatDuration(maxMs)}`;
      throw new InvalidArgumentError(
        `${flag} takes a duration ${range} such as 90s, 15m or 2h${off ? '; 0 or off: never' : ''}`,
      );
    }
    return ms;
  };
}

/** For repeatable flags: every value, in order. */
export function collect(value: string, previous: string[] | undefined): string[] {
  return [...(previous ?? []), value];
}
