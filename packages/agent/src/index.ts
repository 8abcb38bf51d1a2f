export { Agent, startAgent } from './agent.js';
export { type AgentConfig, loadAgentConfig, DEFAULT_BLOCKED_RANGES } from './config.js';
