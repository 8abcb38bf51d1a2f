// The web dashboard (packages/dashboard, built by Vite into static files): its files, read into memory once at
// start, each served at exactly its own path (so no path a request names can reach any other file: there is no
// path joining at all), and index.html at `/` and at every page of the app (the pages the build lists in
// routes.json). Hashed assets are cached for ever; index.html is revalidated every time.
import { createHash } from 'node:crypto';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { gzipSync } from 'node:zlib';
import type { FastifyReply, FastifyRequest } from 'fastify';
import type { Logger } from 'pino';
import { SESSION_COOKIE } from '../http/auth.js';
import type { MagsApp } from '../http/request.js';

const CONTENT_TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.json': 'application/json; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.ico': 'image/x-icon',
  '.woff2': 'font/woff2',
  '.txt': 'text/plain; charset=utf-8',
};
const COMPRESSIBLE = new Set(['.html', '.js', '.css', '.json', '.svg', '.txt']);
/** The most the dashboard's files may hold together: they live in memory. */
const MAX_TOTAL_BYTES = 32 * 1024 * 1024;

/** The page's own policy: its scripts and styles come from this server only, it talks to this server only. */
const CSP =
  "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; " +
  "base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

interface Asset {
  body: Buffer;
  gzip: Buffer | undefined;
  type: string;
  etag: string;
  cacheControl: string;
}

/** Every file under `dir`, by URL path (`/assets/index-abc123.js`). Names other than plain file names are skipped. */
function readBuild(dir: string): Map<string, Asset> {
  const assets = new Map<string, Asset>();
  let total = 0;
  const walk = (sub: string) => {
    for (const entry of readdirSync(path.join(dir, sub), { withFileTypes: true })) {
      const rel = sub === '' ? entry.name : `${sub}/${entry.name}`;
      if (entry.isDirectory()) walk(rel);
      if (!entry.isFile() || !/^[A-Za-z0-9._-]+$/.test(entry.name) || entry.name.startsWith('.')) continue;
      const ext = path.extname(entry.name);
      const type = CONTENT_TYPES[ext];
      if (type === undefined) continue;
      const body = readFileSync(path.join(dir, rel));
      total += body.length;
      if (total > MAX_TOTAL_BYTES) throw new Error(`the dashboard in ${dir} is over ${MAX_TOTAL_BYTES} bytes`);
      const gzip = COMPRESSIBLE.has(ext) && body.length > 512 ? gzipSync(body, { level: 9 }) : undefined;
      const hashed = rel.startsWith('assets/');
      assets.set(`/${rel}`, {
        body,
        gzip: gzip && gzip.length < body.length ? gzip : undefined,
        type,
        etag: `"${createHash('sha256').update(body).digest('base64url').slice(0, 22)}"`,
        // Vite names every file under assets/ by its content's hash: a changed file is a new name.
        cacheControl: hashed ? 'public, max-age=31536000, immutable' : 'no-cache',
      });
    }
  };
  walk('');
  return assets;
}

function send(request: FastifyRequest, reply: FastifyReply, asset: Asset) {
  reply
    .header('content-type', asset.type)
    .header('cache-control', asset.cacheControl)
    .header('etag', asset.etag)
    .header('vary', 'accept-encoding')
    .header('x-content-type-options', 'nosniff');
  if (request.headers['if-none-match'] === asset.etag) return reply.code(304).send();
  const gzip = asset.gzip !== undefined && /\bgzip\b/.test(request.headers['accept-encoding'] ?? '');
  if (gzip) reply.header('content-encoding', 'gzip');
  return reply.code(200).send(gzip ? asset.gzip : asset.body);
}

/**
 * Serves the dashboard built in `dir`. A server without it (not built) answers its pages with a sentence saying so;
 * the API does not depend on it.
 */
export function registerDashboard(app: MagsApp, dir: string, logger: Logger): void {
  const index = path.join(dir, 'index.html');
  if (!existsSync(index) || !statSync(index).isFile()) {
    logger.warn({ dir }, 'no dashboard: its build is missing (npm run build builds it); / answers 404');
    app.get('/', { config: { public: true }, schema: { hide: true } }, async (_request, reply) =>
      reply.code(404).send({
        error: `the dashboard is not built on this server (no ${index}); run npm run build, or use the API at /api/v1`,
        code: 'not_found',
      }),
    );
    return;
  }
  const assets = readBuild(dir);
  const page = assets.get('/index.html')!;
  assets.delete('/index.html');
  // The app's pages (`/jobs/:id` …), as the build wrote them from its own route table.
  const pages = JSON.parse(readFileSync(path.join(dir, 'routes.json'), 'utf8')) as string[];
  assets.delete('/routes.json');

  const options = { config: { public: true }, schema: { hide: true } };
  const servePage = async (request: FastifyRequest, reply: FastifyReply) => {
    // Without a session cookie the app could show nothing: go to the sign-in page first, and come back here.
    if (!request.cookies[SESSION_COOKIE]) {
      return reply.redirect(`/signin?next=${encodeURIComponent(request.url.slice(0, 1000))}`, 303);
    }
    reply
      .header('content-security-policy', CSP)
      .header('x-frame-options', 'DENY')
      .header('referrer-policy', 'same-origin');
    return send(request, reply, page);
  };
  for (const route of new Set(['/', ...pages])) {
    if (!/^\/[A-Za-z0-9/:_-]*$/.test(route)) throw new Error(`the dashboard's routes.json lists "${route}"`);
    app.get(route, options, servePage);
  }
  for (const [url, asset] of assets) {
    app.get(url, options, async (request, reply) => send(request, reply, asset));
  }
  logger.debug({ dir, files: assets.size, pages: pages.length }, 'dashboard served at /');
}
