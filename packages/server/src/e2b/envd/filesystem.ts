// envd's filesystem service: Stat, ListDir, MakeDir, Move, Remove and the WatchDir stream, each done inside the
// sandbox by the helper (helper.ts) run as an exec; the host never opens a path the sandbox names. The helper's
// entries become proto3-JSON EntryInfo here.
import type { ExecService } from '../../jobs/exec.js';
import { bool, ConnectError, type ConnectStream, str, timestamp, uint } from './connect.js';
import { sandboxEnded } from './process.js';
import { type EnvdSandbox, HelperRun } from './sandbox.js';

/** An entry as the helper writes it. */
interface HelperEntry {
  name: string;
  type: string;
  path: string;
  size: string;
  mode: number;
  permissions: string;
  owner: string;
  group: string;
  mtime: [number, number];
  symlinkTarget?: string;
}

/** EntryInfo in proto3 JSON (size an int64 string, modifiedTime RFC 3339; empty metadata omitted). */
export function entryInfo(e: HelperEntry): Record<string, unknown> {
  return {
    name: e.name,
    type: e.type,
    path: e.path,
    size: e.size,
    mode: e.mode,
    permissions: e.permissions,
    owner: e.owner,
    group: e.group,
    modifiedTime: timestamp(e.mtime[0], e.mtime[1]),
    ...(e.symlinkTarget !== undefined ? { symlinkTarget: e.symlinkTarget } : {}),
  };
}

function path(request: Record<string, unknown>, field = 'path'): string {
  const value = str(request, field);
  if (value === '') throw new ConnectError('invalid_argument', `${field} must name a path in the sandbox`);
  if (value.includes('\0')) throw new ConnectError('invalid_argument', `${field} must not contain NUL characters`);
  if (value.length > 4096) throw new ConnectError('invalid_argument', `${field} is longer than 4096 characters`);
  return value;
}

export class EnvdFilesystem {
  constructor(
    private readonly exec: ExecService,
    /** Whether the sandbox is gone now (a watch is then cut, not ended). */
    private readonly gone: (sandboxId: string) => Promise<boolean>,
  ) {}

  private async call(sb: EnvdSandbox, request: object): Promise<unknown> {
    const helper = await HelperRun.open(this.exec, sb, request, false);
    return helper.reply;
  }

  async stat(sb: EnvdSandbox, request: Record<string, unknown>): Promise<unknown> {
    const entry = (await this.call(sb, { op: 'stat', path: path(request) })) as HelperEntry;
    return { entry: entryInfo(entry) };
  }

  async listDir(sb: EnvdSandbox, request: Record<string, unknown>): Promise<unknown> {
    const depth = uint(request, 'depth', 1000);
    const entries = (await this.call(sb, { op: 'list', path: path(request), depth })) as HelperEntry[];
    return { entries: entries.map(entryInfo) };
  }

  async makeDir(sb: EnvdSandbox, request: Record<string, unknown>): Promise<unknown> {
    const entry = (await this.call(sb, { op: 'mkdir', path: path(request) })) as HelperEntry;
    return { entry: entryInfo(entry) };
  }

  async move(sb: EnvdSandbox, request: Record<string, unknown>): Promise<unknown> {
    const entry = (await this.call(sb, {
      op: 'move',
      source: path(request, 'source'),
      destination: path(request, 'destination'),
    })) as HelperEntry;
    return { entry: entryInfo(entry) };
  }

  async remove(sb: EnvdSandbox, request: Record<string, unknown>): Promise<unknown> {
    await this.call(sb, { op: 'remove', path: path(request) });
    return {};
  }

  /** WatchDir: `{start: {}}` once the watch is set, then `{filesystem: {name, type}}` per event, until closed. */
  async watchDir(sb: EnvdSandbox, request: Record<string, unknown>, open: () => ConnectStream): Promise<void> {
    const helper = await HelperRun.open(
      this.exec,
      sb,
      { op: 'watch', path: path(request), recursive: bool(request, 'recursive') },
      true,
    );
    try {
      await helper.reply;
    } catch (err) {
      helper.run.kill();
      throw err;
    }
    const stream = open();
    stream.send({ start: {} });
    stream.onClose(() => helper.run.kill());
    let pending = '';
    helper.onData((data) => {
      pending += data.toString('utf8');
      let nl: number;
      let ok = true;
      while ((nl = pending.indexOf('\n')) !== -1) {
        const line = pending.slice(0, nl);
        pending = pending.slice(nl + 1);
        try {
          const event = JSON.parse(line) as { name: string; type: string };
          ok = stream.send({ filesystem: { name: event.name, type: event.type } }) && ok;
        } catch {
          /* a torn line: skipped */
        }
      }
      if (ok) helper.ack(data.length);
      else void stream.drained().then(() => helper.ack(data.length));
    });
    void helper.run.exited.then(async (exit) => {
      if (stream.closed) return;
      if (await sandboxEnded(exit, () => this.gone(sb.job.id))) stream.abort();
      else stream.end();
    });
  }
}
