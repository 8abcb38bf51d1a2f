// `mags url` (open a sandbox's URL on a port and print it) and `mags url alias …` (stable names for a workspace's
// URL).
import type { Command } from 'commander';
import { connect } from '../connect.js';
import { UsageError } from '../errors.js';
import { formatTime, printable, printJson, table } from '../output.js';

const PORT_TEXT = /^\d{1,5}$/;

export function registerUrlCommands(program: Command): void {
  const url = program
    .command('url')
    .description("Open a sandbox's URL to a port (default 8080) and print it; mags url alias gives it a stable name")
    .argument('<name-or-id>', 'workspace name of the sandbox, or its job id or name')
    .argument('[port]', 'port in the sandbox the URL reaches (default: 8080)')
    .option('--private', 'the URL answers only you: your token, or a browser that opened the printed login link')
    .option('--json', 'print { success, url, port, subdomain, private, loginUrl } as JSON')
    .addHelpText(
      'after',
      `
The URL is http://<subdomain>.<apps-domain>:<router port> (https with a server started with --tls-cert); the
subdomain stays for the sandbox's job. A request to a sleeping sandbox wakes it. With --private, a one-time login
link (10 minutes) is printed: opening it in a browser sets a cookie for that URL; scripts send
"Authorization: Bearer <token>" instead.

Examples:
  $ mags new web -p --startup-command 'python3 -m http.server 8080'
  $ mags url web
  $ mags url web 3000
  $ curl "$(mags url web 3000 --json | jq -r .url)"
  $ mags url web 3000 --private`,
    )
    .action(async (ref: string, portText: string | undefined, flags: { private?: boolean; json?: boolean }) => {
      let port = 8080;
      if (portText !== undefined) {
        port = Number(portText);
        if (!PORT_TEXT.test(portText) || port < 1 || port > 65535) {
          throw new UsageError(`port "${portText}" must be a number from 1 to 65535`);
        }
        if (port === 22) throw new UsageError('port 22 is SSH: use mags ssh');
      }
      const mags = await connect();
      const access = await mags.url(ref, port, { private: flags.private === true });
      if (flags.json) return printJson(access);
      process.stdout.write(`${printable(access.url)}\n`);
      if (access.loginUrl) {
        process.stderr.write(
          `private URL: open this one-time link in your browser (valid 10 minutes):\n${printable(access.loginUrl)}\n`,
        );
      }
    });

  const alias = url
    .command('alias')
    .description('Give a workspace a stable URL name: mags url alias SUB WORKSPACE; list; remove SUB')
    .argument('<subdomain>', 'the name: a-z, 0-9 and -, unique on the server')
    .argument('<workspace>', 'the workspace whose sandbox it reaches')
    .option('--json', 'print the alias as JSON')
    .addHelpText(
      'after',
      `
<subdomain>.<apps-domain> reaches whichever sandbox runs on the workspace, on its URL's port (else 8080): it
follows the workspace across sleeps, mags stop + mags new, and hosts.

Examples:
  $ mags url alias myapp webapp
  $ mags url alias list
  $ mags url alias remove myapp`,
    )
    .action(async (subdomain: string, workspace: string, flags: { json?: boolean }) => {
      const mags = await connect();
      const a = await mags.urlAliasCreate(subdomain, workspace);
      if (flags.json) return printJson(a);
      process.stdout.write(`${printable(a.url)} → workspace ${printable(a.workspaceId)}\n`);
    });

  alias
    .command('list')
    .description('List your URL aliases')
    .option('--json', 'print them as JSON')
    .addHelpText('after', '\nExamples:\n  $ mags url alias list\n  $ mags url alias list --json')
    .action(async (_flags: { json?: boolean }, cmd: Command) => {
      const mags = await connect();
      const aliases = await mags.urlAliasList();
      // --json may be parsed by a parent (mags url and mags url alias take it too).
      if (cmd.optsWithGlobals().json) return printJson(aliases);
      if (!aliases.length) {
        process.stdout.write('no URL aliases (make one with mags url alias SUB WORKSPACE)\n');
        return;
      }
      process.stdout.write(
        table(
          ['SUBDOMAIN', 'WORKSPACE', 'URL', 'CREATED'],
          aliases.map((a) => [
            printable(a.subdomain),
            printable(a.workspaceId),
            printable(a.url),
            formatTime(a.createdAt),
          ]),
        ),
      );
    });

  alias
    .command('remove')
    .alias('rm')
    .description('Remove one of your URL aliases')
    .argument('<subdomain>', 'the alias to remove')
    .addHelpText('after', '\nExamples:\n  $ mags url alias remove myapp')
    .action(async (subdomain: string) => {
      const mags = await connect();
      await mags.urlAliasDelete(subdomain);
      process.stdout.write(`removed URL alias ${printable(subdomain)}\n`);
    });
}
