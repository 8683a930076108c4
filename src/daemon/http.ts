// Start-up phase `startHttp`: the HTTP app (health, status, metrics, modules, ingest) listening on
// the configured address. Stopped after the actors drained, so /status and /readyz (503 while
// stopping) answer through a shutdown.

import type { FastifyInstance } from 'fastify';
import { isLoopbackHost } from '../api-tokens.ts';
import type { StrataConfig } from '../config.ts';
import { IngestWakeUps } from '../coordination/ingest-wake-ups.ts';
import { retryWhileUnavailable } from '../db/retry.ts';
import { buildApp } from '../http/app.ts';
import type { Logger } from '../logger.ts';
import type { DaemonMetrics } from '../metrics.ts';
import { runNamedQuery } from '../queries/run-named-query.ts';
import { appendBlocks } from '../sources/ingest-log.ts';
import type { ModuleInvalidation } from '../transpile/invalidation.ts';
import type { SupervisedActors } from './actors.ts';
import type { DaemonDatabase } from './database.ts';
import type { Fleet } from './fleet.ts';
import type { DaemonLifecycle } from './lifecycle.ts';
import type { ModuleCache } from './module-cache.ts';
import type { StatusBoard } from './status-board.ts';

export interface DaemonHttp {
  app: FastifyInstance;
  /** `http://host:port` the daemon listens on. */
  url: string;
}

export async function startHttp(
  config: StrataConfig,
  log: Logger,
  lifecycle: DaemonLifecycle,
  parts: {
    database: DaemonDatabase;
    cache: ModuleCache;
    invalidation: ModuleInvalidation;
    actors: SupervisedActors;
    board: StatusBoard;
    metrics: DaemonMetrics;
    /** Many processes on Postgres: shapes of pipelines owned elsewhere are forwarded there. */
    fleet: Fleet | null;
  },
): Promise<DaemonHttp> {
  const { database, cache, invalidation, actors, board, metrics, fleet } = parts;
  // The pipeline's owner may be another process of the fleet: it is told over Redis.
  const wakeUps = new IngestWakeUps(cache.pubsub, log, (pipeline) => actors.router.wake(pipeline));
  await wakeUps.start();
  const maxReorgDepths = new Map(config.pipelines.map((p) => [p.name, p.maxReorgDepth]));
  const app = buildApp({
    log,
    bodyLimitBytes: config.http.bodyLimitBytes,
    requestTimeoutMs: config.http.requestTimeoutMs,
    headersTimeoutMs: config.http.headersTimeoutMs,
    apiTokens: config.http.apiTokens,
    status: () => board.snapshot(),
    readiness: () => board.readiness(),
    metrics: metrics.registry,
    modules: {
      modules: cache.modules,
      invalidate: (paths) => invalidation.invalidate(paths),
      servable: (canonicalPath) => cache.builds.isPipelineModule(canonicalPath),
    },
    ingest: {
      sourceKinds: new Map(config.pipelines.map((pipeline) => [pipeline.name, pipeline.source.kind])),
      append: async (pipeline, blocks) => {
        const maxReorgDepth = maxReorgDepths.get(pipeline)!;
        // Replayed whole while the database is unavailable, within the request's own budget; a
        // replay after a COMMIT whose answer was lost is recognised as already stored.
        const result = await retryWhileUnavailable(
          () =>
            appendBlocks(database.mainDb, pipeline, blocks, {
              maxReorgDepth,
              copy: database.embedded === null,
            }),
          { deadlineMs: config.http.requestTimeoutMs / 2, log, what: 'ingest append' },
        );
        wakeUps.stored(pipeline);
        return result;
      },
      observe: ({ pipeline, outcome, blocks, events, seconds }) => {
        metrics.ingest.requests.inc({ pipeline, outcome });
        if (blocks > 0) metrics.ingest.blocks.inc({ pipeline }, blocks);
        if (events > 0) metrics.ingest.events.inc({ pipeline }, events);
        metrics.ingest.seconds.observe({ pipeline }, seconds);
      },
    },
    queries: {
      queries: new Map(config.pipelines.map((pipeline) => [pipeline.name, pipeline.queries])),
      run: (pipeline, name, query, values) => runNamedQuery(database.mainDb, pipeline, name, query, values),
    },
    shapes: {
      backend: actors.shapes,
      locate:
        fleet === null
          ? undefined
          : async (table, forwarded) => {
              const pipeline = await actors.shapes.pipelineOf(table);
              // Not a table of the project: answered here, with the protocol's 400.
              if (pipeline === null || fleet.serves(pipeline)) return { kind: 'here' };
              const owner = fleet.ownerUrl(pipeline);
              // Held here and still being taken over: nobody serves it for that moment.
              return owner === null || forwarded || fleet.holds(pipeline)
                ? { kind: 'unowned', pipeline }
                : { kind: 'owner', url: owner };
            },
      observe: {
        answered: (kind, status) => metrics.shapeRequests.inc({ kind, status: String(status) }),
        fanout: (seconds) => metrics.shapeFanoutSeconds.observe(seconds),
      },
    },
  });
  if (config.http.apiTokens.length === 0 && !isLoopbackHost(config.http.host)) {
    log.warn(
      { host: config.http.host },
      'STRATA_INSECURE: serving a non-loopback address without access control; anyone who reaches it can ingest and read',
    );
  }
  await app.listen({ host: config.http.host, port: config.http.port });
  lifecycle.onStop('http', () => app.close());
  const address = app.server.address();
  const port = typeof address === 'object' && address !== null ? address.port : config.http.port;
  const url = `http://${config.http.host}:${port}`;
  log.info(
    { url, database: config.database.kind, accessControl: config.http.apiTokens.length > 0 },
    'HTTP listening',
  );
  return { app, url };
}
