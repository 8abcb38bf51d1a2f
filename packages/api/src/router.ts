// Public URLs into sandboxes (the router) and stable alias names for them.
import { type Static, Type } from 'typebox';

/** The router's default port (`mags server --router-port`). */
export const DEFAULT_ROUTER_PORT = 7380;
/** The port a URL opens when none is given (`--url` without `--port`). */
export const DEFAULT_URL_PORT = 8080;
/** A subdomain: one DNS label, lower case (RFC 1123), at most 63 characters. */
export const SUBDOMAIN_PATTERN = '^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$';

export const UrlAccessResult = Type.Object(
  {
    success: Type.Boolean(),
    url: Type.String({ description: 'The URL that reaches this port of the sandbox through the router' }),
    port: Type.Integer({ description: 'The port in the sandbox the URL reaches' }),
    subdomain: Type.String({ description: "The sandbox's subdomain (12 hex characters), kept for the job's life" }),
    private: Type.Boolean({ description: "Whether the URL answers only requests that carry the owner's token" }),
    login_url: Type.Optional(
      Type.String({
        description:
          'Private URLs only: a one-time link (valid 10 minutes) that sets a cookie in the browser that opens it, so the browser may use the URL',
      }),
    ),
  },
  { $id: 'UrlAccessResult' },
);
export type UrlAccessResult = Static<typeof UrlAccessResult>;

export const UrlAliasCreate = Type.Object(
  {
    subdomain: Type.String({
      minLength: 1,
      maxLength: 63,
      description: 'The alias: one DNS label (a-z, 0-9 and -, not at either end), unique on this server',
    }),
    workspace_id: Type.String({
      minLength: 1,
      maxLength: 63,
      description: "The workspace whose sandbox the alias reaches (on its URL's port, else 8080)",
    }),
    domain: Type.Optional(
      Type.String({ maxLength: 253, description: "Ignored: aliases live under the server's --apps-domain" }),
    ),
  },
  { additionalProperties: false },
);
export type UrlAliasCreate = Static<typeof UrlAliasCreate>;

export const UrlAlias = Type.Object(
  {
    id: Type.String(),
    subdomain: Type.String(),
    workspace_id: Type.String(),
    domain: Type.String({ description: 'The domain the alias is served under (--apps-domain)' }),
    url: Type.String(),
    created_at: Type.String(),
  },
  { $id: 'UrlAlias' },
);
export type UrlAlias = Static<typeof UrlAlias>;
export const UrlAliasList = Type.Object({ aliases: Type.Array(UrlAlias) });
export type UrlAliasList = Static<typeof UrlAliasList>;
