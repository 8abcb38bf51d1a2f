// The workspace commands: `mags sync`, `mags resize`, and `mags workspace create|list|delete|versions|restore`.

import { MAX_DISK_GB } from '@mags/api';
import { type Mags, MagsApiError, type SyncResult, type Workspace } from '@mags/sdk';
import type { Command } from 'commander';
import { connect } from '../connect.js';
import { type Cell, formatBytes, formatTime, note, painted, pc, printJson, table } from '../output.js';
import { integer } from './parse.js';

const disk = () => integer('--disk', 1, MAX_DISK_GB);

export function registerWorkspaceCommands(program: Command): void {
  program
    .command('sync')
    .description("Sync a workspace to the object store now: by workspace name, or by a job's id or name")
    .argument('<name-or-id>', 'workspace name, else the request id or name of a job on one')
    .option('--json', 'print the result as JSON ({ success, name, version, changed })')
    .addHelpText(
      'after',
      `
A name that is one of your workspaces means that workspace; anything else is taken as a job.
Every sync that changed something is a new version (mags workspace versions NAME).

Examples:
  $ mags sync golden
  $ mags sync 0193c2a4-…
  $ mags sync golden --json | jq .version`,
    )
    .action(async (target: string, flags: { json?: boolean }) => {
      const mags = await connect();
      note(`syncing ${target}…`);
      const result = await syncTarget(mags, target);
      if (flags.json) return printJson(result);
      process.stdout.write(`${describeSync(result)}\n`);
    });

  program
    .command('resize')
    .description('Grow the disk of a workspace (disks only grow: a smaller size is refused)')
    .argument('<name>', 'workspace name')
    .requiredOption('--disk <GB>', 'the new disk size in GB, at least its current size (disks only grow)', disk())
    .option('--json', 'print the workspace as JSON')
    .addHelpText(
      'after',
      `
Examples:
  $ mags resize myproject --disk 5`,
    )
    .action(async (name: string, flags: { disk: number; json?: boolean }) => {
      const mags = await connect();
      const w = await mags.resize(name, flags.disk);
      if (flags.json) return printJson(w);
      process.stdout.write(`resized ${w.name}: ${w.diskGb} GB disk (${formatBytes(w.sizeBytes)} used)\n`);
    });

  const workspace = program
    .command('workspace')
    .alias('workspaces')
    .description('Create, list, delete, and roll back workspaces')
    .addHelpText(
      'after',
      `
Examples:
  $ mags workspace create myproject -p
  $ mags workspace list
  $ mags workspace versions myproject
  $ mags workspace restore myproject 3
  $ mags workspace delete myproject`,
    );

  workspace
    .command('create')
    .description('Create a workspace without starting a sandbox: local to one host unless -p')
    .argument('<name>', 'workspace name (letters, digits, ".", "_" and "-")')
    .option('-p, --persistent', 'sync the workspace to the object store; files persist indefinitely')
    .option('--base <workspace>', 'start from a copy of this persistent workspace (its current version)')
    .option('--disk <GB>', 'disk size in GB (default: 2)', disk())
    .option('--json', 'print the new workspace as JSON')
    .addHelpText(
      'after',
      `
Examples:
  $ mags workspace create dev -p
  $ mags workspace create fork-1 -p --base golden --disk 5
  $ mags run -w dev -p 'pip install flask'`,
    )
    .action(async (name: string, flags: { persistent?: boolean; base?: string; disk?: number; json?: boolean }) => {
      const mags = await connect();
      const w = await mags.createWorkspace(name, {
        persistent: flags.persistent,
        base: flags.base,
        diskGb: flags.disk,
      });
      if (flags.json) return printJson(w);
      const based = w.base ? `, based on ${w.base}` : '';
      process.stdout.write(`created ${w.mode} workspace ${w.name} (${w.diskGb} GB disk${based})\n`);
    });

  workspace
    .command('list')
    .alias('ls')
    .description('List your workspaces, local and persistent')
    .option('--json', 'print the list as JSON ({ workspaces: [{ name, mode, diskGb, sizeBytes, versions, … }] })')
    .addHelpText(
      'after',
      `
Examples:
  $ mags workspace list
  $ mags workspace list --json | jq -r '.workspaces[] | select(.mode == "persistent") | .name'`,
    )
    .action(async (flags: { json?: boolean }) => {
      const mags = await connect();
      const result = await mags.listWorkspaces();
      if (flags.json) return printJson(result);
      if (result.workspaces.length === 0) {
        process.stdout.write(
          "no workspaces yet; create one with: mags workspace create NAME -p, or mags run -w NAME -p '…'\n",
        );
        return;
      }
      const rows = result.workspaces.map((w) => [
        w.name,
        w.mode === 'persistent' ? painted(w.mode, pc.green) : w.mode,
        `${w.diskGb} GB`,
        formatBytes(w.sizeBytes),
        w.mode === 'persistent' ? String(w.versions) : '-',
        lastUsed(w),
      ]);
      process.stdout.write(table(['NAME', 'MODE', 'DISK', 'SIZE', 'VERSIONS', 'LAST USED'], rows));
    });

  workspace
    .command('delete')
    .alias('rm')
    .description('Delete a workspace with all its versions and cloud data')
    .argument('<name>', 'workspace name')
    .option('--force', 'delete it even while a job uses it (that job is stopped)')
    .addHelpText(
      'after',
      `
Examples:
  $ mags workspace delete myproject
  $ mags workspace delete myproject --force   # also while a sandbox uses it`,
    )
    .action(async (name: string, flags: { force?: boolean }) => {
      const mags = await connect();
      try {
        await mags.deleteWorkspace(name, { force: flags.force });
      } catch (err) {
        if (err instanceof MagsApiError && err.status === 409 && !flags.force && !/--force/.test(err.message)) {
          throw new MagsApiError(
            err.status,
            err.code,
            `${err.message.replace(/[.\s]+$/, '')}; add --force to delete it anyway`,
          );
        }
        throw err;
      }
      process.stdout.write(`deleted workspace ${name}\n`);
    });

  workspace
    .command('versions')
    .description('List the synced versions of a persistent workspace, oldest first')
    .argument('<name>', 'workspace name')
    .option(
      '--json',
      'print the versions as JSON ({ name, versions: [{ version, createdAt, files, bytes, current }] })',
    )
    .addHelpText(
      'after',
      `
Every sync that changed something (at the end of each run, or mags sync) is a version.

Examples:
  $ mags workspace versions myproject
  $ mags workspace versions myproject --json | jq '.versions[] | select(.current) | .version'`,
    )
    .action(async (name: string, flags: { json?: boolean }) => {
      const mags = await connect();
      const result = await mags.workspaceVersions(name);
      if (flags.json) return printJson(result);
      if (result.versions.length === 0) {
        process.stdout.write(
          `${result.name} has no versions yet: a persistent workspace gets one each time it is synced\n`,
        );
        return;
      }
      const rows = result.versions.map((v) => [
        String(v.version),
        formatTime(v.createdAt),
        String(v.files),
        formatBytes(v.bytes),
        v.current ? painted('current', pc.green) : '',
      ]);
      process.stdout.write(table(['VERSION', 'CREATED', 'FILES', 'SIZE', ''], rows));
    });

  workspace
    .command('restore')
    .description('Roll a persistent workspace back to a version; the rollback becomes a new version')
    .argument('<name>', 'workspace name')
    .argument(
      '<version>',
      'the version to roll back to (mags workspace versions NAME)',
      integer('VERSION', 1, Number.MAX_SAFE_INTEGER),
    )
    .option('--json', 'print the result as JSON ({ success, name, version, restoredFrom })')
    .addHelpText(
      'after',
      `
Examples:
  $ mags workspace versions myproject
  $ mags workspace restore myproject 3`,
    )
    .action(async (name: string, version: number, flags: { json?: boolean }) => {
      const mags = await connect();
      note(`restoring ${name} to version ${version}…`);
      const r = await mags.restoreWorkspace(name, version);
      if (flags.json) return printJson(r);
      process.stdout.write(`restored ${r.name} to version ${r.restoredFrom}: it is now version ${r.version}\n`);
    });
}

/** Syncs the caller's workspace of that name if there is one, else the workspace of the job with that id or name. */
async function syncTarget(mags: Mags, target: string): Promise<SyncResult> {
  let isWorkspace = true;
  try {
    await mags.getWorkspace(target);
  } catch (err) {
    if (!(err instanceof MagsApiError && err.code === 'not_found')) throw err;
    isWorkspace = false;
  }
  if (isWorkspace) return mags.syncWorkspace(target);
  try {
    return await mags.sync(target);
  } catch (err) {
    if (err instanceof MagsApiError && err.code === 'not_found') {
      throw new MagsApiError(err.status, err.code, `no workspace or job named "${target}"`);
    }
    throw err;
  }
}

function describeSync(r: SyncResult): string {
  if (r.version === null) return `${r.name}: nothing to sync yet (it has no version)`;
  if (r.changed) return `synced ${r.name}: version ${r.version}`;
  return `${r.name}: no changes since version ${r.version}`;
}

function lastUsed(w: Workspace): Cell {
  if (w.inUseBy) return painted('in use', pc.cyan);
  return formatTime(w.lastUsedAt);
}
