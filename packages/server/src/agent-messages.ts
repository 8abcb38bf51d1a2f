// Checks messages from agents before the scheduler acts on them. An agent across a network is a separate
// program (maybe another version, maybe buggy); a malformed message is logged and dropped, never a crash.
import type { AgentInfo, AgentToServer, OutputLine } from '@mags/api';

export type Checked = { ok: true; message: AgentToServer } | { ok: false; reason: string };

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
const isNonEmptyString = (v: unknown): v is string => typeof v === 'string' && v.length > 0 && v.length <= 1024;
const isCount = (v: unknown): v is number => typeof v === 'number' && Number.isInteger(v) && v >= 0 && v <= 1_000_000;
const isTime = (v: unknown): v is number => typeof v === 'number' && Number.isFinite(v) && v > 0;
const isSize = (v: unknown): v is number => typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;
const isVersion = (v: unknown): v is number => typeof v === 'number' && Number.isSafeInteger(v) && v >= 1;

function checkPool(v: unknown): v is AgentInfo['pool'] {
  return isObject(v) && isCount(v.idle) && isCount(v.busy) && isCount(v.min) && isCount(v.max);
}

/** Storage figures are optional (an agent may not report them); when given, every figure is a byte count. */
function checkStorage(v: unknown): boolean {
  return v === undefined || (isObject(v) && isSize(v.totalBytes) && isSize(v.freeBytes) && isSize(v.promisedBytes) && isSize(v.growableBytes));
}

/** Longest error sentence passed on from an agent's reply (characters); longer ones are cut. */
export const MAX_ERROR = 4096;

const STREAMS = new Set(['stdout', 'stderr', 'system']);

function checkLine(v: unknown): v is OutputLine {
  return (
    isObject(v) &&
    typeof v.seq === 'number' &&
    Number.isSafeInteger(v.seq) &&
    v.seq >= 1 &&
    v.seq <= 2_147_483_647 &&
    typeof v.stream === 'string' &&
    STREAMS.has(v.stream) &&
    isTime(v.ts) &&
    typeof v.message === 'string'
  );
}

export function checkAgentMessage(m: unknown): Checked {
  if (!isObject(m) || typeof m.type !== 'string') return { ok: false, reason: 'not an object with a "type"' };
  switch (m.type) {
    case 'hello': {
      const a = m.agent;
      if (
        !isObject(a) ||
        !isNonEmptyString(a.id) ||
        typeof a.name !== 'string' ||
        typeof a.runtime !== 'string' ||
        typeof a.version !== 'string' ||
        !isCount(a.capacity) ||
        !checkPool(a.pool) ||
        !checkStorage(a.storage)
      ) {
        return { ok: false, reason: 'hello without a valid agent (id, name, runtime, version, capacity, pool, storage)' };
      }
      return { ok: true, message: m as AgentToServer };
    }
    case 'pool':
      if (!checkStorage(m.storage)) return { ok: false, reason: 'pool with malformed storage figures' };
      return checkPool(m.pool) ? { ok: true, message: m as AgentToServer } : { ok: false, reason: 'pool without counts' };
    case 'started':
      return isNonEmptyString(m.jobId) && isNonEmptyString(m.sandboxId) && isTime(m.ts)
        ? { ok: true, message: m as AgentToServer }
        : { ok: false, reason: 'started without jobId, sandboxId and ts' };
    case 'output':
      if (!isNonEmptyString(m.jobId) || !Array.isArray(m.lines)) return { ok: false, reason: 'output without jobId and lines' };
      if (!m.lines.every(checkLine)) return { ok: false, reason: 'output with a malformed line' };
      return { ok: true, message: m as AgentToServer };
    case 'exited': {
      const reasonOk = m.reason === 'exited' || m.reason === 'stopped' || m.reason === 'timeout' || m.reason === 'error';
      const codeOk = m.exitCode === null || (typeof m.exitCode === 'number' && Number.isInteger(m.exitCode));
      const messageOk = m.message === undefined || typeof m.message === 'string';
      return isNonEmptyString(m.jobId) && reasonOk && codeOk && messageOk && isTime(m.ts)
        ? { ok: true, message: m as AgentToServer }
        : { ok: false, reason: 'exited without jobId, exitCode, reason and ts' };
    }
    case 'workspace': {
      const r = m.report;
      const ok =
        isObject(r) &&
        isNonEmptyString(r.owner) &&
        isNonEmptyString(r.name) &&
        (r.state === 'present' || r.state === 'gone') &&
        isSize(r.usedBytes) &&
        isSize(r.files) &&
        (r.version === undefined || isVersion(r.version)) &&
        (r.versions === undefined || isSize(r.versions)) &&
        (r.dirty === undefined || typeof r.dirty === 'boolean') &&
        isTime(r.ts);
      return ok ? { ok: true, message: m as AgentToServer } : { ok: false, reason: 'workspace without a valid report (owner, name, state, usedBytes, files, ts)' };
    }
    case 'reply': {
      if (!isNonEmptyString(m.requestId)) return { ok: false, reason: 'reply without a requestId' };
      if (m.ok === true) {
        const r = m.result;
        const ok =
          isObject(r) &&
          typeof r.held === 'boolean' &&
          (r.version === undefined || r.version === null || isVersion(r.version)) &&
          (r.changed === undefined || typeof r.changed === 'boolean');
        return ok ? { ok: true, message: m as AgentToServer } : { ok: false, reason: 'reply without a valid result (held, version, changed)' };
      }
      const ok =
        m.ok === false &&
        typeof m.status === 'number' &&
        Number.isInteger(m.status) &&
        m.status >= 400 &&
        m.status <= 599 &&
        isNonEmptyString(m.code) &&
        typeof m.error === 'string' &&
        m.error.length > 0;
      if (!ok) return { ok: false, reason: 'failed reply without status (400-599), code and error' };
      // A long sentence is cut, not dropped: dropping it left the request waiting for its timeout.
      if ((m.error as string).length > MAX_ERROR) m.error = `${(m.error as string).slice(0, MAX_ERROR - 1)}…`;
      return { ok: true, message: m as AgentToServer };
    }
    default:
      return { ok: false, reason: `unknown message type "${m.type.slice(0, 40)}"` };
  }
}
