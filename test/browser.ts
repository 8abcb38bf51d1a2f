// The browser tests' shared parts: Debian's chromium driven by playwright-core (never `npx playwright install`:
// its download is unreachable), where screenshots go, the CLI run as a user on a laptop would run it, and a suite's
// server, browser and temporary directories set up before its tests and cleaned up after them.
import { spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before } from 'node:test';
import { type Browser, chromium, type Page } from 'playwright-core';
import { CLI, startServer, type TestServer } from './harness.js';

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

export interface BrowserSuite {
  /** Set once the suite's `before` has run. */
  server: TestServer;
  browser: Browser;
  /** A temporary directory removed after the suite. */
  tempDir(prefix: string): string;
  /** A CLI environment of its own (a fresh MAGS_HOME, no token), as on a new laptop. */
  laptop(): NodeJS.ProcessEnv;
  /** A full-page screenshot kept as $ARTIFACTS/<name>.png. */
  shot(page: Page, name: string): Promise<Buffer>;
}

/**
 * Call at the top of a describe(): its hooks start a server and a headless Chromium before the suite's own `before`
 * and, after it, close the browser, stop the server and remove the temporary directories, even when a test failed.
 */
export function browserSuite(): BrowserSuite {
  const temp: string[] = [];
  const suite: BrowserSuite = {
    server: undefined as unknown as TestServer,
    browser: undefined as unknown as Browser,
    tempDir(prefix) {
      const dir = mkdtempSync(path.join(tmpdir(), prefix));
      temp.push(dir);
      return dir;
    },
    laptop() {
      const env: NodeJS.ProcessEnv = { ...process.env, MAGS_HOME: suite.tempDir('mags-laptop-'), MAGS_NO_BROWSER: '1' };
      delete env.MAGS_API_TOKEN;
      delete env.MAGS_API_URL;
      return env;
    },
    shot: (page, name) => page.screenshot({ path: path.join(ARTIFACTS, `${name}.png`), fullPage: true }),
  };
  before(async () => {
    suite.server = await startServer();
    suite.browser = await launchBrowser();
  });
  after(async () => {
    await suite.browser?.close();
    await suite.server?.stop();
    for (const t of temp) rmSync(t, { recursive: true, force: true });
  });
  return suite;
}
