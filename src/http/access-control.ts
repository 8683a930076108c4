// The access-control hook: which scope each route needs, and the 401 / 403 answers (RFC 6750).
// With no tokens configured every route is open (the daemon then only binds loopback unless
// STRATA_INSECURE is set: src/config.ts). Health and metrics stay open so probes and scrapers
// need no secret; protect `/metrics` at the network (docs/operations.md, "Access control").

import type { FastifyInstance, FastifyRequest } from 'fastify';
import { type ApiScope, type ApiToken, allows, findToken } from '../api-tokens.ts';
import { StrataError } from '../errors.ts';
import { errorBody } from './errors.ts';

const OPEN_PATHS = new Set(['/livez', '/readyz', '/metrics']);

/** The scope a request needs, or null for the open routes. Unknown routes need `read`. */
export function scopeFor(method: string, path: string): ApiScope | null {
  if (OPEN_PATHS.has(path)) return null;
  if (method === 'POST' && /^\/v1\/pipelines\/[^/]+\/events$/.test(path)) return 'ingest';
  if (method === 'POST' && path === '/v1/modules/invalidate') return 'admin';
  return 'read';
}

export function registerAccessControl(app: FastifyInstance, tokens: readonly ApiToken[]): void {
  if (tokens.length === 0) return;
  app.addHook('onRequest', async (request, reply) => {
    const scope = scopeFor(request.method, request.url.split('?')[0]!);
    if (scope === null) return undefined;
    const presented = bearerToken(request);
    const token = presented === null ? null : findToken(tokens, presented);
    if (token === null) {
      const challenge =
        presented === null ? 'Bearer realm="strata"' : 'Bearer realm="strata", error="invalid_token"';
      return reply
        .status(401)
        .header('www-authenticate', challenge)
        .send(
          errorBody(
            new StrataError(
              'STRATA_ERR_UNAUTHORIZED',
              presented === null
                ? 'this route needs Authorization: Bearer <token>'
                : 'the bearer token is not valid',
            ),
          ),
        );
    }
    if (!allows(token, scope)) {
      return reply
        .status(403)
        .header('www-authenticate', `Bearer realm="strata", error="insufficient_scope", scope="${scope}"`)
        .send(
          errorBody(
            new StrataError(
              'STRATA_ERR_FORBIDDEN',
              `this route needs the ${scope} scope; token #${token.position} has ${token.scopes.join(', ')}`,
            ),
          ),
        );
    }
    return undefined;
  });
}

function bearerToken(request: FastifyRequest): string | null {
  const header = request.headers.authorization;
  if (typeof header !== 'string') return null;
  const match = /^Bearer\s+(\S+)\s*$/i.exec(header);
  return match === null ? null : match[1]!;
}
