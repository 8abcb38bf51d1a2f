// The exec resource of the REST API: a command run in a job's running sandbox (`mags exec`), answered as one JSON
// document or streamed as newline-delimited JSON frames that carry the bytes exactly (base64).
import { type Static, Type } from 'typebox';
import { ENV_NAME_PATTERN, MAX_ENV_VALUE, MAX_SCRIPT_BYTES } from './jobs.js';

/** Longest exec timeout (seconds); the default is an hour. */
export const MAX_EXEC_TIMEOUT_S = 7 * 24 * 3600;
export const DEFAULT_EXEC_TIMEOUT_S = 3600;
/** Output the JSON form keeps (stdout and stderr together); past it the rest is dropped and `truncated` is set. */
export const MAX_EXEC_JSON_BYTES = 16 * 1024 * 1024;
/** The media type of the streaming form, for both the request (with stdin) and the answer. */
export const EXEC_STREAM_TYPE = 'application/x-ndjson';

export const ExecRequest = Type.Object(
  {
    command: Type.String({ minLength: 1, maxLength: MAX_SCRIPT_BYTES, description: 'Run with /bin/sh -c' }),
    timeout_s: Type.Optional(
      Type.Integer({
        minimum: 1,
        maximum: MAX_EXEC_TIMEOUT_S,
        description: `Wall-clock limit; the command's processes are killed when it passes (default ${DEFAULT_EXEC_TIMEOUT_S})`,
      }),
    ),
    env: Type.Optional(
      Type.Record(Type.String({ pattern: ENV_NAME_PATTERN }), Type.String({ maxLength: MAX_ENV_VALUE }), {
        description: "Environment variables, over the job's own",
      }),
    ),
    cwd: Type.Optional(
      Type.String({ minLength: 1, maxLength: 4096, pattern: '^/', description: 'Working directory (default /root)' }),
    ),
  },
  { additionalProperties: false, $id: 'ExecRequest' },
);
export type ExecRequest = Static<typeof ExecRequest>;

export const ExecReason = Type.Union([Type.Literal('exited'), Type.Literal('timeout'), Type.Literal('killed')], {
  description: 'exited: the command ended by itself (or by a signal: 128+n); timeout: killed at its timeout_s',
});
export type ExecReason = Static<typeof ExecReason>;

export const ExecResult = Type.Object(
  {
    exit_code: Type.Union([Type.Integer(), Type.Null()], { description: "The command's exit code" }),
    stdout: Type.String({ description: 'Its standard output, as UTF-8 text' }),
    stderr: Type.String({ description: 'Its standard error, as UTF-8 text' }),
    reason: ExecReason,
    truncated: Type.Boolean({
      description: `More than ${MAX_EXEC_JSON_BYTES} bytes were written: the rest was dropped (the streaming form carries all)`,
    }),
  },
  { $id: 'ExecResult' },
);
export type ExecResult = Static<typeof ExecResult>;

/** One line of the streaming answer: bytes of one stream, or the end (always the last line). */
export type ExecFrame =
  | { stream: 'stdout' | 'stderr'; data: string }
  | { exit_code: number | null; reason: ExecReason | 'error'; error?: string };
