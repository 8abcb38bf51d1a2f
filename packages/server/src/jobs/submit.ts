// Submitting a job: the plan (the rules of a submission beyond its schema: options that need each other, options
// this server does not implement yet, the defaults; pure, so they are tested without HTTP), then admission (the
// uploads, the base and the workspace resolved for the caller, the disk admitted, and the job stored holding its
// workspace). The spec is built here, typed, once; nothing downstream parses or checks it again.

import { DEFAULT_URL_PORT, type JobSubmit, MagsError } from '@mags/api';
import { manifestKey } from '@mags/objects';
import type { Logger } from 'pino';
import type { AgentRegistry } from '../agents/registry.js';
import type { Files } from '../files/service.js';
import { newSubdomain, uuidv7 } from '../ids.js';
import type { Job, JobSpec, Store } from '../store/index.js';
import { DEFAULT_DISK_GB, type Workspaces } from '../workspaces/service.js';
import type { JobEvents } from './events.js';

/** An accepted submission before its workspace, base and files are looked up. Absent keys were not asked for. */
export interface JobPlan {
  name: string | null;
  script: string;
  /** Limits and environment; the workspace, base and uploads are added when resolved. */
  spec: JobSpec;
  /** `-w NAME`, with whether `-p` was given. */
  workspace?: { name: string; persistent: boolean };
  /** `--base NAME`. */
  base?: string;
  /** `file_ids`, in order, without repeats. */
  fileIds?: string[];
  /** `disk_gb` as given (a new workspace's size; for an existing one it must match). */
  diskGb?: number;
  /** `--url [--port P] [--url-private]`: the job gets a subdomain at submit. */
  url?: { port: number; private: boolean };
}

export const JOB_DEFAULTS = {
  vcpus: 1,
  memory_mb: 1024,
  timeout_s: 3600,
  network: 'internet',
  disk_gb: DEFAULT_DISK_GB,
} as const;

const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;
/** Half of a UTF-16 surrogate pair on its own: JSON allows it, but it cannot be stored or run as text. */
const LONE_SURROGATE = /\p{Cs}/u;

/** Submissions the public API does not accept, made by other parts of the server. */
export interface PlanOptions {
  /**
   * A long-lived sandbox without a workspace (an E2B sandbox of template `base`): it starts from the agent's warm
   * pool like a run, its files live in its own sandbox layer and go with it; it sleeps frozen and is never stopped
   * asleep (there is nothing to keep its files on), see docs/architecture.md.
   */
  workspaceless?: boolean;
}

/** What the server stores for an accepted submission. Throws 400 or 422 MagsErrors with a sentence. */
export function planJob(body: JobSubmit, options: PlanOptions = {}): JobPlan {
  const longLived = body.long_lived === true;
  if (longLived) {
    if (body.script !== undefined) {
      throw MagsError.invalid(
        'long_lived takes no script: the sandbox stays up; run commands in it with POST /api/v1/mags-jobs/{id}/exec',
      );
    }
    if (body.workspace_id === undefined && !options.workspaceless)
      throw MagsError.invalid('long_lived requires workspace_id (mags new NAME)');
    if (body.timeout_s !== undefined) {
      throw MagsError.invalid('long_lived takes no timeout_s: the sandbox runs until it is stopped (give exec one)');
    }
  } else if (body.script === undefined) {
    throw MagsError.invalid('script: is required (the shell script to run)');
  }
  const script = body.script ?? '';
  // Options that only make sense together (the same rules the CLI states as flags).
  if (body.ephemeral === true && body.persistent === true) {
    throw MagsError.invalid('ephemeral and persistent contradict each other (-e cannot be combined with -p)');
  }
  if (body.no_sleep === true && body.persistent !== true) {
    throw MagsError.invalid('no_sleep requires persistent: true (--no-sleep requires -p)');
  }
  if (body.url === true && body.persistent !== true) {
    throw MagsError.invalid('url requires persistent: true (--url requires -p)');
  }
  if (body.port !== undefined && body.url !== true) {
    throw MagsError.invalid('port requires url: true (--port goes with --url)');
  }
  if (body.url_private === true && body.url !== true) {
    throw MagsError.invalid('url_private requires url: true (--url-private goes with --url)');
  }
  if (body.url === true && body.network === 'none') {
    throw MagsError.invalid(
      'url and network none contradict each other: the router reaches a sandbox over its network link (use ssh -L for a sandbox without network)',
    );
  }
  if (body.url === true && body.port === 22) {
    throw MagsError.invalid('port 22 is SSH (mags ssh), not a URL: give the port your web server listens on');
  }
  if (body.persistent === true && body.workspace_id === undefined) {
    throw MagsError.invalid('persistent requires workspace_id (-p goes with -w)');
  }
  if (body.ephemeral === true && body.workspace_id !== undefined) {
    throw MagsError.invalid('ephemeral and workspace_id contradict each other (-e cannot be combined with -w)');
  }
  if (body.base_workspace_id !== undefined && body.base_workspace_id === body.workspace_id) {
    throw MagsError.invalid(`workspace "${body.workspace_id}" cannot be its own base (--base names another workspace)`);
  }
  if (script.includes('\0')) {
    throw MagsError.invalid('script: must not contain NUL characters');
  }
  if (LONE_SURROGATE.test(script)) throw MagsError.invalid('script: must be valid Unicode text');
  const environment = body.environment ?? {};
  for (const [key, value] of Object.entries(environment)) {
    if (!ENV_NAME.test(key)) {
      throw MagsError.invalid(
        `environment: ${JSON.stringify(key)} is not a valid variable name (letters, digits and _, not starting with a digit)`,
      );
    }
    if (value.includes('\0')) throw MagsError.invalid(`environment.${key}: must not contain NUL characters`);
    if (LONE_SURROGATE.test(value)) throw MagsError.invalid(`environment.${key}: must be valid Unicode text`);
  }

  const startup = body.startup_command;
  if (startup !== undefined) {
    if (startup.trim() === '') throw MagsError.invalid('startup_command: must not be empty');
    if (startup.includes('\0')) throw MagsError.invalid('startup_command: must not contain NUL characters');
    if (LONE_SURROGATE.test(startup)) throw MagsError.invalid('startup_command: must be valid Unicode text');
    if (body.workspace_id === undefined) {
      throw MagsError.invalid('startup_command requires workspace_id: it runs at every start of a sandbox on it');
    }
  }

  const plan: JobPlan = {
    // A long-lived sandbox is found by its workspace's name (mags exec NAME, mags stop NAME) unless named otherwise.
    name: body.name ?? (longLived ? (body.workspace_id ?? null) : null),
    script,
    spec: {
      vcpus: body.vcpus ?? JOB_DEFAULTS.vcpus,
      memory_mb: body.memory_mb ?? JOB_DEFAULTS.memory_mb,
      timeout_s: body.timeout_s ?? JOB_DEFAULTS.timeout_s,
      network: body.network ?? JOB_DEFAULTS.network,
      disk_gb: body.disk_gb ?? JOB_DEFAULTS.disk_gb,
      environment: { ...environment },
      ...(longLived ? { long_lived: true } : {}),
      ...(body.no_sleep === true ? { no_sleep: true } : {}),
      ...(startup !== undefined ? { startup_command: startup } : {}),
    },
  };
  if (body.workspace_id !== undefined)
    plan.workspace = { name: body.workspace_id, persistent: body.persistent === true };
  if (body.base_workspace_id !== undefined) plan.base = body.base_workspace_id;
  if (body.file_ids !== undefined && body.file_ids.length > 0) plan.fileIds = [...new Set(body.file_ids)];
  if (body.disk_gb !== undefined) plan.diskGb = body.disk_gb;
  if (body.url === true) plan.url = { port: body.port ?? DEFAULT_URL_PORT, private: body.url_private === true };
  return plan;
}

export interface AdmissionDeps {
  store: Store;
  workspaces: Workspaces;
  files: Files;
  agents: AgentRegistry;
  events: JobEvents;
  logger: Logger;
  /** The disk of a sandbox without a workspace when none is asked for (`--sandbox-disk-gb`; default 2). */
  sandboxDiskGb?: number;
}

/**
 * Ends the job `jobId` if it sleeps frozen on an agent (completed, its exit code kept; the agent is told to stop its
 * sandbox, which syncs a persistent workspace and frees the copy before another sandbox opens it). True if it did.
 */
async function endFrozen(deps: AdmissionDeps, jobId: string): Promise<boolean> {
  const holder = await deps.store.jobs.get(jobId);
  if (holder?.status !== 'sleeping' || holder.agent_id === null) return false;
  const ended = await deps.store.jobs.finish(holder.id, {
    status: 'completed',
    exitCode: holder.exit_code,
    errorMessage: null,
    completedAt: Date.now(),
  });
  if (!ended) return false;
  deps.agents.stop(holder.agent_id, holder.id);
  deps.logger.info({ jobId: holder.id }, 'a sleeping sandbox ended: a new job takes its workspace over');
  deps.events.emit(holder.id, { type: 'status', job: ended });
  return true;
}

/**
 * Stores a planned job with its workspace, base and uploads resolved for `userId` only. A missing workspace is
 * created (persistent if -p was given; forked from the base if one was named); a local one used with -p becomes
 * persistent; a persistent one used without -p stays persistent (its data is in the store, and dropping it to
 * local would lose that). The workspace is taken for the job in the same transaction that stores the job:
 * 409 `workspace_busy` if another unfinished job has it.
 */
export async function admitJob(deps: AdmissionDeps, userId: string, plan: JobPlan): Promise<Job> {
  const { store, workspaces, files, logger } = deps;
  const jobId = uuidv7();
  const spec: JobSpec = { ...plan.spec, uploads: await files.forJob(userId, plan.fileIds ?? []) };
  const job = {
    id: jobId,
    user_id: userId,
    name: plan.name,
    script: plan.script,
    status: 'accepted',
    workspace_id: plan.workspace?.name ?? null,
    created_at: Date.now(),
    ...(plan.url ? { subdomain: newSubdomain(), url_port: plan.url.port, url_private: plan.url.private ? 1 : 0 } : {}),
  };

  if (!plan.workspace) {
    if (plan.diskGb === undefined && deps.sandboxDiskGb !== undefined) spec.disk_gb = deps.sandboxDiskGb;
    workspaces.admitOnHost(`a ${spec.disk_gb} GB disk`, spec.disk_gb);
    if (plan.base !== undefined) {
      const base = await workspaces.resolveBase(userId, plan.base);
      spec.base = { label: base.label, manifestKey: manifestKey(base.ref, base.version) };
    }
    return store.jobs.insert({ ...job, spec });
  }

  const name = plan.workspace.name;
  const { row, created } = await workspaces.forJob(userId, jobId, {
    name,
    persistent: plan.workspace.persistent,
    diskGb: plan.diskGb,
    base: plan.base,
  });
  const persistent = row.persistent === 1 || plan.workspace.persistent;
  spec.workspace = { id: row.id, name: row.name, persistent };
  spec.disk_gb = row.disk_gb;
  if (row.base_key !== null && row.base_label !== null)
    spec.base = { label: row.base_label, manifestKey: row.base_key };

  let taken;
  try {
    taken = await store.jobs.insertOnWorkspace({ ...job, spec }, row.id, { persistent: plan.workspace.persistent });
    // One sandbox per workspace: a sandbox asleep on it (frozen) ends, and this job takes the workspace over.
    if (!taken.ok && taken.heldBy !== null && (await endFrozen(deps, taken.heldBy))) {
      taken = await store.jobs.insertOnWorkspace({ ...job, spec }, row.id, { persistent: plan.workspace.persistent });
    }
  } catch (err) {
    if (created) await workspaces.discard(row, jobId);
    throw err;
  }
  if (!taken.ok) {
    const holder = taken.heldBy === null ? undefined : await store.jobs.get(taken.heldBy);
    throw workspaces.busy(name, taken.heldBy, holder?.status === 'running');
  }
  for (const ended of taken.ended) {
    logger.info({ jobId: ended.id, by: jobId }, 'a sleeping job ended: a new job took its workspace over');
    deps.events.emit(ended.id, { type: 'status', job: ended });
  }
  if (persistent && row.persistent === 0) logger.info({ jobId, workspace: name }, 'local workspace becomes persistent');
  return taken.job;
}
