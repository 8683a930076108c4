// The HTTP app factory, separate from `listen()` so tests drive it with `inject()`. Routes live
// one concern per file under ./routes; this file wires them and the cross-cutting behaviour:
// JSON errors with registry codes (Node's own parser errors too), 404 for unknown routes, 413 for
// oversized bodies before any byte of them is read, JSON-only bodies (415 otherwise), bearer-token
// access control, and request/header timeouts that Node enforces within a second of their limit.

import http from 'node:http';
import Fastify, { type FastifyInstance } from 'fastify';
import type { Registry } from 'prom-client';
import type { ApiToken } from '../api-tokens.ts';
import { StrataError } from '../errors.ts';
import type { Logger } from '../logger.ts';
import type { ReadinessCheck, StatusSnapshot } from '../status-types.ts';
import { registerAccessControl } from './access-control.ts';
import { clientErrorHandler } from './client-errors.ts';
import { errorBody, errorHandler } from './errors.ts';
import { registerJsonBodyParser } from './json-body.ts';
import { registerHealthRoutes } from './routes/health.ts';
import { type IngestDependencies, registerIngestRoute } from './routes/ingest.ts';
import { registerMetricsRoute } from './routes/metrics.ts';
import { type ModuleRouteDependencies, registerModuleRoutes } from './routes/modules.ts';
import { type QueryRouteDependencies, registerQueryRoutes } from './routes/queries.ts';
import { registerShapeRoutes, type ShapeRouteOptions } from './routes/shapes.ts';
import { registerStatusRoute } from './routes/status.ts';

export interface AppDependencies {
  log: Logger;
  bodyLimitBytes: number;
  /** Whole request (headers and body) and headers alone; defaults 30 s and 10 s. */
  requestTimeoutMs?: number;
  headersTimeoutMs?: number;
  /** Bearer tokens; empty or absent: no access control. */
  apiTokens?: readonly ApiToken[];
  status: () => StatusSnapshot;
  readiness: () => Promise<ReadinessCheck[]>;
  metrics: Registry;
  /** The ingest API; absent in tests that do not need it. */
  ingest?: IngestDependencies;
  /** Module serving; idem. */
  modules?: ModuleRouteDependencies;
  /** Live shapes (`/v1/shape`); idem. */
  shapes?: ShapeRouteOptions;
  /** Named read queries; idem. */
  queries?: QueryRouteDependencies;
}

export function buildApp(deps: AppDependencies): FastifyInstance {
  const requestTimeout = deps.requestTimeoutMs ?? 30_000;
  const headersTimeout = Math.min(deps.headersTimeoutMs ?? 10_000, requestTimeout);
  const app = Fastify({
    bodyLimit: deps.bodyLimitBytes,
    // Requests are bounded so a slow client cannot hold the daemon's sockets forever. Node checks
    // these limits every `connectionsCheckingInterval` (30 s by default, which let a trickled body
    // run to 80 s); once a second keeps them within a second of what is configured.
    requestTimeout,
    connectionTimeout: requestTimeout * 2,
    serverFactory: (handler) => {
      const server = http.createServer(
        { requestTimeout, headersTimeout, connectionsCheckingInterval: 1_000 },
        handler,
      );
      return server;
    },
    clientErrorHandler,
    return503OnClosing: true,
  });
  registerJsonBodyParser(app);
  registerAccessControl(app, deps.apiTokens ?? []);

  // Refuse a declared oversized body up front, on every route (known or not), without reading it.
  app.addHook('onRequest', async (request, reply) => {
    const declared = Number(request.headers['content-length'] ?? 0);
    if (Number.isFinite(declared) && declared > deps.bodyLimitBytes) {
      reply.header('connection', 'close');
      return reply
        .status(413)
        .send(
          errorBody(
            new StrataError(
              'STRATA_ERR_BODY_TOO_LARGE',
              `request body of ${declared} bytes exceeds the limit of ${deps.bodyLimitBytes} bytes`,
            ),
          ),
        );
    }
    return undefined;
  });

  app.setErrorHandler(errorHandler(deps.log));
  app.setNotFoundHandler((request, reply) => {
    void reply
      .status(404)
      .send(
        errorBody(
          new StrataError(
            'STRATA_ERR_NOT_FOUND',
            `no route for ${request.method} ${request.url.split('?')[0]}`,
          ),
        ),
      );
  });

  registerHealthRoutes(app, deps);
  registerStatusRoute(app, deps);
  registerMetricsRoute(app, deps);
  if (deps.ingest !== undefined) registerIngestRoute(app, deps.ingest);
  if (deps.modules !== undefined) registerModuleRoutes(app, deps.modules);
  if (deps.shapes !== undefined) registerShapeRoutes(app, deps.shapes);
  if (deps.queries !== undefined) registerQueryRoutes(app, deps.queries);
  return app;
}
