// Cron and usage against a real server with real sandboxes, through the CLI and the SDK: usage figures that match
// jobs of known duration, CPU time, egress and a file of known size (within 10 %), a long-lived sandbox metered
// while it runs, a cron job that fires on the real clock as an ordinary job, and the commands' help and errors.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { Mags, MagsApiError, type UsageResult } from '@mags/sdk';
import { runCli, startServer, type TestServer } from './harness.js';

let server: TestServer;
let mags: Mags;

before(async () => {
  server = await startServer(['--instance', `u${randomBytes(2).toString('hex')}`, '--usage-interval', '1']);
  mags = new Mags({ apiUrl: server.url, apiToken: server.token });
});
after(async () => {
  await server?.stop();
});

const today = (u: UsageResult) => u.days.at(-1)!;

/** Asserts `actual` is within 10 % of `expected`. */
function near(actual: number, expected: number, what: string): void {
  assert.ok(Math.abs(actual - expected) <= expected * 0.1, `${what}: ${actual} is not within 10 % of ${expected}`);
}

describe('usage, metered from real sandboxes', () => {
  test('a 4 s job counts 4 sandbox-seconds and one job; a CPU-bound job counts the CPU time it measured itself', async () => {
    const before = today(await mags.usage({ windowDays: 1 }));
    const slept = await mags.runAndWait('sleep 4');
    assert.equal(slept.status, 'completed');
    const afterSleep = today(await mags.usage({ windowDays: 1 }));
    assert.equal(afterSleep.jobs - before.jobs, 1);
    near(afterSleep.sandboxSeconds - before.sandboxSeconds, 4, 'sandbox seconds of `sleep 4`');
    assert.ok(afterSleep.cpuSeconds - before.cpuSeconds < 0.5, 'sleeping uses almost no CPU');

    // The shell's `times` prints the CPU time of the shell and its children: what the sandbox's cgroup must have seen.
    // A fixed amount of work (about 2 s of CPU), not a wall-clock loop: on a loaded machine a loop of 3 s may get far
    // less CPU than that.
    const busy = await mags.runAndWait('i=0; while [ $i -lt 1500000 ]; do i=$((i+1)); done; times');
    assert.equal(busy.status, 'completed', JSON.stringify(busy.logs));
    const lines = busy.logs.map((l) => l.message);
    const cpu = lines
      .flatMap((l) => [...l.matchAll(/(\d+)m([\d.]+)s/g)])
      .reduce((sum, m) => sum + Number(m[1]) * 60 + Number(m[2]), 0);
    assert.ok(cpu > 1, `the job used CPU: ${lines.join(' | ')}`);
    const afterBusy = today(await mags.usage({ windowDays: 1 }));
    near(afterBusy.cpuSeconds - afterSleep.cpuSeconds, cpu, `CPU seconds (the job's own times: ${lines.join(' | ')})`);
  });

  test('memory is integrated over time, and bytes sent out of the sandbox are counted', async () => {
    const before = today(await mags.usage({ windowDays: 1 }));
    // 48 MiB held in /dev/shm (charged to the sandbox's memory) for 4 s: about 0.19 GiB·s, plus the shell's own. The
    // 500 ms sampling and a loaded machine move either end by a sample, so the bounds allow 30 % below.
    const held = await mags.runAndWait('head -c 50331648 /dev/zero > /dev/shm/fill && sleep 4 && rm /dev/shm/fill');
    assert.equal(held.status, 'completed', JSON.stringify(held.logs));
    const afterHeld = today(await mags.usage({ windowDays: 1 }));
    const gbs = afterHeld.memoryGbSeconds - before.memoryGbSeconds;
    assert.ok(gbs > 0.13 && gbs < 0.4, `memory GB-seconds of 48 MiB for 4 s: ${gbs}`);

    // 1,000 UDP datagrams of 1,000 bytes to the sandbox's gateway: 1,042,000 bytes on the wire with the headers.
    const sent = await mags.runAndWait(
      "gw=$(awk '/nameserver/ {print $2; exit}' /etc/resolv.conf); " +
        'bash -c "exec 3>/dev/udp/$gw/9; for i in \\$(seq 1000); do printf \'%1000s\' x >&3; done"',
    );
    assert.equal(sent.status, 'completed', JSON.stringify(sent.logs));
    const afterSent = today(await mags.usage({ windowDays: 1 }));
    near(afterSent.egressBytes - afterHeld.egressBytes, 1_042_000, 'egress bytes of 1,000 × 1,000-byte datagrams');
  });

  test('a file of known size is the storage held; a long-lived sandbox is metered while it runs', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'mags-usage-'));
    try {
      const size = 3_000_000;
      const file = path.join(dir, 'known.bin');
      writeFileSync(file, Buffer.alloc(size, 1));
      const before = (await mags.usage({ windowDays: 1 })).totals.storageBytes;
      const id = await mags.uploadFile(file);
      const after = await mags.usage({ windowDays: 1 });
      near(after.totals.storageBytes - before, size, 'storage bytes of a 3 MB file');
      near(today(after).storageBytes - before, size, "today's storage bytes");
      await mags.deleteFile(id);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }

    const name = `meter-${randomBytes(3).toString('hex')}`;
    await mags.new(name);
    try {
      const start = today(await mags.usage({ windowDays: 1 })).cpuSeconds;
      const burn = await mags.exec(name, 'i=0; while [ $i -lt 1500000 ]; do i=$((i+1)); done');
      assert.equal(burn.exitCode, 0);
      // Reported every second (--usage-interval 1) while the sandbox keeps running.
      let seen = 0;
      for (let i = 0; i < 50 && seen < 1; i++) {
        await new Promise((r) => setTimeout(r, 200));
        seen = today(await mags.usage({ windowDays: 1 })).cpuSeconds - start;
      }
      assert.ok(seen >= 1, `the running sandbox's CPU time was reported while it runs: ${seen}`);
      assert.equal((await mags.status(name)).status, 'running');
    } finally {
      await mags.stop(name);
    }
  });

  test('mags usage draws a table, --json gives the figures, and a bad --days is a usage error', async () => {
    const table = await runCli(server, ['usage', '--days', '3']);
    assert.equal(table.code, 0, table.stderr);
    const lines = table.stdout.trim().split('\n');
    assert.match(lines[0]!, /DATE \(UTC\)\s+JOBS\s+SANDBOX\s+CPU\s+MEMORY GB-S\s+EGRESS\s+STORAGE/);
    assert.equal(lines.length, 5, 'a header, 3 days and the total');
    assert.match(lines.at(-1)!, /^total\s+\d+/);
    const json = await runCli(server, ['usage', '--json', '--days', '2']);
    assert.equal(json.code, 0, json.stderr);
    const parsed = JSON.parse(json.stdout) as UsageResult;
    assert.equal(parsed.windowDays, 2);
    assert.equal(parsed.days.length, 2);
    assert.ok(parsed.totals.jobs >= 4);
    const bad = await runCli(server, ['usage', '--days', '0']);
    assert.equal(bad.code, 2);
    assert.match(bad.stderr, /--days takes a whole number from 1 to 366/);
    const help = await runCli(server, ['usage', '--help']);
    assert.match(help.stdout, /Examples:/);
  });
});

describe('cron on the real clock', () => {
  test('mags cron add, list, disable, enable and remove; an every-minute job fires as an ordinary job', async () => {
    const name = `cron-${randomBytes(3).toString('hex')}`;
    const added = await runCli(server, [
      'cron',
      'add',
      '--name',
      name,
      '--schedule',
      '* * * * *',
      '--tz',
      'Europe/Berlin',
      '--json',
      'echo fired by cron',
    ]);
    assert.equal(added.code, 0, added.stderr);
    const cron = JSON.parse(added.stdout) as { id: string; nextRunAt: string; timezone: string };
    assert.equal(cron.timezone, 'Europe/Berlin');
    assert.equal(new Date(cron.nextRunAt).getUTCSeconds(), 0);

    const list = await runCli(server, ['cron', 'list']);
    assert.equal(list.code, 0, list.stderr);
    assert.match(list.stdout, new RegExp(`${cron.id}\\s+${name}\\s+\\* \\* \\* \\* \\*\\s+Europe/Berlin\\s+-\\s+yes`));

    // It fires at the next minute as a job named after it, with its output.
    let fired = await mags.cronGet(cron.id);
    for (let i = 0; i < 150 && !fired.lastJobId; i++) {
      await new Promise((r) => setTimeout(r, 500));
      fired = await mags.cronGet(cron.id);
    }
    assert.ok(fired.lastJobId, 'it fired within 75 s');
    assert.equal(fired.lastRunAt, cron.nextRunAt, 'at the time it said');
    const job = await mags.wait(fired.lastJobId!);
    assert.equal(job.status, 'completed');
    assert.equal(job.name, name);
    assert.deepEqual(
      (await mags.logs(fired.lastJobId!)).map((l) => l.message),
      ['fired by cron'],
    );

    const shown = await runCli(server, ['cron', 'show', name]);
    assert.equal(shown.code, 0, shown.stderr);
    assert.match(shown.stdout, new RegExp(`fired\\s+${fired.lastJobId}`));

    const disabled = await runCli(server, ['cron', 'disable', name]);
    assert.equal(disabled.code, 0, disabled.stderr);
    assert.match(disabled.stdout, /disabled cron job/);
    assert.equal((await mags.cronGet(name)).nextRunAt, null);
    const enabled = await runCli(server, ['cron', 'enable', cron.id]);
    assert.equal(enabled.code, 0, enabled.stderr);
    assert.match(enabled.stdout, /enabled cron job .*; next run/);
    const removed = await runCli(server, ['cron', 'remove', cron.id]);
    assert.equal(removed.code, 0, removed.stderr);
    await assert.rejects(mags.cronGet(cron.id), (err: unknown) => err instanceof MagsApiError && err.status === 404);
    const gone = await runCli(server, ['cron', 'remove', cron.id]);
    assert.equal(gone.code, 1);
    assert.match(gone.stderr, /cron job .* not found; list yours with mags cron list/);
  });

  test('bad schedules, time zones and flags are sentences; the SDK speaks the reference names', async () => {
    const six = await runCli(server, ['cron', 'add', '--name', 'x', '--schedule', '* * * * * *', 'echo']);
    assert.equal(six.code, 1);
    assert.match(six.stderr, /has 6 fields; it needs 5: minute hour day-of-month month day-of-week/);
    const zone = await runCli(server, [
      'cron',
      'add',
      '--name',
      'x',
      '--schedule',
      '0 0 * * *',
      '--tz',
      'Nowhere',
      'e',
    ]);
    assert.equal(zone.code, 1);
    assert.match(zone.stderr, /unknown time zone "Nowhere"/);
    const noWs = await runCli(server, ['cron', 'add', '--name', 'x', '--schedule', '0 0 * * *', '-p', 'echo']);
    assert.equal(noWs.code, 2);
    assert.match(noWs.stderr, /-p needs a workspace: add -w NAME/);
    const missing = await runCli(server, ['cron', 'add', '--schedule', '0 0 * * *', 'echo']);
    assert.equal(missing.code, 2);
    assert.match(missing.stderr, /--name/);
    for (const sub of ['add', 'list', 'show', 'enable', 'disable', 'remove']) {
      const help = await runCli(server, ['cron', sub, '--help']);
      assert.match(help.stdout, /Examples:/, `mags cron ${sub} --help`);
    }

    const created = await mags.cronCreate({
      name: 'backup',
      cronExpression: '0 0 * * *',
      script: 'tar czf backup.tar.gz /data',
      workspaceId: 'backups',
    });
    assert.equal(created.workspaceId, 'backups');
    assert.equal(created.nextRunAt, `${new Date(Date.now() + 86_400_000).toISOString().slice(0, 10)}T00:00:00.000Z`);
    assert.deepEqual(
      (await mags.cronList()).map((c) => c.name),
      ['backup'],
    );
    const updated = await mags.cronUpdate(created.id, { cronExpression: '30 6 * * *', timezone: 'Asia/Tokyo' });
    assert.equal(updated.cronExpression, '30 6 * * *');
    assert.equal(new Date(updated.nextRunAt!).getUTCHours(), 21, '06:30 in Tokyo is 21:30 UTC');
    await mags.cronDelete('backup');
    assert.deepEqual(await mags.cronList(), []);
  });
});
