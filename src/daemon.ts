// Assembles one Strata daemon: database (Postgres, or embedded PGlite behind a socket), migrations,
// Redis (optional), the supervised actors and the HTTP app. It knows nothing about signals or
// exit codes; src/main.ts owns the process. `startDaemon` resolves once the daemon serves HTTP;
// `daemon.exited` resolves with the exit code the process should end with when the daemon ends
// by itself (restart intensity exceeded: 75; a fatal pipeline error: 1).

import { randomUUID } from 'node:crypto';
import type { FastifyInstance } from 'fastify';
import type { Redis } from 'ioredis';
import { isLoopbackHost } from './api-tokens.ts';
import type { PipelineConfig, StrataConfig } from './config.ts';
import { connectRedis, type RedisConnection } from './coordination/redis.ts';
import { type EmbeddedDatabase, startEmbeddedDatabase } from './db/embedded.ts';
import { migrate } from './db/migrator.ts';
import { createDb, type Db } from './db/pool.ts';
import { retryWhileUnavailable } from './db/retry.ts';
import { EXIT_NON_RETRYABLE, EXIT_RETRYABLE, exitCodeFor } from './errors.ts';
import { buildApp } from './http/app.ts';
import { type Logger, type LoggerOptions, resolveLogFormat } from './logger.ts';
import { createMetrics } from './metrics.ts';
import type { PersistenceActorData, PersistenceMethods } from './persistence/persistence-actor.ts';
import type { ProcessingActorData, ProcessingMethods } from './processing/processing-actor.ts';
import { ProgressLine } from './progress-line.ts';
import type { PersistenceEvent, PipelineProgress, ProcessingEvent, WriterRequests } from './protocol.ts';
import { appendBlocks } from './sources/ingest-log.ts';
import type { DaemonState, ReadinessCheck, StatusSnapshot } from './status-types.ts';
import { ActorRef } from './supervisor/actor-ref.ts';
import { workerSpawner } from './supervisor/endpoints.ts';
import { PipelineRouter } from './supervisor/pipeline-router.ts';
import { Supervisor } from './supervisor/supervisor.ts';
import { type Coalescer, LocalCoalescer, RedisCoalescer } from './transpile/coalescer.ts';
import { ModuleInvalidation } from './transpile/invalidation.ts';
import { L2Store } from './transpile/l2-store.ts';
import { ModuleService } from './transpile/module-service.ts';
import { moduleScope, PipelineBuilds } from './transpile/pipeline-builds.ts';
import { TranspilePool } from './transpile/transpile-pool.ts';

export interface Daemon {
  readonly id: string;
  /** `http://host:port` the daemon listens on. */
  readonly url: string;
  readonly app: FastifyInstance;
  status(): StatusSnapshot;
  /** Graceful: stop intake, let the writer commit what was processed, stop actors in reverse order. */
  shutdown(reason: string): Promise<void>;
  /** Resolves with an exit code when the daemon ends without being asked to (see above). */
  readonly exited: Promise<number>;
}

const PROCESSING_ENTRY = new URL('../workers/processing.ts', import.meta.url);
const PERSISTENCE_ENTRY = new URL('../workers/persistence.ts', import.meta.url);

export async function startDaemon(config: StrataConfig, log: Logger): Promise<Daemon> {
  const id = randomUUID();
  const startedAt = new Date();
  let state: DaemonState = 'starting';
  const cleanups: Array<() => Promise<void>> = [];
  const cleanup = async () => {
    for (const step of cleanups.splice(0).reverse()) {
      await step().catch((error: unknown) => log.warn({ err: error }, 'cleanup step failed'));
    }
  };

  try {
    // ─── database ───
    let embedded: EmbeddedDatabase | null = null;
    let databaseUrl: string;
    if (config.database.kind === 'embedded') {
      embedded = await startEmbeddedDatabase({
        storage: config.database.storage,
        dataDir: config.database.dataDir,
        log,
      });
      const db = embedded;
      cleanups.push(() => db.close());
      databaseUrl = embedded.url;
    } else {
      databaseUrl = config.database.url;
    }
    const isolateStatements = embedded !== null;
    await migrate({ url: databaseUrl, log, connectTimeoutMs: config.db.connectTimeoutMs });
    const mainDb: Db = createDb({
      url: databaseUrl,
      max: 4,
      connectTimeoutMs: config.db.connectTimeoutMs,
      applicationName: 'strata-main',
      log,
      isolateStatements,
    });
    cleanups.push(() => mainDb.close());

    // ─── redis ───
    let redis: RedisConnection | null = null;
    if (config.redis.kind === 'redis') {
      const connection = connectRedis(config.redis.url, log);
      redis = connection;
      cleanups.push(() => connection.close());
    }

    const metrics = createMetrics({ version: config.version, status: () => status() });

    // ─── module cache (GET /v1/modules/*) ───
    const transpilePool = new TranspilePool({ threads: 2, minThreads: 0 });
    cleanups.push(() => transpilePool.close());
    let coalescer: Coalescer = new LocalCoalescer();
    let pubsub: { client: Redis; subscriber: Redis } | null = null;
    if (redis !== null) {
      // A subscribed connection cannot run commands: wake-ups and invalidations get their own.
      const subscriber = redis.client.duplicate();
      subscriber.on('error', () => undefined); // the main connection logs Redis outages
      pubsub = { client: redis.client, subscriber };
      coalescer = new RedisCoalescer({ client: redis.client, subscriber, log });
      const active = coalescer;
      cleanups.push(async () => {
        await active.close();
        subscriber.disconnect();
      });
    }
    const moduleService = (root: string, freshness: 'watch' | 'hash') =>
      new ModuleService({
        root,
        pool: transpilePool,
        l2: new L2Store(mainDb, `file://${root}`),
        coalescer,
        log,
        freshness,
        onTranspile: (durationMs) => metrics.transpileSeconds.observe(durationMs / 1_000),
      });
    // The watcher below keeps L1 fresh, so an L1 hit needs no file system access.
    const modules = moduleService(config.project.dir, 'watch');
    // Handlers, schemas and what they import are built through the module cache; actors import
    // the built files (src/transpile/pipeline-builds.ts). Modules outside the project folder
    // (shared code of a monorepo) are built by a second service rooted where they live; that one
    // is not watched, so it checks the source hash on every request.
    const scope = moduleScope(config.project.dir, config.pipelines);
    const buildModulesFrom = scope === config.project.dir ? modules : moduleService(scope, 'hash');
    const builds = new PipelineBuilds({
      modules: buildModulesFrom,
      projectDir: config.project.dir,
      buildRoot: config.project.buildDir,
      pipelines: config.pipelines,
      log,
    });
    let reloadHandlers: (pipeline: PipelineConfig) => Promise<void> = async () => undefined;
    const invalidation = new ModuleInvalidation({
      modules,
      log,
      redis: pubsub,
      onInvalidate: (paths) => {
        if (config.processing.watch) builds.onChange(paths, (pipeline) => reloadHandlers(pipeline));
      },
    });
    await invalidation.watch(config.project.dir);
    cleanups.push(async () => invalidation.close());
    await builds.buildAll();

    // ─── actors ───
    const loggerOptions: LoggerOptions = {
      level: config.log.level,
      format: resolveLogFormat(config.log.format, process.stdout.isTTY === true),
      bindings: { processId: id.slice(0, 8) },
    };
    const dbForActors = {
      url: databaseUrl,
      poolMax: config.db.poolMax,
      connectTimeoutMs: config.db.connectTimeoutMs,
      isolateStatements,
    };
    let resolveExited: (code: number) => void = () => {};
    const exited = new Promise<number>((resolve) => {
      resolveExited = resolve;
    });
    let ending = false;
    const endOnItsOwn = async (code: number) => {
      if (ending) return;
      ending = true;
      state = 'stopping';
      await supervisor.stop();
      await cleanup();
      resolveExited(code);
    };

    const progressLine =
      config.processing.progress === 'always' ||
      (config.processing.progress === 'auto' && process.stderr.isTTY === true)
        ? new ProgressLine(process.stderr)
        : null;
    if (progressLine !== null) cleanups.push(async () => progressLine.stop());
    const supervisor: Supervisor = new Supervisor({
      strategy: 'one_for_one',
      intensity: config.supervisor.restartIntensity,
      periodMs: config.supervisor.restartPeriodMs,
      backoffBaseMs: config.supervisor.backoffBaseMs,
      backoffMaxMs: config.supervisor.backoffMaxMs,
      log,
      onGiveUp: (error) => {
        const code = exitCodeFor(error) === EXIT_RETRYABLE ? EXIT_RETRYABLE : EXIT_NON_RETRYABLE;
        log.fatal(
          { err: error, exitCode: code },
          code === EXIT_RETRYABLE
            ? 'giving up; exiting so the service manager restarts the process'
            : 'giving up; the project must be fixed before a restart can help',
        );
        void endOnItsOwn(code);
      },
      onChildExit: (exit) => {
        if (exit.reason !== 'normal') metrics.actorRestarts.inc({ actor: exit.actor, reason: exit.reason });
      },
      onChildStarted: (child, _incarnation, restarted) => {
        if (restarted && child === 'persistence') router.writerRestarted();
      },
    });

    const persistence = new ActorRef<PersistenceMethods, PersistenceActorData, PersistenceEvent>({
      name: 'persistence',
      spawn: workerSpawner(PERSISTENCE_ENTRY),
      data: () => ({
        pipelines: builds.pipelines(),
        db: dbForActors,
        maxChangesPerWrite: config.processing.maxChangesPerWrite,
        metadataFlushMs: config.processing.metadataFlushMs,
        historyPruneMs: config.processing.historyPruneMs,
        writeMethod: embedded === null ? 'copy' : 'unnest',
        testFault: config.testFault,
      }),
      logger: loggerOptions,
      log,
      pingIntervalMs: config.supervisor.pingIntervalMs,
      startTimeoutMs: 60_000,
      onEvent: (event) => router.fromPersistence(event),
      onExit: (exit) => supervisor.childExited(exit),
    });
    const processing = new Map<
      string,
      ActorRef<ProcessingMethods, ProcessingActorData, ProcessingEvent, WriterRequests>
    >();
    for (const pipeline of config.pipelines) {
      processing.set(
        pipeline.name,
        new ActorRef<ProcessingMethods, ProcessingActorData, ProcessingEvent, WriterRequests>({
          name: `processing:${pipeline.name}`,
          spawn: workerSpawner(PROCESSING_ENTRY),
          // Evaluated at every (re)start: a restarted pipeline loads its latest build.
          data: () => ({
            pipeline: builds.pipeline(pipeline.name),
            db: dbForActors,
            inMemoryObjectsTarget: config.processing.inMemoryObjectsTarget,
            progressIntervalMs: 1_000,
            testFault: config.testFault,
          }),
          logger: loggerOptions,
          log,
          pingIntervalMs: config.supervisor.pingIntervalMs,
          startTimeoutMs: 60_000,
          onEvent: (event) => router.fromProcessing(pipeline.name, event),
          onRequest: (method, args) => router.writerRequest(method, args),
          onExit: (exit) => supervisor.childExited(exit),
        }),
      );
    }
    reloadHandlers = async (pipeline) => {
      await processing.get(pipeline.name)!.call('reloadHandlers', pipeline);
    };
    // Secondary indexes deferred during a backfill are built by the writer once the pipeline has
    // caught up (its first 'caught-up' or 'live' progress), then never again.
    const indexes = new Map<string, 'building' | 'ready'>();
    const requestIndexes = (pipeline: string) => {
      if (indexes.has(pipeline)) return;
      indexes.set(pipeline, 'building');
      persistence.call('buildIndexes', pipeline).then(
        () => {
          indexes.set(pipeline, 'ready');
          exitIfCaughtUp();
        },
        (error: unknown) => {
          indexes.delete(pipeline); // asked again at the next progress report
          log.warn({ pipeline, err: error }, 'building deferred indexes failed; will retry');
        },
      );
    };
    const exitIfCaughtUp = () => {
      if (!config.processing.exitWhenCaughtUp || state !== 'running') return;
      const progress = router.progress();
      const failed = progress.filter((p) => p.state === 'failed');
      if (
        failed.length > 0 &&
        progress.length === config.pipelines.length &&
        progress.every(
          (p) =>
            p.state === 'failed' ||
            (p.state === 'caught-up' && p.committedCheckpoint >= p.processedCheckpoint),
        )
      ) {
        // A batch job cannot finish: every pipeline is done or failed, so end with the failure.
        log.error(
          { failed: failed.map((p) => p.pipeline) },
          'every pipeline caught up or failed; exiting 1 (--exit-when-caught-up)',
        );
        void endOnItsOwn(EXIT_NON_RETRYABLE);
        return;
      }
      if (
        allCaughtUp(progress, config.pipelines.length) &&
        config.pipelines.every((pipeline) => indexes.get(pipeline.name) === 'ready')
      ) {
        log.info('every pipeline processed and committed its whole source; exiting (--exit-when-caught-up)');
        void shutdown('caught up');
      }
    };
    const router = new PipelineRouter({
      log,
      persistence,
      processing,
      onFatal: (error, context) => {
        log.fatal({ err: error, ...context }, 'fatal error outside any pipeline; stopping');
        void endOnItsOwn(exitCodeFor(error) === EXIT_RETRYABLE ? EXIT_RETRYABLE : EXIT_NON_RETRYABLE);
      },
      // The failed pipeline's own progress report (state `failed`) reaches onProgress, which
      // decides --exit-when-caught-up.
      onPipelineFailed: (pipeline, failure) => {
        log.error(
          { pipeline, code: failure.code, block: failure.block, event: failure.event, actor: failure.actor },
          'pipeline failed; the daemon keeps serving the others (see /status, fix the cause and restart)',
        );
      },
      onCommitted: (report) => metrics.batchesCommitted.inc({ pipeline: report.pipeline }, report.batches),
      onProgress: (progress) => {
        progressLine?.update(router.progress());
        if (progress.state === 'caught-up' || progress.state === 'live') requestIndexes(progress.pipeline);
        exitIfCaughtUp();
      },
    });

    supervisor.add({
      id: 'persistence',
      ref: persistence,
      restart: 'permanent',
      shutdownTimeoutMs: config.supervisor.shutdownTimeoutMs,
    });
    for (const [name, ref] of processing) {
      supervisor.add({
        id: ref.name,
        ref,
        restart: 'permanent',
        shutdownTimeoutMs: config.supervisor.shutdownTimeoutMs,
        // A (re)started processing actor resumes from the committed checkpoint and reloads state
        // from the database: the writer must first commit what an earlier incarnation queued.
        beforeStart: async () => {
          await persistence.call('flush', name);
        },
      });
    }

    const allActors = () => [persistence, ...processing.values()];
    const status = (): StatusSnapshot => {
      const pools: Record<string, { total: number; idle: number; waiting: number }> = {
        main: mainDb.stats(),
      };
      for (const actor of allActors()) {
        const extra = actor.stats().extra;
        if (extra.dbPoolTotal !== undefined) {
          pools[actor.name] = {
            total: extra.dbPoolTotal,
            idle: extra.dbPoolIdle ?? 0,
            waiting: extra.dbPoolWaiting ?? 0,
          };
        }
      }
      return {
        process: {
          id,
          pid: process.pid,
          version: config.version,
          node: process.version,
          state,
          startedAt: startedAt.toISOString(),
          uptimeSeconds: Math.round(process.uptime()),
        },
        actors: allActors().map((actor) => ({ name: actor.name, ...actor.stats() })),
        pipelines: router.progress(),
        database: {
          kind: config.database.kind,
          storage: config.database.kind === 'embedded' ? config.database.storage : null,
          pools,
        },
        redis: { configured: redis !== null, state: redis?.state() ?? 'not configured' },
        modules: modules.status(),
      };
    };

    const readiness = async (): Promise<ReadinessCheck[]> => {
      const checks: ReadinessCheck[] = [{ name: 'daemon', ok: state === 'running', detail: state }];
      for (const actor of allActors()) {
        checks.push({ name: `actor:${actor.name}`, ok: actor.state === 'running', detail: actor.state });
      }
      for (const pipeline of router.progress()) {
        if (pipeline.failure !== null) {
          checks.push({
            name: `pipeline:${pipeline.pipeline}`,
            ok: false,
            detail: `failed: ${pipeline.failure.code}${pipeline.failure.block === null ? '' : ` at block ${pipeline.failure.block}`}`,
          });
        }
      }
      try {
        await withTimeout(mainDb.query('SELECT 1'), 2_000, 'database check timed out');
        checks.push({ name: 'database', ok: true });
      } catch (error) {
        checks.push({ name: 'database', ok: false, detail: (error as Error).message });
      }
      if (redis !== null)
        checks.push({ name: 'redis', ok: redis.state() === 'ready', detail: redis.state() });
      return checks;
    };

    const maxReorgDepths = new Map(config.pipelines.map((p) => [p.name, p.maxReorgDepth]));
    const app = buildApp({
      log,
      bodyLimitBytes: config.http.bodyLimitBytes,
      requestTimeoutMs: config.http.requestTimeoutMs,
      headersTimeoutMs: config.http.headersTimeoutMs,
      apiTokens: config.http.apiTokens,
      status,
      readiness,
      metrics: metrics.registry,
      modules: {
        modules,
        invalidate: (paths) => invalidation.invalidate(paths),
        servable: (canonicalPath) => builds.isPipelineModule(canonicalPath),
      },
      ingest: {
        sourceKinds: new Map(config.pipelines.map((pipeline) => [pipeline.name, pipeline.source.kind])),
        append: async (pipeline, blocks) => {
          const maxReorgDepth = maxReorgDepths.get(pipeline)!;
          // Replayed whole while the database is unavailable, within the request's own budget; a
          // replay after a COMMIT whose answer was lost is recognised as already stored.
          const result = await retryWhileUnavailable(
            () => appendBlocks(mainDb, pipeline, blocks, { maxReorgDepth }),
            { deadlineMs: config.http.requestTimeoutMs / 2, log, what: 'ingest append' },
          );
          router.wake(pipeline);
          return result;
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
    cleanups.push(() => app.close());
    const address = app.server.address();
    const port = typeof address === 'object' && address !== null ? address.port : config.http.port;
    const url = `http://${config.http.host}:${port}`;
    log.info(
      { url, database: config.database.kind, accessControl: config.http.apiTokens.length > 0 },
      'HTTP listening',
    );

    await supervisor.start();
    if (!ending) state = 'running';
    log.info({ pipelines: config.pipelines.map((p) => p.name), url }, 'strata daemon running');

    const progressLog = setInterval(() => {
      if (progressLine !== null) return; // the live line shows the same figures
      for (const pipeline of router.progress()) {
        log.info(
          {
            pipeline: pipeline.pipeline,
            state: pipeline.state,
            processed: pipeline.processedCheckpoint,
            committed: pipeline.committedCheckpoint,
            head: pipeline.headBlockNumber,
            eventsPerSecond: pipeline.eventsPerSecond,
            inMemoryObjects: pipeline.inMemoryObjects,
            writerBusyMs: pipeline.writerBusyMs,
          },
          'progress',
        );
      }
    }, 10_000);
    progressLog.unref();
    cleanups.push(async () => clearInterval(progressLog));

    let shuttingDown: Promise<void> | null = null;
    function shutdown(reason: string): Promise<void> {
      shuttingDown ??= (async () => {
        if (ending) return;
        ending = true;
        state = 'stopping';
        log.info({ reason }, 'shutting down: stopping intake');
        const deadline = Date.now() + config.supervisor.shutdownTimeoutMs;
        for (const [name, ref] of processing) {
          try {
            const processed = await withTimeout(
              ref.call('pauseIntake'),
              remaining(deadline),
              'intake did not stop in time',
            );
            log.info({ pipeline: name, processedCheckpoint: processed }, 'intake stopped');
          } catch (error) {
            log.warn({ pipeline: name, err: error }, 'could not pause intake cleanly');
          }
        }
        try {
          const committed = await withTimeout(
            persistence.call('flush'),
            remaining(deadline),
            'writer did not flush in time',
          );
          log.info({ committed }, 'writer flushed');
        } catch (error) {
          log.warn({ err: error }, 'writer flush incomplete; uncommitted work will be redone on restart');
        }
        await supervisor.stop();
        await cleanup();
        resolveExited(0);
        // Peak resident memory of the whole process (main thread and every actor thread).
        log.info({ maxRssBytes: process.resourceUsage().maxRSS * 1024 }, 'stopped');
      })();
      return shuttingDown;
    }

    return { id, url, app, status, shutdown, exited };
  } catch (error) {
    await cleanup();
    throw error;
  }
}

/** Every pipeline has read its whole (finite) source and the writer committed all of it. */
function allCaughtUp(progress: PipelineProgress[], pipelines: number): boolean {
  return (
    progress.length === pipelines &&
    progress.every((p) => p.state === 'caught-up' && p.committedCheckpoint >= p.processedCheckpoint)
  );
}

function remaining(deadline: number): number {
  return Math.max(1, deadline - Date.now());
}

function withTimeout<T>(promise: Promise<T>, ms: number, message: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([
    promise.finally(() => clearTimeout(timer)),
    new Promise<never>((_resolve, reject) => {
      timer = setTimeout(() => reject(new Error(message)), ms);
    }),
  ]);
}
