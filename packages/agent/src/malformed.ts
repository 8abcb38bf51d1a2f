// What the agent answers to a message from the server that breaks the agent protocol. The message itself is dropped;
// if it names a job or a request, that is answered with an error, so the server does not wait for it until the
// agent disconnects (a start) or the request times out (an order).
import type { AgentToServer } from '@mags/api';

/** The answer to a malformed message (`type` and `reason` as parseServerMessage gave them), or undefined for none. */
export function answerToMalformed(raw: unknown, type: string | undefined, reason: string): AgentToServer | undefined {
  if (typeof raw !== 'object' || raw === null) return undefined;
  const m = raw as { sandbox?: { jobId?: unknown }; requestId?: unknown };
  const what = type ? `${type} message` : 'message';
  const error = `the agent could not read the server's ${what} (${reason}); the server and the agent may be different versions`;
  if (type === 'start') {
    const jobId = m.sandbox?.jobId;
    if (typeof jobId !== 'string') return undefined;
    return { type: 'exited', jobId, exitCode: null, reason: 'error', message: error, ts: Date.now() };
  }
  if (type === 'exec') {
    const execId = (raw as { execId?: unknown }).execId;
    if (typeof execId !== 'string') return undefined;
    return { type: 'execExited', execId, exitCode: null, reason: 'error', message: error.slice(0, 4000) };
  }
  if (type === 'stop' || typeof m.requestId !== 'string') return undefined;
  return { type: 'reply', requestId: m.requestId, ok: false, status: 500, code: 'internal', error };
}
