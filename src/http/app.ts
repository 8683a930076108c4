// The HTTP app factory, separate from `listen()` so tests drive it with `inject()`. Routes live
// one concern per file under ./routes; this file wires them and the cross-cutting behaviour:
// JSON errors with registry codes, 404 for unknown routes, 413 for oversized bodies before any
// byte of them is read.

import Fastify, { type FastifyInstance } from 'fastify';
import type { Registry } from 'prom-client';
import { StrataError } from '../errors.ts';
import type { Logger } from '../logger.ts';
import { errorBody, errorHandler } from './errors.ts';
import { registerHealthRoutes } from './routes/health.ts';
import { type IngestDependencies, registerIngestRoute } from './routes/ingest.ts';
import { registerMetricsRoute } from './routes/metrics.ts';
import { type ModuleRouteDependencies, registerModuleRoutes } from './routes/modules.ts';
import { registerStatusRoute } from './routes/status.ts';
import type { ReadinessCheck, StatusSnapshot } from './status-types.ts';

export interface AppDependencies {
  log: Logger;
  bodyLimitBytes: number;
  status: () => StatusSnapshot;
  readiness: () => Promise<ReadinessCheck[]>;
  metrics: Registry;
  /** The ingest API; absent in tests that do not need it. */
  ingest?: IngestDependencies;
  /** Module serving; idem. */
  modules?: ModuleRouteDependencies;
}

export function buildApp(deps: AppDependencies): FastifyInstance {
  const app = Fastify({
    bodyLimit: deps.bodyLimitBytes,
    // Requests are bounded so a slow client cannot hold the daemon's sockets forever.
    requestTimeout: 30_000,
    connectionTimeout: 60_000,
    return503OnClosing: true,
  });

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
  return app;
}
