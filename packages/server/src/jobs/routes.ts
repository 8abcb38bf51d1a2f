// The job routes, in the wire format of the hosted service: submit, list, pool status, status (with
// long-poll), logs (JSON, or followed live as Server-Sent Events), stop and delete.

import {
  EXEC_STREAM_TYPE,
  ExecRequest,
  ExecResult,
  JobAccepted,
  JobList,
  JobLogs,
  JobStatus,
  JobSubmit,
  JobUpdate,
  MagsError,
  PoolStatus,
  StopResult,
} from '@mags/api';
import type { FastifyRequest } from 'fastify';
import { Type } from 'typebox';
import type { AgentRegistry } from '../agents/registry.js';
import { callerOf, errors, type MagsApp } from '../http/request.js';
import type { Job } from '../store/index.js';
import { type ExecService, MAX_EXEC_LINE } from './exec.js';
import type { SandboxLifecycle } from './lifecycle.js';
import type { LogFollowers } from './log-stream.js';
import type { JobService } from './service.js';
import { logEntryView, jobStatusView as statusView, type UrlOf } from './view.js';

export const MAX_WAIT_S = 60;
export const MAX_PAGE_SIZE = 100;
export const MAX_LOG_LIMIT = 50_000;

const JobParams = Type.Object({
  id: Type.String({
    minLength: 1,
    maxLength: 200,
    description: 'The request id, or the name of the job (its newest job of that name)',
  }),
});
const ListQuery = Type.Object({
  page: Type.Optional(Type.Integer({ minimum: 1, maximum: 1_000_000, default: 1 })),
  page_size: Type.Optional(Type.Integer({ minimum: 1, maximum: MAX_PAGE_SIZE, default: 20 })),
});
const StatusQuery = Type.Object({
  wait: Type.Optional(
    Type.Number({
      minimum: 0,
      maximum: MAX_WAIT_S,
      description: 'Seconds to wait for the job to finish before answering',
    }),
  ),
});
const LogsQuery = Type.Object({
  after: Type.Optional(Type.Integer({ minimum: 0, description: 'Only lines with a larger seq' })),
  limit: Type.Optional(Type.Integer({ minimum: 1, maximum: MAX_LOG_LIMIT, default: 10000 })),
  follow: Type.Optional(
    Type.Boolean({
      description: 'Stream as Server-Sent Events (also chosen by "Accept: text/event-stream") until the job ends',
    }),
  ),
});

export interface JobRoutesDeps {
  jobs: JobService;
  followers: LogFollowers;
  execs: ExecService;
  /** For the pool status, which is the agents' (it lives under /mags-jobs in the hosted service's API). */
  agents: AgentRegistry;
  lifecycle: SandboxLifecycle;
  /** The URL of a subdomain (undefined while no router listens), for the job view. */
  urlOf: UrlOf;
}

export function registerJobRoutes(
  app: MagsApp,
  { jobs, followers, execs, agents, lifecycle, urlOf }: JobRoutesDeps,
): void {
  const jobStatusView = (job: Job) => statusView(job, urlOf);
  // A streamed exec request: its first line is the ExecRequest (the body the schema checks), the lines after it are
  // stdin frames, left unread on the request for the exec to take as the agent does.
  app.addContentTypeParser(EXEC_STREAM_TYPE, (_request, payload, done) => {
    let head = Buffer.alloc(0);
    const parse = (text: string) => {
      try {
        done(null, text.trim() === '' ? undefined : JSON.parse(text));
      } catch {
        done(MagsError.invalid('the first line of the request must be the exec request as JSON'), undefined);
      }
    };
    const onData = (chunk: Buffer) => {
      head = Buffer.concat([head, chunk]);
      const nl = head.indexOf(10);
      if (nl === -1) {
        if (head.length > MAX_EXEC_LINE) {
          payload.off('data', onData).off('end', onEnd);
          done(new MagsError(413, 'payload_too_large', 'the first line of the request is too long'), undefined);
        }
        return;
      }
      payload.off('data', onData).off('end', onEnd);
      payload.pause();
      if (nl + 1 < head.length) payload.unshift(head.subarray(nl + 1));
      parse(head.subarray(0, nl).toString('utf8'));
    };
    const onEnd = () => {
      payload.off('data', onData);
      parse(head.toString('utf8'));
    };
    payload.on('data', onData).on('end', onEnd);
  });

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
      const { rootfs_type: rootfs, ...body } = request.body;
      // The hosted API takes it; here there is one root filesystem, so it is noted and ignored, not refused.
      if (rootfs !== undefined) request.log.info({ rootfs_type: rootfs }, 'rootfs_type is ignored by this server');
      const job = await jobs.submit(callerOf(request).id, body);
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
      const { jobs: rows, total } = await jobs.list(callerOf(request).id, page, pageSize);
      return { jobs: rows.map((j) => jobStatusView(j)), page, page_size: pageSize, total };
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
    async () => agents.poolStatus(),
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
      // A client that goes away ends its long-poll.
      const gone = new AbortController();
      const onGone = () => gone.abort();
      reply.raw.once('close', onGone);
      try {
        return jobStatusView(
          await jobs.status(callerOf(request).id, request.params.id, request.query.wait ?? 0, gone.signal),
        );
      } finally {
        reply.raw.off('close', onGone);
      }
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
          "streams at once (the server's maxFollowersPerUser); one more is 429. A job stores at most the server's " +
          'maxLogMb of output; past it a last `system` line says the output was truncated.',
        params: JobParams,
        querystring: LogsQuery,
        response: { 200: JobLogs, ...errors(400, 401, 404, 429) },
      },
    },
    async (request, reply) => {
      const userId = callerOf(request).id;
      let after = request.query.after ?? 0;
      const follow = request.query.follow ?? (request.headers.accept ?? '').includes('text/event-stream');
      if (follow) {
        const resumeFrom = lastEventId(request);
        if (resumeFrom !== undefined && resumeFrom > after) after = resumeFrom;
        return followers.follow(userId, request.params.id, after, () => {
          reply.hijack();
          return reply.raw;
        });
      }
      const rows = await jobs.logs(userId, request.params.id, after, request.query.limit ?? 10000);
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
      const stopped = await jobs.stop(callerOf(request).id, request.params.id);
      return { success: true, request_id: stopped.id, status: jobStatusView(stopped).status };
    },
  );

  app.post(
    '/api/v1/mags-jobs/:id/exec',
    {
      schema: {
        tags: ['jobs'],
        summary: "Run a command in a job's running sandbox (mags exec)",
        description:
          '`{id}`: the request id, a job name, or the name of a workspace whose sandbox runs. The command runs with ' +
          '/bin/sh -c as root in the sandbox, as confined as the sandbox itself; its processes are killed when it ' +
          'ends (those it put in the background on purpose, `nohup … &` or `setsid`, keep running) or at `timeout_s`. ' +
          'By default the answer is ExecResult, with stdout and stderr as UTF-8 text (at most 16 MiB together). ' +
          `Streaming form: with \`Accept: ${EXEC_STREAM_TYPE}\` the answer is one JSON object per line: ` +
          '`{"stream":"stdout"|"stderr","data":"<base64>"}` as the command writes (bytes exactly, in order per stream), ' +
          'then `{"exit_code":N,"reason":"exited"|"timeout"|"killed"}` last (or `"reason":"error"` with `"error"`). ' +
          `Stdin: send the body as \`Content-Type: ${EXEC_STREAM_TYPE}\`: the first line is this JSON request, each ` +
          'further line `{"stdin":"<base64>"}`; the end of the body closes stdin (a JSON body gives empty stdin). ' +
          'A client that goes away kills the command. 409 when the job is not running.',
        params: JobParams,
        body: ExecRequest,
        consumes: ['application/json', EXEC_STREAM_TYPE],
        produces: ['application/json', EXEC_STREAM_TYPE],
        response: { 200: ExecResult, ...errors(400, 401, 404, 409, 413, 415, 500, 503) },
      },
    },
    async (request, reply) => {
      const userId = callerOf(request).id;
      const stdin = (request.headers['content-type'] ?? '').startsWith(EXEC_STREAM_TYPE) ? request.raw : undefined;
      if ((request.headers.accept ?? '').includes(EXEC_STREAM_TYPE)) {
        return execs.stream(userId, request.params.id, request.body, stdin, () => {
          reply.hijack();
          return reply.raw;
        });
      }
      const gone = new AbortController();
      const onGone = () => gone.abort();
      reply.raw.once('close', onGone);
      try {
        return await execs.collect(userId, request.params.id, request.body, stdin, gone.signal);
      } finally {
        reply.raw.off('close', onGone);
      }
    },
  );

  app.patch(
    '/api/v1/mags-jobs/:id',
    {
      schema: {
        tags: ['jobs'],
        summary: "Change a running or sleeping job's settings: no_sleep, startup_command",
        description:
          'no_sleep: true keeps the sandbox up for ever and starts it again when it dies (a persistent workspace only; ' +
          'a sleeping one is woken); false lets it sleep when idle. startup_command runs from the next start of the ' +
          'sandbox (null removes it). A finished job is 409.',
        params: JobParams,
        body: JobUpdate,
        response: { 200: JobStatus, ...errors(400, 401, 404, 409, 503) },
      },
    },
    async (request) => jobStatusView(await lifecycle.update(callerOf(request).id, request.params.id, request.body)),
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
      await jobs.delete(callerOf(request).id, request.params.id);
      return reply.code(204).send(null);
    },
  );
}

function lastEventId(request: FastifyRequest): number | undefined {
  const raw = request.headers['last-event-id'];
  const value = Array.isArray(raw) ? raw[0] : raw;
  return value !== undefined && /^\d{1,10}$/.test(value.trim()) ? Number(value.trim()) : undefined;
}
