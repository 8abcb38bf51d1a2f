// A job's spec becomes the agent's order. The spec (limits, environment, and the workspace, base and uploads resolved
// at submit) is declared once as a TypeBox schema with the table it is stored in (store/schema.ts): submit builds it
// typed, the store checks it once as it reads a row back, and this turns it into a SandboxSpec without parsing anything.
import type { SandboxSpec, SleepTimers } from '@mags/api';
import type { JobSpec } from '../store/index.js';

/** The server's sleep timers in the agent's terms (`--sleep-after`, `--stop-after`). */
export function sleepTimers(sleepAfterMs: number, stopAfterMs: number): SleepTimers {
  return {
    afterS: Math.max(1, Math.round(sleepAfterMs / 1000)),
    stopAfterS: Math.max(1, Math.round(stopAfterMs / 1000)),
  };
}

/**
 * What the agent is told to run. `diskGb` may be larger than the spec's (a workspace resized since the submit);
 * `firstSeq` is where the job's output continues (a sandbox started again after it slept or died).
 */
export function sandboxSpec(
  job: { id: string; user_id: string; script: string },
  spec: JobSpec,
  diskGb: number,
  opts: { sleep: SleepTimers; firstSeq?: number },
): SandboxSpec {
  const sandbox: SandboxSpec = {
    jobId: job.id,
    script: job.script,
    environment: spec.environment,
    vcpus: spec.vcpus,
    memoryMb: spec.memory_mb,
    timeoutS: spec.timeout_s,
    network: spec.network,
    diskGb: Math.max(spec.disk_gb, diskGb),
    uploads: (spec.uploads ?? []).map((u) => ({ key: u.key, name: u.name, size: u.size })),
  };
  // Store keys carry the owner's id, never a name the user typed alone.
  if (spec.workspace)
    sandbox.workspace = { owner: job.user_id, name: spec.workspace.name, persistent: spec.workspace.persistent };
  if (spec.base) sandbox.base = { label: spec.base.label, manifestKey: spec.base.manifestKey };
  if (spec.long_lived) sandbox.longLived = true;
  if (spec.long_lived && !spec.no_sleep) sandbox.sleep = opts.sleep;
  if (spec.startup_command) sandbox.startupCommand = spec.startup_command;
  if (opts.firstSeq !== undefined && opts.firstSeq > 1) sandbox.firstSeq = opts.firstSeq;
  return sandbox;
}
