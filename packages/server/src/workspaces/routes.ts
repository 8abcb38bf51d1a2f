// The workspace routes (`mags new`, `mags workspace list|delete|versions|restore`, `mags sync`, `mags resize`):
// every one resolves names for the caller only, so another user's workspace is simply not found.

import {
  DeleteResult,
  NAME_PATTERN,
  SyncResult,
  WorkspaceCreate,
  WorkspaceInfo,
  WorkspaceList,
  WorkspaceResize,
  WorkspaceRestore,
  WorkspaceRestored,
  WorkspaceVersions,
} from '@mags/api';
import { Type } from 'typebox';
import { callerOf, errors, type MagsApp } from '../http/request.js';
import { DEFAULT_DISK_GB, type Workspaces } from './service.js';

const NameParams = Type.Object({ name: Type.String({ pattern: NAME_PATTERN, description: 'The workspace name' }) });
const JobParams = Type.Object({
  id: Type.String({ minLength: 1, maxLength: 200, description: 'The request id, or the name of the job' }),
});
const DeleteQuery = Type.Object({
  force: Type.Optional(
    Type.Boolean({ description: 'Stop the job using the workspace first, instead of refusing with 409' }),
  ),
});

export function registerWorkspaceRoutes(app: MagsApp, ws: Workspaces): void {
  app.get(
    '/api/v1/mags-workspaces',
    {
      schema: {
        tags: ['workspaces'],
        summary: "The caller's workspaces, by name",
        response: { 200: WorkspaceList, ...errors(401) },
      },
    },
    async (request) => ({ workspaces: await ws.list(callerOf(request).id) }),
  );

  app.post(
    '/api/v1/mags-workspaces',
    {
      schema: {
        tags: ['workspaces'],
        summary:
          'Create a workspace (mags new NAME [-p] [--base B] [--disk N]); with a base it is a fork of B at its current version',
        body: WorkspaceCreate,
        response: { 201: WorkspaceInfo, ...errors(400, 401, 404, 409, 422, 503, 507) },
      },
    },
    async (request, reply) => {
      const body = request.body;
      const info = await ws.createWorkspace(callerOf(request).id, {
        name: body.name,
        persistent: body.persistent === true,
        base: body.base,
        diskGb: body.disk_gb ?? DEFAULT_DISK_GB,
      });
      return reply.code(201).send(info);
    },
  );

  app.get(
    '/api/v1/mags-workspaces/:name',
    {
      schema: {
        tags: ['workspaces'],
        summary: 'One workspace',
        params: NameParams,
        response: { 200: WorkspaceInfo, ...errors(400, 401, 404) },
      },
    },
    async (request) => ws.get(callerOf(request).id, request.params.name),
  );

  app.delete(
    '/api/v1/mags-workspaces/:name',
    {
      schema: {
        tags: ['workspaces'],
        summary: 'Delete a workspace: its host copies, its versions in the object store, and its record',
        description:
          'While an unfinished job uses it: 409 workspace_busy, unless ?force=true, which stops the job first.',
        params: NameParams,
        querystring: DeleteQuery,
        response: { 200: DeleteResult, ...errors(400, 401, 404, 409, 503, 504) },
      },
    },
    async (request) => {
      const name = request.params.name;
      await ws.deleteWorkspace(callerOf(request).id, name, request.query.force === true);
      return { success: true, name };
    },
  );

  app.get(
    '/api/v1/mags-workspaces/:name/versions',
    {
      schema: {
        tags: ['workspaces'],
        summary: 'The synced versions of a persistent workspace, oldest first (a local workspace has none)',
        params: NameParams,
        response: { 200: WorkspaceVersions, ...errors(400, 401, 404, 503) },
      },
    },
    async (request) => ws.versions(callerOf(request).id, request.params.name),
  );

  app.post(
    '/api/v1/mags-workspaces/:name/restore',
    {
      schema: {
        tags: ['workspaces'],
        summary: 'Roll a persistent workspace back to a version; the rollback becomes a new version',
        params: NameParams,
        body: WorkspaceRestore,
        response: { 200: WorkspaceRestored, ...errors(400, 401, 404, 409, 503, 504) },
      },
    },
    async (request) => ws.restore(callerOf(request).id, request.params.name, request.body.version),
  );

  app.post(
    '/api/v1/mags-workspaces/:name/sync',
    {
      schema: {
        tags: ['workspaces'],
        summary: 'Sync a persistent workspace to the object store now; answers once it is stored',
        params: NameParams,
        response: { 200: SyncResult, ...errors(400, 401, 404, 409, 503, 504) },
      },
    },
    async (request) => ws.sync(callerOf(request).id, request.params.name),
  );

  app.post(
    '/api/v1/mags-jobs/:id/sync',
    {
      schema: {
        tags: ['workspaces'],
        summary: "Sync a job's persistent workspace to the object store now; answers once it is stored",
        params: JobParams,
        response: { 200: SyncResult, ...errors(400, 401, 404, 409, 503, 504) },
      },
    },
    async (request) => ws.syncJob(callerOf(request).id, request.params.id),
  );

  app.post(
    '/api/v1/mags-workspaces/:name/resize',
    {
      schema: {
        tags: ['workspaces'],
        summary: "Grow a workspace's disk (disks never shrink)",
        params: NameParams,
        body: WorkspaceResize,
        response: { 200: WorkspaceInfo, ...errors(400, 401, 404, 409, 422, 503, 504, 507) },
      },
    },
    async (request) => ws.resize(callerOf(request).id, request.params.name, request.body.disk_gb),
  );
}
