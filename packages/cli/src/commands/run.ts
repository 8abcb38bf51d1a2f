// `mags run`: submit a script, stream its output live, exit with its exit code.
import { statSync } from 'node:fs';
import type { Job, RunOptions } from '@mags/sdk';
import { type Command, Option } from 'commander';
import { connect } from '../connect.js';
import { EXIT_FAILURE, EXIT_OK, EXIT_STOPPED, UsageError } from '../errors.js';
import { OutputWriter, printError, printJson } from '../output.js';
import { uploadPaths } from './files.js';
import { collect, environmentFrom, integer, positiveNumber } from './parse.js';

interface RunFlags {
  workspace?: string;
  name?: string;
  persistent?: boolean;
  ephemeral?: boolean;
  base?: string;
  disk?: number;
  sleep: boolean;
  url?: boolean;
  port?: number;
  urlPrivate?: boolean;
  file?: string[];
  startupCommand?: string;
  memory?: number;
  cpus?: number;
  timeout?: number;
  network?: 'internet' | 'none';
  env?: string[];
  jobName?: string;
  detach?: boolean;
  json?: boolean;
}

export function registerRun(program: Command): void {
  program
    .command('run')
    .description("Run a script in a fresh sandbox; its output streams live and its exit code becomes mags's")
    .argument('<script...>', 'shell script, run with /bin/sh -c (quote it)')
    .option('-w, --workspace <name>', 'name the workspace (local only unless -p is also set)')
    .option('-n, --name <name>', 'alias for -w that also names the job (mags status NAME)')
    .option('-p, --persistent', 'sync the workspace to the object store; files persist indefinitely')
    .option('-e, --ephemeral', 'no workspace at all, fastest possible execution')
    .option('--base <workspace>', 'use an existing workspace as a read-only base image')
    .option('--disk <GB>', 'disk size of the workspace in GB (default: 2)', integer('--disk', 1, 1024))
    .option('--no-sleep', 'never auto-sleep (requires -p)')
    .option('--url', 'give the sandbox a URL through the router (requires -p; mags status shows it)')
    .option('--port <port>', 'port the URL reaches (default: 8080; goes with --url)', integer('--port', 1, 65535))
    .option('--url-private', 'the URL answers only you (your token, or the login link of mags url)')
    .option('-f, --file <path>', 'upload a file into /uploads/ before running (repeatable)', collect)
    .option('--startup-command <cmd>', 'command to run when the sandbox wakes from sleep')
    .option('--memory <MB>', 'memory limit in MB (default: 1024)', integer('--memory', 32, 262144))
    .option('--cpus <n>', 'CPU share in cores, e.g. 0.5 (default: 1)', positiveNumber('--cpus', 64))
    .option(
      '--timeout <s>',
      'wall-clock limit in seconds; the sandbox is killed when it passes (default: 3600)',
      integer('--timeout', 1, 604800),
    )
    .addOption(new Option('--network <policy>', 'network access (default: internet)').choices(['internet', 'none']))
    .option(
      '--env <KEY=VALUE>',
      'environment variable for the script (repeatable; KEY alone copies it from here)',
      collect,
    )
    .option('--job-name <name>', 'a name to find the job by later (mags status NAME, mags stop NAME)')
    .option('-d, --detach', 'print the job id and return at once')
    .option('--json', 'wait for the end, then print the result (status, exit code, logs) as JSON')
    .addHelpText(
      'after',
      `
Output: the script's stdout goes to stdout and its stderr to stderr, as it happens.
Exit code: the script's own. A job stopped (mags stop, or Ctrl-C here) exits 130; a job the platform
could not run (status "error") prints why on stderr and exits 1; a usage error exits 2.
Ctrl-C stops the job; a second Ctrl-C leaves it running and returns.

Workspaces: without -w (or with -e) nothing survives the run. -w NAME keeps files on the host that ran it
(deleted after 10 minutes unused); -w NAME -p syncs them to the object store, a new version per run.
Files given with -f are uploaded first (progress on a terminal) and appear as /uploads/<basename>.

Examples:
  $ mags run 'echo Hello World'
  $ mags run -w myproject -p 'pip install flask'     # files persist across runs
  $ mags run --base golden -w fork-1 -p 'npm test'   # start from a read-only copy of golden
  $ mags run -f script.py -f data.csv 'python3 /uploads/script.py'
  $ mags run --memory 256 --cpus 0.5 --timeout 30 --network none 'python3 job.py'
  $ mags run --env GREETING=hi 'echo $GREETING'
  $ mags run -d 'sleep 60; echo done'        # prints the job id; then: mags logs -f <id>
  $ mags run --json 'uname -a' | jq .exitCode`,
    )
    .action(async (scriptParts: string[], flags: RunFlags) => {
      process.exitCode = await run(scriptParts.join(' '), flags);
    });
}

/** Checks the flags as the reference states them, before anything is sent. */
export function runOptionsFrom(flags: RunFlags): RunOptions {
  if (flags.workspace !== undefined && flags.name !== undefined && flags.workspace !== flags.name) {
    throw new UsageError('-n is an alias of -w: give the workspace name once');
  }
  const workspaceId = flags.workspace ?? flags.name;
  if (flags.url && !flags.persistent) throw new UsageError('--url requires -p (persistent)');
  if (flags.sleep === false && !flags.persistent) throw new UsageError('--no-sleep requires -p');
  if (flags.port !== undefined && !flags.url) throw new UsageError('--port requires --url');
  if (flags.urlPrivate && !flags.url) throw new UsageError('--url-private requires --url');
  if (flags.ephemeral && (flags.persistent || workspaceId !== undefined)) {
    throw new UsageError('-e (ephemeral) runs without a workspace: it cannot be combined with -w or -p');
  }
  const environment = environmentFrom('--env', flags.env);
  for (const file of flags.file ?? []) {
    let isFile = false;
    try {
      isFile = statSync(file).isFile();
    } catch {
      throw new UsageError(`-f ${file}: no such file`);
    }
    if (!isFile) throw new UsageError(`-f ${file}: not a regular file`);
  }
  return {
    workspaceId,
    baseWorkspaceId: flags.base,
    persistent: flags.persistent,
    ephemeral: flags.ephemeral,
    noSleep: flags.sleep === false ? true : undefined,
    startupCommand: flags.startupCommand,
    environment: Object.keys(environment).length ? environment : undefined,
    diskGb: flags.disk,
    url: flags.url,
    port: flags.port,
    urlPrivate: flags.urlPrivate,
    vcpus: flags.cpus,
    memoryMb: flags.memory,
    timeoutS: flags.timeout,
    network: flags.network,
    // -n names the job as well as the workspace (the reference's -n/-w aliasing); --job-name names the job alone.
    name: flags.jobName ?? flags.name,
  };
}

async function run(script: string, flags: RunFlags): Promise<number> {
  if (script.trim() === '') throw new UsageError("the script is empty; give a command such as mags run 'echo hello'");
  const options = runOptionsFrom(flags);
  const mags = await connect();
  const uploaded = await uploadPaths(mags, flags.file ?? []);
  if (uploaded.length > 0) options.fileIds = uploaded.map((f) => f.fileId);
  let requestId: string;
  try {
    ({ requestId } = await mags.run(script, options));
  } catch (err) {
    // Nothing will use the files uploaded for this run: do not leave them behind.
    await Promise.all(uploaded.map((f) => mags.deleteFile(f.fileId).catch(() => undefined)));
    throw err;
  }

  if (flags.detach) {
    if (flags.json) printJson({ requestId, status: 'accepted' });
    else process.stdout.write(`${requestId}\n`);
    return EXIT_OK;
  }

  // Ctrl-C stops the job (and we keep streaming until it has ended); a second Ctrl-C returns at once.
  let interrupted = false;
  const onSigint = () => {
    if (interrupted) process.exit(EXIT_STOPPED);
    interrupted = true;
    printError(`stopping job ${requestId} (press Ctrl-C again to leave it running)`);
    mags.stop(requestId).catch(() => undefined);
  };
  process.on('SIGINT', onSigint);
  try {
    if (flags.json) {
      const result = await mags.result(requestId);
      printJson(result);
      return exitCodeOf(result);
    }
    const out = new OutputWriter();
    const follower = mags.stream(requestId);
    for await (const entry of follower) {
      out.line(entry);
      await out.ready();
    }
    await out.flush();
    const job = follower.status ?? (await mags.status(requestId));
    report(job, out.systemMessages);
    return exitCodeOf(job);
  } finally {
    process.off('SIGINT', onSigint);
  }
}

/** What a person needs to know beyond the output: why the platform ended the job. */
function report(job: Job, alreadySaid: Set<string>): void {
  const message = job.errorMessage;
  if (job.status === 'stopped') printError(`job ${job.requestId} was stopped`);
  else if (job.status === 'error')
    printError(`job ${job.requestId} could not run: ${message ?? 'the platform failed'}`);
  else if (message && !alreadySaid.has(message)) printError(message);
}

/** The exit code of `mags run` for a job that ended. */
export function exitCodeOf(job: Pick<Job, 'status' | 'exitCode'>): number {
  switch (job.status) {
    case 'completed':
    case 'sleeping':
      return clamp(job.exitCode ?? 0);
    case 'failed':
      return job.exitCode ? clamp(job.exitCode) : EXIT_FAILURE;
    case 'stopped':
      return EXIT_STOPPED;
    default:
      return EXIT_FAILURE;
  }
}

const clamp = (code: number) => (Number.isInteger(code) && code >= 0 && code <= 255 ? code : EXIT_FAILURE);
