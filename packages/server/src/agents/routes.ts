// `GET /status`: the server, its agents (with their sandbox runtime) and the calling user.
import { ErrorBody, MAGS_VERSION, ServerStatus } from '@mags/api';
import { callerOf, type MagsApp } from '../http/request.js';
import type { AgentRegistry } from './registry.js';

/** What the status tells of the server itself. */
export interface ServerFacts {
  mode: string;
  store: string;
  startedAt: number;
}

export function registerAgentRoutes(app: MagsApp, agents: AgentRegistry, server: ServerFacts): void {
  app.get(
    '/api/v1/status',
    {
      schema: {
        tags: ['system'],
        summary: 'The server, its agents (with their sandbox runtime) and the calling user',
        response: { 200: ServerStatus, 401: ErrorBody },
      },
    },
    async (request) => {
      const user = callerOf(request);
      return {
        server: {
          version: MAGS_VERSION,
          mode: server.mode,
          store: server.store,
          started_at: new Date(server.startedAt).toISOString(),
        },
        agents: await agents.summaries(),
        user: { id: user.id, name: user.name },
      };
    },
  );
}
