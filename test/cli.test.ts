// The `mags` command against a real server (control plane + agent + crun sandboxes): what a user types,
// what they see on stdout and stderr, and the exit code they get.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { type CliResult, freePort, runCli, startServer, type TestServer } from './harness.js';

let server: TestServer;

before(async () => {
  server = await startServer(['--instance', `c${randomBytes(2).toString('hex')}`]);
});
after(async () => {
  await server?.stop();
});

type Result = CliResult;

/** Runs the built CLI with the test server's environment (plus `env`), and collects everything it prints. */
function mags(args: string[], env: NodeJS.ProcessEnv = {}): Promise<Result> {
  return runCli(server, args, env);
}

async function json<T>(args: string[]): Promise<T> {
  const r = await mags(args);
  assert.equal(r.code, 0, `mags ${args.join(' ')} failed: ${r.stderr}`);
  return JSON.parse(r.stdout) as T;
}

async function waitForStatus(id: string, wanted: string): Promise<void> {
  for (let i = 0; i < 200; i++) {
    const r = await mags(['status', id, '--json']);
    // A job run in the foreground may not be submitted yet: "not found" until it is.
    if (r.code === 0 && (JSON.parse(r.stdout) as { status: string }).status === wanted) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  assert.fail(`job ${id} never became ${wanted}`);
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

describe('mags run', () => {
  test("prints the script's output exactly", async () => {
    const r = await mags(['run', 'echo Hello World']);
    assert.equal(r.stdout, 'Hello World\n');
    assert.equal(r.stderr, '');
    assert.equal(r.code, 0);
  });

  test("exits with the script's exit code", async () => {
    for (const code of [0, 1, 7]) {
      const r = await mags(['run', `exit ${code}`]);
      assert.equal(r.code, code, `exit ${code} should make mags exit ${code} (stderr: ${r.stderr})`);
    }
  });

  test('a script killed for exceeding --memory exits 137 and says why', async () => {
    const r = await mags(['run', '--memory', '64', 'python3 -c "x=bytearray(512*1024*1024)"']);
    assert.equal(r.code, 137);
    assert.match(r.stderr, /memory/);
  });

  test("the script's stderr goes to stderr and its stdout to stdout", async () => {
    const r = await mags(['run', 'echo out; echo err >&2']);
    assert.equal(r.stdout, 'out\n');
    assert.equal(r.stderr, 'err\n');
    assert.equal(r.code, 0);
  });

  test('a 5 MB output arrives whole and in order', async () => {
    const r = await mags(['run', 'seq 1 750000']);
    assert.equal(r.code, 0, r.stderr);
    let expected = '';
    for (let i = 1; i <= 750000; i++) expected += `${i}\n`;
    assert.ok(expected.length > 5_000_000);
    assert.equal(r.stdout.length, expected.length, 'no line lost or repeated');
    assert.ok(r.stdout === expected, 'every line, in order');
  });

  test('--env passes variables to the script', async () => {
    const r = await mags(
      ['run', '--env', 'GREETING=hello there', '--env', 'FROM_HERE', 'echo "$GREETING/$FROM_HERE"'],
      { FROM_HERE: 'local' },
    );
    assert.equal(r.stdout, 'hello there/local\n');
  });

  test('-d prints only the job id; logs -f then follows it to the end', async () => {
    const d = await mags(['run', '-d', 'for i in 1 2 3; do echo line$i; sleep 0.3; done; echo oops >&2']);
    assert.equal(d.code, 0, d.stderr);
    const id = d.stdout.trim();
    assert.match(id, UUID);
    assert.equal(d.stdout, `${id}\n`);
    const f = await mags(['logs', '-f', id]);
    assert.equal(f.code, 0, f.stderr);
    assert.equal(f.stdout, 'line1\nline2\nline3\n');
    assert.equal(f.stderr, 'oops\n');
    const status = await json<{ status: string; exitCode: number }>(['status', id, '--json']);
    assert.equal(status.status, 'completed', 'logs -f returned only once the job had ended');
    // And afterwards, logs prints the same output.
    const again = await mags(['logs', id]);
    assert.equal(again.stdout, 'line1\nline2\nline3\n');
    assert.equal(again.stderr, 'oops\n');
  });

  test('stop ends a running job', async () => {
    const d = await mags(['run', '-d', 'sleep 600']);
    const id = d.stdout.trim();
    await waitForStatus(id, 'running');
    const s = await mags(['stop', id]);
    assert.equal(s.code, 0, s.stderr);
    assert.match(s.stdout, /stopped/);
    const status = await json<{ status: string }>(['status', id, '--json']);
    assert.equal(status.status, 'stopped');
  });

  test('a foreground run whose job is stopped exits 130 and says so', async () => {
    const name = `fg-${randomBytes(3).toString('hex')}`;
    const running = mags(['run', '--job-name', name, 'echo started; sleep 600']);
    await waitForStatus(name, 'running');
    const s = await mags(['stop', name]);
    assert.equal(s.code, 0, s.stderr);
    const r = await running;
    assert.equal(r.stdout, 'started\n');
    assert.equal(r.code, 130);
    assert.match(r.stderr, /stopped/);
  });

  test('--timeout kills a script that runs too long, with a clear message', async () => {
    const name = `to-${randomBytes(3).toString('hex')}`;
    const r = await mags(['run', '--job-name', name, '--timeout', '2', 'sleep 100']);
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, /longer than its 2 s timeout/);
    const status = await json<{ status: string; errorMessage: string }>(['status', name, '--json']);
    assert.equal(status.status, 'failed');
    assert.match(status.errorMessage, /timeout/);
  });

  test('--json prints the result with status, exit code and logs', async () => {
    const r = await mags(['run', '--json', 'echo a; echo b >&2; exit 3']);
    assert.equal(r.code, 3);
    const result = JSON.parse(r.stdout) as {
      requestId: string;
      status: string;
      exitCode: number;
      logs: Array<{ message: string; stream: string; timestamp: string }>;
    };
    assert.match(result.requestId, UUID);
    assert.equal(result.status, 'failed');
    assert.equal(result.exitCode, 3);
    assert.deepEqual(
      result.logs.map((l) => [l.stream, l.message]),
      [
        ['stdout', 'a'],
        ['stderr', 'b'],
      ],
    );
  });

  test('flags that need -p or --url fail at once with exit 2, and nothing is submitted', async () => {
    const before = (await json<{ total: number }>(['list', '--json'])).total;
    const cases: Array<[string[], string]> = [
      [['--url'], '--url requires -p (persistent)'],
      [['--no-sleep'], '--no-sleep requires -p'],
      [['--port', '8080'], '--port requires --url'],
      [['--url-private'], '--url-private requires --url'],
    ];
    for (const [flags, sentence] of cases) {
      const r = await mags(['run', ...flags, 'echo should-not-run']);
      assert.equal(r.code, 2, `${flags.join(' ')}: ${r.stderr}`);
      assert.equal(r.stdout, '');
      assert.ok(r.stderr.includes(sentence), `stderr says "${sentence}": ${r.stderr}`);
      assert.equal(r.stderr.trim().split('\n').length, 1, 'one sentence');
    }
    // mags new says the same, and mags url refuses a bad port before asking the server.
    for (const [args, sentence] of [
      [['new', 'w', '--url'], '--url requires -p (persistent)'],
      [['new', 'w', '-p', '--port', '3000'], '--port requires --url'],
      [['url', 'w', 'http'], 'port "http" must be a number from 1 to 65535'],
      [['url', 'w', '22'], 'port 22 is SSH: use mags ssh'],
    ] as Array<[string[], string]>) {
      const r = await mags(args);
      assert.equal(r.code, 2, `${args.join(' ')}: ${r.stderr}`);
      assert.ok(r.stderr.includes(sentence), `stderr says "${sentence}": ${r.stderr}`);
    }
    const after = (await json<{ total: number }>(['list', '--json'])).total;
    assert.equal(after, before, 'no job was submitted');
  });

  test('a bad flag value is a usage error (exit 2)', async () => {
    const r = await mags(['run', '--memory', 'lots', 'true']);
    assert.equal(r.code, 2);
    assert.match(r.stderr, /^mags: .*--memory/);
  });
});

describe('the other commands', () => {
  test('list --json parses and shows recent jobs', async () => {
    const d = await mags(['run', '-d', 'true']);
    const id = d.stdout.trim();
    const list = await json<{
      jobs: Array<{ requestId: string; status: string }>;
      page: number;
      pageSize: number;
      total: number;
    }>(['list', '--json']);
    assert.ok(Array.isArray(list.jobs));
    assert.ok(
      list.jobs.some((j) => j.requestId === id),
      'the new job is listed',
    );
    assert.equal(list.page, 1);
    const table = await mags(['list', '--page-size', '3']);
    assert.equal(table.code, 0);
    assert.match(table.stdout, /^ID\s+NAME\s+STATUS\s+EXIT\s+CREATED\s+DURATION/);
    assert.ok(table.stdout.trim().split('\n').length >= 2);
  });

  test('status --json parses, for the server and for a job', async () => {
    const s = await json<{ server: { version: string }; agents: Array<{ runtime: string; status: string }> }>([
      'status',
      '--json',
    ]);
    assert.match(s.server.version, /^\d+\.\d+\.\d+/);
    assert.ok(
      s.agents.some((a) => a.status === 'online' && /crun/.test(a.runtime)),
      'the agent and its runtime are reported',
    );
    const text = await mags(['status']);
    assert.equal(text.code, 0);
    assert.match(text.stdout, /crun/);
    assert.match(text.stdout, /server:/);

    const r = await mags(['run', '--job-name', `st-${randomBytes(3).toString('hex')}`, '--json', 'exit 4']);
    const { requestId } = JSON.parse(r.stdout) as { requestId: string };
    const job = await json<{ requestId: string; status: string; exitCode: number }>(['status', requestId, '--json']);
    assert.deepEqual([job.requestId, job.status, job.exitCode], [requestId, 'failed', 4]);
  });

  test('--help works on every command and shows an example', async () => {
    for (const cmd of [[], ['run'], ['list'], ['status'], ['logs'], ['stop'], ['server']]) {
      const r = await mags([...cmd, '--help']);
      assert.equal(r.code, 0, `mags ${cmd.join(' ')} --help`);
      assert.match(r.stdout, /Usage: mags/);
      assert.match(r.stdout, /Examples:\n\s+\$ (sudo )?mags /, `mags ${cmd.join(' ')} --help shows an example`);
    }
  });

  test('a bad token gives one clear sentence and exit 1', async () => {
    const r = await mags(['list'], { MAGS_API_TOKEN: 'wrong' });
    assert.equal(r.code, 1);
    assert.equal(r.stdout, '');
    assert.match(r.stderr, /^mags: the API token is not valid/);
    assert.equal(r.stderr.trim().split('\n').length, 1, 'no stack trace');
  });

  test('an unknown job gives the server’s sentence and exit 1', async () => {
    const r = await mags(['status', 'no-such-job']);
    assert.equal(r.code, 1);
    assert.equal(r.stderr, 'mags: job "no-such-job" not found\n');
  });

  test('a server that is not running is named in one sentence', async () => {
    const port = await freePort();
    const r = await mags(['list'], { MAGS_API_URL: `http://127.0.0.1:${port}` });
    assert.equal(r.code, 1);
    assert.equal(
      r.stderr,
      `mags: cannot reach the Mags server at http://127.0.0.1:${port}: is it running? (mags server)\n`,
    );
  });

  test('mags server stored the address and token in config.json, readable only by its owner', () => {
    const file = path.join(server.home, 'config.json');
    const config = JSON.parse(readFileSync(file, 'utf8')) as { api_url: string; api_token: string };
    assert.equal(config.api_url, server.url);
    assert.ok(config.api_token.length > 20);
    assert.equal(statSync(file).mode & 0o777, 0o600);
  });
});

/** Whether something listens on a loopback port. */
function portInUse(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect(port, '127.0.0.1');
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}

describe('bounded output (mags server --max-log-mb 1)', () => {
  let small: TestServer;
  before(async () => {
    small = await startServer(['--instance', `o${randomBytes(2).toString('hex')}`, '--max-log-mb', '1']);
  });
  after(async () => {
    await small?.stop();
  });

  async function waitEnded(id: string): Promise<{ status: string; exitCode: number | null }> {
    for (;;) {
      const r = await runCli(small, ['status', id, '--json']);
      assert.equal(r.code, 0, r.stderr);
      const job = JSON.parse(r.stdout) as { status: string; exitCode: number | null };
      if (['completed', 'failed', 'error', 'stopped'].includes(job.status)) return job;
      await new Promise((resolve) => setTimeout(resolve, 200));
    }
  }

  test('5 MB of output stores the 1 MB cap and a notice that mags logs shows last; mags delete removes the job', async () => {
    const run = await runCli(small, ['run', '-d', 'yes | head -c 5000000; exit 3']);
    assert.equal(run.code, 0, run.stderr);
    const id = run.stdout.trim();
    const job = await waitEnded(id);
    assert.deepEqual([job.status, job.exitCode], ['failed', 3], 'the job ends with its own exit code');

    const logs = await runCli(small, ['logs', id]);
    assert.equal(logs.code, 0, logs.stderr);
    assert.ok(
      logs.stdout.length > 0 && logs.stdout.length <= 1024 * 1024,
      `${logs.stdout.length} bytes of output kept`,
    );
    assert.match(logs.stdout, /^(y\n)+$/, 'what is kept is the start of the output, whole lines');
    assert.equal(
      logs.stderr,
      "mags: [output truncated: more than 1 MB; the rest of this job's output was not stored]\n",
    );
    const entries = JSON.parse((await runCli(small, ['logs', id, '--json'])).stdout) as Array<{
      stream: string;
      message: string;
    }>;
    assert.equal(entries.at(-1)?.stream, 'system', 'the notice is the last line');

    const busy = (await runCli(small, ['run', '-d', 'sleep 60'])).stdout.trim();
    const refused = await runCli(small, ['delete', busy]);
    assert.equal(refused.code, 1);
    assert.match(
      refused.stderr,
      /^mags: job "[0-9a-f-]{36}" has not finished \((accepted|running)\); stop it first, then delete it\n$/,
    );
    assert.equal((await runCli(small, ['stop', busy])).code, 0);

    const del = await runCli(small, ['delete', id, busy]);
    assert.equal(del.code, 0, del.stderr);
    assert.equal(del.stdout, `deleted job ${id}\ndeleted job ${busy}\n`);
    const gone = await runCli(small, ['logs', id]);
    assert.equal(gone.code, 1);
    assert.equal(gone.stderr, `mags: job "${id}" not found\n`);
    assert.equal((await runCli(small, ['delete', id])).code, 1, 'a second delete is not found');
  });

  test("mags run streams up to the cap, then the notice, and exits with the script's code", async () => {
    const r = await runCli(small, ['run', 'yes | head -c 3000000']);
    assert.equal(r.code, 0, r.stderr);
    assert.ok(r.stdout.length <= 1024 * 1024);
    assert.match(r.stderr, /output truncated: more than 1 MB/);
  });
});

describe('names from the server are printed escaped', () => {
  test('mags files list and mags list escape control and text-direction characters; an upload with one is refused', async () => {
    // A server (a compromised one, or rows stored before names were checked) answering hostile names.
    const hostile = 'report\r\x1b[2Kinvoice\u202egnp.exe\n\tx';
    const fake = http.createServer((req, res) => {
      res.setHeader('content-type', 'application/json');
      if (req.url?.startsWith('/api/v1/mags-files')) {
        res.end(
          JSON.stringify({
            files: [
              { file_id: 'f1', name: hostile, size: 3, sha256: 'ab'.repeat(32), created_at: new Date().toISOString() },
            ],
          }),
        );
      } else if (req.url === '/api/v1/mags-jobs' || req.url?.startsWith('/api/v1/mags-jobs?')) {
        const job = {
          request_id: 'j1',
          name: hostile,
          status: 'completed',
          workspace_id: null,
          vm_id: null,
          subdomain: null,
          url: null,
          exit_code: 0,
          script_duration_ms: 5,
          created_at: new Date().toISOString(),
          started_at: null,
          completed_at: null,
          error_message: null,
          script: 'x',
        };
        res.end(JSON.stringify({ jobs: [job], page: 1, page_size: 20, total: 1 }));
      } else {
        res.statusCode = 404;
        res.end(JSON.stringify({ error: `no route for ${hostile}`, code: 'not_found' }));
      }
    });
    await new Promise<void>((resolve) => fake.listen(0, '127.0.0.1', resolve));
    try {
      const url = `http://127.0.0.1:${(fake.address() as net.AddressInfo).port}`;
      const env = { MAGS_API_URL: url, MAGS_API_TOKEN: 'mags_fake' };
      const escaped = 'report\\r\\x1b[2Kinvoice\\u202egnp.exe\\n\\tx';
      for (const args of [['files', 'list'], ['list']]) {
        const r = await mags(args, env);
        assert.equal(r.code, 0, r.stderr);
        assert.ok(r.stdout.includes(escaped), r.stdout);
        assert.doesNotMatch(
          r.stdout.replace(/\n/g, ''),
          /[\x00-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]/,
          'no raw control character',
        );
      }
      const err = await mags(['status', 'nope'], env);
      assert.equal(err.code, 1);
      assert.equal(err.stderr, `mags: no route for ${escaped}\n`);
    } finally {
      fake.close();
    }

    const dir = mkdtempSync(path.join(tmpdir(), 'mags-names-'));
    try {
      const file = path.join(dir, 'invoice\u202etxt.exe');
      writeFileSync(file, 'x');
      const r = await mags(['files', 'upload', file]);
      assert.equal(r.code, 1);
      assert.match(r.stderr, /control or text-direction character \(U\+202E at position 8\)/);
      assert.ok(!r.stderr.includes('\u202e'), 'the refusal itself is printed escaped');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('with no server configured', async () => {
  const busy = await portInUse(7373);
  test('the CLI starts a local server in the background and uses it', {
    skip: busy ? 'something already listens on 127.0.0.1:7373, the default local address' : false,
  }, async () => {
    const home = mkdtempSync(path.join(tmpdir(), 'mags-test-autostart-'));
    const env: NodeJS.ProcessEnv = {
      MAGS_HOME: home,
      MAGS_API_URL: '',
      MAGS_API_TOKEN: '',
      MAGS_AGENT_INSTANCE: `a${randomBytes(2).toString('hex')}`,
    };
    const pidFile = path.join(home, 'server.pid');
    try {
      const r = await mags(['run', 'echo started by itself'], env);
      assert.equal(r.stdout, 'started by itself\n', r.stderr);
      assert.equal(r.code, 0);
      assert.equal(r.stderr, '', 'quiet when stderr is not a terminal');
      const config = JSON.parse(readFileSync(path.join(home, 'config.json'), 'utf8')) as {
        api_url: string;
        api_token: string;
      };
      assert.equal(config.api_url, 'http://127.0.0.1:7373');
      assert.ok(config.api_token);
      assert.equal(statSync(path.join(home, 'config.json')).mode & 0o777, 0o600);
      assert.ok(existsSync(path.join(home, 'server.log')));
      // A second command finds it running and does not start another.
      const pid = readFileSync(pidFile, 'utf8').trim();
      const again = await mags(['run', 'echo again'], env);
      assert.equal(again.stdout, 'again\n');
      assert.equal(readFileSync(pidFile, 'utf8').trim(), pid);
    } finally {
      if (existsSync(pidFile)) {
        const pid = Number(readFileSync(pidFile, 'utf8').trim());
        try {
          process.kill(pid, 'SIGTERM');
          for (let i = 0; i < 300; i++) {
            process.kill(pid, 0);
            await new Promise((r) => setTimeout(r, 100));
          }
          process.kill(pid, 'SIGKILL');
        } catch {
          /* it has exited */
        }
      }
      rmSync(home, { recursive: true, force: true });
    }
  });
});
