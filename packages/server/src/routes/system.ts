// Health, server status and the OpenAPI document.
import { Type } from 'typebox';
import { ErrorBody, MAGS_VERSION, ServerStatus } from '@mags/api';
import { type MagsApp, callerOf } from '../app.js';
import type { ServerContext } from '../context.js';

const Health = Type.Object({ ok: Type.Boolean(), version: Type.String() });

export function registerSystemRoutes(app: MagsApp, ctx: ServerContext): void {
  app.get(
    '/api/v1/health',
    {
      config: { public: true },
      schema: {
        tags: ['system'],
        summary: 'Whether the server is up (no token needed)',
        security: [],
        response: { 200: Health },
      },
    },
    async () => ({ ok: true, version: MAGS_VERSION }),
  );

  app.get(
    '/api/v1/openapi.json',
    {
      config: { public: true },
      schema: { tags: ['system'], summary: 'This OpenAPI document (no token needed)', security: [] },
    },
    async (_request, reply) => reply.type('application/json; charset=utf-8').send(app.swagger()),
  );

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
      const rows = await ctx.store.listAgents();
      const online = new Map(ctx.scheduler.onlineAgents().map((a) => [a.id, a]));
      const now = new Date().toISOString();
      const agents = rows.map((row) => {
        const live = online.get(row.id);
        online.delete(row.id);
        return {
          id: row.id,
          name: live?.info.name ?? row.name,
          runtime: live?.info.runtime ?? row.runtime,
          version: live?.info.version ?? row.version,
          status: live ? ('online' as const) : ('offline' as const),
          running: live?.running ?? 0,
          capacity: live?.info.capacity ?? row.capacity,
          last_seen_at: live ? now : new Date(row.last_seen_at).toISOString(),
        };
      });
      for (const live of online.values()) {
        agents.push({
          id: live.id,
          name: live.info.name,
          runtime: live.info.runtime,
          version: live.info.version,
          status: 'online',
          running: live.running,
          capacity: live.info.capacity,
          last_seen_at: now,
        });
      }
      // Online agents first, then the most recently seen.
      agents.sort((a, b) => (a.status === b.status ? b.last_seen_at.localeCompare(a.last_seen_at) : a.status === 'online' ? -1 : 1));
      return {
        server: {
          version: MAGS_VERSION,
          mode: ctx.config.mode,
          store: ctx.store.kind,
          started_at: new Date(ctx.startedAt).toISOString(),
        },
        agents,
        user: { id: user.id, name: user.name },
      };
    },
  );
}
