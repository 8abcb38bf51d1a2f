// The long-lived sandbox commands: `mags new` starts a sandbox that stays up on a workspace, `mags exec` runs a
// command in it with its stdout, stderr, stdin and exit code passed through. (`mags stop NAME` ends it.)
import { MAX_DISK_GB, MAX_EXEC_TIMEOUT_S } from '@mags/api';
import type { Command } from 'commander';
import { connect } from '../connect.js';
import { UsageError } from '../errors.js';
import { printable, printError, printJson } from '../output.js';
import { collect, environmentFrom, integer } from './parse.js';

/** Exit code of `mags exec` when the command was killed at its timeout (as timeout(1) does). */
export const EXIT_EXEC_TIMEOUT = 124;

export function registerSandboxCommands(program: Command): void {
  registerSet(program);
  program
    .command('new')
    .description('Start a sandbox that stays up on workspace NAME; run commands in it with mags exec NAME')
    .argument('<name>', 'workspace name (created if missing; letters, digits, ".", "_" and "-")')
    .option('-p, --persistent', 'sync the workspace to the object store; files persist indefinitely')
    .option('--base <workspace>', 'start a new workspace from a copy of this persistent workspace')
    .option('--disk <GB>', 'disk size in GB of a new workspace (default: 2)', integer('--disk', 1, MAX_DISK_GB))
    .option('--no-sleep', 'never auto-sleep (requires -p)')
    .option('--startup-command <cmd>', 'command to run at every start of the sandbox')
    .option('--url', 'give the sandbox a URL (http://<subdomain>.<apps-domain>) to --port (requires -p)')
    .option(
      '--port <port>',
      'port the URL reaches in the sandbox (default: 8080; goes with --url)',
      integer('--port', 1, 65535),
    )
    .option('--url-private', 'the URL answers only you (your token, or the browser login link mags url prints)')
    .option('--json', 'print the running job as JSON')
    .addHelpText(
      'after',
      `
The sandbox runs until mags stop NAME (a persistent workspace is synced first). One sandbox per workspace:
mags run -w NAME is refused while it runs. To only create a workspace: mags workspace create NAME.

Examples:
  $ mags new dev -p
  $ mags exec dev 'node --version'
  $ mags new fork-1 -p --base golden --disk 5
  $ mags new web -p --url --port 3000 --startup-command 'npm start'
  $ mags stop dev`,
    )
    .action(
      async (
        name: string,
        flags: {
          persistent?: boolean;
          base?: string;
          disk?: number;
          sleep: boolean;
          startupCommand?: string;
          url?: boolean;
          port?: number;
          urlPrivate?: boolean;
          json?: boolean;
        },
      ) => {
        if (flags.sleep === false && !flags.persistent) throw new UsageError('--no-sleep requires -p');
        if (flags.url && !flags.persistent) throw new UsageError('--url requires -p (persistent)');
        if (flags.port !== undefined && !flags.url) throw new UsageError('--port requires --url');
        if (flags.urlPrivate && !flags.url) throw new UsageError('--url-private requires --url');
        const mags = await connect();
        const job = await mags.new(name, {
          persistent: flags.persistent,
          baseWorkspaceId: flags.base,
          diskGb: flags.disk,
          noSleep: flags.sleep === false ? true : undefined,
          startupCommand: flags.startupCommand,
          url: flags.url,
          port: flags.port,
          urlPrivate: flags.urlPrivate,
        });
        if (flags.json) return printJson(job);
        process.stdout.write(
          `sandbox ${printable(name)} is running (job ${job.requestId}); run commands in it with: mags exec ${printable(name)} 'CMD'\n`,
        );
        if (job.url) process.stdout.write(`URL: ${printable(job.url)}\n`);
      },
    );

  program
    .command('exec')
    .description('Run a command in a running sandbox; its output, stdin and exit code pass through')
    .argument('<name-or-id>', 'workspace name of the sandbox, or its job id or name')
    .argument('<command...>', 'shell command, run with /bin/sh -c (quote it)')
    .option(
      '--timeout <s>',
      'kill the command after this many seconds (default: 3600)',
      integer('--timeout', 1, MAX_EXEC_TIMEOUT_S),
    )
    .option('-e, --env <KEY=VALUE>', 'environment variable for the command (repeatable; KEY alone copies it)', collect)
    .option('--cwd <dir>', 'working directory inside the sandbox (default: /root)')
    .option('--json', 'wait for the end, then print { exitCode, stdout, stderr, reason } as JSON')
    .addHelpText(
      'after',
      `
Output: the command's stdout goes to stdout and its stderr to stderr, byte for byte, as it happens.
Stdin: passed to the command when it is not a terminal (a pipe or a file).
Exit code: the command's own; 124 when it was killed at --timeout; 1 when it could not be run.
Processes it leaves in the background end with it, unless started with nohup (or setsid), as on any machine.

Examples:
  $ mags exec dev 'node --version'
  $ mags exec dev -e NODE_ENV=test --cwd /srv/app 'npm test'
  $ tar c . | mags exec dev 'mkdir -p /srv && tar x -C /srv'
  $ mags exec dev 'nohup python3 -m http.server 8000 >/tmp/http.log 2>&1 &'`,
    )
    .action(
      async (
        ref: string,
        parts: string[],
        flags: { timeout?: number; env?: string[]; cwd?: string; json?: boolean },
      ) => {
        if (flags.cwd !== undefined && !flags.cwd.startsWith('/')) {
          throw new UsageError(`--cwd ${flags.cwd}: give an absolute directory inside the sandbox`);
        }
        const env = environmentFrom('--env', flags.env);
        const mags = await connect();
        const options = {
          timeoutS: flags.timeout,
          env: Object.keys(env).length ? env : undefined,
          cwd: flags.cwd,
          stdin: process.stdin.isTTY ? undefined : process.stdin,
        };
        const command = parts.join(' ');
        if (flags.json) {
          const result = await mags.exec(ref, command, options);
          printJson(result);
          process.exitCode = exitCodeOf(result.exitCode, result.reason);
          return;
        }
        const run = mags.execStream(ref, command, options);
        for await (const { stream, data } of run) {
          const out = stream === 'stdout' ? process.stdout : process.stderr;
          // A slow reader of our output holds the command back instead of filling memory.
          if (!out.write(data)) await new Promise((resolve) => out.once('drain', resolve));
        }
        const end = await run.done;
        if (end.reason === 'timeout') {
          printError(`the command ran longer than its ${flags.timeout ?? 3600} s timeout and was killed`);
        }
        process.exitCode = exitCodeOf(end.exitCode, end.reason);
      },
    );
}

/** `mags set NAME --no-sleep | --sleep | --startup-command CMD | --no-startup-command`. */
function registerSet(program: Command): void {
  program
    .command('set')
    .description("Change a running or sleeping sandbox's settings: always-on or not, its startup command")
    .argument('<name-or-id>', 'workspace name of the sandbox, or its job id or name')
    .option('--no-sleep', 'never sleep, and start again when it dies (persistent workspaces only; wakes it now)')
    .option('--sleep', 'sleep again when idle (the server decides when: --sleep-after)')
    .option('--startup-command <cmd>', 'run this at every start of the sandbox, from its next start')
    .option('--no-startup-command', 'remove the startup command')
    .option('--json', 'print the job as JSON')
    .addHelpText(
      'after',
      `
Examples:
  $ mags set worker --no-sleep
  $ mags set web --startup-command 'python3 -m http.server 8080'
  $ mags set worker --sleep --no-startup-command`,
    )
    .action(async (ref: string, flags: { sleep?: boolean; startupCommand?: string | false; json?: boolean }) => {
      // commander folds --sleep and --no-sleep into one key (undefined: neither given; both: the last wins).
      const options: { noSleep?: boolean; startupCommand?: string | null } = {};
      if (flags.sleep !== undefined) options.noSleep = !flags.sleep;
      if (flags.startupCommand === false) options.startupCommand = null;
      else if (flags.startupCommand !== undefined) options.startupCommand = flags.startupCommand;
      if (Object.keys(options).length === 0) {
        throw new UsageError(
          'nothing to change: give --no-sleep, --sleep, --startup-command CMD or --no-startup-command',
        );
      }
      const mags = await connect();
      const job = await mags.updateJob(ref, options);
      if (flags.json) return printJson(job);
      const parts: string[] = [];
      if (options.noSleep !== undefined) parts.push(options.noSleep ? 'always on' : 'sleeps when idle');
      if (options.startupCommand !== undefined)
        parts.push(options.startupCommand === null ? 'no startup command' : 'startup command set');
      process.stdout.write(`sandbox ${printable(ref)} (job ${job.requestId}, ${job.status}): ${parts.join(', ')}\n`);
    });
}

function exitCodeOf(exitCode: number | null, reason: string): number {
  if (reason === 'timeout') return EXIT_EXEC_TIMEOUT;
  return exitCode ?? 1;
}
