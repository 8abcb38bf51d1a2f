// Workspace sync on the local-directory store (the embedded default).
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe } from 'node:test';
import { LocalObjectStore } from '../src/index.js';
import { syncSuite } from './helpers/sync-suite.js';

let dir: string;
let store: LocalObjectStore;
before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'mags-sync-store-'));
  store = new LocalObjectStore(dir);
});
after(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('sync on LocalObjectStore', () => syncSuite('local', () => store));
