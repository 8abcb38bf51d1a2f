// Single sign-on through an OpenID Connect provider (openid-client): the authorization code flow with PKCE, state
// and nonce. What the flow must remember between the redirect and the callback travels in a short-lived HTTP-only
// cookie, so that any replica can finish it. The provider's metadata is discovered once (again after a failure).
import { MagsError } from '@mags/api';
import * as client from 'openid-client';
import type { Logger } from 'pino';
import type { OidcConfig } from '../config.js';

/** What the sign-in's redirect leaves in the browser's `mags_oidc` cookie. */
interface Pending {
  state: string;
  nonce: string;
  verifier: string;
  next: string;
}

export interface OidcIdentity {
  /** "ISSUER SUBJECT": the account, stable across name changes. */
  subject: string;
  /** The claim that names the Mags user (`nameClaim`). */
  name: string;
}

export class OidcSignIn {
  private discovered: Promise<client.Configuration> | undefined;

  constructor(
    private readonly cfg: OidcConfig,
    private readonly logger: Logger,
  ) {}

  private configuration(): Promise<client.Configuration> {
    if (!this.discovered) {
      const url = new URL(this.cfg.issuer);
      // Plain http is accepted by the configuration only for a loopback issuer (a test provider).
      // The ID token's signature is checked against the provider's keys too (openid-client would otherwise rely on
      // TLS to the token endpoint alone, as OIDC Core allows).
      const execute = [client.enableNonRepudiationChecks];
      if (url.protocol === 'http:') execute.push(client.allowInsecureRequests);
      const options = { execute };
      this.discovered = client.discovery(url, this.cfg.clientId, this.cfg.clientSecret, undefined, options);
      this.discovered.catch((err: unknown) => {
        this.logger.warn({ err, issuer: this.cfg.issuer }, 'OpenID Connect discovery failed');
        this.discovered = undefined;
      });
    }
    return this.discovered;
  }

  /** The provider's authorization URL, and the cookie value that the callback needs. */
  async start(redirectUri: string, next: string): Promise<{ url: string; cookie: string }> {
    const config = await this.configuration().catch(() => {
      throw new MagsError(
        503,
        'unavailable',
        'the single sign-on provider cannot be reached: try again, or sign in with a password',
      );
    });
    const pending: Pending = {
      state: client.randomState(),
      nonce: client.randomNonce(),
      verifier: client.randomPKCECodeVerifier(),
      next,
    };
    const url = client.buildAuthorizationUrl(config, {
      redirect_uri: redirectUri,
      scope: 'openid profile email',
      code_challenge: await client.calculatePKCECodeChallenge(pending.verifier),
      code_challenge_method: 'S256',
      state: pending.state,
      nonce: pending.nonce,
    });
    return { url: url.href, cookie: Buffer.from(JSON.stringify(pending)).toString('base64url') };
  }

  /** Checks the provider's answer (state, PKCE, the ID token's signature, issuer, audience, nonce, expiry). */
  async finish(currentUrl: URL, cookie: string | undefined): Promise<{ identity: OidcIdentity; next: string }> {
    const pending = parsePending(cookie);
    if (!pending)
      throw new MagsError(400, 'invalid_request', 'the single sign-on expired or was started elsewhere: sign in again');
    const config = await this.configuration();
    let claims: client.IDToken | undefined;
    try {
      const tokens = await client.authorizationCodeGrant(config, currentUrl, {
        pkceCodeVerifier: pending.verifier,
        expectedState: pending.state,
        expectedNonce: pending.nonce,
        idTokenExpected: true,
      });
      claims = tokens.claims();
    } catch (err) {
      this.logger.info({ err: (err as Error).message }, 'OpenID Connect sign-in refused');
      throw MagsError.unauthorized('the single sign-on was refused: sign in again');
    }
    if (!claims) throw MagsError.unauthorized('the provider sent no ID token');
    const name = claims[this.cfg.nameClaim];
    if (typeof name !== 'string' || name === '') {
      throw MagsError.unauthorized(`the provider's ID token has no "${this.cfg.nameClaim}" claim naming the user`);
    }
    if (claims.email_verified === false && this.cfg.nameClaim === 'email') {
      throw MagsError.unauthorized('the provider has not verified this email address');
    }
    return { identity: { subject: `${claims.iss} ${claims.sub}`, name }, next: pending.next };
  }
}

function parsePending(cookie: string | undefined): Pending | undefined {
  if (!cookie || cookie.length > 4096) return undefined;
  try {
    const p = JSON.parse(Buffer.from(cookie, 'base64url').toString('utf8')) as Partial<Pending>;
    if (typeof p.state !== 'string' || typeof p.nonce !== 'string' || typeof p.verifier !== 'string') return undefined;
    return {
      state: p.state,
      nonce: p.nonce,
      verifier: p.verifier,
      next: typeof p.next === 'string' ? p.next : '/account',
    };
  } catch {
    return undefined;
  }
}
