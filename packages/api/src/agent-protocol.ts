// The agent protocol: the only way the server and an agent talk. Embedded mode carries these messages
// in-process (createInProcessLink); cluster mode carries the same messages over a WebSocket the agent dials.
import type { HostStorage } from './storage.js';

export type NetworkPolicy = 'internet' | 'none';

/** Everything an agent needs to run one sandbox for one job. */
export interface SandboxSpec {
  jobId: string;
  script: string;
  environment: Record<string, string>;
  vcpus: number;
  memoryMb: number;
  /** Wall-clock limit; the agent kills the sandbox when it passes. */
  timeoutS: number;
  network: NetworkPolicy;
  /** Size of the sandbox's writable layer: the workspace disk, or the ephemeral layer. */
  diskGb: number;
  /** The workspace the sandbox's writable layer is; absent for an ephemeral sandbox. */
  workspace?: SandboxWorkspace;
  /** A read-only layer between the image and the writable layer (`--base`, or the base a workspace was made on). */
  base?: BaseLayer;
  /** Uploaded files to place at /uploads/<name> before the script starts. */
  uploads: UploadRef[];
}

/** Names a workspace in the object store: `workspaces/<owner>/<name>/`. The owner is the user's id. */
export interface WorkspaceKey {
  owner: string;
  name: string;
}

export interface SandboxWorkspace extends WorkspaceKey {
  /** Persistent: synced to the object store after the run (before `exited`), periodically, and on `sync`. */
  persistent: boolean;
}

export interface BaseLayer {
  /** For messages: NAME@VERSION of the base workspace. */
  label: string;
  /**
   * Object-store key of the gzip'd manifest to materialise. Hosts share one read-only copy per distinct manifest
   * (keyed by the sha256 of these bytes), however many sandboxes use it.
   */
  manifestKey: string;
}

export interface UploadRef {
  /** Object-store key of the file's bytes. */
  key: string;
  /** Basename under /uploads/ (checked by checkUploadName). */
  name: string;
  size: number;
}

/** What an agent reports about a workspace copy it holds. */
export interface WorkspaceReport extends WorkspaceKey {
  /** 'gone': the host copy was deleted (a local workspace expired, or it was dropped). */
  state: 'present' | 'gone';
  /** Bytes and files in the workspace's own layer. */
  usedBytes: number;
  files: number;
  /** Persistent: the current version after the last successful sync, and the versions kept. */
  version?: number;
  versions?: number;
  /** Persistent: changes not yet synced (the last sync failed and is being retried). */
  dirty?: boolean;
  ts: number;
}

export interface OutputLine {
  /** 1-based position in the job's output; the server stores lines by it, so a resend is harmless. */
  seq: number;
  stream: 'stdout' | 'stderr' | 'system';
  /** epoch milliseconds */
  ts: number;
  message: string;
}

export interface AgentInfo {
  id: string;
  name: string;
  /** OCI runtime binary and version, e.g. "crun 1.8.1" */
  runtime: string;
  version: string;
  /** Sandboxes this agent runs at once. */
  capacity: number;
  pool: { idle: number; busy: number; min: number; max: number };
  /** Space for sandbox layers and workspace disks on the agent's host; the server admits disks against it. */
  storage?: HostStorage;
}

export type ExitReason = 'exited' | 'stopped' | 'timeout' | 'error';

/**
 * Orders about a workspace; each is answered by exactly one `reply` with the same requestId.
 * - sync: snapshot the host copy now if this agent holds it (result: { held, version, changed }).
 * - resize: grow the host copy's disk now if held (the server records the size for later mounts either way).
 * - drop: delete every host copy of the workspace (it was deleted, or rolled back and must be restored again).
 */
export type WorkspaceOrder =
  | { type: 'sync'; requestId: string; workspace: WorkspaceKey }
  | { type: 'resize'; requestId: string; workspace: WorkspaceKey; diskGb: number }
  | { type: 'drop'; requestId: string; workspace: WorkspaceKey };

export interface WorkspaceOrderResult {
  /** Whether this agent held a copy of the workspace. */
  held: boolean;
  /** sync: the current version after it (null if never synced). */
  version?: number | null;
  /** sync: whether a new version was written. */
  changed?: boolean;
}

export type ServerToAgent =
  | { type: 'start'; sandbox: SandboxSpec }
  | { type: 'stop'; jobId: string }
  | WorkspaceOrder;

export type AgentToServer =
  | { type: 'hello'; agent: AgentInfo }
  /** The pool's counts, and the host's storage figures (sent when they change, and every few seconds). */
  | { type: 'pool'; pool: AgentInfo['pool']; storage?: HostStorage }
  | { type: 'started'; jobId: string; sandboxId: string; ts: number }
  | { type: 'output'; jobId: string; lines: OutputLine[] }
  | {
      type: 'exited';
      jobId: string;
      /** The script's exit code (128+signal when killed); null when it never ran. */
      exitCode: number | null;
      reason: ExitReason;
      message?: string;
      ts: number;
    }
  | { type: 'workspace'; report: WorkspaceReport }
  | { type: 'reply'; requestId: string; ok: true; result: WorkspaceOrderResult }
  | { type: 'reply'; requestId: string; ok: false; status: number; code: string; error: string };

/** One end of a connection between the server and an agent. Messages arrive in the order they were sent. */
export interface Link<Out, In> {
  send(message: Out): void;
  onMessage(handler: (message: In) => void): void;
  onClose(handler: () => void): void;
  close(): void;
}
export type ServerEnd = Link<ServerToAgent, AgentToServer>;
export type AgentEnd = Link<AgentToServer, ServerToAgent>;

/** Joins a server and an agent living in one process. Delivery is asynchronous and ordered, as on a socket. */
export function createInProcessLink(): { server: ServerEnd; agent: AgentEnd } {
  function end<Out, In>() {
    let peer: { deliver(m: unknown): void; closed(): void } | undefined;
    const handlers: Array<(m: In) => void> = [];
    const closeHandlers: Array<() => void> = [];
    const queue: In[] = [];
    let scheduled = false;
    let open = true;
    const self = {
      deliver(m: unknown) {
        queue.push(m as In);
        if (scheduled) return;
        scheduled = true;
        setImmediate(() => {
          scheduled = false;
          for (const msg of queue.splice(0)) for (const h of handlers) h(msg);
        });
      },
      closed() {
        if (!open) return;
        open = false;
        for (const h of closeHandlers) h();
      },
      link: {
        send(message: Out) {
          if (open) peer?.deliver(message);
        },
        onMessage(h: (m: In) => void) {
          handlers.push(h);
        },
        onClose(h: () => void) {
          closeHandlers.push(h);
        },
        close() {
          self.closed();
          peer?.closed();
        },
      } as Link<Out, In>,
      connect(p: { deliver(m: unknown): void; closed(): void }) {
        peer = p;
      },
    };
    return self;
  }
  const s = end<ServerToAgent, AgentToServer>();
  const a = end<AgentToServer, ServerToAgent>();
  s.connect(a);
  a.connect(s);
  return { server: s.link, agent: a.link };
}
