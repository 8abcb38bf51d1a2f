// Accounts through the REST API and the HTML forms (app.inject, a fake agent): users, tokens (revoked or expired:
// 401 at once), browser sessions with CSRF, the sign-in throttle, the `mags login` device flow, removing a user.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { ed25519Pair } from '../src/ssh/keys.js';
import type { TestServer } from './helpers.js';
import { errorBody, freshPostgres, startTestServer, waitFor } from './helpers.js';

type Method = 'GET' | 'POST' | 'PUT' | 'DELETE';

for (const backend of ['SQLite', 'PostgreSQL'] as const)
  describe(`accounts on ${backend}`, () => {
    let t: TestServer;
    let pg: Awaited<ReturnType<typeof freshPostgres>> | undefined;
    before(async () => {
      if (backend === 'PostgreSQL') pg = await freshPostgres();
      t = await startTestServer({ signInThrottleMs: 200, database: pg?.url });
    });
    after(async () => {
      const errors = t?.errors() ?? [];
      await t?.close();
      await pg?.drop();
      assert.deepEqual(errors, [], 'no request failed inside the server (a 500 is a bug)');
    });

    const call = (method: Method, url: string, token: string, payload?: unknown) =>
      t.server.app.inject({ method, url, headers: { authorization: `Bearer ${token}` }, payload: payload as object });

    /** Adds a user as the owner; answers its token and sign-in link code. */
    async function addUser(name: string): Promise<{ token: string; code: string; id: string }> {
      const res = await call('POST', '/api/v1/users', t.token, { name });
      assert.equal(res.statusCode, 201, res.body);
      const body = res.json();
      assert.match(body.token, /^mags_/);
      const code = new URL(body.signin_url).searchParams.get('code');
      assert.ok(code);
      return { token: body.token, code, id: body.user_id };
    }

    /** A browser: a cookie jar over inject, following no redirects. */
    function browser() {
      const jar = new Map<string, string>();
      return {
        jar,
        async go(
          method: 'GET' | 'POST',
          url: string,
          form?: Record<string, string>,
          headers: Record<string, string> = {},
        ) {
          const res = await t.server.app.inject({
            method,
            url,
            headers: {
              ...headers,
              cookie: [...jar].map(([k, v]) => `${k}=${v}`).join('; '),
              ...(form ? { 'content-type': 'application/x-www-form-urlencoded' } : {}),
            },
            payload: form ? new URLSearchParams(form).toString() : undefined,
          });
          for (const c of res.cookies as Array<{ name: string; value: string; maxAge?: number }>) {
            if (c.value === '' || c.maxAge === 0) jar.delete(c.name);
            else jar.set(c.name, c.value);
          }
          return res;
        },
        csrfOf(html: string): string {
          const m = /name="csrf" value="([^"]+)"/.exec(html);
          assert.ok(m, 'the form carries a CSRF token');
          return m[1]!;
        },
      };
    }

    async function signedIn(code: string, password: string) {
      const b = browser();
      const page = await b.go('GET', `/signin/link?code=${code}`);
      assert.equal(page.statusCode, 200);
      const res = await b.go('POST', '/signin/link', { csrf: b.csrfOf(page.body), code, password });
      assert.equal(res.statusCode, 303, res.body);
      assert.ok(b.jar.get('mags_session'), 'signed in: a session cookie');
      return b;
    }

    test('the owner adds a user, who works with its token; only the owner manages users', async () => {
      const ann = await addUser('ann');
      const me = (await call('GET', '/api/v1/me', ann.token)).json();
      assert.deepEqual({ name: me.name, owner: me.owner }, { name: 'ann', owner: false });
      errorBody(await call('POST', '/api/v1/users', ann.token, { name: 'mallory' }), 403, 'forbidden');
      errorBody(await call('GET', '/api/v1/users', ann.token), 403, 'forbidden');
      errorBody(await call('DELETE', '/api/v1/users/owner', ann.token), 403, 'forbidden');
      errorBody(await call('POST', '/api/v1/users', t.token, { name: 'ann' }), 409, 'conflict');
      const bad = errorBody(await call('POST', '/api/v1/users', t.token, { name: '-x' }), 400, 'invalid_request');
      assert.doesNotMatch(bad.error, /\^|\[A-Za-z/, 'the rule is said in words, not as a regular expression');
      const list = (await call('GET', '/api/v1/users', t.token)).json();
      assert.deepEqual(
        list.users.map((u: { name: string; owner: boolean }) => [u.name, u.owner]),
        [
          ['owner', true],
          ['ann', false],
        ],
      );
    });

    test('tokens: created (secret shown once), listed without secrets, used, revoked → 401 at once; expired → 401', async () => {
      const bob = await addUser('bob');
      const created = await call('POST', '/api/v1/tokens', bob.token, { name: 'ci', expires_in_days: 30 });
      assert.equal(created.statusCode, 201);
      const tok = created.json();
      assert.match(tok.token, /^mags_/);
      assert.ok(Date.parse(tok.expires_at) > Date.now() + 29 * 86_400_000);
      const list = (await call('GET', '/api/v1/tokens', bob.token)).json();
      assert.ok(list.tokens.some((x: { id: string }) => x.id === tok.id));
      assert.ok(!JSON.stringify(list).includes(tok.token), 'a listing never holds a secret');

      assert.equal((await call('GET', '/api/v1/mags-jobs', tok.token)).statusCode, 200);
      // Used just now, so any cache is warm: a revocation must still act on the next request.
      assert.equal((await call('DELETE', `/api/v1/tokens/${tok.id}`, bob.token)).statusCode, 204);
      errorBody(await call('GET', '/api/v1/mags-jobs', tok.token), 401, 'unauthorized');
      errorBody(await call('DELETE', `/api/v1/tokens/${tok.id}`, bob.token), 404, 'not_found');

      // Another user's token id is not found, and stays working.
      const ann2 = (await call('POST', '/api/v1/tokens', t.token, { name: 'owner-ci' })).json();
      errorBody(await call('DELETE', `/api/v1/tokens/${ann2.id}`, bob.token), 404, 'not_found');
      assert.equal((await call('GET', '/api/v1/me', ann2.token)).statusCode, 200);

      const short = (await call('POST', '/api/v1/tokens', bob.token, { name: 'short', expires_in_days: 1 })).json();
      assert.equal((await call('GET', '/api/v1/me', short.token)).statusCode, 200);
      await t.server.store.db
        .updateTable('tokens')
        .set({ expires_at: Date.now() - 1 })
        .where('id', '=', short.id)
        .execute();
      errorBody(await call('GET', '/api/v1/me', short.token), 401, 'unauthorized');
      errorBody(
        await call('POST', '/api/v1/tokens', bob.token, { name: 'x', expires_in_days: 0 }),
        400,
        'invalid_request',
      );
    });

    test('a session cookie: HTTP-only SameSite; CSRF token needed to change anything; never reaches another user', async () => {
      const cy = await addUser('cy');
      const dee = await addUser('dee');
      const job = await call('POST', '/api/v1/mags-jobs', dee.token, { script: 'echo hi', name: 'dees-job' });
      assert.equal(job.statusCode, 202, job.body);
      const deeJob = job.json().request_id;

      const b = browser();
      const page = await b.go('GET', `/signin/link?code=${cy.code}`);
      const set = await b.go('POST', '/signin/link', {
        csrf: b.csrfOf(page.body),
        code: cy.code,
        password: 'cy-password-1',
      });
      const cookie = set.headers['set-cookie'];
      const line = (Array.isArray(cookie) ? cookie : [String(cookie)]).find((c) => c.startsWith('mags_session='));
      assert.ok(line);
      assert.match(line, /HttpOnly/i);
      assert.match(line, /SameSite=Lax/i);
      // The link is used up.
      assert.equal((await browser().go('GET', `/signin/link?code=${cy.code}`)).statusCode, 404);

      const me = await b.go('GET', '/api/v1/me');
      assert.equal(me.json().name, 'cy');
      const csrf = me.json().csrf_token;
      assert.ok(csrf);

      // Another user's job: not found, by id and by name.
      errorBody(await b.go('GET', `/api/v1/mags-jobs/${deeJob}/status`), 404, 'not_found');
      errorBody(await b.go('GET', '/api/v1/mags-jobs/dees-job/status'), 404, 'not_found');
      const jobs = (await b.go('GET', '/api/v1/mags-jobs')).json();
      assert.equal(jobs.total, 0);

      // Changing anything without the CSRF token fails; with it, works.
      const noCsrf = await t.server.app.inject({
        method: 'POST',
        url: '/api/v1/tokens',
        headers: { cookie: `mags_session=${b.jar.get('mags_session')}` },
        payload: { name: 'x' },
      });
      errorBody(noCsrf, 403, 'forbidden');
      const wrongCsrf = await t.server.app.inject({
        method: 'POST',
        url: '/api/v1/tokens',
        headers: { cookie: `mags_session=${b.jar.get('mags_session')}`, 'x-csrf-token': 'guess' },
        payload: { name: 'x' },
      });
      errorBody(wrongCsrf, 403, 'forbidden');
      const ok = await t.server.app.inject({
        method: 'POST',
        url: '/api/v1/tokens',
        headers: { cookie: `mags_session=${b.jar.get('mags_session')}`, 'x-csrf-token': csrf },
        payload: { name: 'from the browser' },
      });
      assert.equal(ok.statusCode, 201);

      // The HTML sign-out form without its token signs nobody out.
      assert.equal((await b.go('POST', '/signout', { csrf: 'guess' })).statusCode, 403);
      assert.equal((await b.go('GET', '/api/v1/me')).statusCode, 200);
      // A forged sign-in form (no double-submit cookie) is refused.
      const forged = await browser().go('POST', '/signin', { csrf: 'x', name: 'cy', password: 'cy-password-1' });
      assert.equal(forged.statusCode, 403);

      // Signing out ends the session for every later request.
      const stolen = b.jar.get('mags_session');
      const out = await b.go('POST', '/signout', { csrf });
      assert.equal(out.statusCode, 303);
      const after = await t.server.app.inject({
        method: 'GET',
        url: '/api/v1/me',
        headers: { cookie: `mags_session=${stolen}` },
      });
      errorBody(after, 401, 'unauthorized');
    });

    test('password guessing is slowed: after 3 failures even the right password must wait', async () => {
      const eve = await addUser('eve');
      await signedIn(eve.code, 'eve-password-1');
      const attempt = (password: string) =>
        t.server.app.inject({ method: 'POST', url: '/api/v1/session', payload: { name: 'eve', password } });
      for (let i = 0; i < 3; i++) errorBody(await attempt(`wrong-${i}`), 401, 'unauthorized');
      const slowed = errorBody(await attempt('eve-password-1'), 429, 'too_many_requests');
      assert.match(slowed.error, /wait \d+ second/);
      // Each further failure doubles the wait; once it has passed, the right password works again.
      await waitFor(async () => (await attempt('eve-password-1')).statusCode === 200, 'the wait to pass');
      // An unknown name is refused the same way (no hint which names exist).
      const unknown = errorBody(await attempt.call(null, 'x'), 401, 'unauthorized');
      assert.equal(unknown.error, 'the name or password is wrong');
    });

    test('mags login: a code approved in the browser gives the CLI one token; CSRF and sign-in guard the approval', async () => {
      const fay = await addUser('fay');
      const start = await t.server.app.inject({
        method: 'POST',
        url: '/api/v1/auth/device',
        payload: { client_name: 'laptop' },
      });
      assert.equal(start.statusCode, 200);
      const s = start.json();
      assert.match(s.user_code, /^[A-Z]{4}-[A-Z]{4}$/);
      const poll = () =>
        t.server.app.inject({
          method: 'POST',
          url: '/api/v1/auth/device/token',
          payload: { device_code: s.device_code },
        });
      assert.deepEqual((await poll()).json(), { status: 'pending' });

      // Not signed in: the approval page sends to the sign-in page, and back.
      const anon = await browser().go('GET', `/device?code=${s.user_code}`);
      assert.equal(anon.statusCode, 303);
      assert.match(String(anon.headers.location), /^\/signin\?next=%2Fdevice%3Fcode%3D/);

      const b = await signedIn(fay.code, 'fay-password-1');
      const page = await b.go('GET', `/device?code=${s.user_code}`);
      assert.equal(page.statusCode, 200);
      assert.match(page.body, /laptop/);
      assert.equal(page.headers['x-frame-options'], 'DENY');
      // A forged approval (wrong CSRF token) approves nothing.
      assert.equal(
        (await b.go('POST', '/device', { csrf: 'guess', code: s.user_code, action: 'approve' })).statusCode,
        403,
      );
      assert.deepEqual((await poll()).json(), { status: 'pending' });

      const approved = await b.go('POST', '/device', {
        csrf: b.csrfOf(page.body),
        code: s.user_code,
        action: 'approve',
      });
      assert.equal(approved.statusCode, 200);
      const got = (await poll()).json();
      assert.equal(got.status, 'approved');
      assert.equal(got.user, 'fay');
      assert.equal((await call('GET', '/api/v1/me', got.token)).json().name, 'fay');
      // One approval, one token.
      errorBody(await poll(), 404, 'not_found');

      // Polls racing for one approval: one gets the token, the others nothing.
      const again = (
        await t.server.app.inject({ method: 'POST', url: '/api/v1/auth/device', payload: { client_name: 'race' } })
      ).json();
      const page2 = await b.go('GET', `/device?code=${again.user_code}`);
      await b.go('POST', '/device', { csrf: b.csrfOf(page2.body), code: again.user_code, action: 'approve' });
      const raced = await Promise.all(
        [1, 2, 3].map(() =>
          t.server.app.inject({
            method: 'POST',
            url: '/api/v1/auth/device/token',
            payload: { device_code: again.device_code },
          }),
        ),
      );
      const tokens = raced.filter((r) => r.statusCode === 200 && r.json().status === 'approved');
      assert.equal(tokens.length, 1, raced.map((r) => `${r.statusCode} ${r.body}`).join('\n'));
    });

    test('removing a user: its tokens and sessions stop at once, its jobs stop, its data stays unless asked', async () => {
      const gus = await addUser('gus');
      const b = await signedIn(gus.code, 'gus-password-1');
      const job = await call('POST', '/api/v1/mags-jobs', gus.token, { script: 'hang', name: 'forever' });
      assert.equal(job.statusCode, 202);
      const id = job.json().request_id;
      await waitFor(
        async () => (await call('GET', `/api/v1/mags-jobs/${id}/status`, gus.token)).json().status === 'running',
      );

      const key = ed25519Pair('').public;
      assert.equal((await call('POST', '/api/v1/ssh-keys', gus.token, { public_key: key })).statusCode, 201);

      const removed = await call('DELETE', '/api/v1/users/gus', t.token);
      assert.equal(removed.statusCode, 200, removed.body);
      assert.deepEqual(removed.json(), { name: 'gus', jobs_stopped: 1, data_deleted: false });
      errorBody(await call('GET', '/api/v1/me', gus.token), 401, 'unauthorized');
      errorBody(await b.go('GET', '/api/v1/me'), 401, 'unauthorized');
      const row = await t.server.store.jobs.get(id);
      assert.ok(row, 'the data is kept');
      await waitFor(async () => (await t.server.store.jobs.get(id))?.status === 'stopped', 'the job to stop');
      errorBody(await call('DELETE', '/api/v1/users/gus', t.token), 404, 'not_found');
      errorBody(await call('DELETE', '/api/v1/users/owner', t.token), 409, 'conflict');

      const hal = await addUser('hal');
      const j2 = (await call('POST', '/api/v1/mags-jobs', hal.token, { script: 'echo x' })).json().request_id;
      await waitFor(async () => (await t.server.store.jobs.get(j2))?.status === 'completed');
      const gone = (await call('DELETE', '/api/v1/users/hal?delete_data=true', t.token)).json();
      assert.equal(gone.data_deleted, true);
      assert.equal(await t.server.store.jobs.get(j2), undefined, 'with delete_data the jobs are gone');
    });
  });
