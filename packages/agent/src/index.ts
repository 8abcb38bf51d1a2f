export { Agent, startAgent } from './agent.js';
export { type AgentConfig, DEFAULT_BLOCKED_RANGES, loadAgentConfig } from './config.js';
