// `POST /api/v1/admin/gc` (`mags server gc`): the server's owner runs garbage collection of the object store now.
import { ErrorBody, GcReport } from '@mags/api';
import type { Auth } from '../http/auth.js';
import { callerOf, type MagsApp } from '../http/request.js';
import type { StorageReclaim } from './reclaim.js';

export function registerReclaimRoutes(app: MagsApp, reclaim: StorageReclaim, auth: Auth): void {
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
      await auth.requireOwner(callerOf(request), 'run garbage collection of the object store');
      return reclaim.collect('request');
    },
  );
}
