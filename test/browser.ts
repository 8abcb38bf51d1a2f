// The browser tests' shared parts: Debian's chromium driven by playwright-core (never `npx playwright install`:
// its download is unreachable), where screenshots go, and the CLI run as a user on a laptop would run it.
import { spawn } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import path from 'node:path';
import { type Browser, chromium } from 'playwright-core';
import { CLI } from './harness.js';

export const CHROMIUM = process.env.MAGS_TEST_CHROMIUM ?? '/usr/bin/chromium';
/** Screenshots kept as test artefacts ($MAGS_TEST_ARTIFACTS, default test-artifacts/browser, ignored by git). */
export const ARTIFACTS =
  process.env.MAGS_TEST_ARTIFACTS ?? path.join(import.meta.dirname, '..', 'test-artifacts', 'browser');

/** A headless Chromium with nothing of its own going out to the network. */
export async function launchBrowser(): Promise<Browser> {
  mkdirSync(ARTIFACTS, { recursive: true });
  const browser = await chromium.launch({
    executablePath: CHROMIUM,
    args: [
      '--no-sandbox',
      '--disable-gpu',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
      '--no-first-run',
      '--disable-quic',
    ],
  });
  process.stderr.write(`browser screenshots: ${ARTIFACTS}\n`);
  return browser;
}

export interface Cli {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs the CLI with its own MAGS_HOME; `input` goes to stdin; `onStderr` sees stderr as it comes. */
export function cli(
  args: string[],
  env: NodeJS.ProcessEnv,
  input?: string,
  onStderr?: (text: string) => void,
): Promise<Cli> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [CLI, ...args], { env, stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (b: Buffer) => (stdout += b.toString()));
    child.stderr.on('data', (b: Buffer) => {
      stderr += b.toString();
      onStderr?.(stderr);
    });
    child.once('error', reject);
    child.once('close', (code) => resolve({ code, stdout, stderr }));
    child.stdin.end(input ?? '');
  });
}
