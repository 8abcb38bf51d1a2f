// Parsers for flag values; a bad value is a usage error naming the flag.

import { formatDuration, parseDuration } from '@mags/api';
import { InvalidArgumentError } from 'commander';
import { UsageError } from '../errors.js';

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

const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;

/** KEY=VALUE items of a repeatable flag (KEY alone copies it from this environment) as an object. */
export function environmentFrom(flag: string, items: string[] | undefined): Record<string, string> {
  const environment: Record<string, string> = {};
  for (const item of items ?? []) {
    const eq = item.indexOf('=');
    const key = eq === -1 ? item : item.slice(0, eq);
    if (!ENV_NAME.test(key))
      throw new UsageError(`${flag} ${item}: "${key}" is not a valid variable name (letters, digits and _)`);
    const value = eq === -1 ? process.env[key] : item.slice(eq + 1);
    if (value === undefined) throw new UsageError(`${flag} ${key}: ${key} is not set here; give ${flag} ${key}=VALUE`);
    environment[key] = value;
  }
  return environment;
}
