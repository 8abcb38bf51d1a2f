// Uploaded files (`-f PATH`, file_ids) placed at /uploads/<name> in a sandbox before its script starts.
// Written from the host into the sandbox's root while none of the sandbox's own processes run, and never through a
// link the sandbox made: a workspace could hold /uploads as a symlink to a host path. The directory and the files
// belong to the sandbox's root (host uid `root`, its user namespace's uid 0).
import { constants } from 'node:fs';
import { lchown, lstat, mkdir, open, rm } from 'node:fs/promises';
import path from 'node:path';
import { pipeline } from 'node:stream/promises';
import type { UploadRef } from '@mags/api';
import { checkUploadName, MagsError } from '@mags/api';
import type { ObjectStore } from '@mags/objects';

export async function placeUploads(
  rootfs: string,
  uploads: readonly UploadRef[],
  store: ObjectStore,
  root: number,
): Promise<void> {
  if (uploads.length === 0) return;
  const dir = path.join(rootfs, 'uploads');
  const st = await lstat(dir).catch(() => undefined);
  if (st && !st.isDirectory()) await rm(dir, { force: true }); // a symlink or file of the workspace's: replaced
  if (!st?.isDirectory()) {
    await mkdir(dir, { mode: 0o755 });
    await lchown(dir, root, root); // a real directory just made: no link to follow
  }
  for (const upload of uploads) {
    const bad = checkUploadName(upload.name);
    if (bad) throw MagsError.invalid(`upload "${upload.name}": ${bad}`);
    const target = path.join(dir, upload.name);
    const existing = await lstat(target).catch(() => undefined);
    if (existing && !existing.isFile()) await rm(target, { recursive: true, force: true });
    // O_NOFOLLOW: the last component is never followed; the directory above was checked to be a real directory.
    const handle = await open(
      target,
      constants.O_WRONLY | constants.O_CREAT | constants.O_TRUNC | constants.O_NOFOLLOW,
      0o644,
    );
    try {
      await handle.chown(root, root);
      await handle.chmod(0o644);
    } catch (err) {
      await handle.close();
      throw err;
    }
    // The stream owns the handle from here and closes it when done or failed.
    await pipeline(await store.get(upload.key), handle.createWriteStream());
    const written = (await lstat(target)).size;
    if (written !== upload.size) {
      throw new MagsError(
        500,
        'internal',
        `upload "${upload.name}" arrived with ${written} of its ${upload.size} bytes`,
      );
    }
  }
}
