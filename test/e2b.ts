// Shared by the E2B tests (issue 14): a real `mags server` with the E2B-compatible API on a port of its own, and the
// options that point the official `e2b` SDK at it (passed per call: the SDK reads E2B_* from the environment too).
import { freePort, startServer, type TestServer } from './harness.js';

export interface E2bOpts {
  apiKey: string;
  apiUrl: string;
  sandboxUrl: string;
}

export interface E2bServer {
  server: TestServer;
  /** The E2B API's port (`--e2b-port`). */
  e2bPort: number;
  /** The SDK's connection options for the server's owner: `Sandbox.create({ ...opts })`. */
  opts: E2bOpts;
}

/** Starts `mags server --e2b-port <free port>` (plus `extraArgs`) and waits until its E2B API answers. */
export async function startE2b(extraArgs: string[] = [], existingHome?: string): Promise<E2bServer> {
  const given = extraArgs.indexOf('--e2b-port');
  const e2bPort = given >= 0 ? Number(extraArgs[given + 1]) : await freePort();
  const args = given >= 0 ? extraArgs : ['--e2b-port', String(e2bPort), ...extraArgs];
  const server = await startServer(args, existingHome);
  const url = `http://127.0.0.1:${e2bPort}`;
  const deadline = Date.now() + 30_000;
  for (;;) {
    try {
      await fetch(`${url}/sandboxes`);
      break;
    } catch {
      if (Date.now() > deadline) {
        await server.stop();
        throw new Error(`the E2B API did not answer on ${url}`);
      }
      await new Promise((r) => setTimeout(r, 100));
    }
  }
  return { server, e2bPort, opts: { apiKey: server.token, apiUrl: url, sandboxUrl: url } };
}

/** The SDK options of the same server for another API key (another user's token). */
export function optsFor(e2b: E2bServer, apiKey: string): E2bOpts {
  return { ...e2b.opts, apiKey };
}
