// The processing actor: one per owned pipeline. It reads blocks from the pipeline's source, runs
// the user's handlers over them in order (BatchExecutor), keeps the entities they touch in the
// InMemoryStore stamped with one checkpoint per block, and hands each batch's changes to the
// single writer. It never waits for the writer unless memory is over target (commit-gated
// backpressure), so processing runs ahead of persistence: processed ≥ committed.
//
// Every uncommitted change stays in the store until the writer reports its checkpoint committed.
// When the writer's thread dies, the supervisor restarts it and this actor re-sends everything
// above the committed checkpoint as one merged batch: nothing is lost.

import type { PipelineConfig } from '../config.ts';
import { createDb, type Db, poolReport } from '../db/pool.ts';
import { isRetryable, StrataError, serializeError } from '../errors.ts';
import { pipelineFingerprint } from '../persistence/pipeline-setup.ts';
import type {
  BatchCheckpoint,
  BatchForWriter,
  CommitReport,
  EntityChanges,
  PipelineProgress,
} from '../protocol.ts';
import { fingerprintChanges } from '../schema/ddl.ts';
import type { Schema } from '../schema/define-schema.ts';
import type { BlockSource } from '../sources/block-source.ts';
import { createSource } from '../sources/create-source.ts';
import type { Block } from '../sources/types.ts';
import type { ActorContext, ActorDefinition, ActorInstance } from '../supervisor/actor-host.ts';
import { BatchExecutor, type BatchExecutorOptions } from './batch-executor.ts';
import { collectBatchChanges, collectUncommittedChanges, encodeChanges } from './change-codec.ts';
import { InMemoryStore } from './in-memory-store.ts';
import { LoadLayer } from './load-layer.ts';
import { loadPipelineModules } from './pipeline-modules.ts';
import { RateMeter } from './rate-meter.ts';

export interface ProcessingActorData {
  pipeline: PipelineConfig;
  db: { url: string; poolMax: number; connectTimeoutMs: number; isolateStatements: boolean };
  inMemoryObjectsTarget: number;
  /** How often progress is reported to the supervisor. */
  progressIntervalMs: number;
  testFault: string | null;
}

export type ProcessingMethods = {
  committed(report: CommitReport): void;
  resend(): number;
  pauseIntake(): Promise<number>;
  progress(): PipelineProgress;
  /** New blocks may be available (the ingest API stored some). */
  wake(): void;
  /** `--watch`: load a new build of the handlers; they take over at the next batch boundary. */
  reloadHandlers(pipeline: PipelineConfig): Promise<void>;
};

/** What is kept of a batch until it is committed: its boundary and size, not its changes. */
interface UncommittedBatch {
  checkpoint: BatchCheckpoint;
  fromCheckpoint: number;
  fromBlockNumber: number;
  /** Block number of each of its checkpoints, in order. */
  blockNumbers: number[];
  changeCount: number;
}

const IDLE_POLL_MS = 1_000;

export const processingActor: ActorDefinition<ProcessingActorData, ProcessingMethods> = {
  name: 'processing',
  async start(context) {
    if (context.data.testFault === 'processing:crash-at-start') {
      throw new StrataError('STRATA_ERR_INTERNAL', 'injected fault: processing:crash-at-start');
    }
    const runtime = new PipelineRuntime(context);
    await runtime.init();
    return runtime.instance();
  },
};

class PipelineRuntime {
  private readonly context: ActorContext<ProcessingActorData>;
  private pipeline: PipelineConfig;
  private schema!: Schema;
  /** Handlers loaded by a reload, swapped in at the next batch boundary. */
  private pendingHandlers: BatchExecutorOptions['handlers'] | null = null;
  private readonly db: Db;
  private store!: InMemoryStore;
  private executor!: BatchExecutor;
  private source!: BlockSource;
  private readonly uncommitted: UncommittedBatch[] = [];
  private uncommittedChanges = 0;
  private committedCheckpoint = 0;
  private processedCheckpoint = 0;
  private processedBlock = 0;
  private eventsProcessed = 0;
  private firstEventAt: number | null = null;
  private readyAt: number | null = null;
  private peakInMemoryObjects = 0;
  private writerBusyMs = 0;
  private readonly eventRate = new RateMeter(10_000);
  private readonly blockRate = new RateMeter(10_000);
  private state: PipelineProgress['state'] = 'starting';
  private stopRequested = false;
  private loop: Promise<void> = Promise.resolve();
  private commitWaiters: Array<() => void> = [];
  private progressTimer: NodeJS.Timeout | null = null;
  private retryDelayMs = 0;

  constructor(context: ActorContext<ProcessingActorData>) {
    this.context = context;
    this.pipeline = context.data.pipeline;
    const { db } = context.data;
    this.db = createDb({
      url: db.url,
      max: db.poolMax,
      connectTimeoutMs: db.connectTimeoutMs,
      applicationName: `strata-processing-${this.pipeline.name}`,
      log: context.log,
      isolateStatements: db.isolateStatements,
    });
  }

  async init(): Promise<void> {
    const { schema, handlers } = await loadPipelineModules(this.pipeline);
    this.schema = schema;
    this.store = new InMemoryStore(schema);
    this.executor = new BatchExecutor({
      pipeline: this.pipeline.name,
      schema,
      handlers,
      store: this.store,
      loader: new LoadLayer(this.db, this.pipeline.name, this.store),
      log: this.context.log.child({ pipeline: this.pipeline.name }),
      strategy: this.pipeline.loadStrategy,
    });
    // The writer creates the pipeline's row before processing starts (see the supervisor wiring).
    const { rows } = await this.db.query<{ committed_checkpoint: string; committed_block: string | null }>(
      'SELECT committed_checkpoint, committed_block FROM strata.pipelines WHERE name = $1',
      [this.pipeline.name],
    );
    this.committedCheckpoint = Number(rows[0]?.committed_checkpoint ?? 0);
    this.processedCheckpoint = this.committedCheckpoint;
    this.processedBlock = rows[0]?.committed_block == null ? -1 : Number(rows[0].committed_block);
    this.source = createSource(this.pipeline, this.db);
    this.context.log.info(
      {
        pipeline: this.pipeline.name,
        resumeFrom: this.committedCheckpoint + 1,
        afterBlock: this.processedBlock,
      },
      this.committedCheckpoint === 0 ? 'pipeline starting from the first block' : 'pipeline resuming',
    );
    this.progressTimer = setInterval(() => this.reportProgress(), this.context.data.progressIntervalMs);
    this.progressTimer.unref();
    this.loop = this.run().catch((error: unknown) => this.fatal(error));
  }

  instance(): ActorInstance<ProcessingMethods> {
    return {
      methods: {
        committed: (report) => this.onCommitted(report),
        resend: () => this.resend(),
        pauseIntake: () => this.pauseIntake(),
        progress: () => this.progress(),
        wake: () => this.source.wake(),
        reloadHandlers: (pipeline) => this.reloadHandlers(pipeline),
      },
      report: () => poolReport(this.db),
      stop: async () => {
        await this.pauseIntake();
        if (this.progressTimer !== null) clearInterval(this.progressTimer);
        await this.source.close();
        await this.db.close();
      },
    };
  }

  // ─── the loop ────────────────────────────────────────────────────────────────────────────────

  private async run(): Promise<void> {
    const { batchSize } = this.pipeline;
    while (!this.stopRequested) {
      await this.awaitCapacity();
      if (this.stopRequested) break;
      if (this.pendingHandlers !== null) {
        this.executor.replaceHandlers(this.pendingHandlers);
        this.pendingHandlers = null;
        this.context.log.info(
          { pipeline: this.pipeline.name, fromBlock: this.processedBlock + 1 },
          'new handlers in effect',
        );
      }
      try {
        const blocks = await this.source.read(this.processedBlock, batchSize);
        if (blocks.length === 0) {
          this.setState(this.source.finite ? 'caught-up' : 'live');
          await this.source.waitForMore(IDLE_POLL_MS);
          continue;
        }
        if (this.state !== 'live') this.setState('backfill');
        await this.processBatch(blocks);
        this.retryDelayMs = 0;
      } catch (error) {
        // A lost connection while reading or loading changes nothing in memory (the executor
        // undoes a failed batch): wait and redo it.
        if (!isRetryable(error)) throw error;
        this.retryDelayMs = Math.min(5_000, Math.max(100, this.retryDelayMs * 2));
        this.context.log.warn(
          { err: error, pipeline: this.pipeline.name, retryInMs: this.retryDelayMs },
          'batch failed; retrying',
        );
        await this.source.waitForMore(this.retryDelayMs);
      }
    }
    this.setState('stopped');
  }

  private async reloadHandlers(pipeline: PipelineConfig): Promise<void> {
    const { schema, handlers } = await loadPipelineModules(pipeline);
    const changes = fingerprintChanges(
      pipelineFingerprint(pipeline, this.schema),
      pipelineFingerprint(pipeline, schema),
    );
    if (changes.length > 0) {
      throw new StrataError(
        'STRATA_ERR_SCHEMA_CHANGED',
        `pipeline ${pipeline.name}: the schema changed (${changes.join('; ')}); handlers are reloaded live, a schema is not — restart the daemon (\`strata reset ${pipeline.name}\` if it refuses the change)`,
      );
    }
    this.pipeline = pipeline;
    this.pendingHandlers = handlers;
  }

  private async processBatch(blocks: Block[]): Promise<void> {
    const fromCheckpoint = this.processedCheckpoint + 1;
    const eventCount = await this.executor.run(blocks, fromCheckpoint, false);
    const { changes, count } = collectBatchChanges(this.store);
    this.store.endBatch();
    const first = blocks[0]!;
    const last = blocks[blocks.length - 1]!;
    const batch: UncommittedBatch = {
      checkpoint: {
        checkpointId: fromCheckpoint + blocks.length - 1,
        blockNumber: last.number,
        blockHash: last.hash,
        eventCount,
      },
      fromCheckpoint,
      fromBlockNumber: first.number,
      blockNumbers: blocks.map((block) => block.number),
      changeCount: count,
    };
    this.uncommitted.push(batch);
    this.uncommittedChanges += count;
    this.processedCheckpoint = batch.checkpoint.checkpointId;
    this.processedBlock = last.number;
    this.eventsProcessed += eventCount;
    if (eventCount > 0) this.firstEventAt ??= Date.now();
    this.eventRate.add(eventCount);
    this.blockRate.add(blocks.length);
    this.peakInMemoryObjects = Math.max(this.peakInMemoryObjects, this.inMemoryObjects());
    this.emitBatch([batch], changes, count);
  }

  private emitBatch(batches: UncommittedBatch[], changes: EntityChanges, changeCount: number): void {
    const first = batches[0]!;
    const last = batches[batches.length - 1]!;
    const encodedChanges = encodeChanges(changes);
    const batch: BatchForWriter = {
      pipeline: this.pipeline.name,
      fromCheckpoint: first.fromCheckpoint,
      toCheckpoint: last.checkpoint.checkpointId,
      fromBlockNumber: first.fromBlockNumber,
      toBlockNumber: last.checkpoint.blockNumber,
      toBlockHash: last.checkpoint.blockHash,
      eventCount: batches.reduce((sum, b) => sum + b.checkpoint.eventCount, 0),
      changeCount,
      isInReorgThreshold: false,
      checkpoints: batches.map((b) => b.checkpoint),
      blockNumbers: batches.flatMap((b) => b.blockNumbers),
      encodedChanges,
    };
    this.context.emit({ type: 'batch-ready', batch }, [encodedChanges.buffer as ArrayBuffer]);
  }

  // ─── memory and commits ──────────────────────────────────────────────────────────────────────

  /** Entities held (committed, loaded and uncommitted) plus changes queued at the writer. */
  private inMemoryObjects(): number {
    return this.store.size() + this.uncommittedChanges;
  }

  /**
   * Tiered backpressure before each batch: drop committed changes (cheap to re-read), then rows
   * loaded from the database, and only if memory is still over target wait for a commit — and
   * only while a batch is queued, so a batch larger than the target cannot deadlock.
   */
  private async awaitCapacity(): Promise<void> {
    const target = this.context.data.inMemoryObjectsTarget;
    if (this.inMemoryObjects() <= target) return;
    this.store.dropCommitted(this.committedCheckpoint);
    if (this.inMemoryObjects() <= target) return;
    this.store.dropLoaded();
    while (this.inMemoryObjects() > target && this.uncommitted.length > 0 && !this.stopRequested) {
      await new Promise<void>((resolve) => this.commitWaiters.push(resolve));
      this.store.dropCommitted(this.committedCheckpoint);
      this.store.dropLoaded();
    }
  }

  private onCommitted(report: CommitReport): void {
    if (report.committedCheckpoint <= this.committedCheckpoint) return;
    this.committedCheckpoint = report.committedCheckpoint;
    this.writerBusyMs += report.durationMs;
    while (
      this.uncommitted.length > 0 &&
      this.uncommitted[0]!.checkpoint.checkpointId <= this.committedCheckpoint
    ) {
      this.uncommittedChanges -= this.uncommitted.shift()!.changeCount;
    }
    for (const resolve of this.commitWaiters.splice(0)) resolve();
    if (this.state === 'caught-up') this.reportProgress();
  }

  /**
   * After a writer restart: everything above the committed checkpoint, as one merged batch built
   * from the store (which holds every uncommitted change), with every uncommitted boundary.
   */
  private resend(): number {
    if (this.uncommitted.length === 0) return 0;
    const { changes, count } = collectUncommittedChanges(this.store, this.committedCheckpoint);
    this.emitBatch(this.uncommitted, changes, count);
    this.context.log.warn(
      {
        pipeline: this.pipeline.name,
        batches: this.uncommitted.length,
        fromCheckpoint: this.uncommitted[0]!.fromCheckpoint,
        changes: count,
      },
      're-sent uncommitted changes to the restarted writer',
    );
    return this.uncommitted.length;
  }

  /** Stops taking new blocks; resolves with the last processed checkpoint once the loop is idle. */
  private async pauseIntake(): Promise<number> {
    if (!this.stopRequested) {
      this.stopRequested = true;
      this.setState('stopping');
      for (const resolve of this.commitWaiters.splice(0)) resolve();
      this.source.wake();
    }
    await this.loop;
    return this.processedCheckpoint;
  }

  private setState(state: PipelineProgress['state']): void {
    if (this.state === state) return;
    this.state = state;
    if (state === 'caught-up' || state === 'live') this.readyAt ??= Date.now();
    this.reportProgress();
  }

  private progress(): PipelineProgress {
    const head = this.source?.head() ?? null;
    return {
      pipeline: this.pipeline.name,
      processedCheckpoint: this.processedCheckpoint,
      committedCheckpoint: this.committedCheckpoint,
      processedBlockNumber: this.processedBlock,
      headBlockNumber: head,
      eventsProcessed: this.eventsProcessed,
      eventsPerSecond: Math.round(this.eventRate.perSecond()),
      blocksPerSecond: Math.round(this.blockRate.perSecond()),
      inMemoryObjects: this.store === undefined ? 0 : this.inMemoryObjects(),
      peakInMemoryObjects: this.peakInMemoryObjects,
      writerBusyMs: Math.round(this.writerBusyMs),
      queuedBatches: this.uncommitted.length,
      state: this.state,
      firstEventAt: this.firstEventAt,
      readyAt: this.readyAt,
    };
  }

  private reportProgress(): void {
    this.context.emit({ type: 'progress', progress: this.progress() });
  }

  private fatal(error: unknown): void {
    this.stopRequested = true;
    this.setState('stopped');
    this.context.log.error({ err: error, pipeline: this.pipeline.name }, 'pipeline stopped by an error');
    this.context.emit({
      type: 'fatal',
      error: serializeError(error),
      context: { pipeline: this.pipeline.name, actor: this.context.name },
    });
  }
}
