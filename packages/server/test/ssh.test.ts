// SSH keys and access through the API and the store, without sandboxes (a fake agent): what a user would notice is
// a key accepted that should not be (another user's, a removed one, one of a deleted job), a malformed key stored,
// a private key that plain `ssh -i` refuses, or another user's sandbox or keys reachable. On SQLite and PostgreSQL.
import assert from 'node:assert/strict';
import net from 'node:net';
import { after, before, describe, test } from 'node:test';
import ssh2 from 'ssh2';
import { freePort } from '../../../test/harness.js';
import { ed25519Pair, fingerprintOf, parsePublicKey, SshKeys } from '../src/ssh/keys.js';
import { errorBody, freshPostgres, startTestServer, type TestServer } from './helpers.js';

const { utils } = ssh2;

// ed25519Pair, not ssh2's generator alone: about one key in 250 of that does not load.
const ed25519 = () => ed25519Pair('me@laptop').public;

describe('public key lines', () => {
  test('ed25519, ecdsa and rsa keys are accepted, normalised to TYPE BASE64, with the comment apart', () => {
    for (const [type, opts] of [
      ['ed25519', {}],
      ['ecdsa', { bits: 256 }],
      ['rsa', { bits: 2048 }],
    ] as const) {
      const line = (utils.generateKeyPairSync as (t: string, o: object) => { public: string })(type, {
        ...opts,
        comment: 'c x',
      }).public;
      const parsed = parsePublicKey(`  ${line}\n`);
      assert.equal(parsed.normalised, line.split(' ').slice(0, 2).join(' '));
      assert.equal(parsed.comment, 'c x');
      assert.match(fingerprintOf(parsed.key.getPublicSSH()), /^SHA256:[A-Za-z0-9+/]{43}$/);
    }
  });

  test('anything else is refused with a sentence: empty, two keys, a private key, DSA, bad base64, a type mismatch', () => {
    const pair = ed25519Pair('');
    const [, data] = pair.public.split(' ');
    const cases: Array<[string, RegExp]> = [
      ['', /give one OpenSSH public key line/],
      [`${pair.public}\n${ed25519()}`, /one key, on one line/],
      [pair.private, /this is a private key/],
      [`ssh-dss ${data}`, /not a supported key type/],
      ['ssh-ed25519 not*base64', /not base64/],
      [`ssh-rsa ${data}`, /not a valid ssh-rsa public key/],
      ['ssh-ed25519 AAAA', /not a valid ssh-ed25519 public key/],
    ];
    for (const [line, sentence] of cases) {
      assert.throws(
        () => parsePublicKey(line),
        (err: { status?: number; message?: string }) => err.status === 400 && sentence.test(err.message ?? ''),
        line.slice(0, 40),
      );
    }
  });
});

for (const backend of ['SQLite', 'PostgreSQL'] as const) {
  describe(`ssh keys and access on ${backend}`, () => {
    let t: TestServer;
    let drop: () => Promise<void> = async () => undefined;
    let otherAuth: { authorization: string };
    let otherId: string;
    let ownerId: string;
    let sshPort: number;

    before(async () => {
      let database: string | undefined;
      if (backend === 'PostgreSQL') {
        const pg = await freshPostgres();
        database = pg.url;
        drop = pg.drop;
      }
      sshPort = await freePort();
      t = await startTestServer({ database, config: { sshPort } });
      await t.server.listen();
      ownerId = (await t.server.store.users.ownerId())!;
      const other = await t.server.store.users.create('other');
      otherId = other.id;
      const { generateToken } = await import('../src/http/auth.js');
      const secret = generateToken();
      await t.server.store.users.insertToken(other.id, { hash: secret.hash, prefix: secret.prefix, name: 't' });
      otherAuth = { authorization: `Bearer ${secret.token}` };
    });
    after(async () => {
      await t?.close();
      await drop();
    });

    const call = (method: 'GET' | 'POST' | 'DELETE', url: string, payload?: unknown, auth = t.auth) =>
      t.server.app.inject({
        method,
        url,
        headers: auth,
        ...(payload === undefined ? {} : { payload: payload as Record<string, unknown> }),
      });

    test('register, list, remove; a duplicate is 409, a bad key 400, a bad name 422; another user sees none of it', async () => {
      const line = ed25519();
      const added = await call('POST', '/api/v1/ssh-keys', { public_key: line });
      assert.equal(added.statusCode, 201, added.body);
      const key = added.json();
      assert.equal(key.name, 'me@laptop', "the name defaults to the key's comment");
      assert.equal(key.public_key, line.split(' ').slice(0, 2).join(' '));
      errorBody(await call('POST', '/api/v1/ssh-keys', { public_key: line, name: 'again' }), 409, 'conflict');
      errorBody(await call('POST', '/api/v1/ssh-keys', { public_key: 'ssh-dss AAAA' }), 400, 'invalid_request');
      errorBody(
        await call('POST', '/api/v1/ssh-keys', { public_key: ed25519(), name: 'a\u202eb' }),
        422,
        'invalid_name',
      );
      assert.deepEqual(
        (await call('GET', '/api/v1/ssh-keys')).json().keys.map((k: { id: string }) => k.id),
        [key.id],
      );
      assert.deepEqual((await call('GET', '/api/v1/ssh-keys', undefined, otherAuth)).json(), { keys: [] });
      errorBody(await call('DELETE', `/api/v1/ssh-keys/${key.id}`, undefined, otherAuth), 404, 'not_found');
      assert.equal((await call('DELETE', `/api/v1/ssh-keys/${key.id}`)).statusCode, 204);
      errorBody(await call('DELETE', `/api/v1/ssh-keys/${key.id}`), 404, 'not_found');
      assert.deepEqual((await call('GET', '/api/v1/ssh-keys')).json(), { keys: [] });
      // A comment holding control characters names the key without them.
      const [type, data] = ed25519().split(' ');
      const odd = await call('POST', '/api/v1/ssh-keys', { public_key: `${type} ${data} me\u001b[31m@\u202elaptop` });
      assert.equal(odd.statusCode, 201, odd.body);
      assert.equal(odd.json().name, 'me[31m@laptop');
      assert.equal((await call('DELETE', `/api/v1/ssh-keys/${odd.json().id}`)).statusCode, 204);
    });

    test("access: a key for the sandbox alone (its private half parses as OpenSSH's), 503 for other ports without a router, 404 for another user", async () => {
      const submitted = await call('POST', '/api/v1/mags-jobs', { long_lived: true, workspace_id: `box-${backend}` });
      assert.equal(submitted.statusCode, 202, submitted.body);
      const jobId = submitted.json().request_id as string;
      await t.agent!.until(() => t.agent!.running.has(jobId));

      const res = await call('POST', `/api/v1/mags-jobs/box-${backend}/access`, { port: 22 });
      assert.equal(res.statusCode, 200, res.body);
      const access = res.json();
      assert.deepEqual(
        { ...access, ssh_private_key: undefined },
        { success: true, ssh_host: 'localhost', ssh_port: sshPort, ssh_user: 'root', ssh_private_key: undefined },
      );
      assert.match(access.ssh_private_key, /^-----BEGIN OPENSSH PRIVATE KEY-----\n/);
      const parsed = utils.parseKey(access.ssh_private_key);
      assert.ok(!(parsed instanceof Error) && !Array.isArray(parsed) && parsed.isPrivateKey());
      const keys = new SshKeys({ store: t.server.store, logger: t.server.logger });
      const blob = (parsed as ssh2.ParsedKey).getPublicSSH();
      const grant = await keys.grant(blob, 'anything');
      assert.deepEqual(grant && { userId: grant.userId, jobId: grant.jobId }, { userId: ownerId, jobId });
      assert.equal(
        (await call('GET', '/api/v1/ssh-keys')).json().keys.length,
        0,
        "a sandbox's key is not listed among the user's own",
      );

      // Other ports open a URL: this server runs no router (--router-port 0).
      errorBody(await call('POST', `/api/v1/mags-jobs/${jobId}/access`, { port: 8080 }), 503, 'unavailable');
      errorBody(await call('POST', `/api/v1/mags-jobs/${jobId}/access`, { port: 22 }, otherAuth), 404, 'not_found');
      errorBody(await call('POST', '/api/v1/mags-jobs/nope/access', { port: 22 }), 404, 'not_found');

      // A user's own key opens only their own sandboxes by name.
      const own = ed25519();
      assert.equal((await call('POST', '/api/v1/ssh-keys', { public_key: own }, otherAuth)).statusCode, 201);
      const ownBlob = parsePublicKey(own).key.getPublicSSH();
      assert.equal(await keys.grant(ownBlob, `box-${backend}`), undefined, "another user's sandbox name");
      assert.equal(await keys.grant(ownBlob, jobId), undefined, "another user's job id");

      // Ended, the sandbox can't be opened; deleted, its key is gone from the store.
      assert.equal((await call('POST', `/api/v1/mags-jobs/${jobId}/stop`)).json().status, 'stopped');
      errorBody(await call('POST', `/api/v1/mags-jobs/${jobId}/access`, { port: 22 }), 409, 'conflict');
      assert.equal((await call('DELETE', `/api/v1/mags-jobs/${jobId}`)).statusCode, 204);
      assert.equal(await keys.grant(blob, 'anything'), undefined, 'the key of a deleted job opens nothing');
      assert.equal(otherId.length > 0, true);
    });

    test('the OpenAPI document describes the access and ssh-keys routes', async () => {
      const doc = (await call('GET', '/api/v1/openapi.json')).json();
      assert.ok(doc.paths['/api/v1/mags-jobs/{id}/access']?.post);
      assert.ok(doc.paths['/api/v1/ssh-keys']?.get && doc.paths['/api/v1/ssh-keys']?.post);
      assert.ok(doc.paths['/api/v1/ssh-keys/{id}']?.delete);
    });
  });
}

test('without a gateway (--ssh-port 0) access is 503 with a sentence', async () => {
  const t = await startTestServer();
  try {
    const submitted = await t.server.app.inject({
      method: 'POST',
      url: '/api/v1/mags-jobs',
      headers: t.auth,
      payload: { long_lived: true, workspace_id: 'box' },
    });
    const jobId = submitted.json().request_id as string;
    await t.agent!.until(() => t.agent!.running.has(jobId));
    const res = await t.server.app.inject({
      method: 'POST',
      url: '/api/v1/mags-jobs/box/access',
      headers: t.auth,
      payload: { port: 22 },
    });
    assert.match(errorBody(res, 503, 'unavailable').error, /--ssh-port 0/);
  } finally {
    await t.close();
  }
});

test('the default SSH port taken: the server still serves its API, without SSH, and says so in its log', async () => {
  const squatter = net.createServer();
  await new Promise<void>((resolve) => {
    squatter.once('error', () => resolve()); // already taken by something else: as good for this test
    squatter.listen(2222, '127.0.0.1', () => resolve());
  });
  const t = await startTestServer({ config: { sshPort: 2222 } });
  try {
    await t.server.listen();
    assert.equal(t.server.sshPort(), undefined);
    assert.ok(t.logs.some((r) => /SSH gateway's port 2222 is in use/.test(r.msg)));
    const health = await t.server.app.inject({ method: 'GET', url: '/api/v1/health' });
    assert.equal(health.statusCode, 200);
  } finally {
    await t.close();
    squatter.close();
  }
});

test('an SSH port given on purpose must be free: listening fails', async () => {
  const squatter = net.createServer();
  await new Promise<void>((resolve) => squatter.listen(0, '127.0.0.1', () => resolve()));
  const { port } = squatter.address() as net.AddressInfo;
  const t = await startTestServer({ config: { sshPort: port } });
  try {
    await assert.rejects(t.server.listen(), /EADDRINUSE/);
  } finally {
    await t.close();
    squatter.close();
  }
});

describe('ed25519 keys for sandboxes and the gateway', () => {
  test('every key handed out parses (ssh2 alone makes an unloadable one about once in 250)', () => {
    for (let i = 0; i < 1000; i++) {
      const pair = ed25519Pair('t');
      assert.ok(!(ssh2.utils.parseKey(pair.private) instanceof Error), pair.private);
    }
  });
});
