// What the agent tells users about a failure (a job's output, a reply to the server): the error's status and code,
// and its sentence with host paths taken out and cut to a length every message can carry. Details stay in the logs.
import { MagsError } from '@mags/api';

/** Longest sentence the agent sends for one failure (the server passes on up to 4096 characters). */
export const MAX_USER_MESSAGE = 1000;

/** Absolute paths of two or more components (host directories, files): never shown to users. */
const HOST_PATH = /(^|[\s'"(=:,])\/[^\s'"():,]+\/[^\s'"():,]*/g;

export function scrubHostPaths(text: string): string {
  return text.replace(HOST_PATH, (_, lead: string) => `${lead}(a host path)`);
}

export function cutMessage(text: string, max = MAX_USER_MESSAGE): string {
  return text.length <= max ? text : `${text.slice(0, max - 1)}…`;
}

export interface UserError {
  status: number;
  code: string;
  message: string;
}

/** A MagsError keeps its status, code and sentence (scrubbed, cut); anything else is a 500 with a scrubbed sentence. */
export function forUser(err: unknown): UserError {
  if (err instanceof MagsError)
    return { status: err.status, code: String(err.code), message: cutMessage(scrubHostPaths(err.message)) };
  const message = err instanceof Error ? err.message : String(err);
  return { status: 500, code: 'internal', message: cutMessage(scrubHostPaths(message || 'the agent failed')) };
}
