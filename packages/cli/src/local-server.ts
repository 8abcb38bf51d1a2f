// Starts the local Mags server in the background when the CLI needs one and nothing answers at the
// default address: `mags server` detached, its output in $MAGS_HOME/server.log, its pid in server.pid.
import { spawn } from 'node:child_process';
import { closeSync, existsSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { type Environment, Mags } from '@mags/sdk';
import { ensureHome, serverLogPath, serverPidPath } from './config.js';
import { note } from './output.js';

const START_TIMEOUT_MS = 30_000;

/** Starts `mags server --port <port>` in the background (unless one is already starting) and waits until it answers. */
export async function startLocalServer(env: Environment, apiUrl: string): Promise<void> {
  const home = ensureHome(env);
  const logFile = serverLogPath(env);
  const pidFile = serverPidPath(env);
  const url = new URL(apiUrl);
  const probe = new Mags({ apiUrl, apiToken: 'none', env });

  let exited: { code: number | null } | undefined;
  const starting = runningPid(pidFile);
  if (starting === undefined) {
    note('starting the local Mags server…');
    const out = openSync(logFile, 'a', 0o600);
    const child = spawn(
      process.execPath,
      [
        ...process.execArgv,
        cliScript(),
        'server',
        '--host',
        url.hostname.replace(/^\[|\]$/g, ''),
        '--port',
        url.port || '7373',
      ],
      {
        detached: true,
        stdio: ['ignore', out, out],
        env: { ...process.env, ...env, MAGS_HOME: home },
        cwd: home,
      },
    );
    closeSync(out);
    if (child.pid !== undefined) writeFileSync(pidFile, `${child.pid}\n`, { mode: 0o600 });
    child.once('exit', (code) => (exited = { code }));
    child.unref();
  }

  const deadline = Date.now() + START_TIMEOUT_MS;
  for (;;) {
    if ((await probe.health(1_000)).ok) return;
    if (exited || (starting !== undefined && runningPid(pidFile) === undefined)) {
      if (exited) rmSync(pidFile, { force: true });
      throw new Error(`the local Mags server did not start${lastLine(logFile)}; see ${logFile}`);
    }
    if (Date.now() > deadline) {
      throw new Error(
        `the local Mags server did not answer at ${apiUrl} within ${START_TIMEOUT_MS / 1000} s; see ${logFile}`,
      );
    }
    await new Promise((r) => setTimeout(r, 150));
  }
}

/** The CLI's entry script, to start `mags server` with. */
function cliScript(): string {
  const main = fileURLToPath(new URL('./main.js', import.meta.url));
  if (existsSync(main)) return main;
  return fileURLToPath(new URL('./main.ts', import.meta.url));
}

/** The pid in the pid file when that process is alive and is a mags server; else undefined. */
function runningPid(pidFile: string): number | undefined {
  let pid: number;
  try {
    pid = Number(readFileSync(pidFile, 'utf8').trim());
  } catch {
    return undefined;
  }
  if (!Number.isInteger(pid) || pid <= 0) return undefined;
  try {
    process.kill(pid, 0);
  } catch {
    return undefined;
  }
  try {
    // The pid may have been reused by another program since.
    if (!readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes('server')) return undefined;
  } catch {
    /* no /proc: trust the pid */
  }
  return pid;
}

/** `: <last line of the log>` when it says something, for the error sentence. */
function lastLine(logFile: string): string {
  try {
    const lines = readFileSync(logFile, 'utf8').trimEnd().split('\n');
    const last = lines[lines.length - 1]?.trim();
    if (!last) return '';
    // A structured log line: its message and error, not the whole JSON.
    try {
      const rec = JSON.parse(last) as { msg?: string; err?: { message?: string } };
      const text = [rec.msg, rec.err?.message].filter(Boolean).join(': ');
      return text ? `: ${text}` : '';
    } catch {
      return `: ${last.replace(/^mags: /, '')}`;
    }
  } catch {
    return '';
  }
}
