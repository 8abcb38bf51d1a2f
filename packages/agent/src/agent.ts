// The agent: owns every sandbox on this host and answers the server's orders over the agent protocol.
import { hostname } from 'node:os';
import type { AgentEnd, AgentInfo, ExitReason, SandboxSpec, ServerToAgent } from '@mags/api';
import { MAGS_VERSION } from '@mags/api';
import pino, { type Logger } from 'pino';
import type { Limits } from './bundle.js';
import { type AgentConfig, hostNames } from './config.js';
import { cleanupStale, prepareHost, releaseInstance, runtimeVersion } from './host.js';
import { DnsForwarder, NetnsPool, SlotAllocator, setupHostNetwork, teardownHostNetwork } from './network.js';
import { OutputCollector } from './output.js';
import { OFF_PATH_DELAY_MS, WarmPool } from './pool.js';
import { type HostContext, Sandbox } from './sandbox.js';

interface RunningJob {
  spec: SandboxSpec;
  sandbox?: Sandbox;
  stopReason?: ExitReason;
  stopRequested: boolean;
}


export class Agent {
  private readonly jobs = new Map<string, RunningJob>();
  private readonly ctx: HostContext;
  private readonly dns: DnsForwarder;
  private pool!: WarmPool;
  private info!: AgentInfo;
  private closing = false;

  constructor(
    readonly config: AgentConfig,
    private readonly link: AgentEnd,
    readonly logger: Logger,
  ) {
    this.ctx = {
      config,
      logger,
      slots: new SlotAllocator(config.subnet, hostNames(config).vethPrefix),
      netnsPool: new NetnsPool(config.poolSize + config.capacity),
    };
    this.dns = new DnsForwarder(config, logger);
  }

  private get defaults(): Limits {
    return { memoryMb: this.config.defaults.memoryMb, vcpus: this.config.defaults.vcpus, pids: this.config.defaults.pids };
  }

  async start(): Promise<void> {
    const { config, logger } = this;
    await prepareHost(config, logger);
    await cleanupStale(config, logger);
    await this.dns.start();
    await setupHostNetwork(config, this.dns.port, logger);
    this.pool = new WarmPool(
      this.ctx,
      config.poolSize,
      { network: 'internet', limits: this.defaults, diskGb: config.defaults.diskGb },
      logger,
      2,
      () => this.reportPool(),
    );
    this.pool.refill();
    this.info = {
      id: `${config.name}@${hostname()}`,
      name: config.name,
      runtime: await runtimeVersion(config),
      version: MAGS_VERSION,
      capacity: config.capacity,
      pool: this.poolStatus(),
    };
    this.link.onMessage((m) => this.handle(m));
    this.link.send({ type: 'hello', agent: this.info });
    logger.info({ runtime: this.info.runtime, pool: config.poolSize, capacity: config.capacity }, 'agent ready');
  }

  private poolStatus(): AgentInfo['pool'] {
    return { idle: this.pool?.idle ?? 0, busy: this.jobs.size, min: this.config.poolSize, max: this.config.capacity };
  }

  private reportPool(): void {
    if (!this.closing) this.link.send({ type: 'pool', pool: this.poolStatus() });
  }

  private handle(message: ServerToAgent): void {
    if (message.type === 'start') {
      this.runJob(message.sandbox).catch((err) => {
        this.logger.error({ err, jobId: message.sandbox.jobId }, 'job failed on the agent');
      });
    } else if (message.type === 'stop') {
      void this.stopJob(message.jobId, 'stopped');
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

  private async acquire(spec: SandboxSpec): Promise<Sandbox> {
    const limits: Limits = { memoryMb: spec.memoryMb, vcpus: spec.vcpus, pids: this.config.defaults.pids };
    let pooled = spec.network === this.pool.options.network && spec.diskGb === this.pool.options.diskGb ? this.pool.take() : undefined;
    while (pooled && !pooled.alive) {
      void pooled.destroy();
      pooled = this.pool.take();
    }
    if (pooled) {
      if (limits.memoryMb !== this.defaults.memoryMb || limits.vcpus !== this.defaults.vcpus) pooled.setLimits(limits);
      return pooled;
    }
    return Sandbox.create(this.ctx, { network: spec.network, limits, diskGb: spec.diskGb });
  }

  private async runJob(spec: SandboxSpec): Promise<void> {
    const { jobId } = spec;
    const log = this.logger.child({ jobId });
    if (this.jobs.has(jobId)) return; // a repeated order for a job already running here
    const job: RunningJob = { spec, stopRequested: false };
    this.jobs.set(jobId, job);
    const output = new OutputCollector((lines) => this.link.send({ type: 'output', jobId, lines }));
    let sandbox: Sandbox | undefined;
    try {
      try {
        sandbox = await this.acquire(spec);
      } catch (err) {
        log.error({ err }, 'could not create a sandbox');
        this.finish(jobId, null, 'error', `the sandbox could not be created: ${(err as Error).message}`);
        return;
      }
      job.sandbox = sandbox;
      if (job.stopRequested) {
        this.finish(jobId, null, 'stopped', 'stopped before it started');
        return;
      }
      this.link.send({ type: 'started', jobId, sandboxId: sandbox.id, ts: Date.now() });
      const proc = sandbox.start(spec.script, spec.environment);
      proc.onOutput((stream, chunk) => output.write(stream, chunk));
      const timer = setTimeout(() => void this.stopJob(jobId, 'timeout'), spec.timeoutS * 1000);
      const exitCode = await proc.exited;
      clearTimeout(timer);
      let message: string | undefined;
      let reason: ExitReason = job.stopReason ?? 'exited';
      if (exitCode === null) {
        reason = 'error';
        message = 'the sandbox runtime failed to run the script';
      } else if (reason === 'timeout') {
        message = `the script ran longer than its ${spec.timeoutS} s timeout and was killed`;
      } else if (reason === 'exited' && exitCode === 137 && sandbox.cgroup.hitMemoryLimit()) {
        message = `the script was killed for using more than its ${spec.memoryMb} MB memory limit`;
      }
      if (message) output.system(message);
      output.end();
      this.finish(jobId, exitCode, reason, message);
    } finally {
      this.jobs.delete(jobId);
      if (sandbox) {
        // Let the server handle the exit report before the cleanup's spawns occupy the event loop.
        await new Promise((r) => setTimeout(r, OFF_PATH_DELAY_MS));
        await sandbox.destroy().catch((err) => log.error({ err }, 'sandbox cleanup failed'));
      }
      this.reportPool();
    }
  }

  private finish(jobId: string, exitCode: number | null, reason: ExitReason, message?: string): void {
    this.link.send({ type: 'exited', jobId, exitCode, reason, message, ts: Date.now() });
  }

  /** Stops every sandbox and removes what the agent created on the host. */
  async close(): Promise<void> {
    if (this.closing) return;
    this.closing = true;
    await Promise.all([...this.jobs.keys()].map((id) => this.stopJob(id, 'stopped')));
    // Wait briefly for the running jobs to report and clean up.
    for (let i = 0; i < 100 && this.jobs.size; i++) await new Promise((r) => setTimeout(r, 50));
    await this.pool?.close();
    this.dns.close();
    await cleanupStale(this.config, this.logger);
    await teardownHostNetwork(this.config);
    releaseInstance(this.config);
  }
}

export async function startAgent(config: AgentConfig, link: AgentEnd, logger?: Logger): Promise<Agent> {
  const agent = new Agent(config, link, logger ?? pino({ name: 'mags-agent' }));
  await agent.start();
  return agent;
}
