// Public URLs as the SDK shows them: camelCase results of the access route (ports other than 22) and the URL
// alias routes.
import type { UrlAccessResult as WireUrlAccess, UrlAlias as WireUrlAlias } from '@mags/api';

/** `url(nameOrId, port)` / `enableAccess(id, port)` for a port other than 22. */
export interface UrlAccess {
  success: boolean;
  /** `http(s)://<subdomain>.<apps-domain>[:router port]`: reaches `port` in the sandbox through the router. */
  url: string;
  port: number;
  /** 12 hex characters, kept for the job's life. */
  subdomain: string;
  /** Whether the URL answers only requests carrying your token (header) or the cookie `loginUrl` sets. */
  private: boolean;
  /** Private URLs only: a one-time link (10 minutes) that lets the browser opening it use the URL. */
  loginUrl?: string;
}

export interface UrlOptions {
  /** Only requests with your API token (`Authorization: Bearer …`) or the login link's cookie are answered. */
  private?: boolean;
}

/** A stable name for a workspace's URL: `<subdomain>.<domain>` reaches whichever sandbox runs on it. */
export interface UrlAlias {
  id: string;
  subdomain: string;
  workspaceId: string;
  domain: string;
  url: string;
  createdAt: string;
}

export function fromWireUrlAccess(a: WireUrlAccess): UrlAccess {
  return {
    success: a.success,
    url: a.url,
    port: a.port,
    subdomain: a.subdomain,
    private: a.private,
    ...(a.login_url !== undefined ? { loginUrl: a.login_url } : {}),
  };
}

export function fromWireUrlAlias(a: WireUrlAlias): UrlAlias {
  return {
    id: a.id,
    subdomain: a.subdomain,
    workspaceId: a.workspace_id,
    domain: a.domain,
    url: a.url,
    createdAt: a.created_at,
  };
}
