// The user namespace's id range, and shifting a tree's owners into it: the root image copy (scripts/build-image.sh)
// and workspace disks made before sandboxes ran in a user namespace. Uid/gid n < size becomes hostId + n.
import {
  closeSync,
  constants,
  fchmodSync,
  fstatSync,
  lchownSync,
  lstatSync,
  openSync,
  readdirSync,
  type Stats,
} from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { run } from './process.js';

export interface IdRange {
  /** Host uid/gid of the sandbox's root (uid 0 inside). */
  hostId: number;
  /** How many ids are mapped: 0..size-1 inside are hostId..hostId+size-1 on the host. */
  size: number;
}

/** True when a host id is one a sandbox's user namespace maps (so the sandbox's root has power over the file). */
export function mapped(id: number, ids: IdRange): boolean {
  return id >= ids.hostId && id < ids.hostId + ids.size;
}

/**
 * Gives a directory the agent created on the host (owned by host root) to the sandbox's root. One that already has
 * an owner inside the namespace (a sandbox may have chowned its /) is left as it is.
 */
export function ownBySandboxRoot(p: string, ids: IdRange): void {
  const st = lstatSync(p);
  if (!mapped(st.uid, ids) || !mapped(st.gid, ids)) lchownSync(p, ids.hostId, ids.hostId);
}

const CAP_XATTR = 'security.capability';

/**
 * Shifts the owners of every entry below `dir` (itself included) whose uid or gid is below `size` by `hostId`,
 * without following symlinks or crossing into other filesystems; ids already shifted are left alone, so a run that
 * was interrupted can be repeated. setuid/setgid modes (cleared by chown) are put back, and file capabilities
 * (also cleared by chown) are written back as namespaced (v3) capabilities whose root is the sandbox's root: they
 * work inside a sandbox and grant nothing to a host process that runs the file.
 */
export async function shiftTree(dir: string, ids: IdRange): Promise<{ entries: number; shifted: number }> {
  const caps = await readCapabilities(dir);
  const rootDev = lstatSync(dir).dev;
  let entries = 0;
  let shifted = 0;
  const todo = [dir];
  let lastYield = Date.now();
  while (todo.length > 0) {
    if (Date.now() - lastYield > 10) {
      await new Promise((r) => setImmediate(r)); // a large tree must not stall the agent's event loop
      lastYield = Date.now();
    }
    const p = todo.pop()!;
    const st = lstatSync(p);
    if (st.dev !== rootDev) continue; // a mount point: not ours to change
    entries++;
    if (st.isDirectory()) for (const name of readdirSync(p)) todo.push(path.join(p, name));
    const uid = st.uid < ids.size ? st.uid + ids.hostId : st.uid;
    const gid = st.gid < ids.size ? st.gid + ids.hostId : st.gid;
    if (uid === st.uid && gid === st.gid) continue;
    lchownSync(p, uid, gid);
    if ((st.isFile() || st.isDirectory()) && st.mode & 0o7000) restoreMode(p, st);
    shifted++;
  }
  await writeCapabilities(caps, ids);
  return { entries, shifted };
}

/** Puts back a mode chown cleared, on the very inode that was walked (never through a link swapped in since). */
function restoreMode(p: string, st: Stats): void {
  const fd = openSync(
    p,
    constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK | (st.isDirectory() ? constants.O_DIRECTORY : 0),
  );
  try {
    const now = fstatSync(fd);
    if (now.ino === st.ino && now.dev === st.dev) fchmodSync(fd, st.mode & 0o7777);
  } finally {
    closeSync(fd);
  }
}

/** getfattr's dump of every security.capability below dir: `# file: <escaped path>` then `security.capability=0x…`. */
async function readCapabilities(dir: string): Promise<Array<{ file: string; value: Buffer }>> {
  const r = await run(
    'getfattr',
    [
      '--recursive',
      '--physical',
      '--no-dereference',
      '--absolute-names',
      '--dump',
      `--match=^security\\.capability$`,
      '--encoding=hex',
      '--',
      dir,
    ],
    {
      allowFailure: true,
      timeoutMs: 300_000,
    },
  );
  if (r.code !== 0 && r.stderr.trim())
    throw new Error(`getfattr failed: ${r.stderr.trim().split('\n').slice(0, 3).join('; ')}`);
  const out: Array<{ file: string; value: Buffer }> = [];
  let file: string | undefined;
  for (const line of r.stdout.split('\n')) {
    if (line.startsWith('# file: ')) file = line.slice(8);
    else if (file && line.startsWith(`${CAP_XATTR}=0x`))
      out.push({ file, value: Buffer.from(line.slice(CAP_XATTR.length + 3), 'hex') });
  }
  return out;
}

/** VFS capability revisions (linux/capability.h): v2 has no root id, v3 adds the uid of its namespace's root. */
const REVISION_MASK = 0xff000000;
const REVISION_2 = 0x02000000;
const REVISION_3 = 0x03000000;

/** A v2 capability (valid in every namespace, the host's included) as v3 owned by the sandbox's root. */
export function namespacedCapability(value: Buffer, ids: IdRange): Buffer {
  const magic = value.readUInt32LE(0);
  if ((magic & REVISION_MASK) === REVISION_2 && value.length === 20) {
    const v3 = Buffer.alloc(24);
    value.copy(v3, 0, 0, 20);
    v3.writeUInt32LE((magic & ~REVISION_MASK) | REVISION_3, 0);
    v3.writeUInt32LE(ids.hostId, 20);
    return v3;
  }
  if ((magic & REVISION_MASK) === REVISION_3 && value.length === 24 && value.readUInt32LE(20) < ids.size) {
    const v3 = Buffer.from(value);
    v3.writeUInt32LE(value.readUInt32LE(20) + ids.hostId, 20);
    return v3;
  }
  return value;
}

async function writeCapabilities(caps: Array<{ file: string; value: Buffer }>, ids: IdRange): Promise<void> {
  if (caps.length === 0) return;
  const tmp = await mkdtemp(path.join(tmpdir(), 'mags-caps-'));
  try {
    const dump = caps
      .map((c) => `# file: ${c.file}\n${CAP_XATTR}=0x${namespacedCapability(c.value, ids).toString('hex')}\n`)
      .join('\n');
    await writeFile(path.join(tmp, 'caps'), dump, { mode: 0o600 });
    await run('setfattr', ['--no-dereference', `--restore=${path.join(tmp, 'caps')}`], { timeoutMs: 300_000 });
  } finally {
    await rm(tmp, { recursive: true, force: true });
  }
}
