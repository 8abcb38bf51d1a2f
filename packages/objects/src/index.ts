// @mags/objects: the object-store interface with its local-directory and S3 implementations, and workspace sync.

export * from './errors.js';
export { LocalObjectStore } from './local.js';
export { type OpenStoreOptions, openObjectStore, redact } from './open.js';
export { CommandError, killGroup, type RunOptions, type RunResult, run as runCommand } from './process.js';
export { S3ObjectStore, type S3StoreOptions } from './s3.js';
export * from './store.js';
export * from './sync/index.js';
