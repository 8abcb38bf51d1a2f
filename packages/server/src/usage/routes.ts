// GET /api/v1/mags-usage: the caller's usage per UTC day over a window.
import { DEFAULT_USAGE_WINDOW_DAYS, UsageQuery, UsageReport } from '@mags/api';
import { callerOf, errors, type MagsApp } from '../http/request.js';
import type { UsageService } from './service.js';

export function registerUsageRoutes(app: MagsApp, usage: UsageService): void {
  app.get(
    '/api/v1/mags-usage',
    {
      schema: {
        tags: ['usage'],
        summary: 'Your usage per UTC day: jobs, sandbox, CPU and memory time, egress, storage held',
        description:
          'Metered, not estimated: sandbox time, CPU (cpuacct), memory (the cgroup, integrated over time) and egress ' +
          "(the sandbox's network link) as the agents report them while sandboxes run and when they end; storage is " +
          "what your workspaces and uploaded files hold (today's figure is measured now). Days are UTC, oldest first.",
        querystring: UsageQuery,
        response: { 200: UsageReport, ...errors(400, 401) },
      },
    },
    async (request) => usage.get(callerOf(request).id, request.query.window_days ?? DEFAULT_USAGE_WINDOW_DAYS),
  );
}
