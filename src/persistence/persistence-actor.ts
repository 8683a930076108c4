// The persistence actor: the single writer. Batches arrive in processing order and are queued;
// exactly one transaction is in flight at a time, so writes land in batch order while processing
// goes on. Each transaction drains the leading run of queued batches of one pipeline that share
// `isInReorgThreshold`, writes the run's entity changes (last change per id wins), records the
// checkpoint boundaries and advances the pipeline's committed checkpoint — all or nothing — then
// reports the commit.
//
// The pipeline row update is guarded by the committed checkpoint the writer expects, so a batch
// can never be applied twice or over a gap: a re-sent batch at or below the committed checkpoint
// is skipped, a gap is a bug and stops the pipeline. A merged re-send that straddles the
// committed checkpoint (the writer committed but its report was lost with its thread) is written
// whole: it carries the latest value of every id changed above the processing actor's committed
// checkpoint, so rewriting the part already committed is idempotent.

import { setTimeout as sleep } from 'node:timers/promises';
import type pg from 'pg';
import type { PipelineConfig } from '../config.ts';
import { assertLeaseHeld } from '../coordination/lease-store.ts';
import { createDb, type Db, poolReport, type Queryable } from '../db/pool.ts';
import { isRetryable, type SerializedError, StrataError, serializeError } from '../errors.ts';
import { compactShapeLog } from '../materializer/shape-store.ts';
import { decodeChanges, setIds } from '../pipeline/change-codec.ts';
import * as checkpointStore from '../pipeline/checkpoint-store.ts';
import { noHistoryError, prunedHistoryError } from '../pipeline/reorg-errors.ts';
import { type ShapeFilter, ShapeTables, shapeLogCompaction } from '../pipeline/shape-tables.ts';
import { WriteQueue } from '../pipeline/write-queue.ts';
import type {
  BatchForWriter,
  ChainMetadata,
  DiscardRequest,
  DiscardResult,
  PersistenceEvent,
  RollbackRequest,
  RollbackResult,
} from '../protocol.ts';
import type { Schema } from '../schema/define-schema.ts';
import { loadSchema } from '../schema/load-schema.ts';
import type { ActorContext, ActorDefinition, ActorInstance } from '../supervisor/actor-host.ts';
import { InjectedCrash, type TestFault } from '../test-faults.ts';
import { ChainMetadataStage } from './chain-metadata.ts';
import { writeEffectCache } from './effect-cache-writer.ts';
import { EntityWriter, type WriteMethod } from './entity-writer.ts';
import { isUnstorableTextError } from './nul-escape.ts';
import { buildDeferredIndexes, preparePipeline } from './pipeline-setup.ts';
import { rawEventsTable, writeRawEvents } from './raw-events.ts';
import { type PendingCapture, ShapeCapture } from './shape-capture.ts';

export interface PersistenceActorData {
  pipelines: PipelineConfig[];
  db: { url: string; poolMax: number; connectTimeoutMs: number; isolateStatements: boolean };
  /** COPY through a staging table (Postgres), or unnest (embedded PGlite, which lacks COPY). */
  writeMethod: WriteMethod;
  /** Changes per transaction before a run is cut (bounds transaction size and memory). */
  maxChangesPerWrite: number;
  /** Shortest interval between two idle chain-metadata flushes (ms). */
  metadataFlushMs: number;
  /** Shortest interval between two prunings of a pipeline's history (ms). */
  historyPruneMs: number;
  /** Live shapes' stored logs keep each pipeline's last so many transactions. */
  shapeLogRetention: number;
  /** Changed rows of a table in one run above which its capture stays in Postgres. */
  shapeCaptureInlineMax: number;
  testFault: TestFault | null;
  /** Per pipeline, the entities with live shapes (their changes go to the materializer). */
  shapeTables: Record<string, string[]>;
  /**
   * A fleet on Postgres: this process (`owner`) writes only the pipelines whose lease it holds,
   * each write transaction fenced by the lease's epoch. Null (embedded PGlite, one process):
   * every pipeline is written, unfenced.
   */
  fencing: { owner: string; leases: Record<string, number>; leaseTtlMs: number } | null;
}

export type PersistenceMethods = {
  enqueue(batch: BatchForWriter): number;
  /** Resolves once every queued batch (of `pipeline`, or all) is committed. */
  flush(pipeline?: string): Promise<Record<string, number>>;
  committedCheckpoints(): Record<string, number>;
  /** Builds the pipeline's deferred secondary indexes (once it has caught up). */
  buildIndexes(pipeline: string): Promise<boolean>;
  /** Latest chain metadata of a pipeline: folded into its next write, or flushed when idle. */
  stageChainMetadata(metadata: ChainMetadata): void;
  /** A reorg: drop the pipeline's queued batches that hold orphaned blocks. */
  discardQueued(request: DiscardRequest): DiscardResult;
  /** A reorg: roll the pipeline's stored state back to a checkpoint. */
  rollback(request: RollbackRequest): Promise<RollbackResult>;
  /**
   * A shape now exists on the entity: from the next transaction on, its changes are captured for
   * the materializer. Resolves, between two transactions, with the pipeline's committed
   * checkpoint — every transaction above it is captured.
   */
  captureShapes(pipeline: string, entity: string, where: ShapeFilter['where']): Promise<number>;
  /**
   * Every live shape's clause (from the materializer, once it runs): tables this writer captured
   * without knowing their shapes (since it started) keep only the changes some shape can show.
   */
  installShapeFilters(filters: ShapeFilter[]): void;
  /**
   * This process now holds the pipeline's lease at `epoch`: the writer re-reads where its storage
   * stands (another process may have written it) and writes it, fenced by that epoch.
   */
  grantLease(pipeline: string, epoch: number): Promise<void>;
  /** The lease is gone (handed over or lost): what is queued is dropped, nothing more written. */
  revokeLease(pipeline: string): void;
};

const MAX_WRITE_ATTEMPTS = 8;

const isFenced = (error: unknown) => error instanceof StrataError && error.code === 'STRATA_ERR_LEASE_FENCED';

export const persistenceActor: ActorDefinition<PersistenceActorData, PersistenceMethods, PersistenceEvent> = {
  name: 'persistence',
  async start(context) {
    if (context.data.testFault?.kind === 'persistence:crash-at-start') {
      throw new StrataError('STRATA_ERR_INTERNAL', 'injected fault: persistence:crash-at-start');
    }
    const writer = new Writer(context);
    await writer.init();
    return writer.instance();
  },
};

/** What the writer keeps per pipeline (besides its queue position, kept by the WriteQueue). */
interface PipelineStorage {
  config: PipelineConfig;
  schema: Schema;
  entityWriter: EntityWriter;
  /** Its secondary indexes exist (else they are deferred until it catches up). */
  indexesReady: boolean;
  /** The block of its committed checkpoint (-1: none). */
  committedBlock: number;
  /** Its last committed write kept history (was inside the reorg threshold). */
  lastWriteKeptHistory: boolean;
  /** When its history was last pruned (ms since the epoch). */
  lastPruneAt: number;
  /** Why it failed, once it has (told again to a restarted processing actor). */
  failure: SerializedError | null;
  /** Its committed transactions so far (live shapes' offsets count these). */
  commitSequence: number;
}

/**
 * Whether the writer is working through its queue, and which run it is writing (or retrying):
 * a reorg asking what it may discard must not discard that run's batches.
 */
type WriterActivity =
  | { kind: 'idle' }
  | { kind: 'draining'; writing: { pipeline: string; toCheckpoint: number } | null };

class Writer {
  private readonly context: ActorContext<PersistenceActorData, PersistenceEvent>;
  private readonly db: Db;
  /** What waits to be written, in what order, and each pipeline's committed checkpoint. */
  private readonly queue: WriteQueue<BatchForWriter>;
  private readonly shapeCapture: ShapeCapture;
  private readonly pipelines = new Map<string, PipelineStorage>();
  private activity: WriterActivity = { kind: 'idle' };
  private flushWaiters: Array<() => void> = [];
  private transactions = 0;
  private readonly crashBeforeCommit: number | null;
  private readonly crashAfterCommit: number | null;
  /** Test-only: a slow database, so batches queue up behind the write in flight. */
  private readonly writeDelayMs: number;
  /** Work that must not overlap a write transaction (index builds, rollbacks), run between runs. */
  private readonly tasks: Array<() => Promise<void>> = [];
  private readonly metadata = new ChainMetadataStage();
  private metadataTimer: NodeJS.Timeout | null = null;
  private lastMetadataWrite = 0;
  /** Per pipeline, the lease epoch it is written under; null: unfenced (embedded, one process). */
  private readonly leases: Map<string, number> | null;
  /** Writes refused by the lease fence (the `/status` and metrics figure). */
  private fencedWrites = 0;

  constructor(context: ActorContext<PersistenceActorData, PersistenceEvent>) {
    this.context = context;
    this.queue = new WriteQueue(context.data.maxChangesPerWrite);
    this.shapeCapture = new ShapeCapture(
      new ShapeTables(context.data.shapeTables),
      context.data.shapeCaptureInlineMax,
    );
    const { db } = context.data;
    this.db = createDb({
      url: db.url,
      max: db.poolMax,
      connectTimeoutMs: db.connectTimeoutMs,
      applicationName: 'strata-persistence',
      log: context.log,
      isolateStatements: db.isolateStatements,
      // Paused past its lease inside a transaction, this process must not block the next owner
      // with the locks it holds (its COMMIT then fails: the write is not applied).
      ...(context.data.fencing === null
        ? {}
        : { idleInTransactionTimeoutMs: context.data.fencing.leaseTtlMs }),
    });
    const fault = context.data.testFault;
    // Only the first incarnation crashes, so the test sees one crash and a clean recovery.
    const firstLife = context.incarnation === 1;
    this.crashBeforeCommit =
      fault?.kind === 'persistence:crash-before-commit' && firstLife ? fault.transaction : null;
    this.crashAfterCommit =
      fault?.kind === 'persistence:crash-after-commit' && firstLife ? fault.transaction : null;
    this.writeDelayMs = fault?.kind === 'persistence:write-delay' ? fault.ms : 0;
    const { fencing } = context.data;
    this.leases = fencing === null ? null : new Map(Object.entries(fencing.leases));
  }

  async init(): Promise<void> {
    const { pipelines } = this.context.data;
    const schemas = await Promise.all(pipelines.map((pipeline) => loadSchema(pipeline.schema)));
    const indexesReady = new Set<string>();
    await this.db.transaction(async (client) => {
      // Concurrent CREATE SCHEMA IF NOT EXISTS from two processes can still collide; serialise.
      await client.query(`SELECT pg_advisory_xact_lock(hashtext('strata.pipeline-ddl'))`);
      for (const [index, pipeline] of pipelines.entries()) {
        const prepared = await preparePipeline(client, pipeline, schemas[index]!);
        if (prepared.indexesReady) indexesReady.add(pipeline.name);
      }
    });
    for (const [index, pipeline] of pipelines.entries()) {
      const schema = schemas[index]!;
      this.pipelines.set(pipeline.name, {
        config: pipeline,
        schema,
        entityWriter: new EntityWriter(pipeline.name, schema, this.context.data.writeMethod),
        indexesReady: indexesReady.has(pipeline.name),
        committedBlock: -1,
        lastWriteKeptHistory: false,
        lastPruneAt: 0,
        failure: null,
        commitSequence: 0,
      });
    }
    await this.loadCommitted(pipelines.map((pipeline) => pipeline.name));
  }

  /** Where the pipelines' storage stands, read from the database (at start, and on a lease grant). */
  private async loadCommitted(names: string[]): Promise<void> {
    for (const point of await checkpointStore.readCommitted(this.db, names)) {
      this.queue.restart(point.pipeline, point.committedCheckpoint);
      const storage = this.storage(point.pipeline);
      storage.committedBlock = point.committedBlock;
      storage.lastWriteKeptHistory = point.history;
      storage.commitSequence = point.commitSequence;
      storage.failure = null;
    }
  }

  /** Whether this process may write the pipeline (it holds the lease, or there is no fleet). */
  private writes(pipeline: string): boolean {
    return this.leases === null || this.leases.has(pipeline);
  }

  /**
   * The lease fence, the last statement of every write transaction of a pipeline (see
   * src/coordination/lease-store.ts): throws STRATA_ERR_LEASE_FENCED, rolling it back, when
   * another process took the lease over.
   */
  private async fence(client: Queryable, pipeline: string): Promise<void> {
    if (this.leases === null) return;
    const epoch = this.leases.get(pipeline);
    const owner = this.context.data.fencing!.owner;
    if (epoch === undefined) {
      throw new StrataError(
        'STRATA_ERR_LEASE_FENCED',
        `pipeline ${pipeline}: this process holds no lease for it`,
        {
          details: { pipeline },
        },
      );
    }
    await assertLeaseHeld(client, pipeline, owner, epoch);
  }

  /** A write was refused by the fence: stop writing the pipeline and tell the main thread. */
  private fenced(pipeline: string, error: unknown): void {
    const epoch = this.leases?.get(pipeline) ?? -1;
    this.fencedWrites += 1;
    this.leases?.delete(pipeline);
    this.queue.restart(pipeline, this.queue.committed(pipeline));
    this.context.log.warn(
      { pipeline, epoch, reason: (error as Error).message },
      'write refused by the lease fence: another process holds the pipeline; stepping down',
    );
    this.context.emit({ type: 'fenced', pipeline, epoch });
  }

  private storage(pipeline: string): PipelineStorage {
    const storage = this.pipelines.get(pipeline);
    if (storage === undefined)
      throw new StrataError('STRATA_ERR_UNKNOWN_PIPELINE', `unknown pipeline ${pipeline}`);
    return storage;
  }

  private get busy(): boolean {
    return this.activity.kind !== 'idle';
  }

  /** Runs `work` between two write transactions, in the writer's order; resolves with its result. */
  private betweenWrites<T>(work: () => Promise<T>): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      this.tasks.push(() => work().then(resolve, reject));
      void this.drain();
    });
  }

  instance(): ActorInstance<PersistenceMethods> {
    return {
      methods: {
        enqueue: (batch) => this.enqueue(batch),
        flush: async (pipeline) => {
          while (this.busy || this.queue.hasWritable(pipeline)) {
            await new Promise<void>((resolve) => this.flushWaiters.push(resolve));
          }
          return this.queue.committedCheckpoints();
        },
        committedCheckpoints: () => this.queue.committedCheckpoints(),
        buildIndexes: (pipeline) => this.buildIndexes(pipeline),
        stageChainMetadata: (metadata) => this.stageChainMetadata(metadata),
        discardQueued: (request) => this.discardQueued(request),
        rollback: (request) => this.rollback(request),
        installShapeFilters: (filters) => this.shapeCapture.install(filters),
        grantLease: (pipeline, epoch) =>
          this.betweenWrites(async () => {
            await this.loadCommitted([pipeline]);
            this.leases?.set(pipeline, epoch);
          }),
        revokeLease: (pipeline) => {
          this.leases?.delete(pipeline);
          this.queue.restart(pipeline, this.queue.committed(pipeline));
        },
        captureShapes: (pipeline, entity, where) =>
          this.betweenWrites(async () => {
            this.shapeCapture.capture(pipeline, entity, where);
            return this.storage(pipeline).commitSequence;
          }),
      },
      report: () => ({ ...poolReport(this.db), fencedWrites: this.fencedWrites }),
      stop: async () => {
        if (this.metadataTimer !== null) clearTimeout(this.metadataTimer);
        // Write what is queued before the thread ends (the shutdown timeout bounds this).
        while (this.busy || this.queue.hasWritable()) {
          await new Promise<void>((resolve) => this.flushWaiters.push(resolve));
        }
        await this.db.close();
      },
    };
  }

  private async drain(): Promise<void> {
    if (this.activity.kind !== 'idle') return;
    const activity: WriterActivity = { kind: 'draining', writing: null };
    this.activity = activity;
    try {
      for (;;) {
        const { run, alreadyCommitted } = this.queue.takeRun();
        for (const pipeline of alreadyCommitted) this.reportCommitted(pipeline, 0, 0, 0, 0);
        if (run.length > 0) {
          activity.writing = { pipeline: run[0]!.pipeline, toCheckpoint: run[run.length - 1]!.toCheckpoint };
          await this.writeWithRetry(run).finally(() => {
            activity.writing = null;
          });
        }
        // One task between two runs: a steady stream of batches must not starve pruning (history
        // would grow without bound through a long backfill) or a rollback.
        const task = this.tasks.shift();
        if (task !== undefined) await task();
        else if (run.length === 0) break;
      }
    } finally {
      this.activity = { kind: 'idle' };
      for (const resolve of this.flushWaiters.splice(0)) resolve();
    }
  }

  private stageChainMetadata(metadata: ChainMetadata): void {
    this.metadata.stage(metadata);
    if (this.metadataTimer !== null) return;
    // Throttled: at most one idle flush per interval. A batch write before it fires folds the
    // figures in, and the flush finds nothing dirty.
    const wait = Math.max(0, this.lastMetadataWrite + this.context.data.metadataFlushMs - Date.now());
    this.metadataTimer = setTimeout(() => {
      this.metadataTimer = null;
      if (!this.metadata.isDirty) return;
      this.betweenWrites(async () => {
        // In pipeline order: the fences lock lease rows in the order renewals do (no deadlock).
        const dirty = this.metadata
          .allDirty()
          .filter((metadata) => this.writes(metadata.pipeline))
          .sort((a, b) => (a.pipeline < b.pipeline ? -1 : a.pipeline > b.pipeline ? 1 : 0));
        if (dirty.length === 0) return;
        await this.db.transaction(async (client) => {
          for (const metadata of dirty) {
            await checkpointStore.writeChainMetadata(client, metadata);
            await this.fence(client, metadata.pipeline);
          }
        });
        for (const metadata of dirty) this.metadata.written(metadata);
        this.lastMetadataWrite = Date.now();
      }).catch((error: unknown) => {
        if (isFenced(error)) {
          this.fenced((error as StrataError).details?.pipeline as string, error);
          return;
        }
        // Metadata is advisory: keep it dirty for the next write, never fail the writer on it.
        this.context.log.warn({ err: error }, 'chain metadata not written; will retry');
      });
    }, wait);
    this.metadataTimer.unref();
  }

  /**
   * Builds a pipeline's deferred secondary indexes, in the writer's order (between two write
   * transactions), and records it. Resolves at once when they exist.
   */
  private async buildIndexes(pipeline: string): Promise<boolean> {
    const storage = this.storage(pipeline);
    if (storage.indexesReady) return true;
    return this.betweenWrites(async () => {
      const started = performance.now();
      await this.db.transaction(async (client) => {
        await buildDeferredIndexes(client, pipeline, storage.schema);
        await this.fence(client, pipeline);
      });
      storage.indexesReady = true;
      this.context.log.info(
        { pipeline, durationMs: Math.round(performance.now() - started) },
        'deferred indexes built',
      );
      return true;
    });
  }

  /** Queues a batch in checkpoint order within its pipeline (a re-send may arrive late). */
  private enqueue(batch: BatchForWriter): number {
    // A batch sent before the lease was lost, by an actor being stopped: never written here.
    if (!this.writes(batch.pipeline)) return this.queue.length;
    if (this.queue.enqueue(batch)) void this.drain();
    else {
      // A restarted processing actor of a failed pipeline: tell it again instead of dropping its
      // batches without a word (it would wait for commits forever).
      this.context.emit({
        type: 'fatal',
        error: this.storage(batch.pipeline).failure!,
        context: { actor: 'persistence', pipeline: batch.pipeline },
      });
    }
    return this.queue.length;
  }

  /**
   * A lost connection or an unavailable database is never fatal: the transaction is replayed
   * whole, with capped backoff, for as long as it takes (processing waits through backpressure
   * meanwhile). Other retryable errors (serialization failures, resource limits) get a few tries.
   */
  private async writeWithRetry(run: BatchForWriter[]): Promise<void> {
    for (let attempt = 1; ; attempt++) {
      try {
        await this.write(run);
        return;
      } catch (error) {
        if (error instanceof InjectedCrash) this.crashThread(error.message);
        if (isFenced(error)) {
          this.fenced(run[0]!.pipeline, error);
          return;
        }
        const unavailable = error instanceof StrataError && error.code === 'STRATA_ERR_DB_UNAVAILABLE';
        if (isRetryable(error) && (unavailable || attempt < MAX_WRITE_ATTEMPTS)) {
          const delay = Math.min(5_000, 100 * 2 ** Math.min(attempt - 1, 10));
          this.context.log.warn(
            { err: error, pipeline: run[0]!.pipeline, attempt, retryInMs: delay },
            'write failed; retrying the transaction',
          );
          await sleep(delay);
          continue;
        }
        this.fail(await this.explain(error, run), run);
        return;
      }
    }
  }

  /**
   * Writes a run. When Postgres refuses a NUL byte or a lone surrogate, the transaction is
   * retried once with the rows of the tables that hold one escaped (src/persistence/nul-escape.ts):
   * the normal path pays nothing, and no other row or table of the transaction is lost.
   */
  private async write(run: BatchForWriter[]): Promise<void> {
    try {
      await this.writeRun(run, false);
    } catch (error) {
      if (!isUnstorableTextError(error)) throw error;
      this.context.log.warn(
        { pipeline: run[0]!.pipeline, reason: (error as Error).message },
        'NUL bytes or lone surrogates refused by Postgres; retrying with them escaped',
      );
      await this.writeRun(run, true);
    }
  }

  private async writeRun(run: BatchForWriter[], escapeNul: boolean): Promise<void> {
    const started = performance.now();
    const first = run[0]!;
    const last = run[run.length - 1]!;
    const pipeline = first.pipeline;
    const expected = this.queue.committed(pipeline);
    // Boundaries above what is committed (a merged re-send may straddle it).
    const runCheckpoints = run.flatMap((batch) => batch.checkpoints).filter((c) => c.checkpointId > expected);
    const eventCount = runCheckpoints.reduce((sum, c) => sum + c.eventCount, 0);
    const runChanges = run.map((batch) => decodeChanges(batch.encodedChanges));
    const storage = this.storage(pipeline);
    const { entityWriter } = storage;
    this.transactions += 1;
    let rowsWritten = 0;
    const metadata = this.metadata.dirtyOf(pipeline);
    let capture: PendingCapture | null = null;
    let sequence = 0;
    if (this.writeDelayMs > 0) await sleep(this.writeDelayMs);
    await this.db.transaction(async (client) => {
      // Re-entering the threshold: history from before the writes outside it is unreachable.
      if (first.isInReorgThreshold && !storage.lastWriteKeptHistory) {
        await entityWriter.clearHistory(client);
      }
      capture = this.shapeCapture.captures(pipeline)
        ? await this.shapeCapture.before(client, pipeline, storage.schema, runChanges)
        : null;
      const result = await entityWriter.write(
        client,
        runChanges,
        escapeNul,
        first.isInReorgThreshold ? { committedCheckpoint: expected } : null,
      );
      await capture?.after(client);
      rowsWritten = result.written;
      if (result.escaped.length > 0)
        this.context.log.warn(
          { pipeline, entities: result.escaped },
          'rows with NUL bytes or lone surrogates stored escaped (\\u0000, \\ud800)',
        );
      await writeEffectCache(
        client,
        run.flatMap((batch) => batch.effectCache),
        escapeNul,
      );
      const rawBlocks = run.flatMap((batch) => batch.rawBlocks ?? []);
      if (rawBlocks.length > 0) await writeRawEvents(client, pipeline, rawBlocks, expected, escapeNul);
      if (metadata !== undefined) await checkpointStore.writeChainMetadata(client, metadata);
      await checkpointStore.recordCheckpoints(client, pipeline, runCheckpoints);
      sequence = await checkpointStore.advanceCommitted(client, {
        pipeline,
        expected,
        toCheckpoint: last.toCheckpoint,
        toBlockNumber: last.toBlockNumber,
        toBlockHash: last.toBlockHash,
        eventDelta: eventCount,
      });
      await capture?.persist(client, sequence);
      await this.compactShapeLog(client, pipeline, sequence);
      await this.fence(client, pipeline);
      if (this.crashBeforeCommit === this.transactions) throw new InjectedCrash('before COMMIT');
    });
    if (this.crashAfterCommit === this.transactions) this.crashThread('after COMMIT');
    this.queue.setCommitted(pipeline, last.toCheckpoint);
    storage.commitSequence = sequence;
    if (this.shapeCapture.captures(pipeline)) this.emitShapeChanges(pipeline, sequence, capture);
    storage.committedBlock = last.toBlockNumber;
    storage.lastWriteKeptHistory = first.isInReorgThreshold;
    if (first.isInReorgThreshold) this.schedulePrune(storage, last.toBlockNumber);
    if (metadata !== undefined) {
      this.metadata.written(metadata);
      this.lastMetadataWrite = Date.now();
    }
    this.reportCommitted(pipeline, eventCount, run.length, rowsWritten, performance.now() - started);
  }

  /** Inside a transaction of a pipeline with shapes, now and then: the stored log's retention. */
  private async compactShapeLog(client: pg.PoolClient, pipeline: string, sequence: number): Promise<void> {
    if (!this.shapeCapture.captures(pipeline)) return;
    const through = shapeLogCompaction(sequence, this.context.data.shapeLogRetention);
    if (through !== null) await compactShapeLog(client, pipeline, through);
  }

  /** The committed transaction's captured changes, in bounded fragments, then its commit marker. */
  private emitShapeChanges(pipeline: string, sequence: number, capture: PendingCapture | null): void {
    // Large captures are not sent: the marker's count tells the materializer to read them from the store.
    for (const { entity, fragment, changes } of capture?.fragments() ?? []) {
      this.context.emit({
        type: 'shape-changes',
        fragment: { pipeline, entity, sequence, fragment, changes },
      });
    }
    this.context.emit({ type: 'shape-commit', pipeline, sequence, fragments: capture?.fragmentCount ?? 0 });
  }

  private reportCommitted(
    pipeline: string,
    eventCount: number,
    batches: number,
    rowsWritten: number,
    durationMs: number,
  ): void {
    this.context.emit({
      type: 'committed',
      report: {
        pipeline,
        committedCheckpoint: this.queue.committed(pipeline),
        committedBlockNumber: this.storage(pipeline).committedBlock,
        eventCount,
        batches,
        rowsWritten,
        durationMs,
      },
    });
  }

  /**
   * A reorg, first step: the pipeline's queued batches that reach above `aboveCheckpoint` hold
   * orphaned blocks; they are dropped here, never written (the processing actor re-sends what of
   * them lies at or below it). Synchronous, between two messages, so no run can take them
   * meanwhile. Batches reach the writer in the order they were sent, before this request.
   */
  private discardQueued(request: DiscardRequest): DiscardResult {
    const { pipeline, aboveCheckpoint } = request;
    const writing = this.activity.kind === 'draining' ? this.activity.writing : null;
    const inFlightTo = writing?.pipeline === pipeline ? writing.toCheckpoint : null;
    return { keptUpTo: this.queue.discardAbove(pipeline, aboveCheckpoint, inFlightTo) };
  }

  /**
   * A reorg whose orphaned blocks were partly committed: restores the pipeline's entities to
   * `toCheckpoint` from history and forgets every checkpoint above it, in one transaction, in the
   * writer's order (the processing actor discarded what was queued and waited for the write in
   * flight, so nothing of the pipeline is queued). Refused, changing nothing, when a checkpoint
   * above the target was written without history.
   */
  private rollback(request: RollbackRequest): Promise<RollbackResult> {
    const { pipeline, toCheckpoint, fromCheckpoint } = request;
    const storage = this.storage(pipeline);
    return this.betweenWrites(async () => {
      const expected = this.queue.committed(pipeline);
      if (expected !== fromCheckpoint || this.queue.hasQueued(pipeline)) {
        throw new StrataError(
          'STRATA_ERR_INTERNAL',
          `rollback of ${pipeline} requested at checkpoint ${fromCheckpoint}, but the writer is at ${expected} with ${this.queue.length} batches queued`,
        );
      }
      const result = await this.db
        .transaction(async (client) => {
          const rows = await checkpointStore.checkpointsFrom(client, pipeline, toCheckpoint);
          const target = rows[0]?.checkpointId === toCheckpoint ? rows[0] : undefined;
          const above = target === undefined ? rows : rows.slice(1);
          if (above.some((row) => !row.history)) throw noHistoryError(pipeline, toCheckpoint);
          // Checkpoints missing: pruned since (a reorg soon after another, reaching further down).
          if (target === undefined || above.length !== expected - toCheckpoint) {
            throw prunedHistoryError(pipeline, toCheckpoint);
          }
          // A rollback reaches live shapes as an ordinary transaction of compensating changes.
          const capture = this.shapeCapture.captures(pipeline)
            ? await this.shapeCapture.beforeRollback(client, pipeline, storage.schema, toCheckpoint)
            : null;
          const rowsRestored = await storage.entityWriter.rollback(client, toCheckpoint);
          await capture?.after(client);
          if (storage.config.rawEvents) {
            await client.query(`DELETE FROM ${rawEventsTable(pipeline)} WHERE checkpoint_id > $1`, [
              toCheckpoint,
            ]);
          }
          const eventsRemoved = above.reduce((sum, row) => sum + row.eventCount, 0);
          await checkpointStore.deleteCheckpointsAbove(client, pipeline, toCheckpoint);
          const sequence = await checkpointStore.advanceCommitted(client, {
            pipeline,
            expected,
            toCheckpoint,
            toBlockNumber: target.blockNumber,
            toBlockHash: target.blockHash,
            eventDelta: -eventsRemoved,
          });
          await capture?.persist(client, sequence);
          await this.compactShapeLog(client, pipeline, sequence);
          await this.fence(client, pipeline);
          return {
            pipeline,
            toCheckpoint,
            toBlockNumber: target.blockNumber,
            toBlockHash: target.blockHash,
            eventsRemoved,
            rowsRestored,
            targetKeptHistory: target.history,
            sequence,
            capture,
          };
        })
        .catch((error: unknown) => {
          if (isFenced(error)) this.fenced(pipeline, error);
          throw error;
        });
      this.queue.setCommitted(pipeline, toCheckpoint);
      const { sequence, capture, ...answer } = result;
      storage.commitSequence = sequence;
      if (this.shapeCapture.captures(pipeline)) this.emitShapeChanges(pipeline, sequence, capture);
      storage.committedBlock = result.toBlockNumber;
      storage.lastWriteKeptHistory = result.targetKeptHistory;
      return answer;
    });
  }

  /**
   * History below the safe checkpoint (the last block at least maxReorgDepth below the committed
   * block — a reorg's depth is counted from what was processed, which is at least that) can never
   * be rolled back to: prune it, keeping one anchor per id, at most every `historyPruneMs` per
   * pipeline, between writes. Not the source head: processing may trail it by more than the depth.
   */
  private schedulePrune(storage: PipelineStorage, committedBlock: number): void {
    const now = Date.now();
    if (now - storage.lastPruneAt < this.context.data.historyPruneMs) return;
    storage.lastPruneAt = now;
    const pipeline = storage.config.name;
    this.betweenWrites(() =>
      this.db.transaction(async (client) => {
        const safe = await checkpointStore.lastCheckpointAtOrBelow(
          client,
          pipeline,
          committedBlock - storage.config.maxReorgDepth,
        );
        if (safe === null) return;
        const started = performance.now();
        const pruned = await storage.entityWriter.prune(client, safe);
        await checkpointStore.pruneHistoryCheckpoints(client, pipeline, safe);
        await this.fence(client, pipeline);
        if (pruned > 0) {
          const durationMs = Math.round(performance.now() - started);
          this.context.log.debug({ pipeline, safe, pruned, durationMs }, 'history pruned');
        }
      }),
    ).catch((error: unknown) => {
      if (isFenced(error)) {
        this.fenced(pipeline, error);
        return;
      }
      // Pruning only saves space: a failed one is retried by a later write.
      this.context.log.warn({ err: error, pipeline }, 'history pruning failed');
    });
  }

  /**
   * A write that fails for a reason of its own (not a lost connection): bisect the run's sets to
   * the one that fails alone and name it — entity, id, the block and checkpoint that set it.
   */
  private async explain(error: unknown, run: BatchForWriter[]): Promise<unknown> {
    if (isRetryable(error) || error instanceof StrataError) return error;
    const pipeline = run[0]!.pipeline;
    try {
      const runChanges = run.map((batch) => decodeChanges(batch.encodedChanges));
      const culprit = await this.storage(pipeline).entityWriter.findFailingSet(
        this.db,
        runChanges,
        isUnstorableTextError(error),
      );
      if (culprit === null) return error;
      let checkpoint = 0;
      let event = '';
      let logIndex = -1;
      for (const changes of runChanges) {
        const part = changes[culprit.entity];
        const index = part === undefined ? -1 : setIds(part).lastIndexOf(culprit.id);
        if (index >= 0) {
          checkpoint = part!.checkpoints[index]!;
          event = part!.eventNames[index] ?? '';
          logIndex = part!.logIndexes[index] ?? -1;
        }
      }
      const batch = run.find((b) => b.fromCheckpoint <= checkpoint && checkpoint <= b.toCheckpoint);
      const block = batch?.blockNumbers[checkpoint - batch.fromCheckpoint];
      const by = event ? ` by the ${event} handler (log index ${logIndex})` : '';
      const reason = (culprit.error as Error).message ?? String(culprit.error);
      return new StrataError(
        'STRATA_ERR_WRITE_FAILED',
        `pipeline ${pipeline}: ${culprit.entity} "${culprit.id}" set at block ${block ?? '?'}${by} (checkpoint ${checkpoint}) cannot be stored: ${reason}`,
        {
          cause: culprit.error,
          details: {
            pipeline,
            entity: culprit.entity,
            id: culprit.id,
            checkpoint,
            block,
            ...(event ? { event, logIndex } : {}),
          },
        },
      );
    } catch (bisectError) {
      this.context.log.warn({ err: bisectError }, 'could not narrow the failing write down to a row');
      return error;
    }
  }

  /** Test-only (STRATA_TEST_FAULT): this thread ends now, as a crash would end it. */
  private crashThread(when: string): never {
    this.context.log.warn({ transaction: this.transactions }, `injected fault: crashing ${when}`);
    process.exit(1);
  }

  /**
   * The one fatal path: name the batch range and stop writing this pipeline (its queued batches
   * are dropped; the processing actor keeps them uncommitted and is told to stop). Other
   * pipelines go on being written.
   */
  private fail(error: unknown, run: BatchForWriter[]): void {
    const pipeline = run[0]?.pipeline;
    if (pipeline !== undefined) {
      this.storage(pipeline).failure = serializeError(error);
      this.queue.fail(pipeline);
    }
    const context = {
      pipeline: run[0]?.pipeline,
      fromCheckpoint: run[0]?.fromCheckpoint,
      toCheckpoint: run[run.length - 1]?.toCheckpoint,
      fromBlock: run[0]?.fromBlockNumber,
      toBlock: run[run.length - 1]?.toBlockNumber,
    };
    this.context.log.error(
      { err: error, ...context },
      'batch write failed; not retryable; the pipeline stops',
    );
    this.context.emit({
      type: 'fatal',
      error: serializeError(error),
      context: { actor: 'persistence', ...context },
    });
  }
}
