// E2B host names under the apps domain: `api` (E2B's control plane), `49983-<id>` (the sandbox's envd) and
// `<port>-<id>` (a port of an E2B sandbox), where `<id>` is the sandbox id, a Mags job id (a UUID, with dashes).
// The router asks this module what such a label names and whether a request may reach an E2B sandbox's port.
import { createHash, timingSafeEqual } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Job } from '../store/index.js';

/** The port envd listens on in an E2B sandbox: the SDK's `49983-<id>.<domain>`. */
export const ENVD_PORT = 49983;
/** The request header a sandbox created with `allowPublicTraffic: false` needs on its ports (as E2B names it). */
export const TRAFFIC_TOKEN_HEADER = 'e2b-traffic-access-token';

/** An E2B sandbox as the router needs it (E2bSandboxes.resolve gives this and more). */
export interface E2bSandboxRoute {
  job: Job;
  allowPublicTraffic: boolean;
  trafficToken?: string;
}

/** What `mags server` gives the router when it serves E2B (`--e2b-port`). */
export interface E2bRouting {
  /** The E2B app's request handler (Fastify's `routing`): the control plane and envd, served in this process. */
  handle(req: IncomingMessage, res: ServerResponse): void;
  /** The E2B sandbox with this id, or undefined (not an E2B sandbox, or gone). */
  resolve(sandboxId: string): Promise<E2bSandboxRoute | undefined>;
  /**
   * The domain E2B sandboxes report (`--e2b-domain`, `host[:port]`): its hosts are E2B's too, when it is not the
   * apps domain (a name of its own pointed at the router).
   */
  domain(): string;
}

/** What a label under the apps domain names on the E2B side, if anything. */
export type E2bHost =
  /** `api.<domain>`: the control plane (the SDK's default `E2B_API_URL` is `https://api.<E2B_DOMAIN>`). */
  | { kind: 'api' }
  /** `49983-<id>.<domain>`: envd of sandbox `<id>`. */
  | { kind: 'envd'; sandboxId: string }
  /** `<port>-<id>.<domain>`: that port of sandbox `<id>`. */
  | { kind: 'port'; sandboxId: string; port: number };

const PORT_HOST = /^([1-9][0-9]{0,4})-([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})$/;

/**
 * Parses a label (lower case, as `UrlService.labelOf` gives it): `api`, or `<port>-<id>` with a port of 1–65535
 * written without leading zeros and a UUID; anything else is not an E2B host (undefined).
 */
export function parseE2bLabel(label: string): E2bHost | undefined {
  if (label === 'api') return { kind: 'api' };
  const m = PORT_HOST.exec(label);
  if (!m) return undefined;
  const port = Number(m[1]);
  if (port > 65535) return undefined;
  return port === ENVD_PORT ? { kind: 'envd', sandboxId: m[2] } : { kind: 'port', sandboxId: m[2], port };
}

/** The label of `host` under the E2B domain (`8000-<id>` of `8000-<id>.e2b.example:443`), lower case, or undefined. */
export function labelUnder(host: string | undefined, domain: string): string | undefined {
  if (!host) return undefined;
  const name = host.toLowerCase().replace(/:\d+$/, '').replace(/\.$/, '');
  const suffix = `.${domain.toLowerCase().replace(/:\d+$/, '')}`;
  if (!name.endsWith(suffix)) return undefined;
  const label = name.slice(0, -suffix.length);
  return label.includes('.') ? undefined : label;
}

/** Whether a label has the shape of an E2B port host (an alias must not take it). */
export function looksLikeE2bLabel(label: string): boolean {
  return PORT_HOST.test(label);
}

/** Whether a request may reach the ports of this sandbox: public ones always, private ones with the traffic token. */
export function trafficAllowed(req: IncomingMessage, sandbox: E2bSandboxRoute): boolean {
  if (sandbox.allowPublicTraffic) return true;
  const given = req.headers[TRAFFIC_TOKEN_HEADER];
  if (typeof given !== 'string' || !sandbox.trafficToken) return false;
  // Equal-length digests: the comparison takes the same time whatever was sent.
  const a = createHash('sha256').update(given).digest();
  const b = createHash('sha256').update(sandbox.trafficToken).digest();
  return timingSafeEqual(a, b);
}
