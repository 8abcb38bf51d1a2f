// E2B sandboxes of template `base` as long-lived jobs without a workspace (issue 14, time to interactive), against a
// real `mags server --e2b-port` with shortened sleep timers and the official `e2b` SDK: the sandbox is a Mags job with
// no workspace (listed, exec'd), its files stay across pause and connect (frozen) and across an idle spell longer
// than --stop-after (it is frozen, never stopped asleep: stopping would throw its files away); after kill its sandbox
// layer is gone from the host and no workspace was ever made for it.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { after, before, describe, test } from 'node:test';
import { Mags } from '@mags/sdk';
import { Sandbox } from 'e2b';
import { type E2bOpts, type E2bServer, startE2b } from './e2b.js';
import { removeInstance, runCli, waitJob } from './harness.js';

const instance = `f${randomBytes(2).toString('hex')}`;
let e2b: E2bServer;
let opts: E2bOpts;
let mags: Mags;
const made: string[] = [];

before(async () => {
  e2b = await startE2b(['--instance', instance, '--sleep-after', '1s', '--stop-after', '2s']);
  opts = e2b.opts;
  mags = new Mags({ apiUrl: e2b.server.url, apiToken: e2b.server.token });
});
after(async () => {
  for (const id of made) await Sandbox.kill(id, opts).catch(() => undefined);
  await e2b?.server.stop();
  removeInstance(instance);
});

async function create(): Promise<Sandbox> {
  const sbx = await Sandbox.create({ ...opts, timeoutMs: 300_000 });
  made.push(sbx.sandboxId);
  return sbx;
}

const layerDir = (sandboxId: string) => `/var/lib/mags/sandboxes/${instance}/${sandboxId}`;

describe('E2B sandboxes without a workspace', () => {
  test('template base: a long-lived job without a workspace, listed and exec-able; no workspace is made', async () => {
    const sbx = await create();
    const job = await mags.status(sbx.sandboxId);
    assert.equal(job.status, 'running');
    assert.equal(job.workspaceId, null);
    assert.equal(job.longLived, true);
    const list = await runCli(e2b.server, ['list', '--json']);
    assert.ok(list.stdout.includes(sbx.sandboxId), 'mags list shows it');
    await sbx.files.write('/root/note', 'kept');
    const exec = await runCli(e2b.server, ['exec', sbx.sandboxId, 'cat /root/note']);
    assert.equal(exec.code, 0, exec.stderr);
    assert.equal(exec.stdout, 'kept');
    const ws = await runCli(e2b.server, ['workspace', 'list', '--json']);
    assert.equal(ws.code, 0, ws.stderr);
    assert.ok(!ws.stdout.includes('e2b-'), `no workspace made for the sandbox: ${ws.stdout}`);
    await sbx.kill();
  });

  test('its files stay across pause and connect', async () => {
    const sbx = await create();
    await sbx.files.write('/root/data.txt', 'before pause');
    await sbx.commands.run('echo in-memory > /tmp/t');
    await sbx.pause();
    const asleep = await mags.status(sbx.sandboxId);
    assert.equal(asleep.status, 'sleeping');
    assert.ok(asleep.vmId, 'frozen: it keeps its sandbox');
    const again = await Sandbox.connect(sbx.sandboxId, opts);
    assert.equal(await again.files.read('/root/data.txt'), 'before pause');
    assert.equal((await again.commands.run('cat /tmp/t')).stdout, 'in-memory\n');
    await again.kill();
  });

  test('idle longer than --stop-after: frozen, not stopped (its files would be lost), and it answers with them', async () => {
    const sbx = await create();
    await sbx.files.write('/root/idle.txt', 'still here');
    await waitJob(mags, sbx.sandboxId, (j) => j.status === 'sleeping', 'frozen for idleness', 15_000);
    // Well past --stop-after (2 s): a sandbox with a workspace would have been stopped by now.
    await new Promise((r) => setTimeout(r, 5000));
    const job = await mags.status(sbx.sandboxId);
    assert.equal(job.status, 'sleeping');
    assert.ok(job.vmId, 'still frozen in its sandbox, not stopped');
    assert.ok(existsSync(layerDir(job.vmId)), 'its sandbox layer is still on the host');
    assert.equal(await sbx.isRunning(), true);
    assert.equal(await sbx.files.read('/root/idle.txt'), 'still here');
    await sbx.kill();
  });

  test('kill: the job ends and its sandbox layer (its files) is gone from the host', async () => {
    const sbx = await create();
    await sbx.files.write('/root/gone.txt', 'x');
    const job = await mags.status(sbx.sandboxId);
    assert.ok(job.vmId);
    const dir = layerDir(job.vmId);
    assert.ok(existsSync(dir), `the sandbox layer is at ${dir}`);
    assert.equal(await sbx.kill(), true);
    const ended = await waitJob(mags, sbx.sandboxId, (j) => j.status === 'stopped', 'stopped');
    assert.equal(ended.workspaceId, null);
    const deadline = Date.now() + 10_000;
    while (existsSync(dir) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
    assert.ok(!existsSync(dir), 'the sandbox layer was removed');
    assert.equal(await sbx.isRunning(), false);
    // A new sandbox starts empty.
    const next = await create();
    assert.equal(await next.files.exists('/root/gone.txt'), false);
    await next.kill();
  });
});
