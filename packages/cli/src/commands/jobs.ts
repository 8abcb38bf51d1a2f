// The job commands: `mags list`, `mags status`, `mags logs`, `mags stop`, `mags delete`.

import { MAGS_VERSION } from '@mags/api';
import type { Job, Mags } from '@mags/sdk';
import type { Command } from 'commander';
import { connect } from '../connect.js';
import {
  type Cell,
  cell,
  colorStatus,
  formatDuration,
  formatTime,
  jobDuration,
  OutputWriter,
  painted,
  pc,
  printable,
  printJson,
  table,
} from '../output.js';
import { integer } from './parse.js';

export function registerJobCommands(program: Command): void {
  program
    .command('list')
    .description('List recent jobs, newest first')
    .option('--page <n>', 'page to show (default: 1)', integer('--page', 1, 1_000_000))
    .option('--page-size <n>', 'jobs per page (default: 20, at most 100)', integer('--page-size', 1, 100))
    .option('--json', 'print the page as JSON ({ jobs, page, pageSize, total })')
    .addHelpText(
      'after',
      `
Examples:
  $ mags list
  $ mags list --page 2 --page-size 50
  $ mags list --json | jq -r '.jobs[] | select(.status == "failed") | .requestId'`,
    )
    .action(async (flags: { page?: number; pageSize?: number; json?: boolean }) => {
      const mags = await connect();
      const result = await mags.list({ page: flags.page, pageSize: flags.pageSize });
      if (flags.json) return printJson(result);
      if (result.jobs.length === 0) {
        process.stdout.write(
          result.total === 0
            ? "no jobs yet; start one with: mags run 'echo Hello World'\n"
            : `no jobs on page ${result.page}\n`,
        );
        return;
      }
      const rows = result.jobs.map((j) => [
        j.requestId,
        j.name ?? '-',
        colorStatus(j.status),
        j.exitCode === null ? '-' : String(j.exitCode),
        formatTime(j.createdAt),
        formatDuration(jobDuration(j)),
      ]);
      process.stdout.write(table(['ID', 'NAME', 'STATUS', 'EXIT', 'CREATED', 'DURATION'], rows));
      const pages = Math.max(1, Math.ceil(result.total / result.pageSize));
      if (result.page < pages) {
        process.stdout.write(
          pc.dim(`page ${result.page} of ${pages} (${result.total} jobs); next: mags list --page ${result.page + 1}\n`),
        );
      }
    });

  program
    .command('status')
    .description("A job's status, exit code and timings; with no id, the server, its agents, runtime and versions")
    .argument('[id]', 'request id or job name')
    .option('--json', 'print as JSON')
    .addHelpText(
      'after',
      `
Examples:
  $ mags status                  # the server, agents, sandbox runtime, versions
  $ mags status 0193c2a4-…       # one job
  $ mags status my-job --json | jq .exitCode`,
    )
    .action(async (id: string | undefined, flags: { json?: boolean }) => {
      const mags = await connect();
      if (id !== undefined) return showJob(await mags.status(id), flags.json === true);
      return showServer(mags, flags.json === true);
    });

  program
    .command('logs')
    .description("Print a job's output: its stdout to stdout, its stderr to stderr")
    .argument('<id>', 'request id or job name')
    .option('-f, --follow', 'follow the output live until the job ends')
    .option('--after <seq>', 'only lines after this line number', integer('--after', 0, Number.MAX_SAFE_INTEGER))
    .option('--json', 'print the lines as JSON (with -f: one JSON object per line)')
    .addHelpText(
      'after',
      `
Examples:
  $ mags logs 0193c2a4-…
  $ mags logs -f $(mags run -d 'for i in 1 2 3; do echo $i; sleep 1; done')
  $ mags logs my-job --json | jq -r '.[] | select(.stream == "stderr") | .message'`,
    )
    .action(async (id: string, flags: { follow?: boolean; after?: number; json?: boolean }) => {
      const mags = await connect();
      const out = new OutputWriter();
      if (flags.follow) {
        const follower = mags.stream(id, { after: flags.after });
        for await (const entry of follower) {
          if (flags.json) process.stdout.write(`${JSON.stringify(entry)}\n`);
          else out.line(entry);
          await out.ready();
        }
      } else {
        const entries = await mags.logs(id, { after: flags.after });
        if (flags.json) printJson(entries);
        else
          for (const entry of entries) {
            out.line(entry);
            await out.ready();
          }
      }
      await out.flush();
    });

  program
    .command('stop')
    .description('Stop a running job or sandbox; returns once it has stopped (a persistent workspace synced)')
    .argument('<id>', 'request id, job name, or the workspace name of a running sandbox (mags new NAME)')
    .option('--json', 'print the result as JSON')
    .addHelpText(
      'after',
      `
Examples:
  $ mags stop 0193c2a4-…
  $ mags stop my-job
  $ mags stop dev       # the sandbox mags new dev started`,
    )
    .action(async (id: string, flags: { json?: boolean }) => {
      const mags = await connect();
      const result = await mags.stop(id);
      if (flags.json) printJson(result);
      else process.stdout.write(`${printable(result.requestId)} ${result.status}\n`);
    });

  program
    .command('delete')
    .alias('rm')
    .description('Delete finished jobs and their output (a running job must be stopped first)')
    .argument('<id...>', 'request ids or job names')
    .addHelpText(
      'after',
      `
Finished jobs are also deleted by the server after its retention period (mags server --retain-days).

Examples:
  $ mags delete 0193c2a4-…
  $ mags list --json | jq -r '.jobs[] | select(.status == "failed") | .requestId' | xargs mags delete`,
    )
    .action(async (ids: string[]) => {
      const mags = await connect();
      for (const id of ids) {
        await mags.deleteJob(id);
        process.stdout.write(`deleted job ${printable(id)}\n`);
      }
    });
}

function showJob(job: Job, json: boolean): void {
  if (json) return printJson(job);
  const rows: Array<[string, Cell]> = [
    ['id', job.requestId],
    ['name', job.name ?? '-'],
    ['status', colorStatus(job.status)],
    ['exit code', job.exitCode === null ? '-' : String(job.exitCode)],
    ['created', formatTime(job.createdAt)],
    ['started', formatTime(job.startedAt)],
    ['completed', formatTime(job.completedAt)],
    ['duration', formatDuration(jobDuration(job))],
  ];
  if (job.workspaceId) rows.push(['workspace', job.workspaceId]);
  if (job.url) rows.push(['url', job.url]);
  if (job.errorMessage) rows.push(['error', job.errorMessage]);
  // A long-lived sandbox (mags new) has no script.
  rows.push([
    'script',
    job.script === '' ? '(none: a sandbox that stays up; run commands with mags exec)' : oneLine(job.script),
  ]);
  const width = Math.max(...rows.map(([k]) => k.length)) + 1;
  process.stdout.write(`${rows.map(([k, v]) => `${pc.dim(`${k}:`.padEnd(width))} ${cell(v)}`).join('\n')}\n`);
}

async function showServer(mags: Mags, json: boolean): Promise<void> {
  const [status, pool] = await Promise.all([mags.serverStatus(), mags.poolStatus()]);
  if (json) return printJson({ apiUrl: mags.apiUrl, client: { version: MAGS_VERSION }, ...status, pool });
  const s = status.server;
  const online = status.agents.filter((a) => a.status === 'online').length;
  const lines = [
    `${pc.dim('server: ')} ${mags.apiUrl} (mags ${s.version}, ${s.mode} mode, ${s.store} store, up since ${formatTime(s.startedAt)})`,
    `${pc.dim('client: ')} mags ${MAGS_VERSION}`,
    `${pc.dim('user:   ')} ${status.user.name} (${status.user.id})`,
    `${pc.dim('pool:   ')} ${pool.idleVms} warm, ${pool.busyVms} busy, ${pool.sleepingVms} of them asleep (${pool.minPoolSize} kept warm, ${pool.maxPoolSize} at most)`,
    `${pc.dim('agents: ')} ${online} online${status.agents.length > online ? `, ${status.agents.length - online} offline` : ''}`,
  ];
  process.stdout.write(`${lines.join('\n')}\n`);
  if (status.agents.length === 0) {
    process.stdout.write('no agent has joined: jobs wait until one does\n');
    return;
  }
  const rows = status.agents.map((a) => [
    a.name,
    painted(a.status, a.status === 'online' ? pc.green : pc.red),
    a.runtime,
    a.version,
    `${a.running}/${a.capacity}`,
    formatTime(a.lastSeenAt),
  ]);
  process.stdout.write(
    table(['AGENT', 'STATUS', 'RUNTIME', 'VERSION', 'RUNNING', 'LAST SEEN'], rows)
      .split('\n')
      .map((l) => (l ? `  ${l}` : l))
      .join('\n'),
  );
}

function oneLine(script: string): string {
  const flat = script.replace(/\s*\n\s*/g, '; ');
  return flat.length > 200 ? `${flat.slice(0, 199)}…` : flat;
}
