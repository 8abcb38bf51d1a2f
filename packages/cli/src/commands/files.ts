// The file commands: `mags files list`, `mags files upload`, `mags files delete`, and the uploads `mags run -f` makes.

import type { Mags, UploadedFile } from '@mags/sdk';
import type { Command } from 'commander';
import { connect } from '../connect.js';
import { formatBytes, formatTime, printJson, table } from '../output.js';
import { TransferProgress } from '../progress.js';

/** Uploads local files one after the other, with progress on a terminal; answers their records in order. */
export async function uploadPaths(mags: Mags, paths: string[]): Promise<UploadedFile[]> {
  const uploaded: UploadedFile[] = [];
  for (const p of paths) {
    const progress = new TransferProgress(`uploading ${p}`);
    try {
      uploaded.push(await mags.upload(p, { onProgress: ({ sent, total }) => progress.update(sent, total) }));
    } finally {
      progress.done();
    }
  }
  return uploaded;
}

export function registerFileCommands(program: Command): void {
  const files = program
    .command('files')
    .alias('file')
    .description('Files uploaded for sandboxes: each appears as /uploads/<name> in the jobs given its id')
    .addHelpText(
      'after',
      `
Examples:
  $ mags files upload data.csv model.bin       # prints the file ids
  $ mags files list
  $ mags files delete <file-id>
  $ mags run -f data.csv 'wc -l /uploads/data.csv'   # uploads and runs in one step`,
    );

  files
    .command('list')
    .alias('ls')
    .description('List your uploaded files')
    .option('--json', 'print the list as JSON ({ files: [{ fileId, name, size, sha256, createdAt }] })')
    .addHelpText(
      'after',
      `
Examples:
  $ mags files list
  $ mags files list --json | jq -r '.files[] | select(.name == "data.csv") | .fileId'`,
    )
    .action(async (flags: { json?: boolean }) => {
      const mags = await connect();
      const result = await mags.listFiles();
      if (flags.json) return printJson(result);
      if (result.files.length === 0) {
        process.stdout.write('no files uploaded; upload one with: mags files upload PATH\n');
        return;
      }
      const rows = result.files.map((f) => [
        f.fileId,
        f.name,
        formatBytes(f.size),
        f.sha256.slice(0, 12),
        formatTime(f.createdAt),
      ]);
      process.stdout.write(table(['ID', 'NAME', 'SIZE', 'SHA256', 'CREATED'], rows));
    });

  files
    .command('upload')
    .description('Upload local files (streamed from disk); prints one file id per line, to pass to jobs as file_ids')
    .argument('<path...>', 'local files; each appears as /uploads/<basename>')
    .option('--json', 'print the uploaded files as JSON ({ files: [{ fileId, name, size, sha256, createdAt }] })')
    .addHelpText(
      'after',
      `
Progress shows on a terminal; nothing but the ids is printed when piped.

Examples:
  $ mags files upload data.csv
  $ mags files upload *.csv --json | jq -r '.files[].sha256'`,
    )
    .action(async (paths: string[], flags: { json?: boolean }) => {
      const mags = await connect();
      const uploaded = await uploadPaths(mags, paths);
      if (flags.json) return printJson({ files: uploaded });
      process.stdout.write(uploaded.map((f) => `${f.fileId}\n`).join(''));
    });

  files
    .command('delete')
    .alias('rm')
    .description('Delete uploaded files')
    .argument('<id...>', 'file ids (mags files list)')
    .addHelpText(
      'after',
      `
Examples:
  $ mags files delete <file-id>
  $ mags files list --json | jq -r '.files[].fileId' | xargs mags files delete`,
    )
    .action(async (ids: string[]) => {
      const mags = await connect();
      for (const id of ids) {
        await mags.deleteFile(id);
        process.stdout.write(`deleted file ${id}\n`);
      }
    });
}
