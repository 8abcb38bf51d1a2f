export * from './admin.js';
export * from './agent-link.js';
export * from './agent-protocol.js';
export * from './duration.js';
export * from './errors.js';
export * from './jobs.js';
export * from './storage.js';
export * from './workspaces.js';
export const MAGS_VERSION = '0.1.0';
