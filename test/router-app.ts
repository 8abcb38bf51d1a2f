// The web app both router tests run in a sandbox (test/fixtures/router-app.cjs): written into the sandbox and
// started in the background, then waited for until it listens.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import type { Mags } from '@mags/sdk';
import { ROOT } from './harness.js';

const APP = readFileSync(path.join(ROOT, 'test/fixtures/router-app.cjs'), 'utf8');

/** Writes the app into the sandbox's workspace and starts it in the background on `port`. */
export async function startApp(mags: Mags, name: string, port: number): Promise<void> {
  const encoded = Buffer.from(APP).toString('base64');
  const probe = `node -e "require('net').connect(${port},'127.0.0.1').on('connect',()=>process.exit(0)).on('error',()=>process.exit(1))"`;
  const r = await mags.exec(
    name,
    `echo ${encoded} | base64 -d > /root/app.cjs && (setsid -f node /root/app.cjs ${port} >/root/app.log 2>&1 </dev/null) && ` +
      `for i in $(seq 100); do ${probe} && exit 0; sleep 0.1; done; cat /root/app.log; exit 1`,
  );
  assert.equal(r.exitCode, 0, `the app started: ${r.stdout}${r.stderr}`);
}

/** The host name of a sandbox's URL (what the router routes on). */
export const hostOf = (url: string) => new URL(url).hostname;
