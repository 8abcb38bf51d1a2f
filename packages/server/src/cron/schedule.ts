// Cron expressions: checked and read by croner (a maintained parser). Only the standard 5 fields (minute hour
// day-of-month month day-of-week) are accepted; times are read in the cron job's time zone, UTC by default. When a
// time does not exist in the zone (the hour skipped when summer time starts) croner fires at the first minute after
// the gap; a time that exists twice (when it ends) fires once.
import { MagsError } from '@mags/api';
import { Cron } from 'croner';

/** The standard 5 fields, in words, for error sentences. */
const FIELDS = 'minute hour day-of-month month day-of-week';

/** Checks a time zone name; throws a 400 naming it. */
export function checkTimezone(timezone: string): void {
  try {
    new Intl.DateTimeFormat('en', { timeZone: timezone });
  } catch {
    throw MagsError.invalid(
      `unknown time zone "${timezone}": give an IANA name such as Europe/Berlin, America/New_York or UTC`,
    );
  }
}

function parse(expression: string, timezone: string | null): Cron {
  const fields = expression.trim().split(/\s+/);
  if (fields.length !== 5) {
    throw MagsError.invalid(
      `cron expression "${expression}" has ${fields.length} field${fields.length === 1 ? '' : 's'}; ` +
        `it needs 5: ${FIELDS}, e.g. "*/5 * * * *" (every five minutes) or "0 3 * * 1" (Mondays at 03:00)`,
    );
  }
  if (timezone !== null) checkTimezone(timezone);
  try {
    return new Cron(fields.join(' '), { timezone: timezone ?? 'UTC', paused: true });
  } catch (err) {
    const reason = (err as Error).message.replace(/^CronPattern: /, '');
    throw MagsError.invalid(`cron expression "${expression}" is not valid (${reason}); the fields are ${FIELDS}`);
  }
}

/** Checks an expression (and time zone): throws a 400 with a sentence when either is wrong. */
export function checkSchedule(expression: string, timezone: string | null): void {
  parse(expression, timezone);
}

/**
 * The first firing strictly after `after` (epoch ms), read in `timezone` (null: UTC); null when the expression never
 * fires again (e.g. 30 February).
 */
export function nextRun(expression: string, timezone: string | null, after: number): number | null {
  const next = parse(expression, timezone).nextRun(new Date(after));
  return next ? next.getTime() : null;
}

/** The next `count` firings after `after`, for showing a schedule. */
export function nextRuns(expression: string, timezone: string | null, after: number, count: number): number[] {
  return parse(expression, timezone)
    .nextRuns(count, new Date(after))
    .map((d) => d.getTime());
}
