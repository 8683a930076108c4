// Start-up phase `startActors`: the supervisor, the writer (persistence actor) and one processing
// actor per pipeline, each a worker thread, wired through the pipeline router; the live progress
// line; what catching up sets off. Built in dependency order — router, supervisor, actors, then
// the router is connected to them — so no callback names something defined after it. The actors
// run once `supervised.start()` is called (after HTTP listens). Registers the orderly drain of a
// stop (pause intake, let the writer commit) and the supervisor's stop.

import { setTimeout as sleep } from 'node:timers/promises';
import type { PipelineConfig, StrataConfig } from '../config.ts';
import { EXIT_NON_RETRYABLE, EXIT_RETRYABLE, exitCodeFor } from '../errors.ts';
import { type Logger, type LoggerOptions, resolveLogFormat } from '../logger.ts';
import type { MaterializerActorData, MaterializerMethods } from '../materializer/materializer-actor.ts';
import { capturedTables } from '../materializer/shape-store.ts';
import type { DaemonMetrics } from '../metrics.ts';
import { codeModule } from '../package-root.ts';
import type { PersistenceActorData, PersistenceMethods } from '../persistence/persistence-actor.ts';
import { ShapeTables } from '../pipeline/shape-tables.ts';
import type { ProcessingActorData, ProcessingMethods } from '../processing/processing-actor.ts';
import { ProgressLine } from '../progress-line.ts';
import type { MaterializerEvent, PersistenceEvent, ProcessingEvent, WriterRequests } from '../protocol.ts';
import { ActorRef, type ActorStats } from '../supervisor/actor-ref.ts';
import { workerSpawner } from '../supervisor/endpoints.ts';
import { PipelineRouter } from '../supervisor/pipeline-router.ts';
import { Supervisor } from '../supervisor/supervisor.ts';
import type { PipelineBuilds } from '../transpile/pipeline-builds.ts';
import { CatchUpWatch } from './catch-up.ts';
import type { DaemonDatabase } from './database.ts';
import type { Fleet } from './fleet.ts';
import type { DaemonLifecycle } from './lifecycle.ts';
import { ShapeService } from './shapes.ts';
import { withTimeout } from './with-timeout.ts';

const PROCESSING_ENTRY = codeModule('workers/processing');
const PERSISTENCE_ENTRY = codeModule('workers/persistence');
const MATERIALIZER_ENTRY = codeModule('workers/materializer');
/** How often a processing actor reports its progress. */
const PROGRESS_INTERVAL_MS = 1_000;
/**
 * A processing actor keeps a batch's rows, changes and COPY text alive across many scavenges; with
 * V8's default young generation most of it is promoted and collected again by the old-generation
 * GC. 96 MB (32 MB semi-spaces) cut GC time ~20% and the in-memory limit's time 15–18% on
 * bench/processing (two alternated pairs, erc20); it costs ~80 MB per pipeline.
 */
export const PROCESSING_YOUNG_GENERATION_MB = 96;

type PersistenceRef = ActorRef<PersistenceMethods, PersistenceActorData, PersistenceEvent>;
type MaterializerRef = ActorRef<MaterializerMethods, MaterializerActorData, MaterializerEvent>;
type ProcessingRef = ActorRef<ProcessingMethods, ProcessingActorData, ProcessingEvent, WriterRequests>;

export interface SupervisedActors {
  router: PipelineRouter;
  persistence: PersistenceRef;
  processing: ReadonlyMap<string, ProcessingRef>;
  materializer: MaterializerRef;
  /** Live shapes' side in the main thread (snapshots, waiting long-polls). */
  shapes: ShapeService;
  /** The actors that run here (a pipeline owned by another process of the fleet has none). */
  all(): Array<PersistenceRef | ProcessingRef | MaterializerRef>;
  /** Starts every actor (the writer first); resolves once all run. */
  start(): Promise<void>;
  /** The fleet granted this process the pipeline's lease: the writer fences by it, processing starts. */
  takePipeline(pipeline: string, epoch: number): Promise<void>;
  /**
   * The pipeline stops running here. `handover`: at its batch boundary, once the writer committed
   * what was processed. `loss`: another process holds it; what was not committed is dropped.
   */
  dropPipeline(pipeline: string, how: 'handover' | 'loss'): Promise<void>;
  /** `--watch`: the pipeline's new handlers take over at its next batch boundary. */
  reloadHandlers(pipeline: PipelineConfig): Promise<void>;
}

export function startActors(
  config: StrataConfig,
  log: Logger,
  lifecycle: DaemonLifecycle,
  processId: string,
  database: DaemonDatabase,
  builds: PipelineBuilds,
  metrics: DaemonMetrics,
  /** Many processes on Postgres: pipelines run here only while their lease is held. Null: all do. */
  fleet: Fleet | null,
): SupervisedActors {
  const loggerOptions: LoggerOptions = {
    level: config.log.level,
    format: resolveLogFormat(config.log.format, process.stdout.isTTY === true),
    bindings: { processId },
  };
  const db = {
    url: database.url,
    poolMax: config.db.poolMax,
    connectTimeoutMs: config.db.connectTimeoutMs,
    isolateStatements: database.isolateStatements,
  };
  const stopOnError = (error: unknown, reason: string) =>
    void lifecycle.stop(exitCodeFor(error) === EXIT_RETRYABLE ? EXIT_RETRYABLE : EXIT_NON_RETRYABLE, reason);

  const router = new PipelineRouter({
    log,
    onFatal: (error, context) => {
      log.fatal({ err: error, ...context }, 'fatal error outside any pipeline; stopping');
      stopOnError(error, 'fatal error');
    },
    // The failed pipeline's own progress report (state `failed`) reaches the catch-up watch,
    // which decides --exit-when-caught-up.
    onPipelineFailed: (pipeline, failure) => {
      log.error(
        { pipeline, code: failure.code, block: failure.block, event: failure.event, actor: failure.actor },
        'pipeline failed; the daemon keeps serving the others (see /status, fix the cause and restart)',
      );
    },
    onCommitted: (report) => metrics.batchesCommitted.inc({ pipeline: report.pipeline }, report.batches),
    onFenced: (pipeline, epoch) => fleet?.fenced(pipeline, epoch),
  });

  // Shapes' state lives in the materializer, which rebuilds it from the store when it restarts.
  // Set once the materializer's reference exists (the supervisor's callbacks run after start).
  let shapes: ShapeService | null = null;
  const supervisor = new Supervisor({
    strategy: 'one_for_one',
    intensity: config.supervisor.restartIntensity,
    periodMs: config.supervisor.restartPeriodMs,
    backoffBaseMs: config.supervisor.backoffBaseMs,
    backoffMaxMs: config.supervisor.backoffMaxMs,
    log,
    onGiveUp: (error) => {
      const retryable = exitCodeFor(error) === EXIT_RETRYABLE;
      log.fatal(
        { err: error, exitCode: retryable ? EXIT_RETRYABLE : EXIT_NON_RETRYABLE },
        retryable
          ? 'giving up; exiting so the service manager restarts the process'
          : 'giving up; the project must be fixed before a restart can help',
      );
      stopOnError(error, 'supervisor gave up');
    },
    onChildExit: (exit) => {
      if (exit.reason !== 'normal') metrics.actorRestarts.inc({ actor: exit.actor, reason: exit.reason });
    },
    onChildStarted: (child, _incarnation, restarted) => {
      if (restarted && child === 'persistence') {
        router.writerRestarted();
        // It may have died between a COMMIT and sending that transaction's changes to shapes.
        shapes?.resync();
      }
      if (child === 'materializer') {
        if (restarted) shapes?.reset();
        // What the writer sent while it was starting was dropped; the store has it.
        shapes?.resync();
      }
    },
  });

  const shapeTables = new ShapeTables();
  const persistence: PersistenceRef = new ActorRef({
    name: 'persistence',
    spawn: workerSpawner(PERSISTENCE_ENTRY),
    data: () => ({
      pipelines: builds.pipelines(),
      db,
      maxChangesPerWrite: config.processing.maxChangesPerWrite,
      metadataFlushMs: config.processing.metadataFlushMs,
      historyPruneMs: config.processing.historyPruneMs,
      shapeLogRetention: config.processing.shapeLogRetention,
      shapeCaptureInlineMax: config.processing.shapeCaptureInlineMax,
      writeMethod: database.embedded === null ? 'copy' : 'unnest',
      testFault: config.testFault,
      // Evaluated at every (re)start: a restarted writer goes on capturing for existing shapes.
      shapeTables: shapeTables.snapshot(),
      // … and on writing the pipelines whose lease this process holds, fenced by their epochs.
      fencing:
        fleet === null
          ? null
          : { owner: fleet.id, leases: fleet.grants(), leaseTtlMs: config.fleet.leaseTtlMs },
    }),
    logger: loggerOptions,
    log,
    pingIntervalMs: config.supervisor.pingIntervalMs,
    startTimeoutMs: 60_000,
    onEvent: (event) => router.fromPersistence(event),
    onExit: (exit) => supervisor.childExited(exit),
  });
  const processing = new Map<string, ProcessingRef>(
    config.pipelines.map((pipeline) => [
      pipeline.name,
      new ActorRef({
        name: `processing:${pipeline.name}`,
        spawn: workerSpawner(PROCESSING_ENTRY, { maxYoungGenerationSizeMb: PROCESSING_YOUNG_GENERATION_MB }),
        // Evaluated at every (re)start: a restarted pipeline loads its latest build.
        data: () => ({
          pipeline: builds.pipeline(pipeline.name),
          db,
          inMemoryObjectsTarget: config.processing.inMemoryObjectsTarget,
          progressIntervalMs: PROGRESS_INTERVAL_MS,
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
    ]),
  );
  const materializer: MaterializerRef = new ActorRef({
    name: 'materializer',
    spawn: workerSpawner(MATERIALIZER_ENTRY),
    data: () => ({
      pipelines: builds.pipelines(),
      db,
      shapeLogRetention: config.processing.shapeLogRetention,
      testFault: config.testFault,
    }),
    logger: loggerOptions,
    log,
    pingIntervalMs: config.supervisor.pingIntervalMs,
    startTimeoutMs: 60_000,
    onEvent: (event) => shapes?.onEvent(event),
    onExit: (exit) => supervisor.childExited(exit),
  });
  shapes = new ShapeService(database.mainDb, log, materializer, persistence, shapeTables, {
    chunkBytes: config.processing.shapeChunkBytes,
    pageRows: config.processing.shapeSnapshotPageRows,
    inPages: database.embedded !== null,
    pageDelayMs: config.testFault?.kind === 'shapes:snapshot-page-delay' ? config.testFault.ms : 0,
  });
  router.connect({ persistence, processing, materializer });

  const progressLine =
    config.processing.progress === 'always' ||
    (config.processing.progress === 'auto' && process.stderr.isTTY === true)
      ? new ProgressLine(process.stderr)
      : null;
  const catchUp = new CatchUpWatch(
    config,
    log,
    lifecycle,
    (pipeline) => persistence.call('buildIndexes', pipeline),
    () => router.progress(),
  );
  router.onProgress((progress) => {
    progressLine?.update(router.progress());
    catchUp.onProgress(progress);
  });

  supervisor.add({
    id: 'persistence',
    ref: persistence,
    restart: 'permanent',
    shutdownTimeoutMs: config.supervisor.shutdownTimeoutMs,
  });
  // Before the pipelines: the daemon is ready (and its pipelines process) only once it runs.
  supervisor.add({
    id: 'materializer',
    ref: materializer,
    restart: 'permanent',
    shutdownTimeoutMs: config.supervisor.shutdownTimeoutMs,
  });
  for (const [name, ref] of processing) {
    supervisor.add({
      id: ref.name,
      ref,
      restart: 'permanent',
      shutdownTimeoutMs: config.supervisor.shutdownTimeoutMs,
      // In a fleet, started when this process gets the pipeline's lease (takePipeline).
      dormant: fleet !== null,
      // A (re)started processing actor resumes from the committed checkpoint and reloads state
      // from the database: the writer must first commit what an earlier incarnation queued.
      beforeStart: async () => {
        await persistence.call('flush', name);
      },
    });
  }

  // Without the live line, a `progress` log line every 10 s carries the same figures.
  const progressLog =
    progressLine === null
      ? setInterval(() => {
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
        }, 10_000).unref()
      : null;

  const running = () => [...processing].filter(([, ref]) => supervisor.isEnabled(ref.name));
  lifecycle.onDrain(() => drain(config, log, persistence, new Map(running())));
  lifecycle.onStop('actors', async () => {
    if (progressLog !== null) clearInterval(progressLog);
    progressLine?.stop();
    // What each thread kept alive at its fullest and lately (bench/processing's memory figures).
    const actors = [persistence, materializer, ...processing.values()];
    const byActor = (figure: (stats: ActorStats) => number) =>
      Object.fromEntries(actors.map((ref) => [ref.name, figure(ref.stats())]));
    log.info(
      {
        heapAfterGcPeakBytes: byActor((stats) => stats.heapAfterGcPeakBytes),
        heapAfterGcRecentMedianBytes: byActor((stats) => stats.heapAfterGcRecentMedianBytes),
      },
      'actor memory',
    );
    await supervisor.stop();
  });

  return {
    router,
    persistence,
    processing,
    materializer,
    shapes,
    all: () => [persistence, materializer, ...running().map(([, ref]) => ref)],
    start: async () => {
      // Tables with stored shapes are captured from the writer's first transaction on.
      for (const { pipeline, entity } of await capturedTables(database.mainDb))
        shapeTables.add(pipeline, entity);
      await supervisor.start();
    },
    reloadHandlers: async (pipeline) => {
      const ref = processing.get(pipeline.name)!;
      if (supervisor.isEnabled(ref.name)) await ref.call('reloadHandlers', pipeline);
    },
    takePipeline: async (pipeline, epoch) => {
      if (config.testFault?.kind === 'fleet:take-delay') await sleep(config.testFault.ms);
      await persistence.call('grantLease', pipeline, epoch);
      // Its live shapes are served here from now on: captured from the first write, known to the
      // materializer (restarted to load those created on the previous owner; clients retry once).
      if (await shapes!.adoptPipeline(pipeline)) {
        log.info({ pipeline }, 'restarting the materializer to load the shapes of a pipeline taken over');
        shapes!.reset();
        await supervisor.disable('materializer');
        await supervisor.enable('materializer');
      } else shapes!.resync();
      await supervisor.enable(processing.get(pipeline)!.name);
    },
    dropPipeline: async (pipeline, how) => {
      const ref = processing.get(pipeline)!;
      if (how === 'loss') {
        // Nothing more of it is written here, whatever the actor still sends while it stops.
        await persistence.call('revokeLease', pipeline).catch(() => undefined);
        await supervisor.disable(ref.name);
      } else {
        // The actor stops at its batch boundary and sends what it processed; the writer commits it.
        await drain(config, log, persistence, new Map([[pipeline, ref]]), pipeline);
        await supervisor.disable(ref.name);
        await persistence.call('revokeLease', pipeline).catch(() => undefined);
      }
      router.forget(pipeline);
    },
  };
}

/**
 * An orderly stop (of the daemon, or of the pipelines handed over): they stop taking blocks, then
 * the writer commits what they processed.
 */
async function drain(
  config: StrataConfig,
  log: Logger,
  persistence: PersistenceRef,
  processing: ReadonlyMap<string, ProcessingRef>,
  /** The one pipeline handed over (only its batches need be committed); undefined: all. */
  handedOver?: string,
): Promise<void> {
  const deadline = Date.now() + config.supervisor.shutdownTimeoutMs;
  const remaining = () => Math.max(1, deadline - Date.now());
  for (const [name, ref] of processing) {
    try {
      const processed = await withTimeout(
        ref.call('pauseIntake'),
        remaining(),
        'intake did not stop in time',
      );
      log.info({ pipeline: name, processedCheckpoint: processed }, 'intake stopped');
    } catch (error) {
      log.warn({ pipeline: name, err: error }, 'could not pause intake cleanly');
    }
  }
  try {
    const committed = await withTimeout(
      persistence.call('flush', handedOver),
      remaining(),
      'writer did not flush in time',
    );
    log.info({ committed }, 'writer flushed');
  } catch (error) {
    log.warn({ err: error }, 'writer flush incomplete; uncommitted work will be redone on restart');
  }
}
