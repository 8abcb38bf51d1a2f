// A connection between the server and an agent, and the in-process one that joins them in embedded mode (the only
// transport today; agents on other hosts will carry the same messages over a network link).
import type { AgentToServer, ServerToAgent } from './agent-protocol.js';

/**
 * One end of a connection. Messages arrive in the order they were sent, as the peer sent them: unchecked, so each
 * end parses them (parseAgentMessage, parseServerMessage) before acting on them.
 */
export interface Link<Out> {
  send(message: Out): void;
  onMessage(handler: (message: unknown) => void): void;
  onClose(handler: () => void): void;
  close(): void;
}
export type ServerEnd = Link<ServerToAgent>;
export type AgentEnd = Link<AgentToServer>;

/** How long one turn of the event loop handles in-process messages before letting I/O in. */
const DELIVERY_SLICE_MS = 2;

/** Joins a server and an agent living in one process. Delivery is asynchronous and ordered, as on a socket. */
export function createInProcessLink(): { server: ServerEnd; agent: AgentEnd } {
  function end<Out>() {
    let peer: { deliver(m: unknown): void; closed(): void } | undefined;
    const handlers: Array<(m: unknown) => void> = [];
    const closeHandlers: Array<() => void> = [];
    const queue: unknown[] = [];
    let scheduled = false;
    let open = true;
    // Messages are handled for at most a slice of a turn of the event loop, then the rest waits for the next turn:
    // what one end does on a message (the agent starting a sandbox) must not hold back the I/O that came meanwhile
    // (the server admitting submits), as two processes on a socket would not.
    function drain() {
      const until = performance.now() + DELIVERY_SLICE_MS;
      try {
        do {
          const msg = queue.shift();
          for (const h of handlers) h(msg);
        } while (queue.length > 0 && performance.now() < until);
      } finally {
        if (queue.length > 0) setImmediate(drain);
        else scheduled = false;
      }
    }
    const self = {
      deliver(m: unknown) {
        queue.push(m);
        if (scheduled) return;
        scheduled = true;
        setImmediate(drain);
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
        onMessage(h: (m: unknown) => void) {
          handlers.push(h);
        },
        onClose(h: () => void) {
          closeHandlers.push(h);
        },
        close() {
          self.closed();
          peer?.closed();
        },
      } as Link<Out>,
      connect(p: { deliver(m: unknown): void; closed(): void }) {
        peer = p;
      },
    };
    return self;
  }
  const s = end<ServerToAgent>();
  const a = end<AgentToServer>();
  s.connect(a);
  a.connect(s);
  return { server: s.link, agent: a.link };
}
