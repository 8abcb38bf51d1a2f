export { Store, type JobFinish, type NewWorkspace, type StoreOptions, type TakeResult, type TerminalStatus, type WorkspacePatch } from './store.js';
export type { AgentRow, FileRow, JobRow, JobSpec, LogRow, TokenRow, UserRow, WorkspaceRow } from './schema.js';
