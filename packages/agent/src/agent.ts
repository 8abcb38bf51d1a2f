// The agent: owns every sandbox on this host and answers the server's orders over the agent protocol.
import { hostname } from 'node:os';
import type {
  AgentEnd,
  AgentInfo,
  AgentToServer,
  ExecOrder,
  ExitReason,
  SandboxSpec,
  ServerToAgent,
  WorkspaceOrder,
} from '@mags/api';
import { MAGS_VERSION, MagsError, parseServerMessage } from '@mags/api';
import { type IdMap, type ObjectStore, openObjectStore, SyncService } from '@mags/objects';
import pino, { type Logger } from 'pino';
import type { Limits } from './bundle.js';
import { type AgentConfig, hostNames } from './config.js';
import { DiskLedger, layerTemplatesDir } from './disks.js';
import { ExecSession } from './exec.js';
import { cleanupStale, prepareHost, prepareSandboxFiles, releaseInstance, runtimeVersion } from './host.js';
import { HostHelper } from './hostd.js';
import { LayerPool } from './layers.js';
import { answerToMalformed } from './malformed.js';
import { UsageMeter } from './meter.js';
import { DnsForwarder, NetnsPool, SlotAllocator, setupHostNetwork, teardownHostNetwork } from './network.js';
import { OutputCollector } from './output.js';
import { OFF_PATH_DELAY_MS, WarmPool } from './pool.js';
import { resolveExecutable } from './process.js';
import { type HostContext, KEEPER_PROGRAM, Sandbox, type SandboxOptions, SeccompCache } from './sandbox.js';
import { SleepWatch } from './sleep.js';
import { RuntimeSpawner } from './spawner.js';
import { forUser } from './user-errors.js';
import { type BaseHandle, BaseLayers } from './workspace/bases.js';
import { placeUploads } from './workspace/uploads.js';
import { type HostCopy, WorkspaceManager } from './workspace/workspaces.js';

interface RunningJob {
  spec: SandboxSpec;
  sandbox?: Sandbox;
  /** The job's program runs in the sandbox: commands may be exec'd into it. */
  running?: boolean;
  stopReason?: ExitReason;
  stopRequested: boolean;
  /** The workspace copy the sandbox writes to, and the base layer under an ephemeral sandbox. */
  copy?: HostCopy;
  base?: BaseHandle;
  /** Puts the idle sandbox to sleep (a long-lived sandbox that may sleep). */
  sleep?: SleepWatch;
  /** Where the job's output goes (its startup command's too). */
  output?: OutputCollector;
  /** Resolves once the job has ended here (its `exited` sent). */
  ended: Promise<void>;
  end: () => void;
}

/** How long after a long-lived job took a pool sandbox its replacement is started (see acquire). */
const LONG_LIVED_REFILL_DELAY_MS = 150;
/** How often the agent reports its storage figures even when its own disks did not change. */
const STORAGE_REPORT_MS = 10_000;
/** Pool and disk changes within this window are reported together. */
const STORAGE_CHANGE_DELAY_MS = 50;

/**
 * Sandboxes run in the user namespace config.userns (uid/gid 0..size-1 inside are hostId.. on the host): workspaces
 * store owners as seen inside and restore them shifted, so manifests are portable between hosts.
 */
export function workspaceIds(config: AgentConfig): IdMap {
  return config.userns;
}

export class Agent {
  private readonly jobs = new Map<string, RunningJob>();
  private readonly execs = new Map<string, ExecSession>();
  private readonly ctx: HostContext;
  private readonly dns: DnsForwarder;
  private readonly store: ObjectStore;
  private readonly syncs: SyncService;
  private readonly workspaces: WorkspaceManager;
  private readonly bases: BaseLayers;
  private pool!: WarmPool;
  private info!: AgentInfo;
  private closing = false;
  private readonly early: AgentToServer[] = [];
  private readonly disks: DiskLedger;
  private storageTimer?: NodeJS.Timeout;
  private storageReport?: NodeJS.Timeout;

  readonly config: AgentConfig;
  private readonly hostd: HostHelper;

  constructor(
    config: AgentConfig,
    private readonly link: AgentEnd,
    readonly logger: Logger,
  ) {
    // Looked up once: a bare name would be searched along PATH at every spawn.
    this.config = config = { ...config, runtime: resolveExecutable(config.runtime) };
    const names = hostNames(config);
    this.hostd = new HostHelper({
      sandboxes: names.sandboxesDir,
      templates: layerTemplatesDir(config),
      netnsPrefix: names.sandboxPrefix,
      logger: logger.child({ part: 'hostd' }),
    });
    // Sandbox layers and workspace disks are assumed to share the filesystem of the state directory.
    this.disks = new DiskLedger(hostNames(config).sandboxesDir, () => this.reportSoon());
    const slots = new SlotAllocator(config.subnet, hostNames(config).vethPrefix);
    this.ctx = {
      config,
      logger,
      slots,
      netnsPool: new NetnsPool(
        config.poolSize + 2,
        hostNames(config).sandboxPrefix,
        slots,
        this.hostd,
        logger,
        OFF_PATH_DELAY_MS,
      ),
      disks: this.disks,
      hostd: this.hostd,
      // Enough emptied layers for a burst's next sandboxes; each holds its disk's room in the ledger while idle.
      layers: new LayerPool({ config, hostd: this.hostd, disks: this.disks, logger }, config.poolSize + 4),
      spawner: new RuntimeSpawner({
        runtime: config.runtime,
        runtimeRoot: config.runtimeRoot,
        sandboxes: names.sandboxesDir,
        prefix: names.sandboxPrefix,
        logger: logger.child({ part: 'spawner' }),
      }),
      seccomp: new SeccompCache(),
    };
    this.dns = new DnsForwarder(config, logger);
    this.store = openObjectStore(config.objects, config.objectsCredentials);
    this.syncs = new SyncService({
      objects: config.objects,
      credentials: config.objectsCredentials,
      logger: logger.child({ part: 'sync-service' }),
    });
    const ids = workspaceIds(config);
    this.workspaces = new WorkspaceManager(
      {
        dir: config.workspacesDir,
        cacheDir: config.cacheDir,
        localTtlMs: config.localWorkspaceTtlMs,
        warmMs: config.warmMs,
        userns: config.userns,
        ids,
        gcGraceMs: config.gcGraceMs,
      },
      this.store,
      this.disks,
      this.syncs,
      (m) => {
        if (this.closing) return;
        // Reports made while taking over copies at start wait for the hello.
        if (this.info) this.link.send(m);
        else this.early.push(m);
      },
      logger.child({ part: 'workspaces' }),
    );
    this.bases = new BaseLayers(
      config.basesDir,
      config.cacheDir,
      this.store,
      this.syncs,
      logger.child({ part: 'bases' }),
      ids,
    );
  }

  private get defaults(): Limits {
    return {
      memoryMb: this.config.defaults.memoryMb,
      vcpus: this.config.defaults.vcpus,
      pids: this.config.defaults.pids,
    };
  }

  async start(): Promise<void> {
    const { config, logger } = this;
    await prepareHost(config, logger);
    await cleanupStale(config, logger);
    await prepareSandboxFiles(config, logger);
    await this.dns.start();
    await setupHostNetwork(config, this.dns.port, logger);
    this.ctx.netnsPool.fill();
    await this.bases.start();
    this.pool = new WarmPool(
      this.ctx,
      config.poolSize,
      { network: 'internet', limits: this.defaults, diskGb: config.defaults.diskGb },
      logger,
      2,
      () => this.reportSoon(),
      config.capacity,
    );
    this.pool.refill();
    // Before any job can arrive: copies a previous agent left are known before a run may open one.
    await this.workspaces.start();
    this.info = {
      id: `${config.name}@${hostname()}`,
      name: config.name,
      runtime: await runtimeVersion(config),
      version: MAGS_VERSION,
      capacity: config.capacity,
      pool: this.poolStatus(),
      storage: this.disks.report(),
    };
    this.link.onMessage((raw) => this.receive(raw));
    this.link.send({ type: 'hello', agent: this.info });
    for (const m of this.early.splice(0)) this.link.send(m);
    // Free space also changes with what else uses the host's disk.
    this.storageTimer = setInterval(() => this.reportPool(), STORAGE_REPORT_MS);
    this.storageTimer.unref();
    logger.info({ runtime: this.info.runtime, pool: config.poolSize, capacity: config.capacity }, 'agent ready');
  }

  private poolStatus(): AgentInfo['pool'] {
    let sleeping = 0;
    for (const job of this.jobs.values()) if (job.sandbox?.frozen) sleeping++;
    return {
      idle: this.pool?.idle ?? 0,
      busy: this.jobs.size,
      sleeping,
      min: this.config.poolSize,
      max: this.config.capacity,
    };
  }

  private reportPool(): void {
    if (this.closing || !this.info) return;
    let storage;
    try {
      storage = this.disks.report();
    } catch (err) {
      this.logger.warn({ err }, 'could not measure the space for disks');
    }
    this.link.send({ type: 'pool', pool: this.poolStatus(), ...(storage ? { storage } : {}) });
  }

  /**
   * The pool or a disk changed (a sandbox made ready, a job ended, a disk made, grown or removed): the server hears
   * of it shortly, in one report for every change in the window (a burst makes several per job), off any start path.
   */
  private reportSoon(): void {
    if (this.storageReport || this.closing) return;
    this.storageReport = setTimeout(() => {
      this.storageReport = undefined;
      this.reportPool();
    }, STORAGE_CHANGE_DELAY_MS);
    this.storageReport.unref();
  }

  /** Acts on a message from the server once it passed its schema; one that did not is logged and dropped. */
  private receive(raw: unknown): void {
    const parsed = parseServerMessage(raw);
    if (parsed.ok) return this.handle(parsed.message);
    this.logger.warn({ type: parsed.type, reason: parsed.reason }, 'ignoring a malformed message from the server');
    const answer = answerToMalformed(raw, parsed.type, parsed.reason);
    if (answer) this.link.send(answer);
  }

  private handle(message: ServerToAgent): void {
    switch (message.type) {
      case 'start':
        this.runJob(message.sandbox).catch((err) => {
          this.logger.error({ err, jobId: message.sandbox.jobId }, 'job failed on the agent');
        });
        return;
      case 'stop':
        void this.stopJob(message.jobId, 'stopped');
        return;
      case 'exec':
        return void this.exec(message);
      case 'wake':
        return void this.wake(message.jobId);
      case 'sleep':
        return void this.sleepNow(message.jobId);
      case 'update':
        return void this.update(message);
      case 'execInput':
      case 'execAck':
      case 'execKill':
      case 'execResize':
        // Late messages about an exec that has ended are dropped.
        this.execs.get(message.execId)?.handle(message);
        return;
      default:
        void this.workspaceOrder(message);
    }
  }

  /**
   * Runs a command in a job's running sandbox, waking it first if it sleeps (refused, with its exit report, if the
   * job has none here).
   */
  private async exec(order: ExecOrder): Promise<void> {
    if (this.execs.has(order.execId)) return; // a repeated order
    const job = this.jobs.get(order.jobId);
    const session = new ExecSession(
      order,
      (m) => this.link.send(m),
      this.logger,
      () => {
        this.execs.delete(order.execId);
        job?.sleep?.touch();
      },
    );
    this.execs.set(order.execId, session);
    job?.sleep?.touch();
    // A sandbox being stopped (asleep, or by request) refuses only once it has ended and said so: the server then
    // sees the job's new state when the refusal arrives (and wakes it again if it sleeps).
    if (job?.stopRequested) await job.ended;
    if (job?.sandbox?.frozen && !job.stopRequested) await this.wake(order.jobId);
    // Only once the job's program runs (after `started`): before, the launcher is still waiting for it.
    session.start(job?.running && !job.stopRequested ? job.sandbox : undefined, job?.spec.environment ?? {});
  }

  /**
   * Thaws a job's frozen sandbox and tells the server it runs again. A `wake` for a sandbox that is awake counts as
   * activity (the server sends it for requests to its URL), so its idle time starts again.
   */
  private async wake(jobId: string): Promise<void> {
    const job = this.jobs.get(jobId);
    job?.sleep?.touch();
    const sandbox = job?.sandbox;
    if (!job || !sandbox?.frozen || job.stopRequested) return;
    try {
      await sandbox.thaw();
    } catch (err) {
      this.logger.error({ err, jobId }, 'could not thaw a sandbox');
      return;
    }
    this.logger.info({ jobId }, 'sandbox woke');
    this.link.send({ type: 'woke', jobId, ts: Date.now() });
    this.reportPool();
  }

  /**
   * Freezes a long-lived job's sandbox now (E2B's pause), idle or not; its sleep watch then stops it after its
   * `stopAfterS` as any frozen sandbox. A job that may not sleep (always-on), or is not here, is left as it is.
   */
  private async sleepNow(jobId: string): Promise<void> {
    const job = this.jobs.get(jobId);
    const sandbox = job?.sandbox;
    if (!job?.running || !sandbox || !job.spec.longLived || !job.spec.sleep || job.stopRequested) return;
    if (sandbox.frozen || !sandbox.alive) return;
    let frozen: boolean;
    try {
      frozen = await sandbox.freeze();
    } catch (err) {
      this.logger.error({ err, jobId }, 'could not freeze a sandbox');
      return;
    }
    if (!frozen) return;
    this.logger.info({ jobId }, 'sandbox put to sleep on request: frozen');
    this.link.send({ type: 'slept', jobId, ts: Date.now() });
    this.reportPool();
  }

  /** New settings for a job: sleep timers (null: never sleep, and wake now) and the startup command. */
  private async update(m: Extract<ServerToAgent, { type: 'update' }>): Promise<void> {
    const job = this.jobs.get(m.jobId);
    if (!job) return;
    job.spec = {
      ...job.spec,
      sleep: m.sleep ?? undefined,
      startupCommand: m.startupCommand ?? undefined,
    };
    if (!job.spec.sleep) delete job.spec.sleep;
    if (!job.spec.startupCommand) delete job.spec.startupCommand;
    job.sleep?.close();
    job.sleep = undefined;
    if (!m.sleep) await this.wake(m.jobId);
    if (job.running && job.sandbox) this.watchSleep(job, job.sandbox);
  }

  /**
   * Starts putting a long-lived job's sandbox to sleep when it is idle (if the job may sleep), and stopping it once
   * it has slept long enough when it has a workspace to keep its files on.
   */
  private watchSleep(job: RunningJob, sandbox: Sandbox): void {
    const { spec } = job;
    if (!spec.longLived || !spec.sleep || job.sleep) return;
    const { jobId } = spec;
    // A sandbox without a workspace (an E2B sandbox of template `base`) has its files only in its own layer: it
    // sleeps frozen, and is not stopped when its timer is up (a stop would throw its files away); only a host short
    // of memory ends it, and the server records why.
    const timers = spec.workspace ? spec.sleep : { ...spec.sleep, stopAfterS: Number.POSITIVE_INFINITY };
    job.sleep = new SleepWatch(timers, {
      cpuUsageNs: () => sandbox.cgroup.cpuUsageNs(),
      busy: () => {
        for (const e of this.execs.values()) if (e.jobId === jobId) return true;
        return false;
      },
      frozen: () => sandbox.frozen,
      freeze: async () => {
        if (job.stopRequested || !sandbox.alive) return false;
        const frozen = await sandbox.freeze();
        if (!frozen) return false;
        this.logger.info({ jobId }, 'sandbox idle: frozen');
        this.link.send({ type: 'slept', jobId, ts: Date.now() });
        this.reportPool();
        return true;
      },
      stop: () => {
        this.logger.info({ jobId }, 'sandbox asleep long enough: stopping it');
        void this.stopJob(jobId, 'asleep');
      },
    });
  }

  /**
   * Runs the job's startup command in the background (as an exec whose processes stay when it ends), its output
   * into the job's output.
   */
  private startup(job: RunningJob, sandbox: Sandbox, output: OutputCollector): void {
    const command = job.spec.startupCommand;
    if (!command) return;
    let proc;
    try {
      proc = sandbox.exec(command, job.spec.environment, '/root');
    } catch (err) {
      this.logger.error({ err, jobId: job.spec.jobId }, 'could not start the startup command');
      output.system('the startup command could not be started');
      return;
    }
    const { child } = proc;
    child.stdin.end();
    child.stdout.on('data', (chunk: Buffer) => output.write('stdout', chunk));
    child.stderr.on('data', (chunk: Buffer) => output.write('stderr', chunk));
    child.on('error', () => {});
    child.on('exit', (code) => {
      if (code !== 0 && !job.stopRequested && sandbox.alive)
        output.system(`the startup command exited with code ${code ?? 'unknown'}`);
    });
  }

  private async workspaceOrder(order: WorkspaceOrder): Promise<void> {
    const { requestId } = order;
    try {
      const result = await this.workspaces.order(
        order.type,
        order.workspace,
        order.type === 'resize' ? order.diskGb : undefined,
      );
      this.link.send({ type: 'reply', requestId, ok: true, result });
    } catch (err) {
      // Logged whole; the user gets the sentence without host paths, cut to a length the server passes on.
      this.logger.warn(
        { err, detail: (err as { detail?: string }).detail, order: order.type, workspace: order.workspace },
        'workspace order failed',
      );
      const e = forUser(err);
      this.link.send({ type: 'reply', requestId, ok: false, status: e.status, code: e.code, error: e.message });
    }
  }

  private async stopJob(jobId: string, reason: ExitReason): Promise<void> {
    const job = this.jobs.get(jobId);
    if (!job || job.stopRequested) return;
    job.stopRequested = true;
    job.stopReason = reason;
    this.logger.info({ jobId, reason }, 'stopping job');
    await job.sandbox?.kill();
  }

  private async acquire(spec: SandboxSpec, job: RunningJob): Promise<Sandbox> {
    const limits: Limits = { memoryMb: spec.memoryMb, vcpus: spec.vcpus, pids: this.config.defaults.pids };
    if (spec.workspace) {
      const copy = await this.workspaces.open(spec.workspace, spec.diskGb, async () =>
        spec.base ? this.bases.acquire(spec.base) : undefined,
      );
      job.copy = copy;
      const parked = await this.workspaces.takeParked<Sandbox>(copy, spec.network);
      if (parked) {
        parked.setLimits(limits);
        return parked;
      }
      return Sandbox.create(this.ctx, this.workspaceOptions(copy, spec.network, limits));
    }
    if (spec.base) {
      job.base = await this.bases.acquire(spec.base);
      return Sandbox.create(this.ctx, { network: spec.network, limits, diskGb: spec.diskGb, lowers: [job.base.dir] });
    }
    // A long-lived sandbox's first command follows its start at once (E2B's create → commands.run): its replacement
    // in the pool is made once that command has likely run, not beside it on the same cores.
    const refillDelay = spec.longLived ? LONG_LIVED_REFILL_DELAY_MS : OFF_PATH_DELAY_MS;
    let pooled =
      spec.network === this.pool.options.network && spec.diskGb === this.pool.options.diskGb
        ? this.pool.take(refillDelay)
        : undefined;
    while (pooled && !pooled.alive) {
      void pooled.destroy();
      pooled = this.pool.take(refillDelay);
    }
    if (pooled) {
      if (limits.memoryMb !== this.defaults.memoryMb || limits.vcpus !== this.defaults.vcpus) pooled.setLimits(limits);
      return pooled;
    }
    return Sandbox.create(this.ctx, { network: spec.network, limits, diskGb: spec.diskGb });
  }

  private workspaceOptions(copy: HostCopy, network: 'internet' | 'none', limits: Limits): SandboxOptions {
    return {
      network,
      limits,
      diskGb: 0,
      upper: { upper: copy.disk.upper, work: copy.disk.work },
      lowers: copy.base ? [copy.base.dir] : [],
    };
  }

  private async runJob(spec: SandboxSpec): Promise<void> {
    const { jobId } = spec;
    const log = this.logger.child({ jobId });
    if (this.jobs.has(jobId)) return; // a repeated order for a job already running here
    let end!: () => void;
    const ended = new Promise<void>((r) => (end = r));
    const job: RunningJob = { spec, stopRequested: false, ended, end };
    this.jobs.set(jobId, job);
    const output = new OutputCollector((lines) => this.link.send({ type: 'output', jobId, lines }), spec.firstSeq);
    job.output = output;
    let sandbox: Sandbox | undefined;
    let meter: UsageMeter | undefined;
    try {
      try {
        sandbox = await this.acquire(spec, job);
        job.sandbox = sandbox;
        await placeUploads(sandbox.rootfs, spec.uploads ?? [], this.store, this.config.userns.hostId).catch(
          (err: Error) => {
            throw new Error(`the uploaded files could not be placed in /uploads: ${err.message}`);
          },
        );
      } catch (err) {
        log.error({ err }, 'could not create a sandbox');
        const e = err as Error;
        const { message } = forUser(e);
        const text =
          e instanceof MagsError || e.message.startsWith('the uploaded')
            ? message
            : `the sandbox could not be created: ${message}`;
        output.system(text);
        output.end();
        this.finish(jobId, null, 'error', text);
        return;
      }
      if (job.stopRequested) {
        this.finish(jobId, null, 'stopped', 'stopped before it started');
        return;
      }
      this.link.send({
        type: 'started',
        jobId,
        sandboxId: sandbox.id,
        ts: Date.now(),
        // The router connects to the sandbox's port here (host → sandbox is open; sandbox → host is not).
        ...(sandbox.link ? { address: sandbox.link.sandboxIp } : {}),
      });
      meter = new UsageMeter(jobId, sandbox, (m) => this.link.send(m), this.config.usageReportMs);
      // A long-lived sandbox runs no script: its launcher pauses until the sandbox is stopped; commands are exec'd.
      const proc = sandbox.start(spec.longLived ? KEEPER_PROGRAM : spec.script, spec.environment);
      job.running = true;
      proc.onOutput((stream, chunk) => output.write(stream, chunk));
      this.startup(job, sandbox, output);
      this.watchSleep(job, sandbox);
      const timer = spec.longLived
        ? undefined
        : setTimeout(() => void this.stopJob(jobId, 'timeout'), spec.timeoutS * 1000);
      const copy = job.copy;
      const periodic =
        copy && spec.workspace?.persistent && this.config.syncIntervalMs > 0
          ? setInterval(() => this.workspaces.syncDuringRun(copy), this.config.syncIntervalMs)
          : undefined;
      const exitCode = await proc.exited;
      job.running = false;
      meter.end();
      job.sleep?.close();
      clearTimeout(timer);
      clearInterval(periodic);
      let syncMessage: string | undefined;
      if (copy) {
        // Free the workspace at once and prepare the next run's sandbox on it while this run is synced: persisted
        // before the run is reported finished, so "completed" means the workspace is in the store.
        await sandbox.unmountRoot().catch((err) => log.warn({ err }, 'could not unmount the root of an ended sandbox'));
        if (sandbox.rootUnmounted) {
          this.workspaces.startParking(copy, () =>
            Sandbox.create(this.ctx, this.workspaceOptions(copy, spec.network, this.defaults)),
          );
        }
        syncMessage = await this.workspaces.afterRun(copy);
      }
      let message: string | undefined;
      let reason: ExitReason = job.stopReason ?? 'exited';
      if (exitCode === null) {
        reason = 'error';
        message = 'the sandbox runtime failed to run the script';
      } else if (reason === 'timeout') {
        message = `the script ran longer than its ${spec.timeoutS} s timeout and was killed`;
      } else if (reason === 'exited' && exitCode === 137 && sandbox.cgroup.hitMemoryLimit()) {
        // (A long-lived sandbox's keeper is the init itself: 137 means the whole sandbox was killed.)
        message = `the script was killed for using more than its ${spec.memoryMb} MB memory limit`;
      }
      if (message) output.system(message);
      if (syncMessage) output.system(syncMessage);
      output.end();
      this.finish(jobId, exitCode, reason, message ?? syncMessage);
    } finally {
      meter?.close();
      this.jobs.delete(jobId);
      job.end();
      // A workspace whose sandbox's root is unmounted is free now; otherwise once the sandbox is destroyed.
      if (job.copy && (!sandbox || sandbox.rootUnmounted)) this.workspaces.release(job.copy);
      if (sandbox) {
        // Let the server handle the exit report before the cleanup's spawns occupy the event loop.
        await new Promise((r) => setTimeout(r, OFF_PATH_DELAY_MS));
        await sandbox.destroy().catch((err) => log.error({ err }, 'sandbox cleanup failed'));
      }
      if (job.copy && sandbox && !sandbox.rootUnmounted) this.workspaces.release(job.copy);
      job.base?.release();
      this.reportSoon();
    }
  }

  private finish(jobId: string, exitCode: number | null, reason: ExitReason, message?: string): void {
    this.link.send({ type: 'exited', jobId, exitCode, reason, message, ts: Date.now() });
  }

  /** Stops every sandbox and removes what the agent created on the host. */
  async close(): Promise<void> {
    if (this.closing) return;
    this.closing = true;
    clearInterval(this.storageTimer);
    clearTimeout(this.storageReport);
    await Promise.all([...this.jobs.keys()].map((id) => this.stopJob(id, 'stopped')));
    // Wait briefly for the running jobs to report and clean up.
    for (let i = 0; i < 100 && this.jobs.size; i++) await new Promise((r) => setTimeout(r, 50));
    await this.pool?.close();
    await this.ctx.netnsPool.close();
    await this.ctx.layers.close();
    await this.workspaces.close();
    await this.bases.close();
    this.syncs.close();
    await this.store.close().catch(() => {});
    this.dns.close();
    await cleanupStale(this.config, this.logger);
    await teardownHostNetwork(this.config);
    this.hostd.close();
    this.ctx.spawner.close();
    releaseInstance(this.config);
  }
}

export async function startAgent(config: AgentConfig, link: AgentEnd, logger?: Logger): Promise<Agent> {
  const agent = new Agent(config, link, logger ?? pino({ name: 'mags-agent' }));
  await agent.start();
  return agent;
}
