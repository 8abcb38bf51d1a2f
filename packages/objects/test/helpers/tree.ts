// Builds OverlayFS-like upper directories for the tests (we are root: mknod whiteouts, chown, trusted.* xattrs),
// and describes a tree completely (type, mode, owner, µs mtime, content hash, links, xattrs) to compare two trees.
import { execFileSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { type BigIntStats, createReadStream } from 'node:fs';
import {
  chmod,
  chown,
  lchown,
  link,
  lstat,
  mkdir,
  readdir,
  readlink,
  symlink,
  utimes,
  writeFile,
} from 'node:fs/promises';
import { join } from 'node:path';

/** Makes a new numbered directory below the test's work directory on each call: `fresh('up')` → <work>/up-1, … */
export function freshDirs(work: () => string): (what: string) => Promise<string> {
  let n = 0;
  return async (what) => {
    const d = join(work(), `${what}-${++n}`);
    await mkdir(d, { recursive: true });
    return d;
  };
}

/** A workspace of its own for each test, so tests sharing a store never see each other's versions. */
export const uniqueWorkspace = (name: string) => ({ owner: 'u1', name: `${name}-${randomBytes(3).toString('hex')}` });

export function mknodWhiteout(path: string): void {
  execFileSync('mknod', [path, 'c', '0', '0']);
}

export function setOpaque(dir: string): void {
  execFileSync('setfattr', ['-n', 'trusted.overlay.opaque', '-v', 'y', dir]);
}

/** Every kind of entry an upper directory can hold, with the attributes that must survive a round trip. */
export async function buildFixture(dir: string): Promise<void> {
  await mkdir(dir, { recursive: true });
  await writeFile(join(dir, 'hello.txt'), 'hello world\n');
  await mkdir(join(dir, 'etc/app'), { recursive: true });
  await writeFile(join(dir, 'etc/app/config.json'), JSON.stringify({ a: 1, b: [1, 2, 3] }));
  await writeFile(join(dir, 'etc/app/empty'), '');
  await mkdir(join(dir, 'usr/bin'), { recursive: true });
  await writeFile(join(dir, 'usr/bin/tool'), '#!/bin/sh\necho tool\n');
  await chmod(join(dir, 'usr/bin/tool'), 0o755);
  await writeFile(join(dir, 'usr/bin/suid'), Buffer.alloc(3000, 7));
  await chmod(join(dir, 'usr/bin/suid'), 0o4755);
  await writeFile(join(dir, 'usr/bin/sgid'), 'sgid');
  await chmod(join(dir, 'usr/bin/sgid'), 0o2711);
  await mkdir(join(dir, 'root/.ssh'), { recursive: true });
  await chmod(join(dir, 'root/.ssh'), 0o700);
  await writeFile(join(dir, 'root/.ssh/id'), 'secret\n', { mode: 0o600 });
  await mkdir(join(dir, 'tmp'));
  await chmod(join(dir, 'tmp'), 0o1777);
  await mkdir(join(dir, 'home/user/project'), { recursive: true });
  await writeFile(join(dir, 'home/user/project/main.py'), 'print("hi")\n'.repeat(100));
  await chown(join(dir, 'home/user/project/main.py'), 1234, 5678);
  await chown(join(dir, 'home/user/project'), 1234, 5678);
  await chown(join(dir, 'home/user'), 1234, 5678);
  // symlinks: relative, absolute and dangling, to a directory; one owned by someone else
  await symlink('hello.txt', join(dir, 'link-rel'));
  await symlink('/nonexistent/target', join(dir, 'link-dangling'));
  await symlink('etc/app', join(dir, 'link-dir'));
  await lchown(join(dir, 'link-rel'), 1234, 5678);
  // hard links: three names, two directories
  await writeFile(join(dir, 'usr/bin/multi'), 'one inode, three names\n');
  await link(join(dir, 'usr/bin/multi'), join(dir, 'usr/bin/multi-alias'));
  await link(join(dir, 'usr/bin/multi'), join(dir, 'etc/multi-too'));
  // empty directories, nested
  await mkdir(join(dir, 'var/empty/deeper'), { recursive: true });
  await mkdir(join(dir, 'var/lib/none'), { recursive: true });
  // overlay: a whiteout (a file deleted from the lower layer) and an opaque directory (replaced wholesale)
  await mkdir(join(dir, 'opt'), { recursive: true });
  mknodWhiteout(join(dir, 'opt/deleted-from-lower'));
  await mkdir(join(dir, 'opt/replaced'));
  await writeFile(join(dir, 'opt/replaced/new'), 'new content');
  setOpaque(join(dir, 'opt/replaced'));
  // a fifo, an extended attribute, awkward names
  execFileSync('mknod', [join(dir, 'tmp/pipe'), 'p']);
  await writeFile(join(dir, 'with xattr'), 'x');
  execFileSync('setfattr', ['-n', 'user.note', '-v', 'kept', join(dir, 'with xattr')]);
  await writeFile(join(dir, 'näme with spaces = and \\ backslash'), 'unicode');
  // a fixed, precise mtime on a file and a directory (set last: creating entries moves a directory's mtime)
  await utimes(join(dir, 'hello.txt'), 1_600_000_000.123456, 1_600_000_000.123456);
  await utimes(join(dir, 'var/empty'), 1_500_000_000.5, 1_500_000_000.5);
}

function hashFile(p: string): Promise<string> {
  return new Promise((res, rej) => {
    const h = createHash('sha256');
    createReadStream(p)
      .on('data', (c) => h.update(c))
      .on('end', () => res(h.digest('hex')))
      .on('error', rej);
  });
}

function xattrsOf(paths: string[]): Map<string, string> {
  const out = new Map<string, string>();
  for (let i = 0; i < paths.length; i += 500) {
    const batch = paths.slice(i, i + 500);
    let text: string;
    try {
      text = execFileSync('getfattr', ['-h', '--absolute-names', '-d', '-m', '-', '-e', 'hex', '--', ...batch], {
        maxBuffer: 1 << 28,
      }).toString();
    } catch (e) {
      text = ((e as { stdout?: Buffer }).stdout ?? Buffer.alloc(0)).toString();
    }
    let cur = '';
    for (const line of text.split('\n')) {
      if (line.startsWith('# file: ')) cur = line.slice(8);
      else if (line) out.set(cur, `${out.get(cur) ?? ''} ${line}`.trim());
    }
  }
  return out;
}

/**
 * One line per entry with everything a restore must reproduce. mtimes are compared to the microsecond (what Node
 * can set); the upper directory's own line leaves out its name.
 */
export async function describeTree(root: string): Promise<string[]> {
  const items: { path: string; st: BigIntStats }[] = [{ path: '', st: await lstat(root, { bigint: true }) }];
  const walk = async (rel: string): Promise<void> => {
    for (const name of (await readdir(rel ? join(root, rel) : root)).sort()) {
      const path = rel ? `${rel}/${name}` : name;
      const st = await lstat(join(root, path), { bigint: true });
      items.push({ path, st });
      if (st.isDirectory()) await walk(path);
    }
  };
  await walk('');
  const firstOfInode = new Map<bigint, string>();
  const xa = xattrsOf(items.map((l) => join(root, l.path)));
  const out: string[] = [];
  for (const { path, st } of items) {
    const p = join(root, path);
    let kind: string;
    if (st.isFile()) kind = `file size=${st.size} sha=${await hashFile(p)}`;
    else if (st.isDirectory()) kind = 'dir';
    else if (st.isSymbolicLink()) kind = `symlink -> ${await readlink(p)}`;
    else if (st.isCharacterDevice()) kind = `chardev ${st.rdev}`;
    else if (st.isFIFO()) kind = 'fifo';
    else kind = 'other';
    let linkInfo = '';
    if (!st.isDirectory() && st.nlink > 1n) {
      const first = firstOfInode.get(st.ino);
      if (first === undefined) firstOfInode.set(st.ino, path);
      else linkInfo = ` hardlink-of=${first}`;
    }
    const mode = (st.mode & 0o7777n).toString(8);
    out.push(
      `${path || '.'}: ${kind} mode=${mode} owner=${st.uid}:${st.gid} nlink=${st.nlink}${linkInfo} mtime_us=${st.mtimeNs / 1000n} xattrs=[${xa.get(p) ?? ''}]`,
    );
  }
  return out;
}

/** One hash for a whole tree description. */
export async function treeDigest(root: string): Promise<string> {
  return createHash('sha256')
    .update((await describeTree(root)).join('\n'))
    .digest('hex');
}
