// The agent protocol: every message between the server and an agent, declared once as a TypeBox schema. The types
// both ends use are derived from the schemas, and each end checks what it receives (parseAgentMessage on the server,
// parseServerMessage on the agent) before acting on it: across a network the peer is a separate program, maybe
// another version, maybe broken. The link that carries the messages is in agent-link.ts.
import { type Static, type TObject, type TSchema, Type } from 'typebox';
import { Compile, type Validator } from 'typebox/compile';
import { ENV_NAME_PATTERN, LogStream, MAX_ENV_VALUE, MAX_SCRIPT_BYTES, NAME_PATTERN } from './jobs.js';
import { HostStorage } from './storage.js';
import { MAX_DISK_GB } from './workspaces.js';

// ── building blocks ─────────────────────────────────────────────────────────────────────────────────

/**
 * Every object is closed: a field this end does not know is refused, not carried along into the store, a log or a
 * host path. Both ends are built from this file; a field only one of them knows means they are different versions.
 */
const CLOSED = { additionalProperties: false } as const;

/** Ids, keys and codes: never empty, never a megabyte. */
const Id = Type.String({ minLength: 1, maxLength: 1024 });
/** Names shown to people (agent name, runtime, version). */
const Label = Type.String({ maxLength: 1024 });
/** Epoch milliseconds. */
const Time = Type.Number({ exclusiveMinimum: 0 });
/** Sandboxes and slots. */
const Count = Type.Integer({ minimum: 0, maximum: 1_000_000 });
/** Bytes and files. */
const Size = Type.Integer({ minimum: 0, maximum: Number.MAX_SAFE_INTEGER });
/** A workspace version; the first is 1. */
const Version = Type.Integer({ minimum: 1, maximum: Number.MAX_SAFE_INTEGER });
const DiskGb = Type.Integer({ minimum: 1, maximum: MAX_DISK_GB });

/** Longest error sentence passed on from an agent's reply (characters); parseAgentMessage cuts longer ones. */
export const MAX_ERROR = 4096;

// ── what a sandbox is made of ───────────────────────────────────────────────────────────────────────

export const NetworkPolicy = Type.Union([Type.Literal('internet'), Type.Literal('none')]);
export type NetworkPolicy = Static<typeof NetworkPolicy>;

/**
 * Names a workspace in the object store (`workspaces/<owner>/<name>/`) and on a host (the directory <owner>/<name>).
 * The owner is the user's id. Both parts are names (NAME_PATTERN): never empty, never "." or "..", no "/".
 */
export const WorkspaceKey = Type.Object(
  { owner: Type.String({ pattern: NAME_PATTERN }), name: Type.String({ pattern: NAME_PATTERN }) },
  CLOSED,
);
export type WorkspaceKey = Static<typeof WorkspaceKey>;

export const SandboxWorkspace = Type.Object(
  {
    ...WorkspaceKey.properties,
    /** Persistent: synced to the object store after the run (before `exited`), periodically, and on `sync`. */
    persistent: Type.Boolean(),
  },
  CLOSED,
);
export type SandboxWorkspace = Static<typeof SandboxWorkspace>;

export const BaseLayer = Type.Object(
  {
    /** For messages: NAME@VERSION of the base workspace. */
    label: Id,
    /**
     * Object-store key of the gzip'd manifest to materialise. Hosts share one read-only copy per distinct manifest
     * (keyed by the sha256 of these bytes), however many sandboxes use it.
     */
    manifestKey: Id,
  },
  CLOSED,
);
export type BaseLayer = Static<typeof BaseLayer>;

export const UploadRef = Type.Object(
  {
    /** Object-store key of the file's bytes. */
    key: Id,
    /** Basename under /uploads/ (the agent checks it again with checkUploadName). */
    name: Type.String({ minLength: 1, maxLength: 255 }),
    size: Size,
  },
  CLOSED,
);
export type UploadRef = Static<typeof UploadRef>;

/** When an idle sandbox sleeps (seconds): frozen after `afterS` idle, stopped after `stopAfterS` frozen. */
export const SleepTimers = Type.Object(
  { afterS: Type.Integer({ minimum: 1 }), stopAfterS: Type.Integer({ minimum: 1 }) },
  CLOSED,
);
export type SleepTimers = Static<typeof SleepTimers>;

/** Everything an agent needs to run one sandbox for one job. */
export const SandboxSpec = Type.Object(
  {
    jobId: Id,
    script: Type.String({ maxLength: MAX_SCRIPT_BYTES }),
    environment: Type.Record(
      Type.String({ pattern: ENV_NAME_PATTERN }),
      Type.String({ maxLength: MAX_ENV_VALUE }),
      CLOSED,
    ),
    vcpus: Type.Number({ exclusiveMinimum: 0 }),
    memoryMb: Type.Integer({ minimum: 1 }),
    /** Wall-clock limit; the agent kills the sandbox when it passes. */
    timeoutS: Type.Integer({ minimum: 1 }),
    network: NetworkPolicy,
    /** Size of the sandbox's writable layer: the workspace disk, or the ephemeral layer. */
    diskGb: DiskGb,
    /** The workspace the sandbox's writable layer is; absent for an ephemeral sandbox. */
    workspace: Type.Optional(SandboxWorkspace),
    /** A read-only layer between the image and the writable layer (`--base`, or the base a workspace was made on). */
    base: Type.Optional(BaseLayer),
    /** Uploaded files to place at /uploads/<name> before the script starts. */
    uploads: Type.Array(UploadRef, { maxItems: 100 }),
    /**
     * A long-lived sandbox (`mags new`): no script; it stays up, without a timeout, until `stop` (or until it dies),
     * and commands enter it with `exec`.
     */
    longLived: Type.Optional(Type.Boolean()),
    /**
     * Run in the background at every start of the sandbox (its first, and every start after it was stopped asleep or
     * died); its output goes to the job's output.
     */
    startupCommand: Type.Optional(Type.String({ minLength: 1, maxLength: MAX_SCRIPT_BYTES })),
    /**
     * When an idle long-lived sandbox sleeps: frozen after `afterS` seconds with no exec and almost no CPU use, and
     * stopped (`exited` reason `asleep`) after `stopAfterS` seconds frozen. Absent: it never sleeps (`--no-sleep`).
     */
    sleep: Type.Optional(SleepTimers),
    /** The seq of the job's first output line from this start (a job started again continues its output). */
    firstSeq: Type.Optional(Type.Integer({ minimum: 1, maximum: 2_147_483_647 })),
  },
  CLOSED,
);
export type SandboxSpec = Static<typeof SandboxSpec>;

// ── exec: a command run in a running sandbox ────────────────────────────────────────────────────────

/** Bytes of an exec's stdin or output, base64: at most 256 KiB of bytes per message. */
const Chunk = Type.String({ maxLength: 349_528, pattern: '^[A-Za-z0-9+/]*={0,2}$' });
/** An exec's id, made by the server; every exec message carries it. */
const ExecId = Id;

/**
 * Flow control: the agent stops sending an exec's output once EXEC_WINDOW bytes of it are not acknowledged by the
 * server (`execAck`), and the server stops sending stdin once EXEC_WINDOW bytes are not acknowledged by the agent
 * (`execInputAck`); either may overshoot by one chunk. So an exec's bytes in flight are bounded at both ends,
 * whatever its output and however slowly its client reads.
 */
export const EXEC_WINDOW = 1024 * 1024;
/** Largest chunk of bytes one exec message carries. */
export const EXEC_CHUNK = 256 * 1024;

/** How often an agent reports what a running sandbox has used (`usage`), besides once when it ends. */
export const USAGE_REPORT_MS = 60_000;

/**
 * The helper every sandbox has, read-only (the agent's packages/agent/native/mags-tool.c): `pty` runs a program on a
 * terminal made inside the sandbox, `connect PORT` relays stdio to 127.0.0.1:PORT in the sandbox's network.
 */
export const SANDBOX_TOOL = '/.mags/tool';

/** Columns or rows of a terminal. */
const TermSize = Type.Integer({ minimum: 1, maximum: 10_000 });

/** The terminal an exec runs on: its type (TERM) and size. */
export const ExecTty = Type.Object(
  { term: Type.String({ minLength: 1, maxLength: 64, pattern: '^[A-Za-z0-9._+-]+$' }), cols: TermSize, rows: TermSize },
  CLOSED,
);
export type ExecTty = Static<typeof ExecTty>;

export const ExecOrder = Type.Object(
  {
    type: Type.Literal('exec'),
    execId: ExecId,
    /** The job whose running sandbox runs it. */
    jobId: Id,
    /** Run as `/bin/sh -c command`. */
    command: Type.String({ minLength: 1, maxLength: MAX_SCRIPT_BYTES }),
    /** Over the job's own environment. */
    environment: Type.Record(
      Type.String({ pattern: ENV_NAME_PATTERN }),
      Type.String({ maxLength: MAX_ENV_VALUE }),
      CLOSED,
    ),
    /** Working directory inside the sandbox (absolute); default /root. */
    cwd: Type.Optional(Type.String({ minLength: 1, maxLength: 4096, pattern: '^/' })),
    /** Wall-clock limit: the exec's processes are killed when it passes. */
    timeoutS: Type.Integer({ minimum: 1 }),
    /** Whether stdin follows in `execInput` messages; without, the command's stdin is empty. */
    stdin: Type.Boolean(),
    /**
     * Run it on a pseudo-terminal made inside the sandbox (`/.mags/tool pty`), of this type and size: its output
     * then all comes as stdout, and `execResize` changes its size.
     */
    tty: Type.Optional(ExecTty),
  },
  CLOSED,
);
export type ExecOrder = Static<typeof ExecOrder>;

/** A new size for an exec's terminal (SSH `window-change`); ignored for an exec without one. */
export const ExecResize = Type.Object(
  { type: Type.Literal('execResize'), execId: ExecId, cols: TermSize, rows: TermSize },
  CLOSED,
);
export type ExecResize = Static<typeof ExecResize>;

export const ExecEnd = Type.Union([
  /** The command exited (or was killed by a signal: 128+n). */
  Type.Literal('exited'),
  /** Its timeout passed: its processes were killed. */
  Type.Literal('timeout'),
  /** The server asked (`execKill`: its client went away): its processes were killed. */
  Type.Literal('killed'),
  /** It never ran: this agent has no running sandbox for the job (409 to the client). */
  Type.Literal('refused'),
  /** The runtime failed to run it. */
  Type.Literal('error'),
]);
export type ExecEnd = Static<typeof ExecEnd>;

// ── what an agent reports ───────────────────────────────────────────────────────────────────────────

export const OutputLine = Type.Object(
  {
    /** 1-based position in the job's output; the server stores lines by it, so a resend is harmless. */
    seq: Type.Integer({ minimum: 1, maximum: 2_147_483_647 }),
    stream: LogStream,
    /** epoch milliseconds */
    ts: Time,
    message: Type.String(),
  },
  CLOSED,
);
export type OutputLine = Static<typeof OutputLine>;

/** Warm sandboxes waiting for a job, sandboxes holding a job, of which asleep (frozen), and the pool's bounds. */
export const AgentPool = Type.Object({ idle: Count, busy: Count, sleeping: Count, min: Count, max: Count }, CLOSED);
export type AgentPool = Static<typeof AgentPool>;

export const AgentInfo = Type.Object(
  {
    id: Id,
    name: Label,
    /** OCI runtime binary and version, e.g. "crun 1.8.1" */
    runtime: Label,
    version: Label,
    /** Sandboxes this agent runs at once. */
    capacity: Count,
    pool: AgentPool,
    /** Space for sandbox layers and workspace disks on the agent's host; the server admits disks against it. */
    storage: Type.Optional(HostStorage),
  },
  CLOSED,
);
export type AgentInfo = Static<typeof AgentInfo>;

export const ExitReason = Type.Union([
  Type.Literal('exited'),
  Type.Literal('stopped'),
  Type.Literal('timeout'),
  Type.Literal('error'),
  /** A sleeping sandbox was stopped (frozen long enough, or the host needed its memory): the job sleeps on without it. */
  Type.Literal('asleep'),
]);
export type ExitReason = Static<typeof ExitReason>;

/** What an agent reports about a workspace copy it holds. */
export const WorkspaceReport = Type.Object(
  {
    ...WorkspaceKey.properties,
    /** 'gone': the host copy was deleted (a local workspace expired, or it was dropped). */
    state: Type.Union([Type.Literal('present'), Type.Literal('gone')]),
    /** Bytes and files in the workspace's own layer. */
    usedBytes: Size,
    files: Size,
    /** Persistent: the current version after the last successful sync, and the versions kept. */
    version: Type.Optional(Version),
    versions: Type.Optional(Size),
    /** Persistent: changes not yet synced (the last sync failed and is being retried). */
    dirty: Type.Optional(Type.Boolean()),
    ts: Time,
  },
  CLOSED,
);
export type WorkspaceReport = Static<typeof WorkspaceReport>;

export const WorkspaceOrderResult = Type.Object(
  {
    /** Whether this agent held a copy of the workspace. */
    held: Type.Boolean(),
    /** sync: the current version after it (null if never synced). */
    version: Type.Optional(Type.Union([Version, Type.Null()])),
    /** sync: whether a new version was written. */
    changed: Type.Optional(Type.Boolean()),
  },
  CLOSED,
);
export type WorkspaceOrderResult = Static<typeof WorkspaceOrderResult>;

// ── server → agent ──────────────────────────────────────────────────────────────────────────────────

/**
 * Orders about a workspace; each is answered by exactly one `reply` with the same requestId.
 * - sync: snapshot the host copy now if this agent holds it (result: { held, version, changed }).
 * - resize: grow the host copy's disk now if held (the server records the size for later mounts either way).
 * - drop: delete every host copy of the workspace (it was deleted, or rolled back and must be restored again).
 */
const SyncOrder = Type.Object({ type: Type.Literal('sync'), requestId: Id, workspace: WorkspaceKey }, CLOSED);
const ResizeOrder = Type.Object(
  { type: Type.Literal('resize'), requestId: Id, workspace: WorkspaceKey, diskGb: DiskGb },
  CLOSED,
);
const DropOrder = Type.Object({ type: Type.Literal('drop'), requestId: Id, workspace: WorkspaceKey }, CLOSED);
export const WorkspaceOrder = Type.Union([SyncOrder, ResizeOrder, DropOrder]);
export type WorkspaceOrder = Static<typeof WorkspaceOrder>;

export const ServerToAgent = Type.Union([
  /** Run this sandbox; the agent answers with `started` (or an `exited` with reason `error`), output, `exited`. */
  Type.Object({ type: Type.Literal('start'), sandbox: SandboxSpec }, CLOSED),
  /** Stop this job's sandbox; the agent answers with its `exited` (reason `stopped`). */
  Type.Object({ type: Type.Literal('stop'), jobId: Id }, CLOSED),
  ...WorkspaceOrder.anyOf,
  /**
   * Run a command in the job's running sandbox; the agent answers `execStarted` (or an `execExited`, reason
   * `refused` or `error`), then `execOutput`s, then exactly one `execExited`.
   */
  ExecOrder,
  /** Bytes for the exec's stdin (within the window), and whether they are the last (`eof`: stdin is closed). */
  Type.Object({ type: Type.Literal('execInput'), execId: ExecId, data: Chunk, eof: Type.Boolean() }, CLOSED),
  /** The server has passed on this many more bytes of the exec's output: the agent may send as many more. */
  Type.Object({ type: Type.Literal('execAck'), execId: ExecId, bytes: Size }, CLOSED),
  /** Kill the exec's processes now (its client went away); the agent answers with its `execExited`. */
  Type.Object({ type: Type.Literal('execKill'), execId: ExecId }, CLOSED),
  /**
   * Change a running or sleeping job's settings (`PATCH …/mags-jobs/{id}`): its sleep timers (null: never sleep; a
   * frozen sandbox is woken) and its startup command (from its next start).
   */
  Type.Object(
    {
      type: Type.Literal('update'),
      jobId: Id,
      sleep: Type.Union([SleepTimers, Type.Null()]),
      startupCommand: Type.Union([Type.String({ minLength: 1, maxLength: MAX_SCRIPT_BYTES }), Type.Null()]),
    },
    CLOSED,
  ),
  /**
   * A request for the job's sandbox arrived (its URL): a frozen one is woken (the agent answers `woke`), an awake
   * one's idle time starts again.
   */
  Type.Object({ type: Type.Literal('wake'), jobId: Id }, CLOSED),
  /**
   * Put the long-lived job's sandbox to sleep now (E2B's pause), idle or not: it is frozen (the agent answers
   * `slept`), and stopped once it has been frozen `stopAfterS` as any sleeping sandbox.
   */
  Type.Object({ type: Type.Literal('sleep'), jobId: Id }, CLOSED),
  /** Resize the exec's terminal (the program gets SIGWINCH). */
  ExecResize,
]);
export type ServerToAgent = Static<typeof ServerToAgent>;

// ── agent → server ──────────────────────────────────────────────────────────────────────────────────

export const AgentToServer = Type.Union([
  /** The first message on a link: who the agent is; nothing else it sends counts before it. */
  Type.Object({ type: Type.Literal('hello'), agent: AgentInfo }, CLOSED),
  /** The pool's counts, and the host's storage figures (sent when they change, and every few seconds). */
  Type.Object({ type: Type.Literal('pool'), pool: AgentPool, storage: Type.Optional(HostStorage) }, CLOSED),
  /** `address`: the sandbox's IPv4 address on its veth link (absent with network none), for the router. */
  Type.Object(
    {
      type: Type.Literal('started'),
      jobId: Id,
      sandboxId: Id,
      ts: Time,
      address: Type.Optional(Type.String({ maxLength: 64 })),
    },
    CLOSED,
  ),
  /** The job's sandbox was idle long enough and is frozen (its memory kept): the job is `sleeping`. */
  Type.Object({ type: Type.Literal('slept'), jobId: Id, ts: Time }, CLOSED),
  /** The job's frozen sandbox runs again (an exec, a `wake`, or `update` to never sleep): the job is `running`. */
  Type.Object({ type: Type.Literal('woke'), jobId: Id, ts: Time }, CLOSED),
  Type.Object({ type: Type.Literal('output'), jobId: Id, lines: Type.Array(OutputLine) }, CLOSED),
  Type.Object(
    {
      type: Type.Literal('exited'),
      jobId: Id,
      /** The script's exit code (128+signal when killed); null when it never ran. */
      exitCode: Type.Union([Type.Integer(), Type.Null()]),
      reason: ExitReason,
      message: Type.Optional(Type.String()),
      ts: Time,
    },
    CLOSED,
  ),
  Type.Object({ type: Type.Literal('workspace'), report: WorkspaceReport }, CLOSED),
  /**
   * What the job's sandbox has used since it started this job (cumulative, so a lost or repeated report is harmless):
   * sent every USAGE_REPORT_MS while it runs and once more, `final`, before its `exited`. A job started again (woken,
   * restarted) is metered anew under its new sandboxId.
   */
  Type.Object(
    {
      type: Type.Literal('usage'),
      jobId: Id,
      sandboxId: Id,
      /** Wall-clock time the sandbox has run the job. */
      sandboxMs: Size,
      /** CPU time of every process of the sandbox (cpuacct.usage), in milliseconds. */
      cpuMs: Size,
      /** Memory charged to the sandbox's cgroup, integrated over time: MiB × milliseconds. */
      memoryMibMs: Size,
      /** Bytes the sandbox sent out of its network namespace (its veth's counter on the host). */
      egressBytes: Size,
      final: Type.Boolean(),
      ts: Time,
    },
    CLOSED,
  ),
  /** The exec's process runs (its stdin may be sent). */
  Type.Object({ type: Type.Literal('execStarted'), execId: ExecId }, CLOSED),
  /** Bytes the exec wrote, in order per stream; stdout and stderr apart. */
  Type.Object(
    {
      type: Type.Literal('execOutput'),
      execId: ExecId,
      stream: Type.Union([Type.Literal('stdout'), Type.Literal('stderr')]),
      data: Chunk,
    },
    CLOSED,
  ),
  /** This many more bytes of stdin were written to the exec's process: the server may send as many more. */
  Type.Object({ type: Type.Literal('execInputAck'), execId: ExecId, bytes: Size }, CLOSED),
  /** The exec ended; the last message about it. */
  Type.Object(
    {
      type: Type.Literal('execExited'),
      execId: ExecId,
      /** The command's exit code (128+signal when killed); null when it never ran. */
      exitCode: Type.Union([Type.Integer(), Type.Null()]),
      reason: ExecEnd,
      message: Type.Optional(Type.String({ maxLength: MAX_ERROR })),
    },
    CLOSED,
  ),
  Type.Object(
    { type: Type.Literal('reply'), requestId: Id, ok: Type.Literal(true), result: WorkspaceOrderResult },
    CLOSED,
  ),
  Type.Object(
    {
      type: Type.Literal('reply'),
      requestId: Id,
      ok: Type.Literal(false),
      status: Type.Integer({ minimum: 400, maximum: 599 }),
      code: Id,
      /** The sentence for the user; a long one is cut to MAX_ERROR characters on arrival. */
      error: Type.String({ minLength: 1 }),
    },
    CLOSED,
  ),
]);
export type AgentToServer = Static<typeof AgentToServer>;

// ── checking what arrives ───────────────────────────────────────────────────────────────────────────

/** A message that passed its schema, or why it did not (with its type, when it has one, for the log). */
export type Parsed<T> = { ok: true; message: T } | { ok: false; type?: string; reason: string };

let agentMessages: MessageParser | undefined;
let serverMessages: MessageParser | undefined;

/**
 * Checks a message from an agent against its schema. A failed reply's long error sentence is cut to MAX_ERROR
 * characters rather than refused: refusing it left the server's request waiting for its timeout.
 */
export function parseAgentMessage(raw: unknown): Parsed<AgentToServer> {
  agentMessages ??= new MessageParser(AgentToServer.anyOf);
  const parsed = agentMessages.parse<AgentToServer>(raw);
  if (parsed.ok && parsed.message.type === 'reply' && !parsed.message.ok && parsed.message.error.length > MAX_ERROR) {
    return { ok: true, message: { ...parsed.message, error: `${parsed.message.error.slice(0, MAX_ERROR - 1)}…` } };
  }
  return parsed;
}

/** Checks a message from the server against its schema. */
export function parseServerMessage(raw: unknown): Parsed<ServerToAgent> {
  serverMessages ??= new MessageParser(ServerToAgent.anyOf);
  return serverMessages.parse<ServerToAgent>(raw);
}

interface Variant {
  /** The variant's literal fields (`type`, and `ok` for replies) and their values. */
  literals: Array<[string, unknown]>;
  validator: Validator;
}

/**
 * Picks a message's variant by its literal fields and checks it against that variant alone, so the reason names
 * the field at fault ("exited: exitCode must be integer or null") instead of every variant the message is not.
 * Compiled on first use: the CLI and SDK load this package too, and never parse a message.
 */
class MessageParser {
  private readonly byType = new Map<string, Variant[]>();

  constructor(variants: readonly TObject[]) {
    for (const schema of variants) {
      const literals = Object.entries(schema.properties as Record<string, TSchema & { const?: unknown }>)
        .filter(([, property]) => 'const' in property)
        .map(([key, property]): [string, unknown] => [key, property.const]);
      const type = literals.find(([key]) => key === 'type')?.[1] as string;
      const list = this.byType.get(type) ?? [];
      list.push({ literals, validator: Compile(schema) });
      this.byType.set(type, list);
    }
  }

  parse<T>(raw: unknown): Parsed<T> {
    if (
      typeof raw !== 'object' ||
      raw === null ||
      Array.isArray(raw) ||
      typeof (raw as { type?: unknown }).type !== 'string'
    ) {
      return { ok: false, reason: 'not an object with a "type"' };
    }
    const message = raw as Record<string, unknown>;
    const type = shorten(message.type as string);
    const variants = this.byType.get(message.type as string);
    if (!variants) return { ok: false, type, reason: `unknown message type "${type}"` };
    const variant = variants.find((v) => v.literals.every(([key, value]) => message[key] === value)) ?? variants[0];
    if (variant.validator.Check(raw)) return { ok: true, message: raw as T };
    return { ok: false, type, reason: `${type}: ${describe(variant.validator.Errors(raw))}` };
  }
}

/** Names from a message (its type, its fields) go into logs: cut to a length a log line can carry. */
function shorten(text: string, max = 40): string {
  return text.length <= max ? text : `${text.slice(0, max)}…`;
}

/** The first problem, as "field.path must be …"; a union's alternatives are named together ("must be integer or null"). */
function describe(
  errors: ReadonlyArray<{ keyword: string; instancePath: string; params: object; message: string }>,
): string {
  const first = errors[0];
  if (!first) return 'not valid';
  const field = first.instancePath
    .slice(1)
    .split('/')
    .map((p) => shorten(p.replace(/~1/g, '/').replace(/~0/g, '~')))
    .join('.');
  // `additionalProperties: false` reports the unknown field itself with a "schema is false" error.
  if (first.keyword === 'boolean') return `${field} is not a field of this message`;
  const where = field || 'the message';
  const isAlternative = (e: { keyword: string }) => e.keyword === 'type' || e.keyword === 'const';
  if (isAlternative(first)) {
    const here = errors.filter((e) => e.instancePath === first.instancePath && isAlternative(e));
    // A literal reports its type as well as its value: the values say it all.
    const params = (e: { params: object }) => e.params as { allowedValue?: unknown; type?: unknown };
    const values = here.filter((e) => e.keyword === 'const').map((e) => JSON.stringify(params(e).allowedValue));
    const allowed = values.length > 0 ? values : here.map((e) => String(params(e).type));
    return `${where} must be ${allowed.join(' or ')}`;
  }
  return `${where} ${first.message}`;
}
