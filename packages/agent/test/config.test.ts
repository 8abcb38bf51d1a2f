// Agent configuration: the defaults a plain `mags server` runs with, what one setting moves along with it, and the
// sentence a bad value is refused with (the CLI shows it as a usage error).
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, test } from 'node:test';
import {
  type AgentConfig,
  checkImage,
  DEFAULT_BLOCKED_RANGES,
  DEFAULT_TOOL_BINARY,
  hostNames,
  imagePath,
  loadAgentConfig,
} from '../src/config.js';

describe('agent configuration', () => {
  test('the defaults: instance 0 under /var/lib/mags, 2 warm, 16 at once, 10.89.0.0/16, uids from 100000', () => {
    const expected: AgentConfig = {
      name: 'local',
      instance: '0',
      stateDir: '/var/lib/mags',
      imagesDir: '/var/lib/mags/images',
      image: 'debian-12-v3',
      runtime: 'crun',
      runtimeRoot: '/run/mags/0',
      initBinary: '/usr/bin/catatonit',
      toolBinary: DEFAULT_TOOL_BINARY,
      poolSize: 2,
      capacity: 16,
      subnet: '10.89.0.0/16',
      blockedRanges: DEFAULT_BLOCKED_RANGES,
      dnsPort: 0,
      dnsUpstream: undefined,
      defaults: { memoryMb: 1024, vcpus: 1, pids: 1024, diskGb: 2 },
      objects: '/var/lib/mags/objects',
      objectsCredentials: undefined,
      workspacesDir: '/var/lib/mags/workspaces/0',
      basesDir: '/var/lib/mags/bases/0',
      cacheDir: '/var/lib/mags/cache/0',
      localWorkspaceTtlMs: 600_000,
      warmMs: 300_000,
      syncIntervalMs: 300_000,
      usageReportMs: 60_000,
      gcGraceMs: 2 * 3_600_000,
      userns: { hostId: 100_000, size: 65_536 },
    };
    assert.deepEqual(loadAgentConfig(), expected);
    // The CLI passes every flag, given or not: one left out (undefined) takes the default.
    const flags = {
      instance: undefined,
      stateDir: undefined,
      poolSize: undefined,
      capacity: undefined,
      warmMs: undefined,
    };
    assert.deepEqual(loadAgentConfig(flags), expected);
  });

  test('the blocked ranges cover private, shared, loopback, link-local (metadata), benchmark and multicast addresses', () => {
    for (const range of [
      '10.0.0.0/8',
      '172.16.0.0/12',
      '192.168.0.0/16',
      '100.64.0.0/10',
      '127.0.0.0/8',
      '169.254.0.0/16',
      '224.0.0.0/3',
    ]) {
      assert.ok(DEFAULT_BLOCKED_RANGES.includes(range), range);
    }
  });

  test('the state directory and the instance tag move every host path and name the agent owns', () => {
    const c = loadAgentConfig({ stateDir: '/srv/mags', instance: 't1' });
    assert.equal(c.imagesDir, '/srv/mags/images');
    assert.equal(c.objects, '/srv/mags/objects');
    assert.deepEqual(
      [c.workspacesDir, c.basesDir, c.cacheDir],
      ['/srv/mags/workspaces/t1', '/srv/mags/bases/t1', '/srv/mags/cache/t1'],
    );
    assert.equal(c.runtimeRoot, '/run/mags/t1');
    assert.deepEqual(hostNames(c), {
      sandboxPrefix: 'magst1-',
      vethPrefix: 'mvt1-',
      table: 'mags_t1',
      cgroupParent: 'magst1',
      sandboxesDir: '/srv/mags/sandboxes/t1',
      filesDir: '/srv/mags/sandboxes/t1.files',
    });
    // An explicit setting beats the derived one.
    assert.equal(loadAgentConfig({ stateDir: '/srv/mags', imagesDir: '/images' }).imagesDir, '/images');
  });

  test('another instance gets its own /16 in 10.90-10.189, the same one every time; an explicit subnet wins', () => {
    for (const tag of ['1', 'a', 'b1f3', 'zzzzzz']) {
      const subnet = loadAgentConfig({ instance: tag }).subnet;
      const second = Number(/^10\.(\d+)\.0\.0\/16$/.exec(subnet)?.[1]);
      assert.ok(second >= 90 && second <= 189, `${tag}: ${subnet}`);
      assert.equal(loadAgentConfig({ instance: tag }).subnet, subnet);
    }
    assert.equal(loadAgentConfig({ instance: 'a', subnet: '10.7.0.0/16' }).subnet, '10.7.0.0/16');
  });

  test('sandbox defaults may be given in part; the rest keep theirs', () => {
    const c = loadAgentConfig({ defaults: { memoryMb: 512 } as AgentConfig['defaults'] });
    assert.deepEqual(c.defaults, { memoryMb: 512, vcpus: 1, pids: 1024, diskGb: 2 });
  });

  test('the image is the copy shifted to the user namespace: its path names the host id it starts at', () => {
    assert.equal(imagePath(loadAgentConfig()), '/var/lib/mags/images/debian-12-v3-u100000');
    const shifted = loadAgentConfig({ stateDir: '/srv', userns: { hostId: 300_000, size: 65_536 } });
    assert.equal(imagePath(shifted), '/srv/images/debian-12-v3-u300000');
  });

  test('a missing image is refused with the command that builds it; a complete one passes', () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'mags-agent-config-'));
    try {
      const c = loadAgentConfig({ stateDir: dir });
      assert.throws(
        () => checkImage(c),
        (e: Error) => {
          assert.match(
            e.message,
            /the root image .*debian-12-v3-u100000 .* is missing: build it with scripts\/build-image\.sh/,
          );
          assert.doesNotMatch(e.message, /MAGS_USERNS_HOST_ID/);
          return true;
        },
      );
      const other = loadAgentConfig({ stateDir: dir, userns: { hostId: 200_000, size: 65_536 } });
      assert.throws(() => checkImage(other), /build it with MAGS_USERNS_HOST_ID=200000 scripts\/build-image\.sh/);
      // Half a build (no completion marker) is not an image.
      mkdirSync(imagePath(c), { recursive: true });
      assert.throws(() => checkImage(c), /is missing/);
      writeFileSync(path.join(imagePath(c), '.mags-image-complete'), '');
      checkImage(c);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test('bad values are refused with a sentence naming the setting and what it must be', () => {
    const refused = (overrides: Partial<AgentConfig>, message: RegExp) =>
      assert.throws(() => loadAgentConfig(overrides), message, JSON.stringify(overrides));
    for (const instance of ['', 'BAD', 'a-b', 'sevenxx', '../x']) {
      const message = `agent instance must be 1-6 lowercase letters or digits, not "${instance}"`;
      assert.throws(() => loadAgentConfig({ instance }), { message });
    }
    for (const poolSize of [-1, 1.5, Number.NaN]) refused({ poolSize }, /agent poolSize must be a whole number ≥ 0/);
    for (const capacity of [0, -3, 2.5]) refused({ capacity }, /agent capacity must be a whole number ≥ 1/);
    for (const key of ['localWorkspaceTtlMs', 'warmMs', 'syncIntervalMs'] as const) {
      for (const value of [-1, Number.NaN, Number.POSITIVE_INFINITY])
        refused({ [key]: value }, new RegExp(`agent ${key} must be a number of milliseconds ≥ 0`));
    }
    for (const userns of [
      { hostId: 0, size: 65_536 }, // the host's own users
      { hostId: 100_000, size: 1000 }, // no nobody (65534) inside
      { hostId: 2 ** 32 - 65_536, size: 65_536 }, // past the last id
      { hostId: 100_000.5, size: 65_536 },
    ]) {
      refused({ userns }, /agent userns must map at least 65536 ids to host ids from 65536 up/);
    }
    for (const subnet of ['10.89.0.0/24', '10.89.1.0/16', '10.300.0.0/16', 'fd00::/16', '']) {
      refused({ subnet }, /agent subnet must be a \/16 such as 10\.89\.0\.0\/16/);
    }
  });

  test('the bounds themselves are accepted: no warm pool, one sandbox at a time, zero waits, the widest id range', () => {
    const c = loadAgentConfig({
      poolSize: 0,
      capacity: 1,
      warmMs: 0,
      syncIntervalMs: 0,
      localWorkspaceTtlMs: 0,
      userns: { hostId: 65_536, size: 2 ** 32 - 1 - 65_536 },
      subnet: '255.255.0.0/16',
    });
    assert.deepEqual([c.poolSize, c.capacity, c.warmMs, c.userns.hostId], [0, 1, 0, 65_536]);
  });
});
