// `POST /api/v1/admin/gc` (`mags server gc`): the server's owner runs garbage collection of the object store now.
import { ErrorBody, GcReport } from '@mags/api';
import { type MagsApp, callerOf } from '../app.js';
import type { ServerContext } from '../context.js';

export function registerReclaimRoutes(app: MagsApp, ctx: ServerContext): void {
  app.post(
    '/api/v1/admin/gc',
    {
      schema: {
        tags: ['admin'],
        summary:
          "Garbage-collect the object store now (owner only): delete deleted workspaces' versions, and blobs and packs no " +
          'kept version or fork references once older than the grace period; answers what was freed',
        response: { 200: GcReport, 401: ErrorBody, 403: ErrorBody, 409: ErrorBody, 503: ErrorBody },
      },
    },
    async (request) => {
      await ctx.auth.requireOwner(callerOf(request), 'run garbage collection of the object store');
      return ctx.reclaim.collect('request');
    },
  );
}
