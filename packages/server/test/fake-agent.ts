// A test double for the agent that speaks the real agent protocol over a real link. The agent is a separate
// component with its own tests; this peer lets the server's tests decide exactly what an agent reports.
// It "runs" a tiny script language, one command per line:
//   echo TEXT      a stdout line            err TEXT     a stderr line
//   lines N        N stdout lines "line 1".."line N"
//   exit N         exit with code N (default 0 at the end)
//   hang           wait until stopped (then exits with reason "stopped", code 143)
//   manual         wait for the test to call output()/exit() itself
//   timeout        exit with reason "timeout", code 137
//   crash TEXT     exit with reason "error" and message TEXT, never started
import type { AgentEnd, AgentInfo, OutputLine, SandboxSpec, ServerToAgent } from '@mags/api';

export interface FakeAgentOptions {
  id?: string;
  name?: string;
  capacity?: number;
  pool?: AgentInfo['pool'];
  /** Send every output batch twice, as an agent resending after a reconnect would. */
  resendOutput?: boolean;
  /** Lines per output message. */
  batch?: number;
}

interface RunningJob {
  spec: SandboxSpec;
  seq: number;
  release?: () => void;
}

export class FakeAgent {
  readonly info: AgentInfo;
  readonly starts: SandboxSpec[] = [];
  readonly stops: string[] = [];
  readonly running = new Map<string, RunningJob>();
  private readonly waiters: Array<{ test: () => boolean; resolve: () => void }> = [];

  constructor(
    readonly link: AgentEnd,
    private readonly options: FakeAgentOptions = {},
  ) {
    this.info = {
      id: options.id ?? 'agent-1',
      name: options.name ?? 'fake',
      runtime: 'fake-runtime 1.0',
      version: '0.1.0',
      capacity: options.capacity ?? 4,
      pool: options.pool ?? { idle: 2, busy: 0, min: 2, max: 8 },
    };
    link.onMessage((m) => this.onMessage(m));
    link.send({ type: 'hello', agent: this.info });
  }

  /** Resolves once `test()` holds (checked after every message the agent handles). */
  until(test: () => boolean): Promise<void> {
    if (test()) return Promise.resolve();
    return new Promise((resolve) => this.waiters.push({ test, resolve }));
  }

  /** Sends output lines for a `manual` job. */
  output(jobId: string, messages: string[], stream: OutputLine['stream'] = 'stdout'): void {
    const job = this.mustRun(jobId);
    const lines = messages.map((message) => ({ seq: ++job.seq, stream, ts: Date.now(), message }));
    this.sendLines(jobId, lines);
  }

  /** Ends a `manual` job. */
  exit(jobId: string, exitCode: number): void {
    this.mustRun(jobId);
    this.running.delete(jobId);
    this.link.send({ type: 'exited', jobId, exitCode, reason: 'exited', ts: Date.now() });
  }

  send(message: Parameters<AgentEnd['send']>[0]): void {
    this.link.send(message);
  }

  private mustRun(jobId: string): RunningJob {
    const job = this.running.get(jobId);
    if (!job) throw new Error(`fake agent: job ${jobId} is not running`);
    return job;
  }

  private sendLines(jobId: string, lines: OutputLine[]): void {
    const batch = this.options.batch ?? 100;
    for (let i = 0; i < lines.length; i += batch) {
      const part = lines.slice(i, i + batch);
      this.link.send({ type: 'output', jobId, lines: part });
      if (this.options.resendOutput) this.link.send({ type: 'output', jobId, lines: part });
    }
  }

  private onMessage(m: ServerToAgent): void {
    if (m.type === 'start') {
      this.starts.push(m.sandbox);
      void this.run(m.sandbox);
    } else {
      this.stops.push(m.jobId);
      const job = this.running.get(m.jobId);
      if (job) {
        this.running.delete(m.jobId);
        job.release?.();
        this.link.send({ type: 'exited', jobId: m.jobId, exitCode: 143, reason: 'stopped', ts: Date.now() });
      }
    }
    this.check();
  }

  private check(): void {
    for (const w of [...this.waiters]) {
      if (w.test()) {
        this.waiters.splice(this.waiters.indexOf(w), 1);
        w.resolve();
      }
    }
  }

  private async run(spec: SandboxSpec): Promise<void> {
    const job: RunningJob = { spec, seq: 0 };
    const jobId = spec.jobId;
    const commands = spec.script.split('\n').map((l) => l.trim()).filter(Boolean);
    const crash = commands.find((c) => c.startsWith('crash'));
    if (crash) {
      this.link.send({ type: 'exited', jobId, exitCode: null, reason: 'error', message: crash.slice(6) || undefined, ts: Date.now() });
      return;
    }
    this.running.set(jobId, job);
    this.link.send({ type: 'started', jobId, sandboxId: `sbx-${jobId.slice(0, 8)}`, ts: Date.now() });
    const pending: OutputLine[] = [];
    const line = (stream: OutputLine['stream'], message: string) => pending.push({ seq: ++job.seq, stream, ts: Date.now(), message });
    let exitCode = 0;
    for (const command of commands) {
      const [word, ...rest] = command.split(' ');
      const arg = rest.join(' ');
      if (word === 'echo') line('stdout', arg);
      else if (word === 'err') line('stderr', arg);
      else if (word === 'lines') for (let i = 1; i <= Number(arg); i++) line('stdout', `line ${i}`);
      else if (word === 'exit') exitCode = Number(arg);
      else if (word === 'hang' || word === 'manual') {
        this.sendLines(jobId, pending.splice(0));
        if (word === 'manual') return; // the test drives it from here
        await new Promise<void>((resolve) => (job.release = resolve));
        return; // the stop handler has reported the exit
      } else if (word === 'timeout') {
        this.sendLines(jobId, pending.splice(0));
        this.running.delete(jobId);
        this.link.send({ type: 'exited', jobId, exitCode: 137, reason: 'timeout', ts: Date.now() });
        return;
      } else line('stderr', `sh: ${word}: not found`);
    }
    this.sendLines(jobId, pending.splice(0));
    this.running.delete(jobId);
    this.link.send({ type: 'exited', jobId, exitCode, reason: 'exited', ts: Date.now() });
  }
}
