// Logic without I/O: configuration, submission rules, ids, tokens, validation sentences.
import assert from 'node:assert/strict';
import { homedir } from 'node:os';
import { join, resolve } from 'node:path';
import { describe, test } from 'node:test';
import { MagsError } from '@mags/api';
import { redactUrl, resolveServerConfig } from '../src/config.js';
import { generateToken, hashToken } from '../src/http/auth.js';
import { describeValidation } from '../src/http/validation.js';
import { uuidv7 } from '../src/ids.js';
import { planJob } from '../src/jobs/submit.js';
import { labelUnder, looksLikeE2bLabel, parseE2bLabel } from '../src/router/e2b.js';

function refused(fn: () => unknown, status: number, pattern: RegExp): void {
  assert.throws(fn, (err: unknown) => {
    assert.ok(err instanceof MagsError, `expected a MagsError, got ${String(err)}`);
    assert.equal(err.status, status);
    assert.match(err.message, pattern);
    return true;
  });
}

describe('server configuration', () => {
  test('single sign-on: an https issuer with a client id and secret (from flags or the environment); else a sentence', () => {
    const c = resolveServerConfig(
      { oidcIssuer: 'https://accounts.example.com', oidcClientId: 'mags' },
      { MAGS_OIDC_CLIENT_SECRET: 's3cret' },
    );
    assert.deepEqual(c.oidc, {
      issuer: 'https://accounts.example.com',
      clientId: 'mags',
      clientSecret: 's3cret',
      nameClaim: 'preferred_username',
    });
    // A resolved configuration resolves to itself (createServer resolves what it is given again).
    assert.deepEqual(resolveServerConfig(c, {}).oidc, c.oidc);
    refused(
      () => resolveServerConfig({ oidcIssuer: 'http://idp.example.com', oidcClientId: 'x', oidcClientSecret: 'y' }, {}),
      400,
      /must be an https:\/\/ URL/,
    );
    refused(() => resolveServerConfig({ oidcIssuer: 'https://idp.example.com' }, {}), 400, /client id and secret/);
    refused(() => resolveServerConfig({ oidcClientId: 'x' }, {}), 400, /needs --oidc-issuer/);
    assert.equal(
      resolveServerConfig({ oidcIssuer: 'http://127.0.0.1:9', oidcClientId: 'x', oidcClientSecret: 'y' }, {}).oidc
        ?.issuer,
      'http://127.0.0.1:9',
    );
  });

  test('defaults: ~/.mags, a SQLite file and an object directory in it, 127.0.0.1:7373, info, 5 GiB uploads', () => {
    const c = resolveServerConfig({}, {});
    assert.deepEqual(c, {
      dataDir: join(homedir(), '.mags'),
      database: join(homedir(), '.mags', 'mags.db'),
      host: '127.0.0.1',
      port: 7373,
      logLevel: 'info',
      objects: `file://${join(homedir(), '.mags', 'objects')}`,
      objectsCredentials: { accessKeyId: undefined, secretAccessKey: undefined },
      maxUploadBytes: 5 * 1024 ** 3,
      localWorkspaceTtlS: 600,
      maxDiskGbPerUser: 1024,
      sandboxDiskGb: 2,
      maxLogMb: 64,
      retainDays: 30,
      maxFollowersPerUser: 64,
      gcIntervalMs: 3_600_000,
      gcGraceMs: 7_200_000,
      sleepAfterMs: 600_000,
      stopAfterMs: 3_600_000,
      sshPort: 2222,
      sshHost: undefined,
      routerPort: 7380,
      dashboardDir: resolve(import.meta.dirname, '..', '..', 'dashboard', 'dist'),
      appsDomain: 'localhost',
      e2bPort: 0,
      e2bDomain: undefined,
      tlsCert: undefined,
      tlsKey: undefined,
      routerFront: 'haproxy',
      oidc: undefined,
    });
  });

  test('the router port, apps domain and TLS files come from input, then the environment; 0 turns URLs off', () => {
    const env = { MAGS_ROUTER_PORT: '8443', MAGS_APPS_DOMAIN: 'Apps.Example.com' };
    const fromEnv = resolveServerConfig({ dataDir: '/d' }, env);
    assert.deepEqual([fromEnv.routerPort, fromEnv.appsDomain], [8443, 'apps.example.com']);
    const explicit = resolveServerConfig({ dataDir: '/d', routerPort: '0', tlsCert: 'c.pem', tlsKey: '/k.pem' }, env);
    assert.equal(explicit.routerPort, 0);
    assert.equal(explicit.tlsKey, '/k.pem');
    assert.ok(explicit.tlsCert?.endsWith('/c.pem'));
    refused(() => resolveServerConfig({ routerPort: 70000 }, {}), 400, /^routerPort: /);
    refused(() => resolveServerConfig({ appsDomain: 'a b.com' }, {}), 400, /^appsDomain: /);
    refused(() => resolveServerConfig({ tlsCert: 'c.pem' }, {}), 400, /tlsCert and tlsKey go together/);
  });

  test('the E2B API is off unless a port is given (input, then the environment); its domain may carry a port', () => {
    const env = { MAGS_E2B_PORT: '3000', MAGS_E2B_DOMAIN: 'E2B.test:8443' };
    const fromEnv = resolveServerConfig({ dataDir: '/d' }, env);
    assert.deepEqual([fromEnv.e2bPort, fromEnv.e2bDomain], [3000, 'e2b.test:8443']);
    const explicit = resolveServerConfig({ dataDir: '/d', e2bPort: '0', e2bDomain: 'e2b.example.com' }, env);
    assert.deepEqual([explicit.e2bPort, explicit.e2bDomain], [0, 'e2b.example.com']);
    refused(() => resolveServerConfig({ e2bPort: 70000 }, {}), 400, /^e2bPort: /);
    refused(() => resolveServerConfig({ e2bPort: 'x' }, {}), 400, /^e2bPort: /);
    for (const bad of ['a b.com', 'e2b.test:0', 'e2b.test:99999', 'e2b.test:1:2', 'https://e2b.test'])
      refused(() => resolveServerConfig({ e2bDomain: bad }, {}), 400, /^e2bDomain: /);
  });

  test('the router front is haproxy unless node is asked for (input, then the environment); others are refused', () => {
    assert.equal(resolveServerConfig({ dataDir: '/d' }, {}).routerFront, 'haproxy');
    assert.equal(resolveServerConfig({ dataDir: '/d' }, { MAGS_ROUTER_FRONT: 'node' }).routerFront, 'node');
    assert.equal(
      resolveServerConfig({ dataDir: '/d', routerFront: 'haproxy' }, { MAGS_ROUTER_FRONT: 'node' }).routerFront,
      'haproxy',
    );
    refused(
      () => resolveServerConfig({ routerFront: 'nginx' }, {}),
      400,
      /^routerFront: "nginx" is not a router front/,
    );
  });

  test('the SSH gateway port and host come from input, then the environment; 0 turns the gateway off', () => {
    const env = { MAGS_SSH_PORT: '2022', MAGS_SSH_HOST: 'ssh.example.com' };
    const fromEnv = resolveServerConfig({ dataDir: '/d' }, env);
    assert.deepEqual([fromEnv.sshPort, fromEnv.sshHost], [2022, 'ssh.example.com']);
    const explicit = resolveServerConfig({ dataDir: '/d', sshPort: '0', sshHost: '10.0.0.5' }, env);
    assert.deepEqual([explicit.sshPort, explicit.sshHost], [0, '10.0.0.5']);
    refused(() => resolveServerConfig({ sshPort: 70000 }, {}), 400, /^sshPort: /);
    refused(() => resolveServerConfig({ sshHost: 'a b' }, {}), 400, /^sshHost: /);
  });

  test('the output cap, the retention and the follower limit come from input, then the environment', () => {
    const env = { MAGS_MAX_LOG_MB: '8', MAGS_RETAIN_DAYS: '0', MAGS_MAX_FOLLOWERS: '5' };
    const fromEnv = resolveServerConfig({ dataDir: '/d' }, env);
    assert.deepEqual([fromEnv.maxLogMb, fromEnv.retainDays, fromEnv.maxFollowersPerUser], [8, 0, 5]);
    const explicit = resolveServerConfig({ dataDir: '/d', maxLogMb: 1, retainDays: '7', maxFollowersPerUser: 2 }, env);
    assert.deepEqual([explicit.maxLogMb, explicit.retainDays, explicit.maxFollowersPerUser], [1, 7, 2]);
    refused(() => resolveServerConfig({ maxLogMb: 0 }, {}), 400, /^maxLogMb: /);
    refused(() => resolveServerConfig({}, { MAGS_RETAIN_DAYS: '-1' }), 400, /^retainDays: /);
    refused(() => resolveServerConfig({ maxFollowersPerUser: 0 }, {}), 400, /^maxFollowersPerUser: /);
  });

  test('the object store, its credentials and the upload limit come from input, then the environment', () => {
    const env = {
      MAGS_OBJECTS_URL: 's3://bucket?endpoint=http://127.0.0.1:7480',
      AWS_ACCESS_KEY_ID: 'AK',
      AWS_SECRET_ACCESS_KEY: 'SK',
      MAGS_MAX_UPLOAD_BYTES: '1048576',
      MAGS_WORKSPACE_TTL: '60',
      MAGS_MAX_DISK_GB_PER_USER: '50',
    };
    const fromEnv = resolveServerConfig({ dataDir: '/d' }, env);
    assert.equal(fromEnv.objects, 's3://bucket?endpoint=http://127.0.0.1:7480');
    assert.deepEqual(fromEnv.objectsCredentials, { accessKeyId: 'AK', secretAccessKey: 'SK' });
    assert.equal(fromEnv.maxUploadBytes, 1048576);
    assert.equal(fromEnv.localWorkspaceTtlS, 60);
    assert.equal(fromEnv.maxDiskGbPerUser, 50);
    const explicit = resolveServerConfig({ dataDir: '/d', objects: 'rel/objects', maxUploadBytes: 10 }, env);
    assert.equal(explicit.objects, resolve('rel/objects'));
    assert.equal(explicit.maxUploadBytes, 10);
    assert.equal(resolveServerConfig({ dataDir: '/d', objects: 'file:///srv/o' }, {}).objects, 'file:///srv/o');
    refused(() => resolveServerConfig({ objects: 'ftp://x/y' }, {}), 400, /^objects: /);
    refused(
      () => resolveServerConfig({ objects: 's3://KEY:SECRET@b/ftp', maxUploadBytes: 0 }, {}),
      400,
      /^maxUploadBytes: /,
    );
    refused(() => resolveServerConfig({}, { MAGS_MAX_UPLOAD_BYTES: 'lots' }), 400, /^maxUploadBytes: /);
    refused(() => resolveServerConfig({ localWorkspaceTtlS: 0 }, {}), 400, /^localWorkspaceTtlS: /);
    refused(() => resolveServerConfig({ maxDiskGbPerUser: 0 }, {}), 400, /^maxDiskGbPerUser: /);
    refused(() => resolveServerConfig({ sandboxDiskGb: 0 }, {}), 400, /^sandboxDiskGb: /);
    assert.equal(resolveServerConfig({}, { MAGS_SANDBOX_DISK_GB: '1' }).sandboxDiskGb, 1);
    const secret = (() => {
      try {
        resolveServerConfig({ objects: 'gopher://KEY:SECRET@x' }, {});
      } catch (err) {
        return (err as Error).message;
      }
      return '';
    })();
    assert.doesNotMatch(secret, /SECRET/);
  });

  test('the environment is read only when given, and explicit input wins over it', () => {
    const env = {
      MAGS_DATA_DIR: '/srv/mags',
      MAGS_PORT: '8080',
      MAGS_HOST: '0.0.0.0',
      MAGS_LOG_LEVEL: 'DEBUG',
      HOME: '/home/x',
    };
    const fromEnv = resolveServerConfig({}, env);
    assert.deepEqual(
      [fromEnv.dataDir, fromEnv.database, fromEnv.port, fromEnv.host, fromEnv.logLevel],
      ['/srv/mags', '/srv/mags/mags.db', 8080, '0.0.0.0', 'debug'],
    );
    const explicit = resolveServerConfig(
      { port: 0, dataDir: '~/d', database: 'postgres://u:secret@db:5432/mags' },
      env,
    );
    assert.deepEqual(
      [explicit.port, explicit.dataDir, explicit.database],
      [0, '/home/x/d', 'postgres://u:secret@db:5432/mags'],
    );
    assert.equal(resolveServerConfig({ database: 'rel/x.db' }, {}).database, resolve('rel/x.db'));
    assert.equal(resolveServerConfig({ database: 'sqlite:/tmp/a.db' }, {}).database, '/tmp/a.db');
  });

  test('bad settings are refused with a sentence naming them', () => {
    refused(() => resolveServerConfig({ port: 70000 }, {}), 400, /^port: /);
    refused(() => resolveServerConfig({}, { MAGS_PORT: 'eighty' }), 400, /^port: /);
    refused(() => resolveServerConfig({ port: -1 }, {}), 400, /^port: /);
    refused(() => resolveServerConfig({ logLevel: 'loud' }, {}), 400, /^logLevel: .*one of/);
    refused(() => resolveServerConfig({ database: 'mysql://x/y' }, {}), 400, /^database: /);
    refused(() => resolveServerConfig({ database: 'postgres://' }, {}), 400, /^database: /);
    refused(() => resolveServerConfig({ host: 'a b' }, {}), 400, /^host: /);
  });

  test('database passwords are not printed', () => {
    assert.equal(redactUrl('postgres://mags:s3cret@db:5432/mags'), 'postgres://mags:***@db:5432/mags');
    assert.equal(redactUrl('postgres://db/mags'), 'postgres://db/mags');
  });
});

describe('job submission rules', () => {
  test('defaults: 1 vcpu, 1024 MB, 3600 s, internet, 2 GB', () => {
    assert.deepEqual(planJob({ script: 'true' }), {
      name: null,
      script: 'true',
      spec: { vcpus: 1, memory_mb: 1024, timeout_s: 3600, network: 'internet', disk_gb: 2, environment: {} },
    });
  });

  test('a long-lived sandbox without a workspace: only for the server itself (E2B base sandboxes)', () => {
    refused(() => planJob({ long_lived: true }), 400, /long_lived requires workspace_id/);
    const plan = planJob({ long_lived: true, network: 'none' }, { workspaceless: true });
    assert.equal(plan.workspace, undefined);
    assert.equal(plan.name, null);
    assert.equal(plan.spec.long_lived, true);
    assert.equal(plan.spec.network, 'none');
  });

  test('flags that need each other fail with the CLI sentence', () => {
    refused(() => planJob({ script: 'x', no_sleep: true }), 400, /--no-sleep requires -p/);
    refused(() => planJob({ script: 'x', url: true }), 400, /--url requires -p/);
    refused(() => planJob({ script: 'x', port: 80 }), 400, /--port goes with --url/);
    refused(() => planJob({ script: 'x', port: 80, url: true }), 400, /--url requires -p/);
    refused(() => planJob({ script: 'x', ephemeral: true, persistent: true }), 400, /-e cannot be combined with -p/);
  });

  test('workspace options: -p goes with -w, -e excludes -w, a workspace is not its own base', () => {
    refused(
      () => planJob({ script: 'x', persistent: true }),
      400,
      /^persistent requires workspace_id \(-p goes with -w\)$/,
    );
    refused(() => planJob({ script: 'x', persistent: true, no_sleep: true }), 400, /-p goes with -w/);
    refused(() => planJob({ script: 'x', ephemeral: true, workspace_id: 'w' }), 400, /-e cannot be combined with -w/);
    refused(() => planJob({ script: 'x', workspace_id: 'w', base_workspace_id: 'w' }), 400, /its own base/);
  });

  test('a workspace, base, files and an explicit disk are carried in the plan; repeated file ids count once', () => {
    const plan = planJob({
      script: 'x',
      workspace_id: 'w',
      persistent: true,
      base_workspace_id: 'b',
      file_ids: ['f1', 'f2', 'f1'],
      disk_gb: 4,
    });
    assert.deepEqual(plan.workspace, { name: 'w', persistent: true });
    assert.equal(plan.base, 'b');
    assert.deepEqual(plan.fileIds, ['f1', 'f2']);
    assert.equal(plan.diskGb, 4);
    assert.equal(plan.spec.disk_gb, 4);
    assert.deepEqual(planJob({ script: 'x', workspace_id: 'w' }).workspace, { name: 'w', persistent: false });
    assert.equal(
      planJob({ script: 'x', workspace_id: 'w' }).diskGb,
      undefined,
      'no --disk: an existing workspace keeps its size',
    );
  });

  test('options not implemented yet are refused with 422 naming the option; no-op values are accepted', () => {
    const url = planJob({ script: 'x', workspace_id: 'w', persistent: true, url: true });
    assert.deepEqual(url.url, { port: 8080, private: false }, '--url without --port: 8080');
    const priv = planJob({
      script: 'x',
      workspace_id: 'w',
      persistent: true,
      url: true,
      port: 3000,
      url_private: true,
    });
    assert.deepEqual(priv.url, { port: 3000, private: true });
    refused(() => planJob({ script: 'x', url_private: true }), 400, /--url-private goes with --url/);
    refused(
      () => planJob({ script: 'x', workspace_id: 'w', persistent: true, url: true, network: 'none' }),
      400,
      /network none/,
    );
    refused(
      () => planJob({ script: 'x', workspace_id: 'w', persistent: true, url: true, port: 22 }),
      400,
      /port 22 is SSH/,
    );
    refused(() => planJob({ script: 'x', startup_command: 'npm start' }), 400, /startup_command requires workspace_id/);
    const always = planJob({ script: 'x', workspace_id: 'w', persistent: true, no_sleep: true, startup_command: 'a' });
    assert.equal(always.spec.no_sleep, true);
    assert.equal(always.spec.startup_command, 'a');
    assert.ok(planJob({ script: 'x', ephemeral: true, persistent: false, no_sleep: false, url: false, file_ids: [] }));
    assert.equal(planJob({ script: 'x', file_ids: [] }).fileIds, undefined);
  });

  test('scripts and environment must be text a process can receive', () => {
    refused(() => planJob({ script: 'a\0b' }), 400, /^script: .*NUL/);
    refused(() => planJob({ script: 'x', environment: { A: 'a\0' } }), 400, /^environment\.A: /);
    refused(() => planJob({ script: 'x', environment: { 'A-B': 'x' } }), 400, /not a valid variable name/);
    refused(() => planJob({ script: '\ud800' }), 400, /^script: must be valid Unicode/);
    assert.equal(planJob({ script: 'echo 😀' }).script, 'echo 😀');
  });
});

describe('identifiers and tokens', () => {
  test('job ids are UUIDv7 and strictly increasing, even thousands within one millisecond', () => {
    const ids = Array.from({ length: 10_000 }, () => uuidv7());
    for (const id of ids) assert.match(id, /^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
    for (let i = 1; i < ids.length; i++) assert.ok(ids[i - 1] < ids[i], `${ids[i - 1]} < ${ids[i]}`);
    assert.equal(new Set(ids).size, ids.length);
  });

  test('tokens are mags_ + 32 random bytes; only their sha256 is kept', () => {
    const a = generateToken();
    const b = generateToken();
    assert.match(a.token, /^mags_[A-Za-z0-9_-]{43}$/);
    assert.equal(Buffer.from(a.token.slice(5), 'base64url').length, 32);
    assert.notEqual(a.token, b.token);
    assert.equal(a.hash, hashToken(a.token));
    assert.match(a.hash, /^[0-9a-f]{64}$/);
    assert.equal(a.prefix, a.token.slice(0, 12));
  });
});

describe('validation sentences', () => {
  test('name the field and say what is wrong', () => {
    const e = (keyword: string, instancePath: string, params: Record<string, unknown> = {}) => ({
      keyword,
      instancePath,
      params,
    });
    assert.equal(
      describeValidation([e('required', '', { requiredProperties: ['script'] })], 'body'),
      'script: is required',
    );
    assert.equal(describeValidation([e('type', '/script', { type: 'string' })], 'body'), 'script: must be a string');
    assert.equal(
      describeValidation([e('minLength', '/script', { limit: 1 })], 'body'),
      'script: must be a non-empty string',
    );
    assert.equal(
      describeValidation([e('type', '', { type: 'object' })], 'body'),
      'the request body must be a JSON object',
    );
    assert.equal(
      describeValidation([e('maximum', '/page_size', { comparison: '<=', limit: 100 })], 'querystring'),
      'page_size: must be at most 100',
    );
    assert.equal(
      describeValidation(
        [e('boolean', '/x~1y', {}), e('additionalProperties', '', { additionalProperties: ['x/y'] })],
        'body',
      ),
      'x/y: is not a known field',
    );
  });
});

describe('E2B host names in the router', () => {
  const id = '0190f3a2-7b4c-7d5e-8f60-0123456789ab';
  test('api, 49983-<id> and <port>-<id> are E2B hosts; the port is 1–65535 without leading zeros', () => {
    assert.deepEqual(parseE2bLabel('api'), { kind: 'api' });
    assert.deepEqual(parseE2bLabel(`49983-${id}`), { kind: 'envd', sandboxId: id });
    assert.deepEqual(parseE2bLabel(`8000-${id}`), { kind: 'port', sandboxId: id, port: 8000 });
    assert.deepEqual(parseE2bLabel(`1-${id}`), { kind: 'port', sandboxId: id, port: 1 });
    assert.deepEqual(parseE2bLabel(`65535-${id}`), { kind: 'port', sandboxId: id, port: 65535 });
    for (const label of [
      `0-${id}`,
      `65536-${id}`,
      `99999-${id}`,
      `08000-${id}`,
      `123456-${id}`,
      `-${id}`,
      `8000${id}`,
      `8000-${id.slice(0, -1)}`,
      `8000-${id}x`,
      `8000-${id.replaceAll('-', '')}`,
      '3f9a0c1e2b4d',
      'myalias',
      'apis',
    ])
      assert.equal(parseE2bLabel(label), undefined, label);
    assert.equal(looksLikeE2bLabel(`8000-${id}`), true);
  });

  test('a host under the E2B domain gives its one label, whatever the port and a trailing dot', () => {
    assert.equal(labelUnder(`8000-${id}.E2B.example.com:8443`, 'e2b.example.com:8443'), `8000-${id}`);
    assert.equal(labelUnder('api.e2b.example.com.', 'e2b.example.com'), 'api');
    assert.equal(labelUnder(`a.8000-${id}.e2b.example.com`, 'e2b.example.com'), undefined);
    assert.equal(labelUnder('e2b.example.com', 'e2b.example.com'), undefined);
    assert.equal(labelUnder('api.evil-e2b.example.com', 'e2b.example.com'), undefined);
    assert.equal(labelUnder(undefined, 'e2b.example.com'), undefined);
  });
});
