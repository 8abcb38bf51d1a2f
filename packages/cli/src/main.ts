#!/usr/bin/env node
import { MAGS_VERSION } from '@mags/api';
import { MagsApiError } from '@mags/sdk';
// The `mags` command. Each command group lives in commands/; this file wires them and turns every failure
// into one sentence on stderr and an exit code: 0 ok, 1 failure, 2 usage error (`mags run`: the script's code).
import { Command, CommanderError } from 'commander';
import { registerAccountCommands } from './commands/accounts.js';
import { registerCronCommands, registerUsageCommand } from './commands/cron.js';
import { registerFileCommands } from './commands/files.js';
import { registerJobCommands } from './commands/jobs.js';
import { registerRun } from './commands/run.js';
import { registerSandboxCommands } from './commands/sandboxes.js';
import { isServing, registerServer } from './commands/server.js';
import { registerSshCommands } from './commands/ssh.js';
import { registerUrlCommands } from './commands/urls.js';
import { registerWorkspaceCommands } from './commands/workspaces.js';
import { EXIT_FAILURE, EXIT_USAGE, UsageError } from './errors.js';
import { drained, printable, printError } from './output.js';

// A reader that goes away early (`mags --help | head -3`) ends the command quietly, not with an EPIPE stack trace.
for (const stream of [process.stdout, process.stderr]) {
  stream.on('error', (err: NodeJS.ErrnoException) => {
    if (err.code === 'EPIPE') process.exit(typeof process.exitCode === 'number' ? process.exitCode : 0);
    throw err;
  });
}

function buildProgram(): Command {
  const program = new Command('mags')
    .description('Secure, isolated sandboxes for AI agents and developers')
    .version(MAGS_VERSION, '-v, --version', 'print the version')
    .showSuggestionAfterError(true)
    .addHelpText(
      'after',
      `
Server and token: MAGS_API_URL and MAGS_API_TOKEN, else $MAGS_HOME/config.json (default ~/.mags; mags login writes it);
with neither, a local server is started in the background ($MAGS_HOME/server.log).

Examples:
  $ mags login https://mags.example.com && mags whoami
  $ mags run 'echo Hello World'
  $ mags run -d 'sleep 60; echo done' && mags list
  $ mags logs -f <id>
  $ mags run -w myproject -p 'pip install flask' && mags workspace list
  $ mags new dev -p && mags exec dev 'uname -a'
  $ mags status`,
    );
  registerRun(program);
  registerSandboxCommands(program);
  registerSshCommands(program);
  registerUrlCommands(program);
  registerJobCommands(program);
  registerWorkspaceCommands(program);
  registerFileCommands(program);
  registerCronCommands(program);
  registerUsageCommand(program);
  registerServer(program);
  registerAccountCommands(program);

  // Usage errors: one sentence, exit 2 (commander's own messages start with "error: ").
  const configure = (cmd: Command) => {
    cmd.exitOverride().configureOutput({
      outputError: (str) => printError(str.trim().replace(/^error: /, '')),
    });
    for (const sub of cmd.commands) configure(sub);
  };
  configure(program);
  return program;
}

async function main(argv: string[]): Promise<number> {
  const program = buildProgram();
  try {
    await program.parseAsync(argv);
    return typeof process.exitCode === 'number' ? process.exitCode : 0;
  } catch (err) {
    if (err instanceof CommanderError) {
      // Help and version exit 0; everything else commander reports is a usage error (already printed).
      if (err.exitCode === 0) return 0;
      return EXIT_USAGE;
    }
    if (err instanceof UsageError) {
      printError(err.message);
      return EXIT_USAGE;
    }
    if (err instanceof MagsApiError) {
      // The server's sentence may quote names it was given: shown escaped, on one line.
      printError(printable(err.message));
      return EXIT_FAILURE;
    }
    const message = err instanceof Error ? err.message : String(err);
    printError(message);
    if (process.env.MAGS_DEBUG && err instanceof Error && err.stack) process.stderr.write(`${err.stack}\n`);
    return EXIT_FAILURE;
  }
}

const code = await main(process.argv);
// `mags server` keeps running (its handles keep the process alive); every other command ends here.
if (!isServing() || code !== 0) {
  await Promise.all([drained(process.stdout), drained(process.stderr)]);
  process.exit(code);
}
