// The E2B control plane (REST, as E2B's API at api.e2b.app): create, connect, get, list, kill, timeout, pause and
// metrics of the caller's sandboxes. Both API versions' paths are served (SDK ≤2.45 uses the v1 ones). Bodies are
// checked with TypeBox; what Mags cannot honour is refused with a 400 naming the field, never ignored.
import { ENV_NAME_PATTERN, MagsError } from '@mags/api';
import { type Static, Type } from 'typebox';
import { callerOf, type MagsApp } from '../http/request.js';
import {
  DEFAULT_TIMEOUT_S,
  type E2bSandboxes,
  ENVD_VERSION,
  MAX_TIMEOUT_S,
  metadataOf,
  type SandboxView,
} from './sandboxes.js';

export interface E2bRouteDeps {
  sandboxes: E2bSandboxes;
  domain: () => string;
}

const Timeout = Type.Integer({ minimum: 1, maximum: MAX_TIMEOUT_S, description: 'seconds' });
const Metadata = Type.Record(Type.String({ minLength: 1, maxLength: 256 }), Type.String({ maxLength: 4096 }), {
  maxProperties: 64,
});

const NewSandbox = Type.Object(
  {
    templateID: Type.Optional(Type.String({ minLength: 1, maxLength: 200 })),
    metadata: Type.Optional(Metadata),
    envVars: Type.Optional(
      Type.Record(Type.String({ pattern: ENV_NAME_PATTERN }), Type.String({ maxLength: 128 * 1024 }), {
        maxProperties: 256,
      }),
    ),
    timeout: Type.Optional(Timeout),
    autoPause: Type.Optional(Type.Boolean()),
    autoPauseMemory: Type.Optional(Type.Boolean()),
    autoResume: Type.Optional(Type.Object({ enabled: Type.Boolean() }, { additionalProperties: false })),
    allow_internet_access: Type.Optional(Type.Boolean()),
    secure: Type.Optional(Type.Boolean()),
    network: Type.Optional(
      Type.Object(
        {
          allowPublicTraffic: Type.Optional(Type.Boolean()),
          allowOut: Type.Optional(Type.Unknown()),
          denyOut: Type.Optional(Type.Unknown()),
          rules: Type.Optional(Type.Unknown()),
          egressProxy: Type.Optional(Type.Unknown()),
          maskRequestHost: Type.Optional(Type.Unknown()),
          httpsPorts: Type.Optional(Type.Unknown()),
        },
        { additionalProperties: false },
      ),
    ),
    mcp: Type.Optional(Type.Unknown()),
    iam: Type.Optional(Type.Unknown()),
    volumeMounts: Type.Optional(Type.Unknown()),
  },
  { additionalProperties: false },
);
type NewSandbox = Static<typeof NewSandbox>;

const SandboxParams = Type.Object({ sandboxID: Type.String({ minLength: 1, maxLength: 200 }) });
const ConnectBody = Type.Union([
  Type.Object(
    { timeout: Type.Optional(Timeout), memory: Type.Optional(Type.Boolean()) },
    { additionalProperties: false },
  ),
  Type.Undefined(),
  Type.Null(),
]);
const TimeoutBody = Type.Object({ timeout: Timeout }, { additionalProperties: false });
const PauseBody = Type.Union([
  Type.Object({ memory: Type.Optional(Type.Boolean()) }, { additionalProperties: false }),
  Type.Undefined(),
  Type.Null(),
]);
const ListQuery = Type.Object({
  metadata: Type.Optional(Type.String({ maxLength: 16384 })),
  query: Type.Optional(Type.String({ maxLength: 16384 })),
  state: Type.Optional(Type.Union([Type.String({ maxLength: 100 }), Type.Array(Type.String({ maxLength: 100 }))])),
  startedAfter: Type.Optional(Type.String({ maxLength: 100 })),
  template: Type.Optional(Type.String({ maxLength: 200 })),
  order: Type.Optional(Type.Union([Type.Literal('asc'), Type.Literal('desc')])),
  limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 1000 })),
  nextToken: Type.Optional(Type.String({ maxLength: 500 })),
});
const MetricsQuery = Type.Object({
  start: Type.Optional(Type.Integer({ minimum: 0 })),
  end: Type.Optional(Type.Integer({ minimum: 0 })),
});

const ENV_NAME = new RegExp(ENV_NAME_PATTERN);

/** Fields of the create body Mags cannot honour, with what to do instead. */
function refuseUnsupported(body: NewSandbox): void {
  const refuse = (field: string, why: string) => {
    throw MagsError.invalid(`${field}: ${why}`);
  };
  if (body.mcp !== undefined && body.mcp !== null)
    refuse('mcp', 'MCP gateways are not supported by Mags; leave it out');
  if (body.iam !== undefined && body.iam !== null) refuse('iam', 'IAM tokens are not supported by Mags; leave it out');
  if (body.volumeMounts !== undefined && !(Array.isArray(body.volumeMounts) && body.volumeMounts.length === 0)) {
    refuse(
      'volumeMounts',
      'E2B volumes are not supported by Mags; use a persistent workspace as the template (templateID) instead',
    );
  }
  for (const key of Object.keys(body.envVars ?? {})) {
    if (!ENV_NAME.test(key)) {
      refuse(
        'envVars',
        `${JSON.stringify(key.slice(0, 100))} is not a valid variable name (letters, digits and _, not starting with a digit)`,
      );
    }
  }
  const net = body.network ?? {};
  for (const field of ['allowOut', 'denyOut', 'rules', 'egressProxy', 'maskRequestHost', 'httpsPorts'] as const) {
    const v = net[field];
    if (v === undefined || v === null || (Array.isArray(v) && v.length === 0)) continue;
    refuse(
      `network.${field}`,
      'egress rules are not supported by Mags: a sandbox has the internet or none (allow_internet_access)',
    );
  }
  if (body.autoResume?.enabled === true && body.autoPause !== true) {
    refuse('autoResume', 'autoResume needs autoPause: true (a sandbox that is killed at its timeout cannot resume)');
  }
}

export function registerE2bRoutes(app: MagsApp, deps: E2bRouteDeps): void {
  const { sandboxes } = deps;
  const created = (row: SandboxView['row'], jobId: string) => ({
    sandboxID: jobId,
    templateID: row.template_id,
    clientID: 'mags',
    envdVersion: ENVD_VERSION,
    envdAccessToken: row.envd_token,
    trafficAccessToken: row.traffic_token,
    domain: deps.domain(),
  });
  const detail = (v: SandboxView) => ({
    sandboxID: v.job.id,
    templateID: v.row.template_id,
    alias: v.job.name ?? undefined,
    clientID: 'mags',
    metadata: metadataOf(v.row),
    startedAt: new Date(v.job.started_at ?? v.job.created_at).toISOString(),
    endAt: new Date(v.row.end_at).toISOString(),
    state: v.state,
    cpuCount: v.job.spec?.vcpus ?? 1,
    memoryMB: v.job.spec?.memory_mb ?? 0,
    diskSizeMB: (v.job.spec?.disk_gb ?? 0) * 1024,
    envdVersion: ENVD_VERSION,
    envdAccessToken: v.row.envd_token,
    allowInternetAccess: v.job.spec?.network !== 'none',
    network: { allowPublicTraffic: v.row.traffic_token === null },
    lifecycle: { onTimeout: v.row.auto_pause === 1 ? 'pause' : 'kill', autoResume: v.row.auto_pause === 1 },
    domain: deps.domain(),
    volumeMounts: [],
  });

  const create = async (body: NewSandbox | undefined | null, userId: string, signal: AbortSignal) => {
    const b = body ?? {};
    refuseUnsupported(b);
    const { row, job } = await sandboxes.create(
      userId,
      {
        templateID: b.templateID ?? 'base',
        metadata: b.metadata ?? {},
        envVars: b.envVars ?? {},
        timeoutS: b.timeout ?? DEFAULT_TIMEOUT_S,
        autoPause: b.autoPause === true,
        allowInternetAccess: b.allow_internet_access !== false,
        allowPublicTraffic: b.network?.allowPublicTraffic !== false,
      },
      signal,
    );
    return created(row, job.id);
  };
  for (const url of ['/sandboxes', '/v2/sandboxes']) {
    app.post(
      url,
      { schema: { body: Type.Union([NewSandbox, Type.Undefined(), Type.Null()]) } },
      async (request, reply) => {
        // A client that gives up (its request timeout) while the sandbox starts leaves nothing behind.
        const gone = new AbortController();
        reply.raw.once('close', () => {
          if (!reply.raw.writableFinished) gone.abort();
        });
        const out = await create(request.body, callerOf(request).id, gone.signal);
        return reply.code(201).send(out);
      },
    );
  }

  for (const url of ['/sandboxes/:sandboxID/connect', '/v2/sandboxes/:sandboxID/connect']) {
    app.post(url, { schema: { params: SandboxParams, body: ConnectBody } }, async (request, reply) => {
      const { row, job, resumed } = await sandboxes.connect(
        callerOf(request).id,
        request.params.sandboxID,
        request.body?.timeout,
      );
      // E2B answers 201 when it resumed a paused sandbox, 200 when it was running.
      return reply.code(resumed ? 201 : 200).send(created(row, job.id));
    });
  }

  app.get('/sandboxes/:sandboxID', { schema: { params: SandboxParams } }, async (request) => {
    const { row, job } = await sandboxes.find(callerOf(request).id, request.params.sandboxID);
    return detail(sandboxes.view(row, job));
  });

  const list = async (q: Static<typeof ListQuery>, userId: string, paged: boolean) => {
    let all = await sandboxes.list(userId);
    const wanted = metadataFilter(q.metadata ?? q.query);
    if (wanted) all = all.filter((v) => matches(metadataOf(v.row), wanted));
    const states = stateFilter(q.state);
    if (states) all = all.filter((v) => states.has(v.state));
    if (q.template !== undefined) all = all.filter((v) => v.row.template_id === q.template);
    if (q.startedAfter !== undefined) {
      const after = Date.parse(q.startedAfter);
      if (Number.isNaN(after)) throw MagsError.invalid('startedAfter: must be a date and time (RFC 3339)');
      all = all.filter((v) => (v.job.started_at ?? v.job.created_at) > after);
    }
    // Newest first unless asked otherwise; ties by id, so that the order (and a page's token) is stable.
    const key = (v: SandboxView) => `${String(v.row.created_at).padStart(15, '0')}:${v.job.id}`;
    all.sort((a, b) => (key(a) < key(b) ? -1 : key(a) > key(b) ? 1 : 0));
    if (q.order !== 'asc') all.reverse();
    if (!paged) return { items: all, next: undefined };
    let start = 0;
    if (q.nextToken !== undefined) {
      const after = decodeToken(q.nextToken);
      start = all.findIndex((v) => (q.order === 'asc' ? key(v) > after : key(v) < after));
      if (start < 0) start = all.length;
    }
    const limit = q.limit ?? 100;
    const items = all.slice(start, start + limit);
    const next = start + limit < all.length ? encodeToken(key(items[items.length - 1])) : undefined;
    return { items, next };
  };
  app.get('/v2/sandboxes', { schema: { querystring: ListQuery } }, async (request, reply) => {
    const { items, next } = await list(request.query, callerOf(request).id, true);
    if (next) reply.header('x-next-token', next);
    return items.map(detail);
  });
  app.get('/sandboxes', { schema: { querystring: ListQuery } }, async (request) => {
    const { items } = await list(request.query, callerOf(request).id, false);
    return items.map(detail);
  });

  app.delete('/sandboxes/:sandboxID', { schema: { params: SandboxParams } }, async (request, reply) => {
    await sandboxes.kill(callerOf(request).id, request.params.sandboxID);
    return reply.code(204).send();
  });

  app.post(
    '/sandboxes/:sandboxID/timeout',
    { schema: { params: SandboxParams, body: TimeoutBody } },
    async (request, reply) => {
      await sandboxes.setTimeout(callerOf(request).id, request.params.sandboxID, request.body.timeout);
      return reply.code(204).send();
    },
  );

  app.post(
    '/sandboxes/:sandboxID/pause',
    { schema: { params: SandboxParams, body: PauseBody } },
    async (request, reply) => {
      await sandboxes.pause(callerOf(request).id, request.params.sandboxID);
      return reply.code(204).send();
    },
  );
  // E2B's older resume call: as connect.
  app.post(
    '/sandboxes/:sandboxID/resume',
    { schema: { params: SandboxParams, body: ConnectBody } },
    async (request, reply) => {
      const { row, job } = await sandboxes.connect(
        callerOf(request).id,
        request.params.sandboxID,
        request.body?.timeout,
      );
      return reply.code(201).send(created(row, job.id));
    },
  );

  app.get(
    '/sandboxes/:sandboxID/metrics',
    { schema: { params: SandboxParams, querystring: MetricsQuery } },
    async (request) => {
      const { start, end } = request.query;
      if (start !== undefined && end !== undefined && end < start) {
        throw MagsError.invalid('end: must not be before start (both are Unix times in seconds)');
      }
      return sandboxes.metrics(callerOf(request).id, request.params.sandboxID, { start, end });
    },
  );
}

/**
 * The SDK's metadata filter: `key=value` pairs form-encoded, each key and value percent-encoded once more, and the
 * whole percent-encoded again as a query value (Fastify decoded that last layer already).
 */
function metadataFilter(raw: string | undefined): Map<string, string> | undefined {
  if (raw === undefined || raw === '') return undefined;
  const wanted = new Map<string, string>();
  for (const [k, v] of new URLSearchParams(raw)) {
    try {
      wanted.set(decodeURIComponent(k), decodeURIComponent(v));
    } catch {
      throw MagsError.invalid(`metadata: "${raw.slice(0, 100)}" is not a valid filter (key=value pairs, URL-encoded)`);
    }
  }
  return wanted;
}

function matches(metadata: Record<string, string>, wanted: Map<string, string>): boolean {
  for (const [k, v] of wanted) if (metadata[k] !== v) return false;
  return true;
}

function stateFilter(raw: string | string[] | undefined): Set<string> | undefined {
  if (raw === undefined) return undefined;
  const states = (Array.isArray(raw) ? raw : [raw]).flatMap((s) => s.split(',')).filter((s) => s !== '');
  for (const s of states) {
    if (s !== 'running' && s !== 'paused') throw MagsError.invalid(`state: "${s}" is not a state (running or paused)`);
  }
  return states.length > 0 ? new Set(states) : undefined;
}

function encodeToken(key: string): string {
  return Buffer.from(key).toString('base64url');
}

function decodeToken(token: string): string {
  const key = Buffer.from(token, 'base64url').toString();
  if (!/^\d{15}:[0-9a-f-]{36}$/.test(key)) {
    throw MagsError.invalid('nextToken: is not a token this server gave (take it from the X-Next-Token header)');
  }
  return key;
}
