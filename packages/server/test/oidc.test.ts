// Single sign-on through OpenID Connect (openid-client in the server) against a small provider the test starts on
// loopback: a user the owner added signs in and gets a session; the account is bound at the first sign-on, so
// another account claiming the same name is refused; a forged state, a wrong nonce, another audience or another
// signing key sign nobody in; a name nobody added is refused.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { TestServer } from './helpers.js';
import { startTestServer } from './helpers.js';
import { startTestProvider, type TestProvider } from './oidc-provider.js';

describe('single sign-on (OpenID Connect)', () => {
  let provider: TestProvider;
  let t: TestServer;
  let base: string;

  before(async () => {
    provider = await startTestProvider();
    t = await startTestServer({
      agent: false,
      config: {
        host: '127.0.0.1',
        oidcIssuer: provider.issuer,
        oidcClientId: provider.clientId,
        oidcClientSecret: provider.clientSecret,
      },
    });
    base = await t.server.listen();
    const res = await t.server.app.inject({
      method: 'POST',
      url: '/api/v1/users',
      headers: t.auth,
      payload: { name: 'olga' },
    });
    assert.equal(res.statusCode, 201);
  });
  after(async () => {
    const errors = t?.errors() ?? [];
    await t?.close();
    await provider?.close();
    assert.deepEqual(errors, [], 'no request failed inside the server');
  });

  /** A browser following the redirects by hand, with one cookie jar per host. */
  async function signOn(
    opts: { forgeState?: boolean } = {},
  ): Promise<{ status: number; session?: string; body: string }> {
    const jar = new Map<string, string>();
    let url = `${base}/signin/oidc?next=%2Faccount`;
    for (let hop = 0; hop < 6; hop++) {
      if (opts.forgeState && url.includes('/signin/oidc/callback')) url = url.replace(/state=[^&]+/, 'state=forged');
      const sameHost = url.startsWith(base);
      const res = await fetch(url, {
        redirect: 'manual',
        headers: sameHost ? { cookie: [...jar].map(([k, v]) => `${k}=${v}`).join('; ') } : {},
      });
      if (sameHost) {
        for (const c of res.headers.getSetCookie()) {
          const [pair] = c.split(';');
          const [k, v] = pair!.split('=');
          if (v) jar.set(k!, v);
          else jar.delete(k!);
        }
      }
      const location = res.headers.get('location');
      if (res.status >= 300 && res.status < 400 && location) {
        if (location === '/account') return { status: res.status, session: jar.get('mags_session'), body: '' };
        url = new URL(location, url).href;
        continue;
      }
      return { status: res.status, session: jar.get('mags_session'), body: await res.text() };
    }
    throw new Error('too many redirects');
  }

  const me = async (session: string) =>
    (await fetch(`${base}/api/v1/me`, { headers: { cookie: `mags_session=${session}` } })).json() as Promise<{
      name: string;
    }>;

  test('the sign-in page offers single sign-on; an added user signs in and gets a session', async () => {
    const page = await (await fetch(`${base}/signin`)).text();
    assert.match(page, /Sign in with single sign-on/);
    provider.account = { sub: 'olga-1', preferred_username: 'olga' };
    const r = await signOn();
    assert.ok(r.session, `signed in (got ${r.status} ${r.body.slice(0, 200)})`);
    assert.equal((await me(r.session)).name, 'olga');
  });

  test('another account with the same name is refused once the first is bound', async () => {
    provider.account = { sub: 'mallory-9', preferred_username: 'olga' };
    const r = await signOn();
    assert.equal(r.session, undefined);
    assert.equal(r.status, 403);
    assert.match(r.body, /signs in with another account/);
  });

  test('a name nobody added is refused', async () => {
    provider.account = { sub: 'x-1', preferred_username: 'stranger' };
    const r = await signOn();
    assert.equal(r.status, 403);
    assert.match(r.body, /no Mags user is named/);
  });

  test('a forged state, a wrong nonce, another audience or another key sign nobody in', async () => {
    provider.account = { sub: 'olga-1', preferred_username: 'olga' };
    const forged = await signOn({ forgeState: true });
    assert.equal(forged.session, undefined);
    assert.equal(forged.status, 401);
    for (const tamper of ['nonce', 'audience', 'key'] as const) {
      provider.tamper = tamper;
      const r = await signOn();
      assert.equal(r.session, undefined, `${tamper}: no session`);
      assert.equal(r.status, 401, `${tamper}: ${r.body.slice(0, 200)}`);
    }
    // And the right one still works.
    assert.ok((await signOn()).session);
  });
});
