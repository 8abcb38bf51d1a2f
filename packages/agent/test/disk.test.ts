// A workspace disk belongs to the sandboxes' root (host uid 100000); one made before sandboxes ran in a user
// namespace (root-owned, files with host ids as the sandbox saw them) is shifted once when mounted.
import assert from 'node:assert/strict';
import { chmodSync, chownSync, lstatSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, test } from 'node:test';
import pino from 'pino';
import { WorkspaceDisk } from '../src/workspace/disk.js';

const ids = { hostId: 100_000, size: 65_536 };
const dir = mkdtempSync(path.join(tmpdir(), 'mags-disk-test-'));
const disk = new WorkspaceDisk(dir, pino({ level: 'silent' }), ids);
after(async () => {
  await disk.unmount().catch(() => {});
  rmSync(dir, { recursive: true, force: true });
});

const owner = (p: string) => {
  const st = lstatSync(p);
  return `${st.uid}:${st.gid}`;
};

test("a new disk's root, upper/ and work/ belong to the sandboxes' root", async () => {
  await disk.create(1);
  await disk.mount();
  for (const p of [disk.mountPoint, disk.upper, disk.work]) assert.equal(owner(p), '100000:100000', p);
});

test('a disk from before the user namespace is shifted once on mount: owners as seen inside are kept, setuid too', async () => {
  // What the old agent left: everything owned by host root, a file of uid 1000, a setuid program.
  mkdirSync(path.join(disk.upper, 'root'));
  writeFileSync(path.join(disk.upper, 'root/mine'), 'x');
  writeFileSync(path.join(disk.upper, 'root/user'), 'x');
  chownSync(path.join(disk.upper, 'root/user'), 1000, 1000);
  writeFileSync(path.join(disk.upper, 'root/suid'), 'x');
  for (const p of [
    path.join(disk.upper, 'root'),
    path.join(disk.upper, 'root/mine'),
    path.join(disk.upper, 'root/suid'),
    disk.upper,
    disk.work,
    disk.mountPoint,
  ]) {
    chownSync(p, 0, 0);
  }
  chmodSync(path.join(disk.upper, 'root/suid'), 0o4755); // after the chown, which clears it
  await disk.unmount();
  await disk.mount();
  for (const p of [
    disk.mountPoint,
    disk.upper,
    disk.work,
    path.join(disk.upper, 'root'),
    path.join(disk.upper, 'root/mine'),
  ]) {
    assert.equal(owner(p), '100000:100000', p);
  }
  assert.equal(owner(path.join(disk.upper, 'root/user')), '101000:101000');
  assert.equal(lstatSync(path.join(disk.upper, 'root/suid')).mode & 0o7777, 0o4755);
  // Done once: a file the sandbox's root later gives to a host-range id is not moved again.
  chownSync(path.join(disk.upper, 'root/mine'), 100_005, 100_005);
  await disk.unmount();
  await disk.mount();
  assert.equal(owner(path.join(disk.upper, 'root/mine')), '100005:100005');
});
