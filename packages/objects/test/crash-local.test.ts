// Crash safety of sync on the local-directory store.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe } from 'node:test';
import { LocalObjectStore } from '../src/index.js';
import { crashSuite } from './helpers/crash-suite.js';

let dir: string;
before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'mags-crash-store-'));
});
after(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('crash safety on LocalObjectStore', () =>
  crashSuite(
    'local',
    () => new LocalObjectStore(dir),
    () => `file://${dir}`,
  ));
