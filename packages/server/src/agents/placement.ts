// Where a queued job runs: the agent with the most free slots among those with room for its disk, except that a job
// on a workspace goes to the agent holding the workspace's host copy when it can (for a local workspace, it must).
import { GiB, roomForDisks } from '@mags/api';
import type { ConnectedAgent } from './registry.js';

/** What placement needs to know of a job. */
export interface JobToPlace {
  /** The disk an agent must be able to make for it (GB). */
  diskGb: number;
  /** Its workspace, with the agent last known to hold a host copy; absent for an ephemeral run. */
  workspace?: { holderId: string | null; persistent: boolean };
}

export interface Placement {
  /** Undefined: the job waits (nothing free, or its local workspace's agent is busy). */
  agent: ConnectedAgent | undefined;
  /** The agent holding the job's local workspace is gone: the copy is lost, and the job runs on an empty workspace. */
  lostCopy: boolean;
}

/**
 * The agent with the most free slots, among those with room for a new disk of `diskGb` (an agent that reports no
 * storage figures counts as having room). If none has room, any agent with a slot: it refuses with a sentence.
 */
export function pickAgent(agents: Iterable<ConnectedAgent>, diskGb = 0): ConnectedAgent | undefined {
  let best: ConnectedAgent | undefined;
  let bestFree = 0;
  let bestFits = false;
  for (const agent of agents) {
    const free = agent.freeSlots;
    if (free === 0) continue;
    const fits = !agent.storage || roomForDisks(agent.storage) >= diskGb * GiB;
    if ((fits && !bestFits) || (fits === bestFits && free > bestFree)) {
      best = agent;
      bestFree = free;
      bestFits = fits;
    }
  }
  return best;
}

/**
 * Where `job` goes among the online `agents`. A local workspace lives only on the agent that holds it: its job waits
 * for that agent's capacity while the agent is online; if the agent is gone, the copy is lost and the job runs
 * anywhere. A persistent workspace prefers its agent (a warm copy), else runs anywhere.
 */
export function place(agents: readonly ConnectedAgent[], job: JobToPlace): Placement {
  const ws = job.workspace;
  if (!ws) return { agent: pickAgent(agents, job.diskGb), lostCopy: false };
  const holder = ws.holderId !== null ? agents.find((a) => a.id === ws.holderId) : undefined;
  if (holder) {
    if (holder.freeSlots > 0) return { agent: holder, lostCopy: false };
    if (!ws.persistent) return { agent: undefined, lostCopy: false }; // wait for the agent that has the files
    return { agent: pickAgent(agents, job.diskGb), lostCopy: false };
  }
  return { agent: pickAgent(agents, job.diskGb), lostCopy: ws.holderId !== null && !ws.persistent };
}
