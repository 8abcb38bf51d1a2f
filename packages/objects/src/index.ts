// @mags/objects: the object-store interface with its local-directory and S3 implementations, and workspace sync.
export * from './store.js';
export * from './errors.js';
export { LocalObjectStore } from './local.js';
export { S3ObjectStore, type S3StoreOptions } from './s3.js';
export { openObjectStore, redact, type OpenStoreOptions } from './open.js';
export * from './sync/index.js';
export { CommandError, killGroup, run as runCommand, type RunOptions, type RunResult } from './process.js';
