// The job routes, in the wire format of the hosted service: submit, list, pool status, status (with
// long-poll), logs (JSON, or followed live as Server-Sent Events), stop and delete.
import type { FastifyReply, FastifyRequest } from 'fastify';
import { Type } from 'typebox';
import {
  ErrorBody,
  JobAccepted,
  JobList,
  JobLogs,
  JobStatus,
  JobSubmit,
  MagsError,
  PoolStatus,
  StopResult,
  isTerminal,
} from '@mags/api';
import { type MagsApp, callerOf } from '../app.js';
import type { ServerContext } from '../context.js';
import { LogStream } from '../http/log-stream.js';
import { planJob } from '../job-submit.js';
import { jobStatusView, logEntryView } from '../job-view.js';
import { waitForTerminal } from '../job-wait.js';
import type { JobRow } from '../store/index.js';

export const MAX_WAIT_S = 60;
export const MAX_PAGE_SIZE = 100;
export const MAX_LOG_LIMIT = 50_000;

const JobParams = Type.Object({
  id: Type.String({ minLength: 1, maxLength: 200, description: 'The request id, or the name of the job (its newest job of that name)' }),
});
const ListQuery = Type.Object({
  page: Type.Optional(Type.Integer({ minimum: 1, maximum: 1_000_000, default: 1 })),
  page_size: Type.Optional(Type.Integer({ minimum: 1, maximum: MAX_PAGE_SIZE, default: 20 })),
});
const StatusQuery = Type.Object({
  wait: Type.Optional(
    Type.Number({ minimum: 0, maximum: MAX_WAIT_S, description: 'Seconds to wait for the job to finish before answering' }),
  ),
});
const LogsQuery = Type.Object({
  after: Type.Optional(Type.Integer({ minimum: 0, description: 'Only lines with a larger seq' })),
  limit: Type.Optional(Type.Integer({ minimum: 1, maximum: MAX_LOG_LIMIT, default: 10000 })),
  follow: Type.Optional(
    Type.Boolean({ description: 'Stream as Server-Sent Events (also chosen by "Accept: text/event-stream") until the job ends' }),
  ),
});

const errors = (...codes: number[]) => Object.fromEntries(codes.map((c) => [c, ErrorBody]));

export function registerJobRoutes(app: MagsApp, ctx: ServerContext): void {
  async function findJob(request: FastifyRequest, ref: string): Promise<JobRow> {
    const job = await ctx.store.findJob(callerOf(request).id, ref);
    if (!job) throw MagsError.notFound(`job "${ref}" not found`);
    return job;
  }

  app.post(
    '/api/v1/mags-jobs',
    {
      schema: {
        tags: ['jobs'],
        summary: 'Run a script in a new sandbox',
        description:
          'With workspace_id the sandbox runs on that workspace (created if missing; persistent with persistent: true). ' +
          'A workspace serves one unfinished job at a time: a second submit is 409 with code workspace_busy.',
        body: JobSubmit,
        response: { 202: JobAccepted, ...errors(400, 401, 404, 409, 413, 415, 422, 503, 507) },
      },
    },
    async (request, reply) => {
      const user = callerOf(request);
      const plan = planJob(request.body);
      const job = await ctx.workspaces.submitJob(user.id, plan);
      request.log.info({ jobId: job.id, name: job.name, workspace: job.workspace_id ?? undefined }, 'job accepted');
      ctx.scheduler.requestDispatch();
      return reply.code(202).send({
        request_id: job.id,
        status: 'accepted' as const,
        message: `job accepted; follow it at /api/v1/mags-jobs/${job.id}/status`,
      });
    },
  );

  app.get(
    '/api/v1/mags-jobs',
    {
      schema: {
        tags: ['jobs'],
        summary: "The caller's jobs, newest first",
        querystring: ListQuery,
        response: { 200: JobList, ...errors(400, 401) },
      },
    },
    async (request) => {
      const page = request.query.page ?? 1;
      const pageSize = request.query.page_size ?? 20;
      const { jobs, total } = await ctx.store.listJobs(callerOf(request).id, page, pageSize);
      return { jobs: jobs.map(jobStatusView), page, page_size: pageSize, total };
    },
  );

  app.get(
    '/api/v1/mags-jobs/pool-status',
    {
      schema: {
        tags: ['jobs'],
        summary: 'Warm sandboxes over all connected agents',
        response: { 200: PoolStatus, ...errors(401) },
      },
    },
    async () => ctx.scheduler.poolStatus(),
  );

  app.get(
    '/api/v1/mags-jobs/:id/status',
    {
      schema: {
        tags: ['jobs'],
        summary: "A job's status; with ?wait=N, answers when the job ends or N seconds pass",
        params: JobParams,
        querystring: StatusQuery,
        response: { 200: JobStatus, ...errors(400, 401, 404) },
      },
    },
    async (request, reply) => {
      let job = await findJob(request, request.params.id);
      const wait = request.query.wait ?? 0;
      if (wait > 0 && !isTerminal(job.status)) {
        const abort = new AbortController();
        const onShutdown = () => abort.abort();
        const onGone = () => abort.abort();
        ctx.shutdown.addEventListener('abort', onShutdown, { once: true });
        reply.raw.once('close', onGone);
        try {
          job = (await waitForTerminal(ctx.store, ctx.events, job.id, wait * 1000, abort.signal)) ?? job;
        } finally {
          ctx.shutdown.removeEventListener('abort', onShutdown);
          reply.raw.off('close', onGone);
        }
      }
      return jobStatusView(job);
    },
  );

  app.get(
    '/api/v1/mags-jobs/:id/logs',
    {
      schema: {
        tags: ['jobs'],
        summary: "A job's output lines in order; ?follow=true streams them as Server-Sent Events until the job ends",
        description:
          'As JSON: { logs: [...] }. Followed (follow=true or Accept: text/event-stream): every stored line after `after`, ' +
          'then live lines, each as `event: log` (id = seq, data = the log entry), then `event: end` with the final JobStatus. ' +
          'A client that reconnects with Last-Event-ID resumes after that line. A user may follow a limited number of ' +
          'streams at once (the server\'s maxFollowersPerUser); one more is 429. A job stores at most the server\'s ' +
          'maxLogMb of output; past it a last `system` line says the output was truncated.',
        params: JobParams,
        querystring: LogsQuery,
        response: { 200: JobLogs, ...errors(400, 401, 404, 429) },
      },
    },
    async (request, reply) => {
      const job = await findJob(request, request.params.id);
      let after = request.query.after ?? 0;
      const follow = request.query.follow ?? (request.headers.accept ?? '').includes('text/event-stream');
      if (follow) {
        const resumeFrom = lastEventId(request);
        if (resumeFrom !== undefined && resumeFrom > after) after = resumeFrom;
        return followLogs(ctx, reply, job, after, callerOf(request).id);
      }
      const rows = await ctx.store.readLogs(job.id, after, request.query.limit ?? 10000);
      return { logs: rows.map(logEntryView) };
    },
  );

  app.post(
    '/api/v1/mags-jobs/:id/stop',
    {
      schema: {
        tags: ['jobs'],
        summary: 'Stop a job; answers once the sandbox has stopped (or 10 s, whichever is first)',
        params: JobParams,
        response: { 200: StopResult, ...errors(401, 404, 409) },
      },
    },
    async (request) => {
      const ref = request.params.id;
      const job = await findJob(request, ref);
      if (isTerminal(job.status)) {
        throw MagsError.conflict(`job "${ref}" has already finished (${job.status}); there is nothing to stop`);
      }
      let stopped: JobRow;
      try {
        stopped = await ctx.scheduler.stop(job.id);
      } catch (err) {
        if (err instanceof MagsError && err.status === 409) {
          throw MagsError.conflict(`job "${ref}" has already finished; there is nothing to stop`);
        }
        throw err;
      }
      request.log.info({ jobId: job.id, status: stopped.status }, 'stop requested');
      return { success: true, request_id: stopped.id, status: jobStatusView(stopped).status };
    },
  );

  app.delete(
    '/api/v1/mags-jobs/:id',
    {
      schema: {
        tags: ['jobs'],
        summary: 'Delete a finished job and its output',
        description:
          'Only a job that has ended (completed, failed, error, stopped) can be deleted: an unfinished one is 409 (stop it ' +
          'first). Finished jobs are also deleted by the server after its retention period (retainDays).',
        params: JobParams,
        response: { 204: Type.Null({ description: 'Deleted' }), ...errors(401, 404, 409) },
      },
    },
    async (request, reply) => {
      const ref = request.params.id;
      const job = await findJob(request, ref);
      const result = await ctx.store.deleteFinishedJob(job.id);
      if (result === 'unfinished') {
        throw MagsError.conflict(`job "${ref}" has not finished (${job.status}); stop it first, then delete it`);
      }
      if (result === 'not_found') throw MagsError.notFound(`job "${ref}" not found`);
      request.log.info({ jobId: job.id }, 'job deleted');
      return reply.code(204).send(null);
    },
  );
}

function lastEventId(request: FastifyRequest): number | undefined {
  const raw = request.headers['last-event-id'];
  const value = Array.isArray(raw) ? raw[0] : raw;
  return value !== undefined && /^\d{1,10}$/.test(value.trim()) ? Number(value.trim()) : undefined;
}

async function followLogs(ctx: ServerContext, reply: FastifyReply, job: JobRow, after: number, userId: string): Promise<void> {
  const max = ctx.config.maxFollowersPerUser;
  let open = 0;
  for (const s of ctx.streams) if (s.userId === userId) open++;
  if (open >= max) {
    throw new MagsError(
      429,
      'too_many_requests',
      `you already follow ${open} job outputs at once, the most this server allows per user; close one (or read the logs without following) and try again`,
    );
  }
  reply.hijack();
  const stream = new LogStream({ store: ctx.store, events: ctx.events, logger: ctx.logger }, reply.raw, job.id, after, userId);
  ctx.streams.add(stream);
  await stream.closed;
  ctx.streams.delete(stream);
}
