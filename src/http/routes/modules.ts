// `GET /v1/modules/<path>`: the project's modules as JavaScript (src/transpile/module-service.ts).
//  - ETag: quoted, strong, from the source's content hash and the transpiler version, so
//    `If-None-Match` (lists, weak tags, `*`) answers 304 before any transpile.
//  - `x-strata-cache: l1 | l2 | coalesced | miss`, `content-type: text/javascript`, a source map
//    at `<path>?map` referenced from the code.
//  - Only modules: files some pipeline's module graph reaches (its schema, handlers and what they
//    import), and their maps. Anything else — dotfiles, `strata.config.ts`, package.json, data,
//    paths outside the project — is 404 before it is read, so no code frame ever shows it.
//  - A syntax error in a module → 422 with its diagnostic.
// `POST /v1/modules/invalidate` `{ "paths": [...] }` (or `{ "all": true }` for everything) drops
// them from every layer (and, with Redis, from every peer's L1); an empty body is refused.

import path from 'node:path';
import type { FastifyInstance } from 'fastify';
import { z } from 'zod';
import { StrataError } from '../../errors.ts';
import { type ModuleService, notFound } from '../../transpile/module-service.ts';

export interface ModuleRouteDependencies {
  modules: ModuleService;
  /** Invalidation that also reaches peers (falls back to the local service). */
  invalidate?: (paths: string[] | 'all') => Promise<void>;
  /** Whether a canonical path may be served (a pipeline module); absent: every path may. */
  servable?: (canonicalPath: string) => boolean;
}

export function etagMatches(header: string | undefined, etag: string): boolean {
  if (header === undefined) return false;
  return header.split(',').some((candidate) => {
    const tag = candidate.trim();
    return tag === '*' || tag.replace(/^W\//, '') === etag;
  });
}

const invalidateBody = z.union([
  z.object({ paths: z.array(z.string().min(1).max(1_000)).min(1).max(10_000) }).strict(),
  z.object({ all: z.literal(true) }).strict(),
]);

export function registerModuleRoutes(app: FastifyInstance, deps: ModuleRouteDependencies): void {
  app.get<{ Params: { '*': string }; Querystring: { map?: string } }>(
    '/v1/modules/*',
    async (request, reply) => {
      const requestPath = request.params['*'];
      const wantsMap = request.query.map !== undefined;
      // An L1 hit (when the watcher keeps L1 fresh) answers without touching the file system.
      const hit = deps.modules.peek(requestPath);
      // A miss is resolved and checked before its file is read or transpiled; a hit is checked
      // too (the module graph may have dropped it since).
      const prepared = hit === undefined ? await deps.modules.prepare(requestPath, deps.servable) : null;
      const { canonicalPath: canonical, etag } = hit ?? prepared!;
      if (deps.servable !== undefined && !deps.servable(canonical)) throw notFound(requestPath);
      void reply
        .header('etag', wantsMap ? `"${etag.slice(1, -1)}-map"` : etag)
        .header('cache-control', 'no-cache');
      if (!wantsMap && etagMatches(request.headers['if-none-match'], etag)) return reply.status(304).send();
      const result = hit ?? (await deps.modules.getPrepared(prepared!));
      void reply.header('x-strata-cache', result.cache);
      if (wantsMap) return reply.type('application/json; charset=utf-8').send(result.map);
      return reply
        .type('text/javascript; charset=utf-8')
        .send(
          `${result.code}\n//# sourceMappingURL=${encodeURIComponent(path.posix.basename(canonical))}?map\n`,
        );
    },
  );

  app.post('/v1/modules/invalidate', async (request) => {
    const parsed = invalidateBody.safeParse(request.body);
    if (!parsed.success) {
      throw new StrataError(
        'STRATA_ERR_BAD_REQUEST',
        'expected { "paths": [string, …] } or { "all": true } (an empty body invalidates nothing)',
      );
    }
    const paths: string[] = [];
    for (const requested of 'paths' in parsed.data ? parsed.data.paths : []) {
      // A deleted file cannot be resolved any more; its normalized path is what was cached.
      paths.push(
        await deps.modules
          .resolve(requested)
          .catch(() => path.posix.normalize(requested.replace(/^\/+/, ''))),
      );
    }
    const target = 'all' in parsed.data ? 'all' : paths;
    await (deps.invalidate ?? ((p: string[] | 'all') => deps.modules.invalidate(p)))(target);
    return { invalidated: target };
  });
}
