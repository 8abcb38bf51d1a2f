// The sync engine against what a sandbox can do to its own layer and to the manifests made from it: hostile
// manifests are refused before anything is written, links are never followed, user.overlay.opaque stays inert,
// files that vanish or turn into symlinks mid-sync are left out without failing it, deep trees, and owners mapped
// for a user namespace. (Local store: none of this depends on the store.)
import assert from 'node:assert/strict';
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chown, lstat, mkdir, mkdtemp, readdir, readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import {
  LocalObjectStore,
  type Manifest,
  type ManifestEntry,
  restore,
  restoreManifest,
  snapshot,
  validateManifest,
} from '../src/index.js';
import { describeTree, freshDirs, uniqueWorkspace } from './helpers/tree.js';

const EMPTY = 'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855';

let work: string;
let store: LocalObjectStore;
const fresh = freshDirs(() => work);
const ws = uniqueWorkspace;

before(async () => {
  work = await mkdtemp(join(tmpdir(), 'mags-sync-hostile-'));
  store = new LocalObjectStore(join(work, 'store'));
});
after(() => {
  execFileSync('rm', ['-rf', '--', work]); // rm(1): it removes trees deeper than PATH_MAX
});

/** Everything under dir (names, recursively), so "nothing was written there" is one comparison. */
async function listAll(dir: string): Promise<string[]> {
  const out: string[] = [];
  const walk = async (rel: string): Promise<void> => {
    for (const name of await readdir(join(dir, rel)).catch(() => [] as string[])) {
      out.push(join(rel, name));
      if ((await lstat(join(dir, rel, name))).isDirectory()) await walk(join(rel, name));
    }
  };
  await walk('');
  return out.sort();
}

function manifestOf(entries: Partial<ManifestEntry>[]): Manifest {
  return {
    format: 1,
    owner: 'u1',
    name: 'hostile',
    version: 1,
    parent: null,
    createdAt: new Date().toISOString(),
    entries: [{ path: '', type: 'dir', mode: 0o755 }, ...entries] as ManifestEntry[],
    files: 0,
    bytes: 0,
  };
}

function getfattr(p: string): string {
  return execFileSync('getfattr', ['-h', '--absolute-names', '-d', '-m', '-', '-e', 'text', '--', p]).toString();
}

describe('restore refuses hostile manifests before writing anything', () => {
  const file = (path: string): Partial<ManifestEntry> => ({ path, type: 'file', mode: 0o644, size: 0, sha256: EMPTY });
  const dir = (path: string): Partial<ManifestEntry> => ({ path, type: 'dir', mode: 0o755 });
  const cases: [string, (sentinel: string) => Partial<ManifestEntry>[]][] = [
    [
      'a symlink to a host directory, then a file "under" it',
      (s) => [{ path: 'link', type: 'symlink', target: s }, file('link/x')],
    ],
    [
      'a symlink to a host directory, then a directory "under" it',
      (s) => [{ path: 'link', type: 'symlink', target: s }, dir('link/d')],
    ],
    ['a file, then a file "under" it', () => [file('f'), file('f/x')]],
    [
      'a hard link, then a file "under" it',
      () => [file('f'), { path: 'h', type: 'hardlink', target: 'f' }, file('h/x')],
    ],
    ['a file under a directory the manifest lacks', () => [file('missing/x')]],
    ['".." components', () => [dir('a'), file('a/../../sentinel/x')]],
    ['a "." component', () => [dir('a'), file('a/./x')]],
    ['an empty component', () => [dir('a'), file('a//x')]],
    ['an absolute path', (s) => [file(`${s}/x`)]],
    ['a NUL byte in a path', () => [file('a\0b')]],
    ['a name longer than 255 bytes', () => [file('n'.repeat(256))]],
    [
      'a path longer than 4095 bytes',
      () => {
        const parts = Array.from({ length: 20 }, (_, i) => `${i}`.padStart(250, 'd'));
        return [...parts.map((_, i) => dir(parts.slice(0, i + 1).join('/'))), file(`${parts.join('/')}/x`)];
      },
    ],
    ['a character device', () => [{ path: 'null', type: 'chardev', mode: 0o666, rdev: [1, 3] }]],
    ['a block device', () => [{ path: 'disk', type: 'blockdev', mode: 0o660, rdev: [254, 0] }]],
    ['an unknown type', () => [{ path: 'sock', type: 'socket' as ManifestEntry['type'] }]],
    ['the same path twice', () => [file('x'), file('x')]],
    ['a directory repeated as a file', () => [dir('x'), file('x')]],
    ['entries out of order', () => [file('b'), file('a')]],
    ['a hard link to a later entry', () => [{ path: 'a', type: 'hardlink', target: 'b' }, file('b')]],
    [
      'a hard link to a symlink',
      (s) => [
        { path: 'a', type: 'symlink', target: `${s}/secret` },
        { path: 'b', type: 'hardlink', target: 'a' },
      ],
    ],
    ['a hard link to a directory', () => [dir('a'), { path: 'b', type: 'hardlink', target: 'a' }]],
    ['a hard link to a path outside', (s) => [{ path: 'a', type: 'hardlink', target: `${s}/secret` }]],
    ['a mode beyond 07777', () => [{ ...file('x'), mode: 0o170777 }]],
    ['a negative owner', () => [{ ...file('x'), uid: -1 }]],
    ['a negative size', () => [{ ...file('x'), size: -5 }]],
    ['content without a hash', () => [{ path: 'x', type: 'file', mode: 0o644, size: 10 }]],
    ['a malformed hash', () => [{ ...file('x'), sha256: '../../etc/passwd' }]],
    ['"opaque" on a file', () => [{ ...file('x'), opaque: true }]],
    ['a top entry that is not a directory', () => []],
  ];
  for (const [what, entries] of cases) {
    it(what, async () => {
      const parent = await fresh('hostile');
      const sentinel = join(parent, 'sentinel');
      await mkdir(sentinel);
      await writeFile(join(sentinel, 'secret'), 'host secret');
      const target = join(parent, 'target');
      const m = manifestOf(entries(sentinel));
      if (what === 'a top entry that is not a directory')
        m.entries[0] = { path: '', type: 'file', mode: 0o644, size: 0, sha256: EMPTY };
      assert.throws(() => validateManifest(m));
      await assert.rejects(
        restoreManifest(store, m, target, { cacheDir: await fresh('cache') }),
        (e: { status?: number; code?: string; message?: string }) => {
          assert.equal(e.status, 422, String(e.message));
          assert.equal(e.code, 'unsupported_option');
          assert.match(e.message ?? '', /^this workspace version cannot be restored: /);
          assert.ok(!(e.message ?? '').includes(target), `no host path in "${e.message}"`);
          return true;
        },
      );
      assert.deepEqual(await listAll(sentinel), ['secret'], 'nothing was written beside the target');
      assert.deepEqual(await listAll(target), [], 'nothing was written into the target');
      assert.equal(await readFile(join(sentinel, 'secret'), 'utf8'), 'host secret');
    });
  }

  it('a valid manifest with every restorable kind restores (the cases above fail for their reason only)', async () => {
    const parent = await fresh('valid');
    const m = manifestOf([
      dir('a'),
      file('a/f'),
      { path: 'a/h', type: 'hardlink', target: 'a/f' },
      { path: 'a/l', type: 'symlink', target: '/etc/passwd' },
      { path: 'a/p', type: 'fifo', mode: 0o600 },
      { path: 'a/w', type: 'whiteout', mode: 0 },
      { ...dir('o'), opaque: true },
    ]);
    validateManifest(m);
    await restoreManifest(store, m, join(parent, 'target'), { cacheDir: await fresh('cache') });
    assert.deepEqual(await listAll(join(parent, 'target')), ['a', 'a/f', 'a/h', 'a/l', 'a/p', 'a/w', 'o']);
    assert.match(getfattr(join(parent, 'target/o')), /trusted\.overlay\.opaque="y"/);
  });
});

describe('overlay attributes', () => {
  it('user.overlay.opaque set by a sandbox is not made opaque by a sync and a restore; trusted.overlay.opaque is', async () => {
    const upper = await fresh('upper');
    await mkdir(join(upper, 'user-opaque'));
    await mkdir(join(upper, 'real-opaque'));
    execFileSync('setfattr', ['-n', 'user.overlay.opaque', '-v', 'y', join(upper, 'user-opaque')]);
    execFileSync('setfattr', ['-n', 'trusted.overlay.opaque', '-v', 'y', join(upper, 'real-opaque')]);
    const w = ws('opaque');
    const s = await snapshot(upper, store, { ...w, cacheDir: await fresh('cache') });
    const entry = (p: string) => s.manifest.entries.find((e) => e.path === p)!;
    assert.equal(entry('user-opaque').opaque, undefined);
    assert.equal(entry('user-opaque').xattrs, undefined, 'overlay attributes are never stored as plain ones either');
    assert.equal(entry('real-opaque').opaque, true);
    const target = join(await fresh('r'), 'u');
    await restore(store, w, target, { cacheDir: await fresh('cache') });
    assert.doesNotMatch(getfattr(join(target, 'user-opaque')), /overlay/);
    assert.match(getfattr(join(target, 'real-opaque')), /trusted\.overlay\.opaque="y"/);
  });

  it("overlay attributes in a manifest's plain xattrs are not written by a restore", async () => {
    const parent = await fresh('xattrs');
    const y = Buffer.from('y').toString('base64');
    const m = manifestOf([
      {
        path: 'd',
        type: 'dir',
        mode: 0o755,
        xattrs: {
          'user.overlay.opaque': y,
          'trusted.overlay.opaque': y,
          'trusted.overlay.redirect': y,
          'user.kept': y,
        },
      },
    ]);
    await restoreManifest(store, m, join(parent, 't'), { cacheDir: await fresh('cache') });
    const attrs = getfattr(join(parent, 't/d'));
    assert.doesNotMatch(attrs, /overlay/);
    assert.match(attrs, /user\.kept="y"/);
  });
});

describe('a layer changing under the sync', () => {
  let loop: ChildProcess | undefined;
  const startLoop = (dir: string, script: string): void => {
    loop = spawn('bash', ['-c', script], { cwd: dir, stdio: 'ignore', detached: true });
  };
  const stopLoop = (): void => {
    if (loop?.pid) {
      try {
        process.kill(-loop.pid, 'SIGKILL');
      } catch {
        /* gone */
      }
    }
    loop = undefined;
  };
  after(stopLoop);

  it('files that vanish, or turn into symlinks to host files, between the walk and the read are left out; no host file is ever read', async () => {
    const upper = await fresh('upper');
    const secretDir = await fresh('host');
    const token = `secret-${randomBytes(8).toString('hex')}`;
    await writeFile(join(secretDir, 'secret'), token);
    await mkdir(join(secretDir, 'dir'));
    await writeFile(join(secretDir, 'dir', 'file'), token);
    await mkdir(join(upper, 'churn'));
    startLoop(
      upper,
      `( while :; do echo decoy >.t; mv -f .t f; ln -sfn ${secretDir}/secret .s; mv -fT .s f; done ) &
       ( while :; do mkdir -p .d; echo decoy >.d/file; rm -rf d; mv -T .d d; rm -f d; ln -s ${secretDir}/dir d; done ) &
       ( while :; do for i in 1 2 3 4 5 6 7 8 9 10; do echo $i >churn/$i; done; rm -f churn/*; done ) &
       wait`,
    );
    const w = ws('churn');
    const cacheDir = await fresh('cache');
    let previous: Manifest | undefined;
    let vanished = 0;
    try {
      for (let i = 0; i < 30; i++) {
        const s = await snapshot(upper, store, { ...w, cacheDir, previous });
        validateManifest(s.manifest); // always restorable: no hard link or child left without its file or directory
        vanished += s.stats.vanishedFiles;
        previous = s.manifest;
      }
    } finally {
      stopLoop();
    }
    const holders = (dir: string): string => {
      try {
        return execFileSync('grep', ['-rl', '--', token, dir]).toString();
      } catch (e) {
        if ((e as { status?: number }).status === 1) return '';
        throw e;
      }
    };
    assert.equal(holders(join(work, 'store')), '', 'the store holds no host file');
    assert.equal(holders(cacheDir), '', 'the cache holds no host file');
    const target = join(await fresh('r'), 'u');
    await restore(store, w, target, { cacheDir: await fresh('cache') });
    assert.equal(holders(target), '');
    assert.ok(vanished >= 0);
  });

  it('a tree deeper than PATH_MAX below a long host path syncs (paths are relative to the layer); one beyond the limit is refused with a sentence', async () => {
    // The layer itself sits below a ~600-byte host path, so absolute paths in it pass 4096 bytes.
    const longParent = join(await fresh('long'), 'p'.repeat(200), 'q'.repeat(200), 'r'.repeat(200));
    const upper = join(longParent, 'upper');
    await mkdir(upper, { recursive: true });
    const part = 'd'.repeat(99);
    // 36 levels of 100 bytes: a file at ~3,600 bytes relative to the layer, ~4,250 bytes absolute.
    execFileSync('bash', [
      '-c',
      `cd "$1" && for i in $(seq 36); do mkdir ${part} && cd ${part}; done && echo deep > file`,
      'bash',
      upper,
    ]);
    const w = ws('deep');
    const s = await snapshot(upper, store, { ...w, cacheDir: await fresh('cache') });
    const deep = s.manifest.entries.find((e) => e.path.endsWith('/file'))!;
    assert.ok(Buffer.byteLength(deep.path) > 3500);
    const target = join(await fresh('r'), 'u');
    await restore(store, w, target, { cacheDir: await fresh('cache') });
    assert.equal(
      execFileSync('bash', [
        '-c',
        `cd "$1/${deep.path.split('/').slice(0, -1).join('/')}" && cat file`,
        'bash',
        target,
      ]).toString(),
      'deep\n',
    );

    // Three more levels: past the 3,840 bytes a sync accepts (so every version restores below any host directory).
    execFileSync('bash', [
      '-c',
      `cd "$1" && cd "${deep.path.split('/').slice(0, -1).join('/')}" && for i in 1 2 3; do mkdir ${part} && cd ${part}; done && echo deeper > file`,
      'bash',
      upper,
    ]);
    await assert.rejects(
      snapshot(upper, store, { ...w, cacheDir: await fresh('cache'), previous: s.manifest }),
      (e: { status?: number; message?: string }) => {
        assert.equal(e.status, 422);
        assert.match(
          e.message ?? '',
          /^the workspace holds a path longer than 3840 bytes \("d+…d+"\), which cannot be synced; shorten or remove it and sync again$/,
        );
        assert.ok(!(e.message ?? '').includes(longParent.slice(0, 50)), 'no host path in the sentence');
        return true;
      },
    );
  });
});

describe("the scan worker's mount namespace", () => {
  it('holds the layer read-only and nosymfollow, and no other mount of the host (a disk unmounted meanwhile is not kept alive)', async () => {
    const other = await fresh('other');
    execFileSync('mount', ['-t', 'tmpfs', 'mags-test-other', other]);
    try {
      const upper = await fresh('upper');
      for (let k = 0; k < 100; k++) {
        await mkdir(join(upper, `d${k}`));
        for (let i = 0; i < 100; i++) await writeFile(join(upper, `d${k}`, `f${i}`), `${k}-${i}`);
      }
      const sync = snapshot(upper, store, { ...ws('ns'), cacheDir: await fresh('cache') });
      let seen: string | undefined;
      while (!seen) {
        const settled = await Promise.race([
          sync.then(() => true),
          new Promise<false>((r) => setTimeout(() => r(false), 5)),
        ]);
        for (const pid of await readdir('/proc')) {
          if (!/^\d+$/.test(pid)) continue;
          const cmd = await readFile(`/proc/${pid}/cmdline`, 'utf8').catch(() => '');
          if (!cmd.includes('scan-worker') || cmd.startsWith('unshare')) continue;
          const info = await readFile(`/proc/${pid}/mountinfo`, 'utf8').catch(() => '');
          if (info.includes(` ${upper} `)) seen = info;
        }
        if (settled && !seen) assert.fail('the scan ended before its namespace could be looked at');
      }
      await sync;
      const view = seen.split('\n').find((l) => l.split(' ')[4] === upper)!;
      assert.match(view.split(' ')[5]!, /(^|,)ro(,|$)/);
      assert.match(view.split(' ')[5]!, /nosymfollow/);
      assert.ok(!seen.includes(other), "another mount of the host is not in the worker's namespace");
    } finally {
      execFileSync('umount', [other]);
    }
  });
});

describe('owners in a user namespace', () => {
  it('a snapshot records owners as seen inside; a restore writes them shifted back; ids outside the range are nobody', async () => {
    const ids = { hostId: 100_000, size: 65_536 };
    const upper = await fresh('upper');
    await chown(upper, 100_000, 100_000);
    for (const [name, uid, gid] of [
      ['root', 100_000, 100_000],
      ['user', 101_000, 101_001],
      ['host-root', 0, 0],
      ['past', 165_536, 99_999],
    ] as const) {
      await writeFile(join(upper, name), name);
      await chown(join(upper, name), uid, gid);
    }
    const w = ws('ids');
    const s = await snapshot(upper, store, { ...w, cacheDir: await fresh('cache'), ids });
    const owner = (p: string) => {
      const e = s.manifest.entries.find((x) => x.path === p)!;
      return [e.uid, e.gid];
    };
    assert.deepEqual(owner(''), [0, 0]);
    assert.deepEqual(owner('root'), [0, 0]);
    assert.deepEqual(owner('user'), [1000, 1001]);
    assert.deepEqual(owner('host-root'), [65534, 65534], 'a host id outside the range is nobody');
    assert.deepEqual(owner('past'), [65534, 65534]);

    const shifted = join(await fresh('r'), 'u');
    const restored = await restore(store, w, shifted, { cacheDir: await fresh('cache'), ids });
    const hostOwner = async (p: string) => {
      const st = await lstat(join(shifted, p));
      return [st.uid, st.gid];
    };
    assert.deepEqual(await hostOwner('root'), [100_000, 100_000]);
    assert.deepEqual(await hostOwner('user'), [101_000, 101_001]);
    assert.deepEqual(await hostOwner('host-root'), [165_534, 165_534]);
    // The restored tree syncs back to the same manifest: portable, and nothing is hashed again.
    const again = await snapshot(shifted, store, {
      ...w,
      cacheDir: await fresh('cache'),
      ids,
      previous: restored.manifest,
    });
    assert.equal(again.unchanged, true);
    assert.equal(again.stats.hashedFiles, 0);

    // Without a mapping the manifest's ids are written as they are (a host without user namespaces).
    const plain = join(await fresh('r'), 'u');
    await restore(store, w, plain, { cacheDir: await fresh('cache') });
    assert.deepEqual([(await lstat(join(plain, 'user'))).uid, (await lstat(join(plain, 'user'))).gid], [1000, 1001]);

    // Inside ids beyond the namespace's size become its nobody.
    const small = { hostId: 200_000, size: 2000 };
    const narrow = join(await fresh('r'), 'u');
    await restoreManifest(
      store,
      manifestOf([{ path: 'x', type: 'file', mode: 0o644, size: 0, sha256: EMPTY, uid: 5000, gid: 1999 }]),
      narrow,
      { cacheDir: await fresh('cache'), ids: small },
    );
    const st = await lstat(join(narrow, 'x'));
    assert.deepEqual([st.uid, st.gid], [265_534, 201_999]);
    assert.ok((await describeTree(narrow)).length === 2);
  });
});
