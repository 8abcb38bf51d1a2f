// `mags cron` (scripts on a schedule: add, list, enable, disable, remove) and `mags usage` (what you used, per day).
import type { CronJob } from '@mags/sdk';
import type { Command } from 'commander';
import { connect } from '../connect.js';
import { UsageError } from '../errors.js';
import { formatBytes, formatTime, printable, printJson, table } from '../output.js';
import { integer } from './parse.js';

interface AddFlags {
  name: string;
  schedule: string;
  workspace?: string;
  persistent?: boolean;
  tz?: string;
  disabled?: boolean;
  json?: boolean;
}

export function registerCronCommands(program: Command): void {
  const cron = program
    .command('cron')
    .description('Run scripts on a schedule: each firing is an ordinary job, named after its cron job')
    .addHelpText(
      'after',
      `
Schedules are standard 5-field cron expressions (minute hour day-of-month month day-of-week), read in UTC unless
--tz names a time zone. A firing is skipped (and recorded) while the previous one still runs on the same workspace;
firings missed while no server ran are not replayed.

Examples:
  $ mags cron add --name backup --schedule "0 0 * * *" -w backups -p 'tar czf /root/backup.tgz /data'
  $ mags cron list
  $ mags cron disable backup && mags cron enable backup
  $ mags cron remove backup`,
    );

  cron
    .command('add')
    .description('Create a cron job')
    .requiredOption('--name <name>', 'a name for it (each firing job is named so: mags logs NAME)')
    .requiredOption('--schedule <expression>', 'when: 5 fields, minute hour day-of-month month day-of-week')
    .option('-w, --workspace <name>', 'run each firing on this workspace (local unless -p)')
    .option('-p, --persistent', 'the workspace is persistent (synced to the object store)')
    .option('--tz <zone>', 'read the schedule in this IANA time zone (default: UTC), e.g. Europe/Berlin')
    .option('--disabled', 'create it switched off (mags cron enable ID later)')
    .option('--json', 'print the cron job as JSON')
    .argument('<script>', 'the shell script each firing runs')
    .addHelpText(
      'after',
      `
Examples:
  $ mags cron add --name backup --schedule "0 0 * * *" -w backups 'tar czf backup.tar.gz /data'
  $ mags cron add --name report --schedule "30 8 * * 1-5" --tz Europe/Berlin 'python3 /root/report.py'
  $ mags cron add --name poll --schedule "*/5 * * * *" 'curl -fsS https://example.com/health'`,
    )
    .action(async (script: string, flags: AddFlags) => {
      if (flags.persistent && !flags.workspace) throw new UsageError('-p needs a workspace: add -w NAME');
      const mags = await connect();
      const job = await mags.cronCreate({
        name: flags.name,
        cronExpression: flags.schedule,
        script,
        ...(flags.workspace ? { workspaceId: flags.workspace, persistent: flags.persistent === true } : {}),
        ...(flags.tz ? { timezone: flags.tz } : {}),
        ...(flags.disabled ? { enabled: false } : {}),
      });
      if (flags.json) return printJson(job);
      process.stdout.write(
        `created cron job ${printable(job.name)} (${job.id}): ${printable(job.cronExpression)} ${job.timezone ?? 'UTC'}` +
          `, next run ${job.nextRunAt ? formatTime(job.nextRunAt) : 'none (disabled)'}\n`,
      );
    });

  cron
    .command('list')
    .alias('ls')
    .description('List your cron jobs with their next and last runs')
    .option('--json', 'print the list as JSON ({ cronJobs: [{ id, name, cronExpression, nextRunAt, … }] })')
    .addHelpText(
      'after',
      `
Examples:
  $ mags cron list
  $ mags cron list --json | jq -r '.cronJobs[] | "\\(.name) \\(.nextRunAt)"'`,
    )
    .action(async (flags: { json?: boolean }) => {
      const mags = await connect();
      const list = await mags.cronList();
      if (flags.json) return printJson({ cronJobs: list });
      if (list.length === 0) {
        process.stdout.write('no cron jobs; add one with: mags cron add --name N --schedule "0 0 * * *" SCRIPT\n');
        return;
      }
      process.stdout.write(
        table(
          ['ID', 'NAME', 'SCHEDULE', 'TZ', 'WORKSPACE', 'ENABLED', 'NEXT RUN', 'LAST RUN'],
          list.map((c) => [
            c.id,
            printable(c.name),
            printable(c.cronExpression),
            c.timezone ?? 'UTC',
            c.workspaceId ? `${c.workspaceId}${c.persistent ? ' (p)' : ''}` : '-',
            c.enabled ? 'yes' : 'no',
            formatTime(c.nextRunAt),
            lastRun(c),
          ]),
        ),
      );
    });

  cron
    .command('show')
    .description('Show a cron job and its latest firings: the job each ran, or why it was skipped')
    .argument('<id>', 'the cron job id or name (mags cron list)')
    .option('--json', 'print the cron job and its runs as JSON')
    .addHelpText(
      'after',
      '\nExamples:\n  $ mags cron show backup\n  $ mags logs $(mags cron show backup --json | jq -r .lastJobId)',
    )
    .action(async (id: string, flags: { json?: boolean }) => {
      const mags = await connect();
      const job = await mags.cronGet(id);
      if (flags.json) return printJson(job);
      const where = job.workspaceId ? ` on workspace ${job.workspaceId}${job.persistent ? ' (persistent)' : ''}` : '';
      process.stdout.write(
        `${printable(job.name)} (${job.id}): ${printable(job.cronExpression)} ${job.timezone ?? 'UTC'}${where}, ` +
          `${job.enabled ? `next run ${formatTime(job.nextRunAt)}` : 'disabled'}\n`,
      );
      const runs = job.runs ?? [];
      if (runs.length === 0) {
        process.stdout.write('no firings yet\n');
        return;
      }
      process.stdout.write(
        table(
          ['SCHEDULED', 'STATUS', 'JOB', 'REASON'],
          runs.map((r) => [formatTime(r.scheduledAt), r.status, r.jobId ?? '-', r.reason ? printable(r.reason) : '-']),
        ),
      );
    });

  for (const [verb, enabled] of [
    ['enable', true],
    ['disable', false],
  ] as const) {
    cron
      .command(verb)
      .description(
        enabled
          ? 'Switch a cron job on (its next run is counted from now)'
          : 'Switch a cron job off (it keeps its settings)',
      )
      .argument('<id>', 'the cron job id or name (mags cron list)')
      .option('--json', 'print the cron job as JSON')
      .addHelpText(
        'after',
        `\nExamples:\n  $ mags cron ${verb} backup\n  $ mags cron ${verb} 0b6f6f0e-1c1e-4c0a-9a54-0d1b8d1c2e3f`,
      )
      .action(async (id: string, flags: { json?: boolean }) => {
        const mags = await connect();
        const job = await mags.cronUpdate(id, { enabled });
        if (flags.json) return printJson(job);
        process.stdout.write(
          enabled
            ? `enabled cron job ${printable(job.name)}; next run ${formatTime(job.nextRunAt)}\n`
            : `disabled cron job ${printable(job.name)}\n`,
        );
      });
  }

  cron
    .command('remove')
    .alias('rm')
    .description('Delete a cron job (the jobs it fired stay)')
    .argument('<id>', 'the cron job id or name (mags cron list)')
    .addHelpText('after', '\nExamples:\n  $ mags cron remove backup')
    .action(async (id: string) => {
      const mags = await connect();
      await mags.cronDelete(id);
      process.stdout.write(`removed cron job ${printable(id)}\n`);
    });
}

function lastRun(c: CronJob): string {
  if (!c.lastRunAt) return '-';
  return `${formatTime(c.lastRunAt)} ${c.lastStatus ?? ''}`.trim();
}

export function registerUsageCommand(program: Command): void {
  program
    .command('usage')
    .description('Show what your sandboxes used per day: jobs, sandbox/CPU/memory time, egress, storage held')
    .option('--days <n>', 'how many days back, today included (default 30)', integer('--days', 1, 366))
    .option('--json', 'print the figures as JSON ({ windowDays, days: [{ date, jobs, cpuSeconds, … }], totals })')
    .addHelpText(
      'after',
      `
Figures are metered: sandbox time, CPU time (cpuacct), memory integrated over time (GB-s), bytes sent out of the
sandboxes, and the bytes your workspaces and uploaded files hold. Days are UTC.

Examples:
  $ mags usage
  $ mags usage --days 7
  $ mags usage --json | jq '.totals.cpuSeconds'`,
    )
    .action(async (flags: { days?: number; json?: boolean }) => {
      const mags = await connect();
      const usage = await mags.usage(flags.days === undefined ? {} : { windowDays: flags.days });
      if (flags.json) return printJson(usage);
      const rows = usage.days.map((d) => [
        d.date,
        String(d.jobs),
        seconds(d.sandboxSeconds),
        seconds(d.cpuSeconds),
        d.memoryGbSeconds.toFixed(2),
        formatBytes(d.egressBytes),
        formatBytes(d.storageBytes),
      ]);
      const t = usage.totals;
      rows.push([
        'total',
        String(t.jobs),
        seconds(t.sandboxSeconds),
        seconds(t.cpuSeconds),
        t.memoryGbSeconds.toFixed(2),
        formatBytes(t.egressBytes),
        `${formatBytes(t.storageBytes)} now`,
      ]);
      process.stdout.write(table(['DATE (UTC)', 'JOBS', 'SANDBOX', 'CPU', 'MEMORY GB-S', 'EGRESS', 'STORAGE'], rows));
    });
}

/** Seconds for people: `12.5 s`, `3.2 min`, `1.5 h`. */
function seconds(s: number): string {
  if (s < 60) return `${s.toFixed(1)} s`;
  if (s < 3600) return `${(s / 60).toFixed(1)} min`;
  return `${(s / 3600).toFixed(1)} h`;
}
