// The runtime spawner (native/mags-spawn.c) runs as root and starts the runtime on request: its request channel is an
// attack surface. A user would notice (a host compromised, or a sandbox run as another one) if a request could run
// the runtime on a bundle outside the agent's sandboxes directory, under a name not its own, or anything else; and a
// run would be misreported if its exit code, signal or output were lost on the way through the helper.
import assert from 'node:assert/strict';
import { chmodSync, mkdirSync, mkdtempSync, readdirSync, readlinkSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { pino } from 'pino';
import { type RuntimeProcess, RuntimeSpawner } from '../src/spawner.js';

const PREFIX = `msp${process.pid % 10000}-`;

/** A spawner whose "runtime" is a script that prints its arguments and its stdin, then exits as told by stdin. */
function spawner() {
  const base = mkdtempSync('/var/lib/mags/spawner-test-');
  const sandboxes = path.join(base, 'sandboxes');
  mkdirSync(sandboxes);
  const runtime = path.join(base, 'runtime');
  writeFileSync(
    runtime,
    '#!/bin/sh\necho "args: $*"\necho "session: $(cut -d" " -f6 /proc/$$/stat) pid: $$" >&2\nread what\ncase "$what" in\n  kill) kill -9 $$ ;;\n  *) exit "$what" ;;\nesac\n',
  );
  chmodSync(runtime, 0o755);
  const s = new RuntimeSpawner({
    runtime,
    runtimeRoot: '/run/mags-spawner-test',
    sandboxes,
    prefix: PREFIX,
    logger: pino({ level: 'silent' }),
  });
  return {
    s,
    sandboxes,
    cleanup: () => {
      s.close();
      rmSync(base, { recursive: true, force: true });
    },
  };
}

function collect(
  proc: RuntimeProcess,
): Promise<{ out: string; err: string; code: number | null; signal: string | null }> {
  let out = '';
  let err = '';
  proc.stdout.on('data', (b: Buffer) => (out += b.toString()));
  proc.stderr.on('data', (b: Buffer) => (err += b.toString()));
  return new Promise((resolve) => proc.on('close', (code, signal) => resolve({ out, err, code, signal })));
}

test('the spawner runs the runtime on a sandbox of its agent: arguments, stdio, exit code, signal, own session', async () => {
  const { s, sandboxes, cleanup } = spawner();
  try {
    const name = `${PREFIX}0a1b2c3d4e`;
    const proc = await s.run(path.join(sandboxes, name), name);
    const done = collect(proc);
    proc.stdin.end('7\n');
    const r = await done;
    assert.equal(r.code, 7);
    assert.match(
      r.out,
      new RegExp(`^args: --root /run/mags-spawner-test run --bundle ${sandboxes}/${name} ${name}\\n$`),
    );
    // In a session of its own, as the agent's spawn made it (the agent kills the whole group).
    assert.match(r.err, new RegExp(`session: ${proc.pid} pid: ${proc.pid}`));

    const killed = await s.run(path.join(sandboxes, name), name);
    const k = collect(killed);
    killed.stdin.end('kill\n');
    const kr = await k;
    assert.equal(kr.code, null);
    assert.equal(kr.signal, 'SIGKILL');
  } finally {
    cleanup();
  }
});

test('the spawner refuses bundles outside its directory, names not its own, and a tab smuggled into a request', async () => {
  const { s, sandboxes, cleanup } = spawner();
  try {
    const name = `${PREFIX}0a1b2c3d4e`;
    const attempts: Array<[string, string]> = [
      ['/etc', 'etc'],
      [path.join(sandboxes, '..', name), name],
      [`${sandboxes}/${name}/../${name}`, name],
      [path.join(sandboxes, name), `${PREFIX}ffffffffff`], // the name of another sandbox than the bundle's
      [path.join(sandboxes, 'other-abc'), 'other-abc'], // not this agent's prefix
      [path.join(sandboxes, `${PREFIX}A_B`), `${PREFIX}A_B`], // not a sandbox id
      [`${sandboxes}x/${name}`, name], // a sibling directory sharing the prefix of the path
    ];
    for (const [bundle, n] of attempts) {
      await assert.rejects(s.run(bundle, n), /not a sandbox of this agent/, `${bundle} ${n}`);
    }
    await assert.rejects(s.run(`${sandboxes}/${name}\tx`, name), /tab or newline/);
    // It still works after the refusals.
    const proc = await s.run(path.join(sandboxes, name), name);
    const done = collect(proc);
    proc.stdin.end('0\n');
    assert.equal((await done).code, 0);
  } finally {
    cleanup();
  }
});

test("the spawner holds only its stdio and its signal descriptor; a runtime inherits nothing of another's", async () => {
  const { s, sandboxes, cleanup } = spawner();
  try {
    const name = `${PREFIX}0a1b2c3d4e`;
    // One runtime running (its pipes released by the agent), and the spawner's descriptors looked at meanwhile.
    const first = await s.run(path.join(sandboxes, name), name);
    const done = collect(first);
    const spawnerPid = (s as unknown as { child: { pid: number } }).child.pid;
    await new Promise((r) => setTimeout(r, 100)); // the release is answered
    const fds = readdirSync(`/proc/${spawnerPid}/fd`).map((fd) => readlinkSync(`/proc/${spawnerPid}/fd/${fd}`));
    assert.equal(fds.length, 4, fds.join(' '));
    assert.ok(fds.includes('anon_inode:[signalfd]'), fds.join(' '));
    // The runtime's own descriptors: its three pipes, nothing else of the spawner's.
    const theirs = readdirSync(`/proc/${first.pid}/fd`)
      .filter((fd) => Number(fd) > 2)
      .map((fd) => readlinkSync(`/proc/${first.pid}/fd/${fd}`))
      .filter((l) => /^(pipe|socket|anon_inode):/.test(l));
    assert.deepEqual(theirs, [], 'no inherited pipe, socket or event descriptor beyond its stdio');
    first.stdin.end('0\n');
    await done;
  } finally {
    cleanup();
  }
});
