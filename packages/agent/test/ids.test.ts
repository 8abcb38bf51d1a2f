// Shifting a tree's owners into the sandboxes' user namespace (the image copy, workspace disks from before it):
// owners, setuid modes and file capabilities must come out as a sandbox's root would have made them.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import {
  chmodSync,
  lchownSync,
  linkSync,
  lstatSync,
  mkdirSync,
  mkdtempSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, test } from 'node:test';
import { namespacedCapability, shiftTree } from '../src/ids.js';

const ids = { hostId: 100_000, size: 65_536 };
const dir = mkdtempSync(path.join(tmpdir(), 'mags-ids-test-'));
after(() => rmSync(dir, { recursive: true, force: true }));

const owner = (p: string) => {
  const st = lstatSync(p);
  return `${st.uid}:${st.gid}`;
};

test('owners move up by hostId, setuid/setgid modes and capabilities survive, links are not followed; a second run changes nothing', async () => {
  const tree = path.join(dir, 'tree');
  const outside = path.join(dir, 'outside');
  writeFileSync(outside, 'host file\n');
  mkdirSync(path.join(tree, 'var/mail'), { recursive: true });
  chmodSync(path.join(tree, 'var/mail'), 0o2775);
  lchownSync(path.join(tree, 'var/mail'), 0, 8);
  writeFileSync(path.join(tree, 'su'), 'x');
  chmodSync(path.join(tree, 'su'), 0o4755);
  writeFileSync(path.join(tree, 'user-file'), 'x');
  lchownSync(path.join(tree, 'user-file'), 1000, 1000);
  writeFileSync(path.join(tree, 'shifted-already'), 'x');
  lchownSync(path.join(tree, 'shifted-already'), 100_042, 165_534);
  linkSync(path.join(tree, 'su'), path.join(tree, 'su-hardlink'));
  symlinkSync(outside, path.join(tree, 'link-out'));
  execFileSync('cp', ['/bin/true', path.join(tree, 'ping')]);
  execFileSync('setcap', ['cap_net_raw+ep', path.join(tree, 'ping')]);

  const first = await shiftTree(tree, ids);
  assert.equal(owner(tree), '100000:100000');
  assert.equal(owner(path.join(tree, 'var/mail')), '100000:100008');
  assert.equal(lstatSync(path.join(tree, 'var/mail')).mode & 0o7777, 0o2775);
  assert.equal(owner(path.join(tree, 'su')), '100000:100000');
  assert.equal(lstatSync(path.join(tree, 'su')).mode & 0o7777, 0o4755, 'setuid survives the chown');
  assert.equal(owner(path.join(tree, 'user-file')), '101000:101000');
  assert.equal(owner(path.join(tree, 'shifted-already')), '100042:165534');
  assert.equal(owner(path.join(tree, 'link-out')), '100000:100000', 'the link itself is shifted');
  assert.equal(owner(outside), '0:0', 'not what it points to');
  const cap = execFileSync('getcap', ['-n', path.join(tree, 'ping')]).toString();
  assert.match(cap, /cap_net_raw=ep \[rootid=100000\]/, "the capability is kept, as the sandbox root's");

  const second = await shiftTree(tree, ids);
  assert.equal(second.shifted, 0, 'nothing is shifted twice');
  assert.equal(second.entries, first.entries);
});

test('a v2 capability becomes v3 owned by the namespace root; v3 root ids below the range are shifted; others kept', () => {
  const v2 = Buffer.from('0100000200200000000000000000000000000000', 'hex');
  assert.equal(namespacedCapability(v2, ids).toString('hex'), '0100000300200000000000000000000000000000a0860100');
  const v3inside = Buffer.from('010000030020000000000000000000000000000005000000', 'hex');
  assert.equal(namespacedCapability(v3inside, ids).readUInt32LE(20), 100_005);
  const v3host = Buffer.from('0100000300200000000000000000000000000000a0860100', 'hex');
  assert.deepEqual(namespacedCapability(v3host, ids), v3host);
});
