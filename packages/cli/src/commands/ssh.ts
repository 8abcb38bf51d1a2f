// `mags ssh` (an OpenSSH session into a sandbox with a key made for it) and `mags ssh-key` (your own public keys,
// so that your usual `ssh -p 2222 NAME@HOST` works).
import { spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { magsHome } from '@mags/sdk';
import type { Command } from 'commander';
import { connect } from '../connect.js';
import { UsageError } from '../errors.js';
import { formatTime, printable, printError, printJson, table } from '../output.js';

/** Exit code when ssh itself could not be run (as a shell reports a missing command). */
const EXIT_NO_SSH = 127;

export function registerSshCommands(program: Command): void {
  program
    .command('ssh')
    .description('Open an SSH session into a sandbox (a shell, or run CMD), with the system ssh and a key made for it')
    .argument('<name-or-id>', 'workspace name of the sandbox, or its job id or name')
    .argument('[command...]', 'a command to run instead of a shell (after --)')
    .addHelpText(
      'after',
      `
Asks the server for a key that opens this sandbox alone (POST /api/v1/mags-jobs/{id}/access, port 22), writes it
to a private temporary file (removed afterwards) and runs ssh with it; the gateway's host key is remembered in
$MAGS_HOME/known_hosts. A terminal is requested when stdin is one. The exit code is the command's (ssh's own
errors: 255). scp, sftp and ssh -L work with the same key: see mags ssh-key for using your own.

Examples:
  $ mags new dev -p
  $ mags ssh dev
  $ mags ssh dev -- 'uname -a'
  $ mags ssh dev -- tar c /srv > srv.tar`,
    )
    .action(async (ref: string, command: string[]) => {
      const mags = await connect();
      const access = await mags.enableAccess(ref, 22);
      const home = magsHome(process.env);
      mkdirSync(home, { recursive: true, mode: 0o700 });
      const dir = mkdtempSync(path.join(tmpdir(), 'mags-ssh-'));
      const key = path.join(dir, 'key');
      try {
        writeFileSync(key, access.sshPrivateKey, { mode: 0o600 });
        const args = [
          '-i',
          key,
          '-p',
          String(access.sshPort),
          '-o',
          'IdentitiesOnly=yes',
          '-o',
          'StrictHostKeyChecking=accept-new',
          '-o',
          `UserKnownHostsFile=${path.join(home, 'known_hosts')}`,
          ...(process.stdin.isTTY ? ['-t'] : []),
          `${access.sshUser}@${access.sshHost}`,
          ...(command.length > 0 ? ['--', ...command] : []),
        ];
        process.exitCode = await runSsh(args);
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    });

  const keys = program
    .command('ssh-key')
    .alias('ssh-keys')
    .description('Your own SSH public keys: each opens your sandboxes with your usual ssh (ssh -p 2222 NAME@HOST)')
    .addHelpText(
      'after',
      `
Examples:
  $ mags ssh-key add ~/.ssh/id_ed25519.pub --name laptop
  $ mags ssh-key list
  $ ssh -p 2222 dev@mags.example.com        # the ssh user names the sandbox
  $ mags ssh-key remove <key-id>`,
    );

  keys
    .command('add')
    .description('Register a public key (an OpenSSH .pub file: ssh-ed25519, ecdsa-sha2-nistp*, ssh-rsa)')
    .argument('<file>', 'the public key file, e.g. ~/.ssh/id_ed25519.pub')
    .option('--name <name>', "a label (default: the key's comment)")
    .option('--json', 'print the key as JSON')
    .addHelpText(
      'after',
      `
Examples:
  $ mags ssh-key add ~/.ssh/id_ed25519.pub
  $ mags ssh-key add deploy.pub --name ci`,
    )
    .action(async (file: string, flags: { name?: string; json?: boolean }) => {
      let text: string;
      try {
        text = readFileSync(file, 'utf8');
      } catch (err) {
        throw new UsageError(`cannot read ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
      }
      const mags = await connect();
      const key = await mags.addSshKey(text.trim(), { name: flags.name });
      if (flags.json) return printJson(key);
      process.stdout.write(`added SSH key ${key.id} (${key.fingerprint}, ${printable(key.name)})\n`);
    });

  keys
    .command('list')
    .alias('ls')
    .description('List your registered SSH public keys')
    .option('--json', 'print the list as JSON ({ keys: [{ id, name, fingerprint, publicKey, createdAt }] })')
    .addHelpText(
      'after',
      `
Examples:
  $ mags ssh-key list
  $ mags ssh-key list --json | jq -r '.keys[].fingerprint'`,
    )
    .action(async (flags: { json?: boolean }) => {
      const mags = await connect();
      const list = await mags.listSshKeys();
      if (flags.json) return printJson({ keys: list });
      if (list.length === 0) {
        process.stdout.write('no SSH keys; add one with: mags ssh-key add ~/.ssh/id_ed25519.pub\n');
        return;
      }
      const rows = list.map((k) => [k.id, printable(k.name), k.fingerprint, formatTime(k.createdAt)]);
      process.stdout.write(table(['ID', 'NAME', 'FINGERPRINT', 'ADDED'], rows));
    });

  keys
    .command('remove')
    .alias('rm')
    .description('Remove one of your SSH keys; it is refused from then on')
    .argument('<id>', 'the key id (mags ssh-key list)')
    .addHelpText(
      'after',
      `
Examples:
  $ mags ssh-key remove 0b6f6f0e-1c1e-4c0a-9a54-0d1b8d1c2e3f`,
    )
    .action(async (id: string) => {
      const mags = await connect();
      await mags.removeSshKey(id);
      process.stdout.write(`removed SSH key ${printable(id)}\n`);
    });
}

/** Runs ssh with the terminal handed over; resolves with its exit code (128+n for a signal). */
function runSsh(args: string[]): Promise<number> {
  return new Promise((resolve) => {
    // Ctrl-C belongs to the session: ssh passes it on (or, without a terminal, ends itself); mags waits for it.
    const ignore = () => {};
    process.on('SIGINT', ignore);
    const child = spawn('ssh', args, { stdio: 'inherit' });
    child.once('error', (err: NodeJS.ErrnoException) => {
      process.off('SIGINT', ignore);
      printError(
        `cannot run ssh: ${err.code === 'ENOENT' ? 'it is not installed (install openssh-client)' : err.message}`,
      );
      resolve(EXIT_NO_SSH);
    });
    child.once('exit', (code, signal) => {
      process.off('SIGINT', ignore);
      resolve(code ?? (signal ? 128 + (signalNumber(signal) ?? 0) : 1));
    });
  });
}

function signalNumber(signal: NodeJS.Signals): number | undefined {
  return ({ SIGHUP: 1, SIGINT: 2, SIGQUIT: 3, SIGKILL: 9, SIGTERM: 15 } as Record<string, number>)[signal];
}
