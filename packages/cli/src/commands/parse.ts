// Parsers for flag values; a bad value is a usage error naming the flag.
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
    if (!Number.isFinite(n) || n <= 0 || n > max) throw new InvalidArgumentError(`${flag} takes a number above 0 and at most ${max}`);
    return n;
  };
}

/** For repeatable flags: every value, in order. */
export function collect(value: string, previous: string[] | undefined): string[] {
  return [...(previous ?? []), value];
}
