// The Python SDK (python/) against a real server: each Python test module (python/tests/test_*.py, standard
// library unittest) runs as one node test with MAGS_API_URL / MAGS_API_TOKEN of a `mags server` started here, and
// fails with Python's output when Python fails.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readdirSync } from 'node:fs';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { ROOT, removeInstance, startServer, type TestServer } from './harness.js';

const PYTHON_DIR = path.join(ROOT, 'python');
const modules = readdirSync(path.join(PYTHON_DIR, 'tests'))
  .filter((f) => /^test_\w+\.py$/.test(f))
  .sort()
  .map((f) => f.slice(0, -3));

let server: TestServer;
const instance = `py${randomBytes(2).toString('hex')}`;
/** test_lifecycle.py's own server, which freezes and stops idle sandboxes within seconds (started when it runs). */
let sleepy: TestServer | undefined;
const sleepyInstance = `pz${randomBytes(2).toString('hex')}`;
const SLEEPY_MODULES = new Set(['test_lifecycle']);

before(async () => {
  server = await startServer(['--instance', instance]);
});
after(async () => {
  await server?.stop();
  removeInstance(instance);
  if (sleepy) {
    await sleepy.stop();
    removeInstance(sleepyInstance, false);
  }
});

/** Runs one Python test module; resolves with its exit code and everything it printed. */
function unittest(module: string, target: TestServer): Promise<{ code: number | null; output: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn('python3', ['-m', 'unittest', '-v', `tests.${module}`], {
      cwd: PYTHON_DIR,
      env: {
        ...target.env,
        MAGS_TEST_ROUTER_PORT: String(target.routerPort),
        // No __pycache__ in the checkout.
        PYTHONDONTWRITEBYTECODE: '1',
        PYTHONUNBUFFERED: '1',
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let output = '';
    child.stdout.on('data', (b: Buffer) => {
      output += b.toString();
    });
    child.stderr.on('data', (b: Buffer) => {
      output += b.toString();
    });
    child.once('error', reject);
    child.once('close', (code) => resolve({ code, output }));
  });
}

describe('the Python SDK against a real server', () => {
  test('there are Python test modules to run', () => {
    assert.ok(modules.length >= 5, `found ${modules.join(', ')}`);
  });
  for (const module of modules) {
    test(`python/tests/${module}.py passes`, { timeout: 15 * 60_000 }, async (t) => {
      let target = server;
      if (SLEEPY_MODULES.has(module)) {
        sleepy ??= await startServer(['--instance', sleepyInstance, '--sleep-after', '2s', '--stop-after', '6s']);
        target = sleepy;
      }
      const { code, output } = await unittest(module, target);
      // Figures a Python test prints (e.g. the peak memory of a 1 GiB upload) go to the node:test report.
      for (const line of output.split('\n')) if (/^\s+\S.*: (peak|figure)/i.test(line)) t.diagnostic(line.trim());
      // A Python test skipped (with the reason it gives) is shown too, so that a skip is never silent.
      for (const line of output.split('\n')) if (/ \.\.\. skipped /.test(line)) t.diagnostic(line.trim());
      assert.equal(code, 0, `python3 -m unittest tests.${module} failed:\n${output}`);
      assert.match(output, /\nOK\b/, `python3 -m unittest tests.${module} ran no tests:\n${output}`);
    });
  }
});
