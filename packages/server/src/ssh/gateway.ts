// The SSH gateway: an SSH server (ssh2) on its own port whose every session is an exec into a sandbox, through the
// same exec path as `POST …/exec` (ExecService: target lookup, agent order, flow control). Keys decide what opens:
// a sandbox's key its own job, a user's registered key the sandbox the ssh user names. Shells and commands, with or
// without a terminal (made inside the sandbox by /.mags/tool pty), sftp (the image's sftp-server), and `ssh -L`
// (direct-tcpip, relayed by /.mags/tool connect inside the sandbox's network namespace: no host→sandbox path).
import { timingSafeEqual } from 'node:crypto';
import type { AddressInfo } from 'node:net';
import { ENV_NAME_PATTERN, type ExecTty, MAX_EXEC_TIMEOUT_S, MagsError, SANDBOX_TOOL } from '@mags/api';
import type { Logger } from 'pino';
import ssh2, {
  type AuthContext,
  type Connection,
  type PseudoTtyInfo,
  type ServerChannel,
  type Session,
  type TcpipRequestInfo,
} from 'ssh2';
import type { ExecOpenRequest, ExecRun, ExecService } from '../jobs/exec.js';
import type { KeyGrant, SshKeys } from './keys.js';

/** Open sessions and forwards one user may hold at once across all connections. */
export const MAX_SESSIONS_PER_USER = 64;
/** Authentication attempts one connection may make (OpenSSH's MaxAuthTries). */
export const MAX_AUTH_ATTEMPTS = 6;
/** A connection must authenticate within this (OpenSSH's LoginGraceTime is 120 s). */
export const AUTH_TIMEOUT_MS = 60_000;
/** A connection with no open channel is closed after this. */
export const IDLE_TIMEOUT_MS = 15 * 60_000;
/** The wall-clock limit of one session or forward (an exec's longest): a shell may stay open for days, not for ever. */
export const SESSION_TIMEOUT_S = MAX_EXEC_TIMEOUT_S;

/** The shell of `ssh HOST` without a command: bash as a login shell where the image has it. */
const LOGIN_SHELL = 'if [ -x /bin/bash ]; then exec /bin/bash -l; else exec /bin/sh -l; fi';
const SFTP_SERVER = 'exec /usr/lib/openssh/sftp-server';
/** Environment a client may send (OpenSSH's default SendEnv), besides TERM. */
const PASSED_ENV = /^(LANG|LC_[A-Z]+)$/;
const ENV_NAME = new RegExp(ENV_NAME_PATTERN);
/** Forwarding targets that mean "the sandbox itself" (the relay always dials 127.0.0.1 inside it). */
const LOOPBACK = new Set(['localhost', '127.0.0.1', '::1', 'ip6-localhost', '0.0.0.0']);

export interface SshGatewayDeps {
  keys: SshKeys;
  execs: ExecService;
  logger: Logger;
  hostKey: string;
}

/** Who a connection authenticated as, and which sandbox it opens. */
interface Authenticated {
  grant: KeyGrant;
  /** The job id for a sandbox's key, else the ssh user name (a sandbox name or job id of that user). */
  ref: string;
}

export class SshGateway {
  private readonly server: ssh2.Server;
  private readonly clients = new Set<Connection>();
  private readonly sessionsByUser = new Map<string, number>();
  private closed = false;

  constructor(private readonly deps: SshGatewayDeps) {
    this.server = new ssh2.Server({ hostKeys: [deps.hostKey], ident: 'mags' }, (client, info) =>
      this.connection(client, info.ip),
    );
    this.server.on('error', (err: Error) => deps.logger.error({ err }, 'ssh gateway error'));
  }

  /** Listens on host:port (0: any free port); resolves with the port. */
  listen(host: string, port: number): Promise<number> {
    return new Promise((resolve, reject) => {
      const onError = (err: Error) => reject(err);
      this.server.once('error', onError);
      this.server.listen(port, host, () => {
        this.server.off('error', onError);
        const bound = (this.server.address() as AddressInfo).port;
        this.deps.logger.info({ host, port: bound }, 'ssh gateway listening');
        resolve(bound);
      });
    });
  }

  /** Stops listening and ends every connection (their execs are killed as their channels close). */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    for (const client of this.clients) client.end();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  private connection(client: Connection, ip: string): void {
    const log = this.deps.logger.child({ ssh: ip });
    this.clients.add(client);
    let who: Authenticated | undefined;
    let attempts = 0;
    let channels = 0;
    let idle: NodeJS.Timeout | undefined;
    const authTimer = setTimeout(() => {
      log.info('ssh client did not authenticate in time');
      client.end();
    }, AUTH_TIMEOUT_MS);
    const armIdle = () => {
      clearTimeout(idle);
      if (channels === 0) idle = setTimeout(() => client.end(), IDLE_TIMEOUT_MS);
    };
    client.on('error', (err) => log.debug({ err }, 'ssh connection error'));
    client.on('close', () => {
      clearTimeout(authTimer);
      clearTimeout(idle);
      this.clients.delete(client);
    });

    client.on('authentication', (ctx: AuthContext) => {
      if (++attempts > MAX_AUTH_ATTEMPTS) {
        ctx.reject();
        client.end();
        return;
      }
      if (ctx.method !== 'publickey') return ctx.reject(['publickey']);
      void this.deps.keys.grant(ctx.key.data, ctx.username).then(
        (grant) => {
          if (!grant || !sameBlob(grant.key.getPublicSSH(), ctx.key.data)) return ctx.reject(['publickey']);
          // Without a signature the client only asks whether this key would do.
          if (!ctx.signature || !ctx.blob) return ctx.accept();
          if (grant.key.verify(ctx.blob, ctx.signature, ctx.hashAlgo) !== true) return ctx.reject(['publickey']);
          who = { grant, ref: grant.jobId ?? ctx.username };
          ctx.accept();
        },
        (err: unknown) => {
          log.error({ err }, 'ssh key lookup failed');
          ctx.reject(['publickey']);
        },
      );
    });

    client.on('ready', () => {
      clearTimeout(authTimer);
      if (!who) return client.end();
      const me = who;
      log.info({ userId: me.grant.userId, target: me.ref }, 'ssh client authenticated');
      armIdle();
      const opened = (): boolean => {
        const n = this.sessionsByUser.get(me.grant.userId) ?? 0;
        if (n >= MAX_SESSIONS_PER_USER) return false;
        this.sessionsByUser.set(me.grant.userId, n + 1);
        channels++;
        clearTimeout(idle);
        return true;
      };
      const closed = () => {
        const n = (this.sessionsByUser.get(me.grant.userId) ?? 1) - 1;
        if (n > 0) this.sessionsByUser.set(me.grant.userId, n);
        else this.sessionsByUser.delete(me.grant.userId);
        channels--;
        armIdle();
      };
      client.on('session', (accept, reject) => {
        if (!opened()) {
          log.warn({ userId: me.grant.userId }, 'ssh session refused: too many open sessions');
          return reject();
        }
        this.session(accept(), me, log, closed);
      });
      client.on('tcpip', (accept, reject, info: TcpipRequestInfo) => {
        if (!LOOPBACK.has(info.destIP) || !opened()) return reject();
        void this.forward(accept, reject, info, me, log).finally(closed);
      });
    });
  }

  /** One session channel: its requests, then one exec (shell, command or sftp). */
  private session(session: Session, me: Authenticated, log: Logger, closed: () => void): void {
    let tty: ExecTty | undefined;
    const env: Record<string, string> = {};
    let run: ExecRun | undefined;
    let started = false;
    let done = false;
    const finish = () => {
      if (done) return;
      done = true;
      closed();
    };
    session.on('close', finish);

    session.on('pty', (accept, _reject, info: PseudoTtyInfo) => {
      tty = { term: validTerm(info.term), cols: clampSize(info.cols, 80), rows: clampSize(info.rows, 24) };
      accept?.();
    });
    session.on('window-change', (accept, _reject, info) => {
      const cols = clampSize(info.cols, tty?.cols ?? 80);
      const rows = clampSize(info.rows, tty?.rows ?? 24);
      if (tty) tty = { ...tty, cols, rows };
      run?.resize(cols, rows);
      accept?.();
    });
    session.on('env', (accept, reject, info) => {
      if (info.key === 'TERM') {
        if (tty) tty = { ...tty, term: validTerm(info.val) };
        return accept?.();
      }
      if (PASSED_ENV.test(info.key) && ENV_NAME.test(info.key) && !info.val.includes('\0')) {
        env[info.key] = info.val.slice(0, 4096);
        return accept?.();
      }
      reject?.();
    });
    session.on('signal', (accept) => accept?.());

    const start = (channel: ServerChannel, command: string, withTty: boolean) => {
      if (started) return;
      started = true;
      const request: ExecOpenRequest = {
        command,
        env,
        stdin: true,
        timeoutS: SESSION_TIMEOUT_S,
        ...(withTty && tty ? { tty } : {}),
      };
      void this.runOnChannel(channel, me, request, log, (r) => (run = r)).finally(finish);
    };
    session.on('shell', (accept) => start(accept(), LOGIN_SHELL, true));
    session.on('exec', (accept, _reject, info) => start(accept(), info.command, true));
    session.on('subsystem', (accept, reject, info) => {
      if (info.name !== 'sftp') return reject();
      start(accept(), SFTP_SERVER, false);
    });
  }

  /** Runs one exec with its stdio on an SSH channel, and reports its end as OpenSSH does. */
  private async runOnChannel(
    channel: ServerChannel,
    me: Authenticated,
    request: ExecOpenRequest,
    log: Logger,
    running: (run: ExecRun) => void,
  ): Promise<void> {
    let run: ExecRun;
    // The client may close the channel while the exec starts: it is then killed as soon as it runs.
    let gone = false;
    const early = () => (gone = true);
    channel.once('close', early);
    channel.on('error', (err: Error) => log.debug({ err }, 'ssh channel error'));
    try {
      run = (await this.deps.execs.start(me.grant.userId, me.ref, request)).run;
    } catch (err) {
      const message = err instanceof MagsError ? err.message : 'the command could not be started';
      if (!(err instanceof MagsError)) log.error({ err }, 'ssh exec failed to start');
      channel.stderr.write(`mags: ${message}\r\n`);
      channel.exit(255);
      channel.end();
      return;
    }
    running(run);
    channel.off('close', early);
    const onClose = () => run.kill();
    if (gone) run.kill();
    else channel.once('close', onClose);
    // Output is acknowledged to the agent once the channel took it (its write callback waits for the client's window).
    run.onOutput((stream, data) => {
      const target = stream === 'stdout' ? channel : channel.stderr;
      target.write(data, () => run.ack(data.length));
    });
    pumpInput(channel, run);
    const exit = await run.exited;
    channel.off('close', onClose);
    if (channel.destroyed) return;
    // exit-status (or exit-signal) before the channel closes, or OpenSSH reports 255.
    if (exit.reason === 'timeout' || exit.reason === 'killed') {
      channel.exit('KILL', false, exit.reason === 'timeout' ? 'the command timed out' : 'the command was killed');
    } else if (exit.reason === 'error' || exit.exitCode === null) {
      channel.stderr.write(`mags: ${exit.error ?? 'the command failed to run'}\r\n`);
      channel.exit(255);
    } else {
      channel.exit(exit.exitCode);
    }
    channel.end();
  }

  /** `ssh -L`: a relay inside the sandbox to 127.0.0.1:PORT; the channel is opened only once it has connected. */
  private async forward(
    accept: () => ServerChannel,
    reject: () => void,
    info: TcpipRequestInfo,
    me: Authenticated,
    log: Logger,
  ): Promise<void> {
    let run: ExecRun;
    try {
      run = (
        await this.deps.execs.start(me.grant.userId, me.ref, {
          command: `exec ${SANDBOX_TOOL} connect ${info.destPort}`,
          stdin: true,
          timeoutS: SESSION_TIMEOUT_S,
        })
      ).run;
    } catch (err) {
      log.info({ err: (err as Error).message, port: info.destPort }, 'ssh forward refused');
      return reject();
    }
    let channel: ServerChannel | undefined;
    let said = '';
    const early: Buffer[] = [];
    const connected = new Promise<boolean>((resolve) => {
      run.onOutput((stream, data) => {
        if (stream === 'stderr' && !channel) {
          said += data.toString('utf8');
          run.ack(data.length);
          if (said.startsWith('connected\n')) resolve(true);
          return;
        }
        if (stream === 'stderr') return run.ack(data.length);
        if (!channel) {
          early.push(data);
          return;
        }
        channel.write(data, () => run.ack(data.length));
      });
      void run.exited.then(() => resolve(false));
    });
    if (!(await connected)) {
      log.info({ port: info.destPort, said: said.trim().slice(0, 200) }, 'ssh forward: nothing listens there');
      return reject();
    }
    const ch = accept();
    channel = ch;
    ch.on('error', (err: Error) => log.debug({ err }, 'ssh channel error'));
    for (const data of early.splice(0)) ch.write(data, () => run.ack(data.length));
    const onClose = () => run.kill();
    ch.once('close', onClose);
    pumpInput(ch, run);
    await run.exited;
    ch.off('close', onClose);
    if (!ch.destroyed) ch.end();
  }
}

/** The client's bytes to the exec's stdin, one chunk at a time as the agent takes them; its EOF closes stdin. */
function pumpInput(channel: ServerChannel, run: ExecRun): void {
  let chain = Promise.resolve(true);
  channel.on('data', (chunk: Buffer) => {
    channel.pause();
    chain = chain.then(async (open) => {
      const still = open && (await run.input(chunk));
      channel.resume();
      return still;
    });
  });
  channel.once('end', () => {
    void chain.then(() => run.endInput());
  });
}

function sameBlob(a: Buffer, b: Buffer): boolean {
  return a.length === b.length && timingSafeEqual(a, b);
}

function clampSize(n: number, fallback: number): number {
  return Number.isInteger(n) && n >= 1 && n <= 10_000 ? n : fallback;
}

function validTerm(term: string | undefined): string {
  return term && /^[A-Za-z0-9._+-]{1,64}$/.test(term) ? term : 'xterm';
}
