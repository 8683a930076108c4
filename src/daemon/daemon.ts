// Assembles one Strata daemon, phase by phase — openDatabase, startModuleCache, startActors,
// watchModules, startHttp, then the actors run, and on Postgres the process joins the fleet (its
// pipelines start as it gets their leases: src/daemon/fleet.ts) — each phase registering how to
// undo itself with the lifecycle (src/daemon/lifecycle.ts). It knows nothing about signals or exit codes' meaning
// to the process; src/main.ts owns the process. `startDaemon` resolves once the daemon serves
// HTTP; `daemon.exited` resolves with the exit code once it has stopped, whatever stopped it
// (`shutdown`: 0; the supervisor giving up: 75; a fatal error: 1).

import { randomUUID } from 'node:crypto';
import type { FastifyInstance } from 'fastify';
import type { StrataConfig } from '../config.ts';
import { EXIT_NON_RETRYABLE } from '../errors.ts';
import type { Logger } from '../logger.ts';
import { createMetrics } from '../metrics.ts';
import type { StatusSnapshot } from '../status-types.ts';
import { startActors } from './actors.ts';
import { openDatabase } from './database.ts';
import { Fleet } from './fleet.ts';
import { startHttp } from './http.ts';
import { DaemonLifecycle } from './lifecycle.ts';
import { startModuleCache, watchModules } from './module-cache.ts';
import { StatusBoard } from './status-board.ts';

export interface Daemon {
  readonly id: string;
  /** `http://host:port` the daemon listens on. */
  readonly url: string;
  readonly app: FastifyInstance;
  status(): StatusSnapshot;
  /** Graceful: stop intake, let the writer commit what was processed, stop actors in reverse order. */
  shutdown(reason: string): Promise<void>;
  /** Resolves with the exit code once the daemon has stopped (see above). */
  readonly exited: Promise<number>;
}

export async function startDaemon(config: StrataConfig, log: Logger): Promise<Daemon> {
  const id = randomUUID();
  const lifecycle = new DaemonLifecycle(log);
  const board = new StatusBoard(id, config, lifecycle);
  const metrics = createMetrics({ version: config.version, status: () => board.snapshot() });
  try {
    const database = await openDatabase(config, log, lifecycle);
    const cache = await startModuleCache(config, log, lifecycle, database, metrics);
    // On Postgres, many processes may share the database: pipelines run where their lease is.
    const fleet =
      database.embedded === null && config.fleet.enabled
        ? new Fleet({
            id,
            db: database.mainDb,
            log,
            metrics,
            pipelines: config.pipelines.map((pipeline) => pipeline.name),
            version: config.version,
            leaseTtlMs: config.fleet.leaseTtlMs,
            maxPipelines: config.fleet.maxPipelines,
          })
        : null;
    // Registered before the actors: runs after they stopped (teardown goes in reverse).
    if (fleet !== null) lifecycle.onStop('fleet leases', () => fleet.releaseAll());
    const actors = startActors(
      config,
      log,
      lifecycle,
      id.slice(0, 8),
      database,
      cache.builds,
      metrics,
      fleet,
    );
    const invalidation = await watchModules(config, log, lifecycle, cache, actors.reloadHandlers);
    board.complete({
      mainDb: database.mainDb,
      redis: cache.redis,
      modules: cache.modules,
      actors: actors.all,
      router: actors.router,
      materializer: actors.materializer,
      liveShapeRequests: () => actors.shapes.liveRequests(),
      fleet: () => fleet?.status(),
    });
    const http = await startHttp(config, log, lifecycle, {
      database,
      cache,
      invalidation,
      actors,
      board,
      metrics,
      fleet,
    });
    await actors.start();
    // A stop that began meanwhile (an actor that cannot start) must not be followed by a join.
    if (fleet !== null && lifecycle.state === 'starting') {
      lifecycle.onStop('fleet', () => fleet.stop());
      // SIGTERM: every pipeline handed over (after its writer committed) before the actors stop.
      lifecycle.onDrain(() => fleet.leave());
      await fleet.join({ take: actors.takePipeline, drop: actors.dropPipeline }, http.url);
    }
    lifecycle.running();
    log.info({ pipelines: config.pipelines.map((p) => p.name), url: http.url }, 'strata daemon running');
    return {
      id,
      url: http.url,
      app: http.app,
      status: () => board.snapshot(),
      shutdown: (reason) => lifecycle.stop(0, reason),
      exited: lifecycle.exited,
    };
  } catch (error) {
    // Whatever started is stopped (no drain: nothing was processed for it to commit).
    await lifecycle.stop(EXIT_NON_RETRYABLE, 'start-up failed');
    throw error;
  }
}
