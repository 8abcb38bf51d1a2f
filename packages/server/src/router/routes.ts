// URL alias routes: `POST/GET /api/v1/mags-url-aliases`, `DELETE /api/v1/mags-url-aliases/{subdomain}`.
import { UrlAlias, UrlAliasCreate, UrlAliasList } from '@mags/api';
import { Type } from 'typebox';
import { callerOf, errors, type MagsApp } from '../http/request.js';
import type { UrlService } from './urls.js';

const AliasParams = Type.Object({ subdomain: Type.String({ minLength: 1, maxLength: 200 }) });

export function registerRouterRoutes(app: MagsApp, urls: UrlService): void {
  app.post(
    '/api/v1/mags-url-aliases',
    {
      schema: {
        tags: ['urls'],
        summary: 'Give a workspace a stable URL: <subdomain>.<apps-domain> reaches whichever sandbox runs on it',
        description:
          "The alias follows the workspace across sleeps, restarts and new sandboxes (mags stop + mags new), on the sandbox's URL port (else 8080). Subdomains are unique across the server.",
        body: UrlAliasCreate,
        response: { 201: UrlAlias, ...errors(400, 401, 404, 409) },
      },
    },
    async (request, reply) => reply.code(201).send(await urls.createAlias(callerOf(request).id, request.body)),
  );

  app.get(
    '/api/v1/mags-url-aliases',
    {
      schema: {
        tags: ['urls'],
        summary: "The caller's URL aliases",
        response: { 200: UrlAliasList, ...errors(401) },
      },
    },
    async (request) => ({ aliases: await urls.listAliases(callerOf(request).id) }),
  );

  app.delete(
    '/api/v1/mags-url-aliases/:subdomain',
    {
      schema: {
        tags: ['urls'],
        summary: 'Remove one of your URL aliases (by subdomain or id)',
        params: AliasParams,
        response: { 200: Type.Object({ success: Type.Boolean() }), ...errors(401, 404) },
      },
    },
    async (request) => {
      await urls.deleteAlias(callerOf(request).id, request.params.subdomain);
      return { success: true };
    },
  );
}
