// What the agent answers to a message from the server that breaks the agent protocol. The message itself is dropped;
// if it names a job or a request, that is answered with an error, so the server does not wait for it until the
// agent disconnects (a start) or the request times out (an order).
import type { AgentToServer } from '@mags/api';

/** The answer to a malformed message (`type` and `reason` as parseServerMessage gave them), or undefined for none. */
export function answerToMalformed(raw: unknown, type: string | undefined, reason: string): AgentToServer | undefined {
  if (typeof raw !== 'object' || raw === null) return undefined;
  const m = raw as { sandbox?: { jobId?: unknown }; requestId?: unknown };
  const error = `the agent could not read the server's ${type ? `${type} message` : 'message'} (${reason}); the server and the agent may be different versions`;
  if (type === 'start') {
    const jobId = m.sandbox?.jobId;
    return typeof jobId === 'string' ? { type: 'exited', jobId, exitCode: null, reason: 'error', message: error, ts: Date.now() } : undefined;
  }
  if (type === 'stop' || typeof m.requestId !== 'string') return undefined;
  return { type: 'reply', requestId: m.requestId, ok: false, status: 500, code: 'internal', error };
}
