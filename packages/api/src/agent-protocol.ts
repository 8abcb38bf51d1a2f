// The agent protocol: the only way the server and an agent talk. Embedded mode carries these messages
// in-process (createInProcessLink); cluster mode carries the same messages over a WebSocket the agent dials.

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
  diskGb: number;
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
}

export type ExitReason = 'exited' | 'stopped' | 'timeout' | 'error';

export type ServerToAgent =
  | { type: 'start'; sandbox: SandboxSpec }
  | { type: 'stop'; jobId: string };

export type AgentToServer =
  | { type: 'hello'; agent: AgentInfo }
  | { type: 'pool'; pool: AgentInfo['pool'] }
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
    };

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
