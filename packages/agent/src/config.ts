// Agent configuration: read once, validated, passed down.
import { existsSync } from 'node:fs';
import path from 'node:path';
import { USAGE_REPORT_MS } from '@mags/api';
import { DEFAULT_GC_GRACE_MS } from '@mags/objects';

export interface AgentConfig {
  /** Agent name reported to the server. */
  name: string;
  /**
   * Short tag that keeps this agent's host objects (containers, namespaces, veths, cgroups, nftables table)
   * apart from another agent's on the same host, e.g. a test server beside the user's own.
   */
  instance: string;
  /** Host state owned by the agent: sandboxes, images. */
  stateDir: string;
  imagesDir: string;
  /**
   * Root image directory name under imagesDir (built by scripts/build-image.sh). Sandboxes use its copy shifted
   * into the user namespace's ids (see shiftedImageName).
   */
  image: string;
  /** OCI runtime binary. */
  runtime: string;
  /** Runtime state directory, kept apart from other users of the same runtime. */
  runtimeRoot: string;
  /** Static init run as PID 1 in every sandbox; it reaps orphans. */
  initBinary: string;
  /** The static helper every sandbox has as /.mags/tool (terminals, port forwarding; scripts/build-tool.sh). */
  toolBinary: string;
  /** Sandboxes kept ready ahead of demand. */
  poolSize: number;
  /** Sandboxes this agent runs at once. */
  capacity: number;
  /** /16 the per-sandbox /30 links are carved from. */
  subnet: string;
  /** Destinations sandboxes may never reach (private, link-local, metadata, …); the host's own links are added at start. */
  blockedRanges: string[];
  /** Port on the host where the agent's DNS forwarder listens for sandboxes (redirected from port 53); 0 = any free port. */
  dnsPort: number;
  /** Upstream resolver; default: the first nameserver in /etc/resolv.conf. */
  dnsUpstream?: string;
  /** Defaults for sandboxes whose job sets no limit. */
  defaults: { memoryMb: number; vcpus: number; pids: number; diskGb: number };
  /** Object store holding persistent workspaces and uploads (a directory, file:// or s3:// URL). */
  objects: string;
  /** Credentials for an s3:// store whose URL carries none. */
  objectsCredentials?: { accessKeyId?: string; secretAccessKey?: string };
  /** Host copies of workspaces (disk images and their mounts), materialised bases, and the blob cache. */
  workspacesDir: string;
  basesDir: string;
  cacheDir: string;
  /** A local workspace (-w without -p) is deleted after this long unused. */
  localWorkspaceTtlMs: number;
  /** A persistent workspace stays mounted, with a sandbox parked on it, this long after a run. */
  warmMs: number;
  /** Persistent workspaces are synced this often while a sandbox runs on them. */
  syncIntervalMs: number;
  /** How often a running sandbox's usage is reported (default USAGE_REPORT_MS). */
  usageReportMs: number;
  /** The grace period of the server's object-store gc; a sync must commit within a quarter of it (gc-policy.ts). */
  gcGraceMs: number;
  /**
   * The user namespace every sandbox runs in: uid/gid 0..size-1 inside are hostId..hostId+size-1 on the host. Files
   * a sandbox writes are owned by those host ids; workspaces are stored with the ids as seen inside (portable).
   */
  userns: { hostId: number; size: number };
}

export const DEFAULT_BLOCKED_RANGES = [
  '0.0.0.0/8',
  '10.0.0.0/8',
  '100.64.0.0/10',
  '127.0.0.0/8',
  '169.254.0.0/16', // link-local, including the 169.254.169.254 metadata service
  '172.16.0.0/12',
  '192.0.0.0/24',
  '192.168.0.0/16',
  '198.18.0.0/15',
  '224.0.0.0/3', // multicast and reserved
];

/** Built beside the agent's sources (packages/agent/native), from src/ and dist/ alike. */
export const DEFAULT_TOOL_BINARY = path.resolve(import.meta.dirname, '../native/mags-tool');

export function loadAgentConfig(overrides: Partial<AgentConfig> = {}): AgentConfig {
  const stateDir = overrides.stateDir ?? '/var/lib/mags';
  const instance = overrides.instance ?? '0';
  if (!/^[a-z0-9]{1,6}$/.test(instance))
    throw new Error(`agent instance must be 1-6 lowercase letters or digits, not "${instance}"`);
  // Instance 0 uses 10.89.0.0/16; others a /16 derived from their tag, so two agents on one host never overlap.
  const hash = [...instance].reduce((h, c) => (h * 31 + c.charCodeAt(0)) % 100_003, 7);
  const config: AgentConfig = {
    name: overrides.name ?? 'local',
    instance,
    stateDir,
    imagesDir: overrides.imagesDir ?? path.join(stateDir, 'images'),
    image: overrides.image ?? 'debian-12-v3',
    runtime: overrides.runtime ?? 'crun',
    runtimeRoot: overrides.runtimeRoot ?? `/run/mags/${instance}`,
    initBinary: overrides.initBinary ?? '/usr/bin/catatonit',
    toolBinary: overrides.toolBinary ?? DEFAULT_TOOL_BINARY,
    poolSize: overrides.poolSize ?? 2,
    capacity: overrides.capacity ?? 16,
    subnet: overrides.subnet ?? (instance === '0' ? '10.89.0.0/16' : `10.${90 + (hash % 100)}.0.0/16`),
    blockedRanges: overrides.blockedRanges ?? DEFAULT_BLOCKED_RANGES,
    dnsPort: overrides.dnsPort ?? 0,
    dnsUpstream: overrides.dnsUpstream,
    defaults: { memoryMb: 1024, vcpus: 1, pids: 1024, diskGb: 2, ...overrides.defaults },
    objects: overrides.objects ?? path.join(stateDir, 'objects'),
    objectsCredentials: overrides.objectsCredentials,
    workspacesDir: overrides.workspacesDir ?? path.join(stateDir, 'workspaces', instance),
    basesDir: overrides.basesDir ?? path.join(stateDir, 'bases', instance),
    cacheDir: overrides.cacheDir ?? path.join(stateDir, 'cache', instance),
    localWorkspaceTtlMs: overrides.localWorkspaceTtlMs ?? 10 * 60_000,
    warmMs: overrides.warmMs ?? 5 * 60_000,
    syncIntervalMs: overrides.syncIntervalMs ?? 5 * 60_000,
    usageReportMs: overrides.usageReportMs ?? USAGE_REPORT_MS,
    gcGraceMs: overrides.gcGraceMs ?? DEFAULT_GC_GRACE_MS,
    userns: overrides.userns ?? { hostId: 100_000, size: 65_536 },
  };
  for (const key of ['localWorkspaceTtlMs', 'warmMs', 'syncIntervalMs', 'gcGraceMs', 'usageReportMs'] as const) {
    if (!Number.isFinite(config[key]) || config[key] < 0)
      throw new Error(`agent ${key} must be a number of milliseconds ≥ 0`);
  }
  if (!Number.isInteger(config.poolSize) || config.poolSize < 0)
    throw new Error('agent poolSize must be a whole number ≥ 0');
  if (!Number.isInteger(config.capacity) || config.capacity < 1)
    throw new Error('agent capacity must be a whole number ≥ 1');
  const { hostId, size } = config.userns;
  // 65,536 ids at least: Debian's nobody/nogroup (65534) must exist inside. Host ids 0..65535 (the host's own users) never.
  if (
    !Number.isInteger(hostId) ||
    !Number.isInteger(size) ||
    size < 65_536 ||
    hostId < 65_536 ||
    hostId + size > 2 ** 32 - 1
  ) {
    throw new Error(
      'agent userns must map at least 65536 ids to host ids from 65536 up (e.g. hostId 100000, size 65536)',
    );
  }
  const octets = /^(\d{1,3})\.(\d{1,3})\.0\.0\/16$/.exec(config.subnet);
  if (!octets || Number(octets[1]) > 255 || Number(octets[2]) > 255) {
    throw new Error(`agent subnet must be a /16 such as 10.89.0.0/16, not "${config.subnet}"`);
  }
  return config;
}

/** Names of everything this agent creates on the host; cleanup matches only these. */
export function hostNames(config: AgentConfig) {
  return {
    /** Container ids and network namespace names. */
    sandboxPrefix: `mags${config.instance}-`,
    vethPrefix: `mv${config.instance}-`,
    table: `mags_${config.instance}`,
    cgroupParent: `mags${config.instance}`,
    sandboxesDir: path.join(config.stateDir, 'sandboxes', config.instance),
    /**
     * A small tmpfs holding what is bound into sandboxes (the init, each sandbox's hosts and resolv.conf), so a
     * sandbox's /proc/self/mountinfo names paths of that tmpfs (`/init`), never the host's.
     */
    filesDir: path.join(config.stateDir, 'sandboxes', `${config.instance}.files`),
  };
}

/** The image copy whose owners are shifted by hostId (made by scripts/build-image.sh; MAGS_USERNS_HOST_ID picks the shift). */
export function shiftedImageName(image: string, hostId: number): string {
  return `${image}-u${hostId}`;
}

/** The lowest layer of every sandbox's root: the root image, uid-shifted into the user namespace's range. */
export function imagePath(config: AgentConfig): string {
  return path.join(config.imagesDir, shiftedImageName(config.image, config.userns.hostId));
}

export function checkImage(config: AgentConfig): void {
  const dir = imagePath(config);
  if (!existsSync(path.join(dir, '.mags-image-complete'))) {
    const env = config.userns.hostId === 100_000 ? '' : `MAGS_USERNS_HOST_ID=${config.userns.hostId} `;
    throw new Error(
      `the root image ${dir} (${config.image} with owners shifted to the sandboxes' user namespace, from uid ${config.userns.hostId}) is missing: build it with ${env}scripts/build-image.sh (./setup.sh does this)`,
    );
  }
}
