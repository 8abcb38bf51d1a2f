// /api/v1/mags-cron: create, list, get, update and delete the caller's cron jobs (by id, or by name).
import { CronCreate, CronJob, CronList, CronUpdate } from '@mags/api';
import { Type } from 'typebox';
import { callerOf, errors, type MagsApp } from '../http/request.js';
import type { CronService } from './service.js';

const Params = Type.Object({ id: Type.String({ minLength: 1, maxLength: 200 }) });

export function registerCronRoutes(app: MagsApp, cron: CronService): void {
  app.post(
    '/api/v1/mags-cron',
    {
      schema: {
        tags: ['cron'],
        summary: 'Create a cron job: a script run on a 5-field schedule (UTC unless timezone), each firing a job',
        body: CronCreate,
        response: { 201: CronJob, ...errors(400, 401, 409) },
      },
    },
    async (request, reply) => reply.code(201).send(await cron.create(callerOf(request).id, request.body)),
  );

  app.get(
    '/api/v1/mags-cron',
    {
      schema: {
        tags: ['cron'],
        summary: 'Your cron jobs, oldest first, with their next and last firings',
        response: { 200: CronList, ...errors(401) },
      },
    },
    async (request) => ({ cron_jobs: await cron.list(callerOf(request).id) }),
  );

  app.get(
    '/api/v1/mags-cron/:id',
    {
      schema: {
        tags: ['cron'],
        summary: 'One of your cron jobs (by id or name), with its latest firings: run (job_id) or skipped (reason)',
        params: Params,
        response: { 200: CronJob, ...errors(401, 404) },
      },
    },
    async (request) => cron.get(callerOf(request).id, request.params.id),
  );

  app.patch(
    '/api/v1/mags-cron/:id',
    {
      schema: {
        tags: ['cron'],
        summary: 'Change a cron job (enable, disable, schedule, script, workspace, time zone)',
        description:
          'A changed schedule or time zone, or enabling it, counts the next firing from now; firings missed ' +
          'while it was disabled are not run.',
        params: Params,
        body: CronUpdate,
        response: { 200: CronJob, ...errors(400, 401, 404, 409) },
      },
    },
    async (request) => cron.update(callerOf(request).id, request.params.id, request.body),
  );

  app.delete(
    '/api/v1/mags-cron/:id',
    {
      schema: {
        tags: ['cron'],
        summary: 'Delete a cron job; the jobs it fired stay',
        params: Params,
        response: { 204: Type.Null({ description: 'Deleted' }), ...errors(401, 404) },
      },
    },
    async (request, reply) => {
      await cron.remove(callerOf(request).id, request.params.id);
      return reply.code(204).send(null);
    },
  );
}
