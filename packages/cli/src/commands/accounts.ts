// `mags login` / `logout` / `whoami` (the device flow: approve in a browser, or a token from stdin), `mags token`
// (your API tokens) and `mags user` (the owner adds and removes users; anyone sets their own password).
import { spawn } from 'node:child_process';
import { hostname } from 'node:os';
import { configPath, type Environment, Mags, MagsApiError, readConfigFile, resolveConnection } from '@mags/sdk';
import type { Command } from 'commander';
import { removeConfigKeys, updateConfig } from '../config.js';
import { connect } from '../connect.js';
import { UsageError } from '../errors.js';
import { formatTime, note, printable, printJson, table } from '../output.js';

async function readStdin(): Promise<string> {
  if (process.stdin.isTTY) {
    throw new UsageError(
      'give the secret on stdin, e.g. `echo "$TOKEN" | mags login --token` or `mags login --token < file`',
    );
  }
  const chunks: Buffer[] = [];
  for await (const c of process.stdin) chunks.push(c as Buffer);
  return Buffer.concat(chunks).toString('utf8').trim();
}

/** Opens a URL in the user's browser when there is one to open (not over SSH, not without a display). */
function openBrowser(url: string, env: Environment): boolean {
  if (env.MAGS_NO_BROWSER || env.SSH_CONNECTION || env.SSH_TTY) return false;
  const command = process.platform === 'darwin' ? 'open' : process.platform === 'win32' ? 'explorer' : 'xdg-open';
  if (process.platform === 'linux' && !env.DISPLAY && !env.WAYLAND_DISPLAY) return false;
  try {
    const child = spawn(command, [url], { stdio: 'ignore', detached: true });
    child.on('error', () => undefined);
    child.unref();
    return true;
  } catch {
    return false;
  }
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export function registerAccountCommands(program: Command): void {
  program
    .command('login')
    .description('Sign in to a Mags server: approve this terminal in your browser (or give a token on stdin)')
    .argument('[server-url]', 'the server (default: MAGS_API_URL, the config file, or http://127.0.0.1:7373)')
    .option('--token', 'read an API token from stdin instead of opening a browser (headless machines)')
    .option('--no-browser', 'print the approval link instead of opening a browser')
    .addHelpText(
      'after',
      `
Asks the server for a code, opens its approval page in your browser (or prints the link: over SSH, without a
display, or with --no-browser or MAGS_NO_BROWSER=1), and once you approve it there, saves a new token with the server's address in
$MAGS_HOME/config.json (mode 0600). MAGS_API_TOKEN and MAGS_API_URL, when set, still win over the file.

Examples:
  $ mags login https://mags.example.com
  $ mags login --no-browser
  $ echo "$MAGS_TOKEN" | mags login --token https://mags.example.com`,
    )
    .action(async (url: string | undefined, flags: { token?: boolean; browser?: boolean }) => {
      const env = process.env;
      const apiUrl = resolveConnection({ apiUrl: url }, env).apiUrl;
      if (flags.token) {
        const token = await readStdin();
        if (!token) throw new UsageError('no token on stdin');
        const me = await new Mags({ apiUrl, apiToken: token, env }).whoami();
        const file = updateConfig(env, { api_url: apiUrl, api_token: token });
        process.stdout.write(`signed in as ${printable(me.name)} to ${apiUrl} (saved in ${file})\n`);
        warnEnvToken(env);
        return;
      }
      const mags = new Mags({ apiUrl, env });
      const login = await mags.startLogin(`mags login on ${hostname()}`.slice(0, 100));
      const opened = flags.browser !== false && openBrowser(login.verificationUriComplete, env);
      process.stderr.write(
        `${opened ? 'Opened your browser at' : 'Open this link in a browser where you are signed in to Mags:'}\n  ${login.verificationUriComplete}\n` +
          `and check that it shows the code ${login.userCode}. Waiting for your approval…\n`,
      );
      const deadline = Date.now() + login.expiresIn * 1000;
      while (Date.now() < deadline) {
        await sleep(login.interval * 1000);
        const r = await mags.pollLogin(login.deviceCode);
        if (r.status === 'approved') {
          const file = updateConfig(env, { api_url: apiUrl, api_token: r.token });
          process.stdout.write(`signed in as ${printable(r.user)} to ${apiUrl} (saved in ${file})\n`);
          warnEnvToken(env);
          return;
        }
      }
      throw new Error('the login code expired before it was approved: run "mags login" again');
    });

  program
    .command('logout')
    .description('Revoke the token saved by mags login on the server and remove it from the config file')
    .addHelpText('after', '\nExamples:\n  $ mags logout')
    .action(async () => {
      const env = process.env;
      const file = configPath(env);
      const saved = readConfigFile(file);
      if (typeof saved.api_token !== 'string' || saved.api_token === '') {
        process.stdout.write(`not signed in: ${file} holds no token\n`);
        warnEnvToken(env);
        return;
      }
      const mags = new Mags({ apiToken: saved.api_token, env: { ...env, MAGS_API_TOKEN: undefined } });
      try {
        const me = await mags.whoami();
        if (me.tokenId) await mags.revokeToken(me.tokenId);
      } catch (err) {
        // A token the server no longer takes is removed all the same.
        if (!(err instanceof MagsApiError && err.status === 401)) throw err;
      }
      removeConfigKeys(env, ['api_token']);
      process.stdout.write(`signed out of ${mags.apiUrl}: the token is revoked and removed from ${file}\n`);
      warnEnvToken(env);
    });

  program
    .command('whoami')
    .description('Print the user and server this CLI is signed in to')
    .option('--json', 'print { user, userId, owner, server } as JSON')
    .addHelpText('after', '\nExamples:\n  $ mags whoami\n  $ mags whoami --json')
    .action(async (flags: { json?: boolean }) => {
      const mags = new Mags({ env: process.env });
      if (!mags.hasToken) {
        throw new Error(`not signed in to ${mags.apiUrl}: run "mags login" (or set MAGS_API_TOKEN)`);
      }
      let me: Awaited<ReturnType<Mags['whoami']>>;
      try {
        me = await mags.whoami();
      } catch (err) {
        if (err instanceof MagsApiError && err.status === 401) {
          throw new Error(
            `not signed in to ${mags.apiUrl}: the token is not valid (revoked or expired); run "mags login"`,
          );
        }
        throw err;
      }
      if (flags.json) return printJson({ user: me.name, userId: me.userId, owner: me.owner, server: mags.apiUrl });
      process.stdout.write(`${printable(me.name)}${me.owner ? ' (owner)' : ''} on ${mags.apiUrl}\n`);
    });

  const token = program
    .command('token')
    .alias('tokens')
    .description('Your API tokens: create (shown once), list, revoke')
    .addHelpText(
      'after',
      `
Examples:
  $ mags token create ci --expires-in-days 90
  $ mags token list
  $ mags token revoke <token-id>`,
    );

  token
    .command('create')
    .description('Create an API token; its secret is printed this once')
    .argument('<name>', 'what it is for, e.g. ci')
    .option('--expires-in-days <n>', 'days until it stops working (default: never)', (v) => {
      const n = Number(v);
      if (!Number.isInteger(n) || n < 1 || n > 3650) throw new UsageError('--expires-in-days must be 1 to 3650');
      return n;
    })
    .option('--json', 'print { id, name, token, expiresAt, … } as JSON')
    .addHelpText(
      'after',
      '\nExamples:\n  $ mags token create ci\n  $ mags token create laptop --expires-in-days 30 --json',
    )
    .action(async (name: string, flags: { expiresInDays?: number; json?: boolean }) => {
      const mags = await connect();
      const t = await mags.createToken(name, { expiresInDays: flags.expiresInDays });
      if (flags.json) return printJson(t);
      process.stdout.write(`${t.token}\n`);
      note(
        `token ${t.id} (${printable(t.name)})${t.expiresAt ? `, expires ${formatTime(t.expiresAt)}` : ''}: shown once, keep it safe`,
      );
    });

  token
    .command('list')
    .alias('ls')
    .description('List your tokens that still work (never their secrets)')
    .option('--json', 'print { tokens: [...] } as JSON')
    .addHelpText('after', '\nExamples:\n  $ mags token list')
    .action(async (flags: { json?: boolean }) => {
      const mags = await connect();
      const list = await mags.listTokens();
      if (flags.json) return printJson({ tokens: list });
      const rows = list.map((t) => [
        t.id,
        printable(t.name),
        `${t.prefix}…`,
        formatTime(t.createdAt),
        t.lastUsedAt ? formatTime(t.lastUsedAt) : '-',
        t.expiresAt ? formatTime(t.expiresAt) : 'never',
      ]);
      process.stdout.write(table(['ID', 'NAME', 'PREFIX', 'CREATED', 'LAST USED', 'EXPIRES'], rows));
    });

  token
    .command('revoke')
    .alias('rm')
    .description('Revoke one of your tokens: it is refused from the next request on')
    .argument('<id>', 'the token id (mags token list)')
    .addHelpText('after', '\nExamples:\n  $ mags token revoke 0b6f6f0e-1c1e-4c0a-9a54-0d1b8d1c2e3f')
    .action(async (id: string) => {
      const mags = await connect();
      await mags.revokeToken(id);
      process.stdout.write(`revoked token ${printable(id)}\n`);
    });

  const user = program
    .command('user')
    .alias('users')
    .description("The server's users (the owner adds and removes them) and your own password")
    .addHelpText(
      'after',
      `
Examples:
  $ mags user add alice            # prints alice's first token and a one-time link to choose a password
  $ mags user list
  $ mags user remove alice         # her tokens stop at once, her sandboxes stop; her data is kept
  $ mags user remove alice --delete-data
  $ echo 'a long passphrase' | mags user password`,
    );

  user
    .command('add')
    .description('Add a user (owner only): prints a token for them and a one-time sign-in link')
    .argument('<name>', '1–63 letters, digits, ".", "_" or "-", starting with a letter or digit')
    .option('--json', 'print { userId, name, token, signinUrl } as JSON')
    .addHelpText('after', '\nExamples:\n  $ mags user add alice')
    .action(async (name: string, flags: { json?: boolean }) => {
      const mags = await connect();
      const u = await mags.addUser(name);
      if (flags.json) return printJson(u);
      process.stdout.write(
        `added user ${printable(u.name)}\n  token:        ${u.token}\n  sign-in link: ${u.signinUrl}\n`,
      );
      note('give both to the user privately: the token is shown once, the link works once within 7 days');
    });

  user
    .command('list')
    .alias('ls')
    .description('List the users (owner only)')
    .option('--json', 'print { users: [...] } as JSON')
    .addHelpText('after', '\nExamples:\n  $ mags user list')
    .action(async (flags: { json?: boolean }) => {
      const mags = await connect();
      const list = await mags.listUsers();
      if (flags.json) return printJson({ users: list });
      const rows = list.map((u) => [
        printable(u.name),
        u.owner ? 'owner' : 'user',
        u.hasPassword ? 'yes' : 'no',
        formatTime(u.createdAt),
      ]);
      process.stdout.write(table(['NAME', 'ROLE', 'PASSWORD', 'ADDED'], rows));
    });

  user
    .command('remove')
    .alias('rm')
    .description(
      'Remove a user (owner only): tokens stop at once, sandboxes stop; data is deleted only with --delete-data',
    )
    .argument('<name>', 'the user')
    .option('--delete-data', "also delete the user's jobs, workspaces and files")
    .option('--json', 'print { name, jobsStopped, dataDeleted } as JSON')
    .addHelpText('after', '\nExamples:\n  $ mags user remove alice\n  $ mags user remove alice --delete-data')
    .action(async (name: string, flags: { deleteData?: boolean; json?: boolean }) => {
      const mags = await connect();
      const r = await mags.removeUser(name, { deleteData: flags.deleteData === true });
      if (flags.json) return printJson(r);
      process.stdout.write(
        `removed user ${printable(r.name)}: ${r.jobsStopped} job${r.jobsStopped === 1 ? '' : 's'} stopped, ` +
          `${r.dataDeleted ? 'data deleted' : 'data kept'}\n`,
      );
    });

  user
    .command('password')
    .description('Set your own password for the browser sign-in (read from stdin, at least 10 characters)')
    .addHelpText('after', '\nExamples:\n  $ read -rs PW && echo "$PW" | mags user password')
    .action(async () => {
      const password = await readStdin();
      const mags = await connect();
      await mags.setPassword(password);
      process.stdout.write('password set: sign in at /signin\n');
    });
}

function warnEnvToken(env: Environment): void {
  if (env.MAGS_API_TOKEN?.trim()) note('MAGS_API_TOKEN is set in this shell: it wins over the config file');
}
