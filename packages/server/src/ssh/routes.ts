// SSH routes: `access` (a key pair for one sandbox, port 22) and a user's own public keys.
import {
  AccessRequest,
  AccessResult,
  MagsError,
  SshKeyAdd,
  SshKeyInfo,
  SshKeyList,
  type UrlAccessResult,
  UrlAccessResult as UrlAccessSchema,
} from '@mags/api';
import { Type } from 'typebox';
import { callerOf, errors, type MagsApp } from '../http/request.js';
import type { SshKeys } from './keys.js';

const JobParams = Type.Object({ id: Type.String({ minLength: 1, maxLength: 200 }) });
const KeyParams = Type.Object({ id: Type.String({ minLength: 1, maxLength: 200 }) });

export interface SshRouteDeps {
  keys: SshKeys;
  /** The gateway's port, once it listens (undefined: no gateway, `--ssh-port 0`). */
  port(): number | undefined;
  /** `--ssh-host`, if given. */
  host: string | undefined;
  /** URL access to another port (the router's `UrlService.open`). */
  openUrl(userId: string, ref: string, port: number, isPrivate: boolean): Promise<UrlAccessResult>;
}

export function registerSshRoutes(app: MagsApp, deps: SshRouteDeps): void {
  app.post(
    '/api/v1/mags-jobs/:id/access',
    {
      schema: {
        tags: ['ssh'],
        summary: 'Open access to a port of a sandbox: port 22 gives an SSH key pair, any other port a URL',
        description:
          'Answers a fresh ed25519 private key (OpenSSH format) that the SSH gateway accepts for this sandbox only: ' +
          '`ssh -i KEY -p ssh_port root@ssh_host`. Only the public key is stored; it stops working when the job is deleted. ' +
          "The job is found by id or name, as exec finds it. Any other port opens the sandbox's URL " +
          '(`<subdomain>.<apps-domain>` through the router) to that port and answers `{ success, url, port, subdomain, private }`; ' +
          '`private: true` makes the URL answer only the owner (and adds a one-time `login_url` for a browser).',
        params: JobParams,
        body: AccessRequest,
        response: { 200: Type.Union([AccessResult, UrlAccessSchema]), ...errors(400, 401, 404, 409, 422, 503) },
      },
    },
    async (request) => {
      if (request.body.port !== 22) {
        return deps.openUrl(callerOf(request).id, request.params.id, request.body.port, request.body.private === true);
      }
      if (request.body.private !== undefined) {
        throw MagsError.invalid('private goes with URL access (a port other than 22); SSH access is always private');
      }
      const port = deps.port();
      if (port === undefined) {
        throw new MagsError(
          503,
          'unavailable',
          "this server runs no SSH gateway (started with --ssh-port 0, or the default port 2222 was in use: see the server's log)",
        );
      }
      const access = await deps.keys.forSandbox(callerOf(request).id, request.params.id);
      const result: AccessResult = { ...access, ssh_host: deps.host ?? hostOf(request.hostname), ssh_port: port };
      return result;
    },
  );

  app.get(
    '/api/v1/ssh-keys',
    {
      schema: {
        tags: ['ssh'],
        summary: "The caller's own SSH public keys (each opens the caller's sandboxes: ssh -p PORT NAME@HOST)",
        response: { 200: SshKeyList, ...errors(401) },
      },
    },
    async (request) => ({ keys: await deps.keys.list(callerOf(request).id) }),
  );

  app.post(
    '/api/v1/ssh-keys',
    {
      schema: {
        tags: ['ssh'],
        summary: 'Register an SSH public key: it then opens any of your sandboxes, named by the ssh user name',
        body: SshKeyAdd,
        response: { 201: SshKeyInfo, ...errors(400, 401, 409, 422) },
      },
    },
    async (request, reply) => reply.code(201).send(await deps.keys.add(callerOf(request).id, request.body)),
  );

  app.delete(
    '/api/v1/ssh-keys/:id',
    {
      schema: {
        tags: ['ssh'],
        summary: 'Remove one of your SSH keys; it is refused from then on',
        params: KeyParams,
        response: { 204: Type.Null({ description: 'Removed' }), ...errors(401, 404) },
      },
    },
    async (request, reply) => {
      await deps.keys.remove(callerOf(request).id, request.params.id);
      return reply.code(204).send(null);
    },
  );
}

/** The host part of the Host header the API was reached by (no port; an IPv6 address without brackets). */
function hostOf(hostname: string | undefined): string {
  if (!hostname) return '127.0.0.1';
  const v6 = /^\[([^\]]+)\](?::\d+)?$/.exec(hostname);
  if (v6) return v6[1]!;
  const host = hostname.replace(/:\d+$/, '');
  return /^[A-Za-z0-9._-]+$/.test(host) ? host : '127.0.0.1';
}
