// Extended attributes, read and written in batches with getfattr/setfattr (Debian package `attr`): OverlayFS
// keeps opaque directories in trusted.overlay.opaque, and packages keep file capabilities in security.capability.
import { randomBytes } from 'node:crypto';
import { unlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { run } from '../process.js';

export interface EntryXattrs {
  opaque: boolean;
  /** Everything but overlay's own attributes; base64 values. */
  xattrs: Record<string, string>;
}

// Only the privileged attribute makes a directory opaque: a sandbox can set user.overlay.opaque on its own files,
// and that must stay an inert attribute (it is dropped, like every other overlay attribute), never become opaque.
const OPAQUE = 'trusted.overlay.opaque';
const BATCH = 1000;
/** Bytes of path arguments per getfattr call (the kernel limits a command line to ~2 MB). */
const BATCH_BYTES = 256 * 1024;

/** Whether an attribute belongs to OverlayFS itself (describes this host's layers), never stored or restored as is. */
export function isOverlayXattr(name: string): boolean {
  return name.startsWith('trusted.overlay.') || name.startsWith('user.overlay.');
}

/**
 * Reads the extended attributes of many paths (relative to `cwd` if given), not following symlinks. Paths that
 * vanished or now lead through a symlink (ELOOP on a nosymfollow view) are skipped: the next sync sees them.
 */
export async function readXattrs(paths: string[], cwd?: string): Promise<Map<string, EntryXattrs>> {
  const out = new Map<string, EntryXattrs>();
  for (let i = 0; i < paths.length; ) {
    const batch: string[] = [];
    let bytes = 0;
    while (
      i < paths.length &&
      batch.length < BATCH &&
      (batch.length === 0 || bytes + paths[i]!.length * 3 < BATCH_BYTES)
    ) {
      bytes += Buffer.byteLength(paths[i]!) + 1;
      batch.push(paths[i++]!);
    }
    // -m - : every namespace (the default is only user.*); -e base64 keeps binary values intact.
    const r = await run(
      'getfattr',
      ['--no-dereference', '--absolute-names', '--dump', '--match=-', '--encoding=base64', '--', ...batch],
      {
        allowFailure: true,
        timeoutMs: 120_000,
        cwd,
      },
    );
    if (r.code !== 0) {
      // Exit 1 also means "some file vanished" (a sandbox may be running); anything else is a real failure.
      const real = r.stderr
        .split('\n')
        .filter(
          (l) => l.trim() && !/No such file or directory|Too many levels of symbolic links|Not a directory/.test(l),
        );
      if (real.length > 0) throw new Error(`getfattr failed: ${real.slice(0, 3).join('; ').slice(0, 500)}`);
    }
    parseDump(r.stdout.toString('utf8'), out);
  }
  return out;
}

function parseDump(text: string, out: Map<string, EntryXattrs>): void {
  let current: EntryXattrs | undefined;
  for (const line of text.split('\n')) {
    if (line.startsWith('# file: ')) {
      current = { opaque: false, xattrs: {} };
      out.set(unescapeName(line.slice(8)), current);
      continue;
    }
    if (!current || line === '') continue;
    const eq = line.indexOf('=');
    const name = eq < 0 ? line : line.slice(0, eq);
    const raw = eq < 0 ? '' : line.slice(eq + 1);
    const value = decodeValue(raw);
    if (name === OPAQUE) {
      if (value.toString() === 'y') current.opaque = true;
    } else if (!isOverlayXattr(name)) {
      // Other overlay attributes (origin, impure, redirect…) describe this host's layers, not the files.
      current.xattrs[name] = value.toString('base64');
    }
  }
}

function decodeValue(raw: string): Buffer {
  if (raw.startsWith('0s')) return Buffer.from(raw.slice(2), 'base64');
  if (raw.startsWith('0x')) return Buffer.from(raw.slice(2), 'hex');
  if (raw.startsWith('"') && raw.endsWith('"')) return Buffer.from(unescapeName(raw.slice(1, -1)), 'latin1');
  return Buffer.from(raw);
}

/** getfattr writes names with \ooo octal escapes for backslash and unprintable bytes. */
function unescapeName(s: string): string {
  if (!s.includes('\\')) return s;
  const bytes: number[] = [];
  const src = Buffer.from(s, 'utf8');
  for (let i = 0; i < src.length; i++) {
    const c = src[i]!;
    if (c === 0x5c && i + 3 < src.length + 0 && /^[0-7]{3}$/.test(src.subarray(i + 1, i + 4).toString('latin1'))) {
      bytes.push(parseInt(src.subarray(i + 1, i + 4).toString('latin1'), 8));
      i += 3;
    } else bytes.push(c);
  }
  return Buffer.from(bytes).toString('utf8');
}

function escapeName(s: string): string {
  let out = '';
  for (const b of Buffer.from(s, 'utf8')) {
    out +=
      b <= 0x20 || b >= 0x7f || b === 0x5c || b === 0x3d
        ? `\\${b.toString(8).padStart(3, '0')}`
        : String.fromCharCode(b);
  }
  return out;
}

export interface XattrWrite {
  path: string;
  opaque?: boolean;
  xattrs?: Record<string, string>;
}

/** Sets extended attributes on many paths at once (one setfattr --restore per batch), not following symlinks. */
export async function writeXattrs(writes: XattrWrite[], tmpDir: string): Promise<void> {
  const todo = writes.filter((w) => w.opaque || (w.xattrs && Object.keys(w.xattrs).length > 0));
  for (let i = 0; i < todo.length; i += BATCH) {
    let dump = '';
    for (const w of todo.slice(i, i + BATCH)) {
      dump += `# file: ${escapeName(w.path)}\n`;
      if (w.opaque) dump += `trusted.overlay.opaque=0s${Buffer.from('y').toString('base64')}\n`;
      for (const [name, value] of Object.entries(w.xattrs ?? {}))
        if (!isOverlayXattr(name)) dump += `${name}=0s${value}\n`;
      dump += '\n';
    }
    const file = join(tmpDir, `.xattrs-${randomBytes(6).toString('hex')}`);
    await writeFile(file, dump);
    try {
      await run('setfattr', ['--no-dereference', `--restore=${file}`], { timeoutMs: 120_000 });
    } finally {
      await unlink(file).catch(() => {});
    }
  }
}
