export { Store, type JobFinish, type TerminalStatus } from './store.js';
export type { AgentRow, JobRow, JobSpec, LogRow, TokenRow, UserRow } from './schema.js';
