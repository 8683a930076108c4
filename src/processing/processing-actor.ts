// The processing actor: one per owned pipeline. It reads blocks from the pipeline's source, runs
// the user's handlers over them in order (BatchExecutor), keeps the entities they touch in the
// InMemoryStore stamped with one checkpoint per block, and hands each batch's changes to the
// single writer. It never waits for the writer unless memory is over target (commit-gated
// backpressure), so processing runs ahead of persistence: processed ≥ committed. Inside the reorg
// threshold a batch is held until the next read shows its tip still stands, so the commonest
// reorg is undone in memory (see rollBackReorg for the three ways a reorg is undone).
//
// Every uncommitted change stays in the store until the writer reports its checkpoint committed.
// When the writer's thread dies, the supervisor restarts it and this actor re-sends everything
// above the committed checkpoint as one merged batch: nothing is lost.

import { setImmediate, setTimeout as sleep } from 'node:timers/promises';
import type { PipelineConfig } from '../config.ts';
import { createDb, type Db, poolReport } from '../db/pool.ts';
import { isActorRestarting, isRetryable, StrataError, serializeError } from '../errors.ts';
import { type EncodedChanges, transferList } from '../pipeline/change-codec.ts';
import type { RecordedBlock } from '../pipeline/checkpoint-store.ts';
import * as checkpointStore from '../pipeline/checkpoint-store.ts';
import { failureOf } from '../pipeline/failure.ts';
import { pipelineFingerprint } from '../pipeline/fingerprint.ts';
import { noCommonAncestorError, noHistoryError } from '../pipeline/reorg-errors.ts';
import {
  lastCheckpoint,
  mergeForWriter,
  type UncommittedBatch,
  UncommittedLedger,
} from '../pipeline/uncommitted-ledger.ts';
import type {
  BatchCheckpoint,
  BatchForWriter,
  CommitReport,
  PipelineFailure,
  PipelineProgress,
  ProcessingEvent,
  RawBlock,
  ReorgUndoneIn,
  WriterRequests,
} from '../protocol.ts';
import { fingerprintChanges } from '../schema/ddl.ts';
import type { Schema } from '../schema/define-schema.ts';
import type { BlockSource } from '../sources/block-source.ts';
import { createSource } from '../sources/create-source.ts';
import type { Block } from '../sources/types.ts';
import type { ActorContext, ActorDefinition, ActorInstance } from '../supervisor/actor-host.ts';
import type { TestFault } from '../test-faults.ts';
import { BatchExecutor, type BatchExecutorOptions, MAX_TURN_MS } from './batch-executor.ts';
import {
  collectBatchChanges,
  collectBatchChangesInTurns,
  collectUncommittedChanges,
} from './collect-changes.ts';
import { EffectStore } from './effect-store.ts';
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
  testFault: TestFault | null;
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
  /** The writer could not store this pipeline (a permanent error): stop, and report `failed`. */
  failed(failure: PipelineFailure): Promise<void>;
};

type ProcessingContext = ActorContext<ProcessingActorData, ProcessingEvent, WriterRequests>;

const IDLE_POLL_MS = 1_000;
/** How long to wait before asking a restarting writer again. */
const WRITER_RETRY_MS = 200;
/** Events per batch at most (a batch is `batchSize` blocks, fewer when its blocks are large). */
const MAX_BATCH_EVENTS = 50_000;

export const processingActor: ActorDefinition<
  ProcessingActorData,
  ProcessingMethods,
  ProcessingEvent,
  WriterRequests
> = {
  name: 'processing',
  async start(context) {
    if (context.data.testFault?.kind === 'processing:crash-at-start') {
      throw new StrataError('STRATA_ERR_INTERNAL', 'injected fault: processing:crash-at-start');
    }
    const runtime = new PipelineRuntime(context);
    await runtime.init();
    return runtime.instance();
  },
};

type Handlers = BatchExecutorOptions['handlers'];

/**
 * Where the runtime is. While `running` its loop reads and processes, in a phase /status shows;
 * `stopping`: asked to stop (a shutdown, or the writer failed the pipeline: `failure`), the loop
 * finishes its batch; then `stopped`, or `failed` for good (until a restart) with why.
 */
type RuntimeState =
  | {
      kind: 'running';
      phase: 'starting' | 'backfill' | 'live' | 'caught-up';
      /** Handlers loaded by a `--watch` reload, swapped in at the next batch boundary. */
      nextHandlers: Handlers | null;
    }
  | { kind: 'stopping'; failure: PipelineFailure | null }
  | { kind: 'stopped' }
  | { kind: 'failed'; failure: PipelineFailure };

class PipelineRuntime {
  private readonly context: ProcessingContext;
  private pipeline: PipelineConfig;
  private schema!: Schema;
  private readonly db: Db;
  private store!: InMemoryStore;
  private effects!: EffectStore;
  private executor!: BatchExecutor;
  private source!: BlockSource;
  /** Processed batches the writer has not committed (and the held one): see UncommittedLedger. */
  private ledger = new UncommittedLedger(0);
  private processedCheckpoint = 0;
  private processedBlock = 0;
  private eventsProcessed = 0;
  private firstEventAt: number | null = null;
  private readyAt: number | null = null;
  private peakInMemoryObjects = 0;
  private writerBusyMs = 0;
  private readonly eventRate = new RateMeter(10_000);
  private readonly blockRate = new RateMeter(10_000);
  private state: RuntimeState = { kind: 'running', phase: 'starting', nextHandlers: null };
  private loop: Promise<void> = Promise.resolve();
  private commitWaiters: Array<() => void> = [];
  private progressTimer: NodeJS.Timeout | null = null;
  /** A batch is executing (see processBatch), and a re-send was asked for meanwhile. */
  private batchInProgress = false;
  private resendAsked = false;
  /** Recorded checkpoints of the last blocks (up to maxReorgDepth + 2), oldest first. */
  private recentBlocks: RecordedBlock[] = [];
  private readonly reorgsUndid: Record<ReorgUndoneIn, number> = {
    'unsent batch': 0,
    'queued batches': 0,
    'stored state': 0,
  };

  constructor(context: ProcessingContext) {
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
    this.effects = new EffectStore(this.db, this.context.log.child({ pipeline: this.pipeline.name }));
    this.executor = new BatchExecutor({
      effects: this.effects,
      pipeline: this.pipeline.name,
      schema,
      handlers,
      store: this.store,
      loader: new LoadLayer(this.db, this.pipeline.name, this.store),
      log: this.context.log.child({ pipeline: this.pipeline.name }),
      strategy: this.pipeline.loadStrategy,
      handlerOptions: this.pipeline.options,
    });
    // The writer creates the pipeline's row before processing starts (see the supervisor wiring).
    const [resume] = await checkpointStore.readCommitted(this.db, [this.pipeline.name]);
    this.ledger = new UncommittedLedger(resume?.committedCheckpoint ?? 0);
    this.processedCheckpoint = this.ledger.committedCheckpoint;
    this.processedBlock = resume?.committedBlock ?? -1;
    this.recentBlocks = await checkpointStore.recentCheckpoints(
      this.db,
      this.pipeline.name,
      this.pipeline.maxReorgDepth + 2,
    );
    this.source = createSource(this.pipeline, this.db);
    // Safe here: the writer committed (or dropped) what an earlier incarnation queued before this
    // one started, so no write of the pipeline is still in flight.
    const heldWhole = await this.executor.loader.markEmptyTablesComplete();
    this.context.log.info(
      {
        pipeline: this.pipeline.name,
        resumeFrom: this.ledger.committedCheckpoint + 1,
        afterBlock: this.processedBlock,
        heldWhole,
      },
      this.ledger.committedCheckpoint === 0 ? 'pipeline starting from the first block' : 'pipeline resuming',
    );
    this.progressTimer = setInterval(() => this.reportProgress(), this.context.data.progressIntervalMs);
    this.progressTimer.unref();
    this.loop = this.run().catch((error: unknown) => this.fatal(error));
  }

  instance(): ActorInstance<ProcessingMethods> {
    return {
      methods: {
        committed: (report) => this.onCommitted(report),
        resend: () => this.requestResend(),
        pauseIntake: () => this.pauseIntake(),
        progress: () => this.progress(),
        wake: () => this.source.wake(),
        reloadHandlers: (pipeline) => this.reloadHandlers(pipeline),
        failed: async (failure) => {
          if (this.state.kind === 'running') this.requestStop(failure);
          else if (this.state.kind === 'stopping') this.state.failure ??= failure;
          await this.loop;
        },
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
    let retryDelayMs = 0;
    while (!this.stopRequested) {
      // A source that answers without I/O (the generator, a file) and a batch whose reads all hit
      // memory run the whole loop in microtasks: without this turn of the event loop, pings,
      // commit reports and the progress timer would wait for the backfill's end (the supervisor
      // killed such an actor as unresponsive, and progress showed 0 blk/s).
      await setImmediate();
      await this.awaitCapacity();
      if (this.state.kind !== 'running') break;
      if (this.state.nextHandlers !== null) {
        this.executor.replaceHandlers(this.state.nextHandlers);
        this.state.nextHandlers = null;
        this.context.log.info(
          { pipeline: this.pipeline.name, fromBlock: this.processedBlock + 1 },
          'new handlers in effect',
        );
      }
      try {
        const blocks = cutAtEvents(await this.source.read(this.processedBlock, batchSize), MAX_BATCH_EVENTS);
        // Nothing new, or a next block that names no parent: only the source's hash of the
        // processed tip tells whether the chain was replaced under us.
        const reorged =
          blocks.length === 0 || this.parentUnknown(blocks[0]!)
            ? await this.processedBlockReplaced()
            : this.forksFromProcessed(blocks[0]!);
        if (reorged) {
          await this.rollBackReorg(blocks[0] ?? null);
          continue;
        }
        // The read shows the held batch's tip still stands.
        this.releaseHeld();
        if (blocks.length === 0) {
          this.setPhase(this.source.finite ? 'caught-up' : 'live');
          await this.source.waitForMore(IDLE_POLL_MS);
          continue;
        }
        if (this.state.kind === 'running' && this.state.phase !== 'live') this.setPhase('backfill');
        await this.processBatch(blocks);
        retryDelayMs = 0;
      } catch (error) {
        // A lost connection while reading or loading changes nothing in memory (the executor
        // undoes a failed batch): wait and redo it.
        if (!isRetryable(error)) throw error;
        this.releaseHeld();
        retryDelayMs = Math.min(5_000, Math.max(100, retryDelayMs * 2));
        this.context.log.warn(
          { err: error, pipeline: this.pipeline.name, retryInMs: retryDelayMs },
          'batch failed; retrying',
        );
        await this.source.waitForMore(retryDelayMs);
      }
    }
    this.releaseHeld();
    if (this.state.kind === 'stopping') {
      const { failure } = this.state;
      this.enter(failure === null ? { kind: 'stopped' } : { kind: 'failed', failure });
    }
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
    if (this.state.kind === 'running') this.state.nextHandlers = handlers;
  }

  /**
   * Inside the reorg threshold (the batch reaches within maxReorgDepth of the source head, or
   * `fullHistory`) every change gets a history row, so the batch can be rolled back. Blocks
   * without hashes cannot reorg.
   */
  private isInReorgThreshold(last: Block): boolean {
    if (last.hash === null) return false;
    if (this.pipeline.fullHistory) return true;
    const head = this.source.head();
    return head !== null && last.number > head - this.pipeline.maxReorgDepth;
  }

  /**
   * Runs a batch. While it executes, the store holds changes of it that no batch of the ledger
   * covers yet; a re-send asked for then waits until the batch is in the ledger (or undone).
   */
  private async processBatch(blocks: Block[]): Promise<void> {
    this.batchInProgress = true;
    try {
      await this.executeAndRecord(blocks);
    } finally {
      this.batchInProgress = false;
      if (this.resendAsked) {
        this.resendAsked = false;
        this.resend();
      }
    }
  }

  private async executeAndRecord(blocks: Block[]): Promise<void> {
    const fromCheckpoint = this.processedCheckpoint + 1;
    const first = blocks[0]!;
    const last = blocks[blocks.length - 1]!;
    const isInReorgThreshold = this.isInReorgThreshold(last);
    const eventCount = await this.executor.run(blocks, fromCheckpoint, isInReorgThreshold);
    const count = this.store.lastBatchChangeCount();
    const checkpoints: BatchCheckpoint[] = isInReorgThreshold
      ? blocks.map((block, index) => ({
          checkpointId: fromCheckpoint + index,
          blockNumber: block.number,
          blockHash: block.hash,
          eventCount: block.events.length,
          history: true,
        }))
      : [
          {
            checkpointId: fromCheckpoint + blocks.length - 1,
            blockNumber: last.number,
            blockHash: last.hash,
            eventCount,
            history: false,
          },
        ];
    this.recordRecordedBlocks(checkpoints);
    const batch: UncommittedBatch = {
      checkpoints,
      isInReorgThreshold,
      fromCheckpoint,
      fromBlockNumber: first.number,
      blockNumbers: blocks.map((block) => block.number),
      changeCount: count,
      effectCache: this.effects.takeFresh(),
      rawBlocks: this.pipeline.rawEvents ? rawBlocks(blocks, fromCheckpoint) : undefined,
    };
    this.ledger.add(batch, isInReorgThreshold);
    this.processedCheckpoint = lastCheckpoint(batch).checkpointId;
    this.processedBlock = last.number;
    this.eventsProcessed += eventCount;
    if (eventCount > 0) this.firstEventAt ??= Date.now();
    this.eventRate.add(eventCount);
    this.blockRate.add(blocks.length);
    this.peakInMemoryObjects = Math.max(this.peakInMemoryObjects, this.inMemoryObjects());
    // Inside the threshold the batch is held: sent once the next read shows its tip still stands.
    // Encoded in turns: one large block's changes would hold the thread past its ping timeout.
    if (!isInReorgThreshold)
      this.sendEncoded(batch, await collectBatchChangesInTurns(this.store, false, MAX_TURN_MS));
  }

  private releaseHeld(): void {
    const held = this.ledger.release();
    if (held !== null) this.sendLastBatch(held);
  }

  /** Sends the store's last batch to the writer, its changes collected from the store now. */
  private sendLastBatch(batch: UncommittedBatch): void {
    this.sendEncoded(batch, collectBatchChanges(this.store, batch.isInReorgThreshold));
  }

  private sendEncoded(
    batch: UncommittedBatch,
    { encoded, count }: { encoded: EncodedChanges; count: number },
  ) {
    this.ledger.recount(batch, count);
    this.emitBatch([batch], encoded, count);
  }

  private recordRecordedBlocks(checkpoints: BatchCheckpoint[]): void {
    for (const c of checkpoints) {
      this.recentBlocks.push({
        number: c.blockNumber,
        hash: c.blockHash,
        checkpointId: c.checkpointId,
      });
    }
    const keep = this.pipeline.maxReorgDepth + 2;
    if (this.recentBlocks.length > keep * 2) this.recentBlocks = this.recentBlocks.slice(-keep);
  }

  // ─── reorgs ──────────────────────────────────────────────────────────────────────────────────

  /**
   * Nothing new to read, but the source replaced the last processed block (a new branch no
   * longer than the old one).
   */
  private async processedBlockReplaced(): Promise<boolean> {
    const last = this.recentBlocks[this.recentBlocks.length - 1];
    if (this.source.hashAt === undefined || last === undefined || last.hash === null) return false;
    if (last.checkpointId !== this.processedCheckpoint) return false;
    return (await this.source.hashAt(last.number)) !== last.hash;
  }

  /** The next block names no parent, though the processed tip has a hash: its link is unknown. */
  private parentUnknown(next: Block): boolean {
    const last = this.recentBlocks[this.recentBlocks.length - 1];
    return next.parentHash === null && last !== undefined && last.hash !== null;
  }

  /** The block does not continue the last processed one: the chain reorganised under us. */
  private forksFromProcessed(next: Block): boolean {
    const last = this.recentBlocks[this.recentBlocks.length - 1];
    return (
      last !== undefined &&
      last.checkpointId === this.processedCheckpoint &&
      last.hash !== null &&
      next.parentHash !== null &&
      next.parentHash !== last.hash
    );
  }

  /**
   * The chain reorganised under us: find the common ancestor with the new branch (none within
   * maxReorgDepth, or blocks above it processed without history: a fatal error, nothing changed),
   * then undo everything above it, where it is (the log's `undid`):
   *  - 'unsent batch': every orphaned block is in the held batch. The store undoes its part above
   *    the ancestor and what is left of it is sent; the writer never hears of the rest.
   *  - 'queued batches': the writer drops its queued batches that reach above the ancestor and
   *    says how far it has committed, is writing or still holds (`keptUpTo`), here at or below the
   *    ancestor. The store undoes the changes above the ancestor (exact: inside the threshold
   *    every overwritten change is kept) and what the dropped batches held at or below it is sent
   *    again.
   *  - 'stored state': a write reaching above the ancestor is in flight or committed. Everything
   *    above it is undone in memory the same way, and once it has committed the writer restores
   *    the stored entities from history, in one transaction.
   * Processing then rewinds to the ancestor and the loop reads the new branch.
   */
  private async rollBackReorg(next: Block | null): Promise<void> {
    const started = performance.now();
    const ancestor = await this.findCommonAncestor(next);
    if (next !== null && ancestor.checkpointId === this.processedCheckpoint) {
      // The source still holds the processed tip, yet its next block names another parent: not a
      // reorg but a broken chain. Rolling back nothing and reading again would spin forever.
      throw new StrataError(
        'STRATA_ERR_SOURCE_INVALID',
        `pipeline ${this.pipeline.name}: block ${next.number} names parent ${next.parentHash}, but the source still holds processed block ${ancestor.number} with hash ${ancestor.hash}: the source's chain is broken`,
        { details: { pipeline: this.pipeline.name, block: next.number, parentHash: next.parentHash } },
      );
    }
    if (this.ledger.hasUnhistoriedAbove(ancestor.checkpointId)) {
      throw noHistoryError(this.pipeline.name, ancestor.checkpointId);
    }
    const depth = this.processedBlock - ancestor.number;
    const heldFrom = this.ledger.heldFrom();
    if (heldFrom !== null && ancestor.checkpointId >= heldFrom - 1) {
      // Every orphaned block is in the batch not yet sent: the writer never saw them.
      const { eventsRemoved, idsRestored } = this.undoAbove(ancestor.checkpointId, heldFrom - 1, true);
      this.logReorg(next, ancestor, depth, idsRestored, eventsRemoved, 'unsent batch', started);
      return;
    }
    // A held batch is never sent now: undoAbove drops or re-sends it like those the writer drops.
    this.ledger.release();
    const { keptUpTo } = await this.askWriter('discardQueued', {
      pipeline: this.pipeline.name,
      aboveCheckpoint: ancestor.checkpointId,
    });
    const inMemoryTo = Math.max(ancestor.checkpointId, keptUpTo);
    const undone = this.undoAbove(inMemoryTo, keptUpTo, false);
    let { eventsRemoved } = undone;
    let rowsRestored = undone.idsRestored;
    if (keptUpTo > ancestor.checkpointId) {
      while (this.ledger.committedCheckpoint < keptUpTo && !this.stopRequested) {
        await new Promise<void>((resolve) => this.commitWaiters.push(resolve));
      }
      // Stopping: what is committed includes orphaned blocks; the next start finds the fork again.
      if (this.stopRequested) return;
      const result = await this.askWriter('rollback', {
        pipeline: this.pipeline.name,
        toCheckpoint: ancestor.checkpointId,
        fromCheckpoint: this.ledger.committedCheckpoint,
      });
      this.store.clear();
      this.effects.settleAll();
      this.ledger.rolledBackTo(result.toCheckpoint);
      this.rewindTo(ancestor);
      eventsRemoved += result.eventsRemoved;
      rowsRestored += result.rowsRestored;
    }
    const undid = keptUpTo > ancestor.checkpointId ? 'stored state' : 'queued batches';
    this.logReorg(next, ancestor, depth, rowsRestored, eventsRemoved, undid, started);
  }

  private logReorg(
    next: Block | null,
    ancestor: RecordedBlock,
    depth: number,
    rowsRestored: number,
    eventsRemoved: number,
    /** Where the orphaned blocks' changes were undone: see rollBackReorg. */
    undid: ReorgUndoneIn,
    started: number,
  ): void {
    this.eventsProcessed -= eventsRemoved;
    this.reorgsUndid[undid] += 1;
    this.context.log.warn(
      {
        pipeline: this.pipeline.name,
        block: next?.number ?? null,
        parentHash: next?.parentHash ?? null,
        ancestor: ancestor.number,
        depth,
        rowsRestored,
        undid,
        durationMs: Math.round(performance.now() - started),
      },
      `reorg: rolled back ${depth} blocks to block ${ancestor.number}`,
    );
  }

  /**
   * The last recorded block (within maxReorgDepth) that the source's current branch still has.
   * Blocks chain by hash, so below a block the branch has, it has them all: the source is read
   * back from the tip in windows that double (most reorgs are shallow) until one holds a match.
   */
  private async findCommonAncestor(next: Block | null): Promise<RecordedBlock> {
    const { maxReorgDepth } = this.pipeline;
    const records = this.recentBlocks.filter((b) => b.number >= this.processedBlock - maxReorgDepth);
    const lowest = records[0]!.number;
    for (let window = 8; ; window *= 2) {
      const from = Math.max(lowest, this.processedBlock - window + 1);
      const branch = await this.source.read(from - 1, this.processedBlock - from + 1);
      const branchHashes = new Map(branch.map((block) => [block.number, block.hash]));
      const ancestor = records.findLast(
        (record) => record.number >= from && branchHashes.get(record.number) === record.hash,
      );
      if (ancestor !== undefined) return ancestor;
      if (from === lowest) break;
    }
    throw noCommonAncestorError(
      this.pipeline.name,
      next === null ? 'the source replaced' : `block ${next.number} does not continue`,
      {
        processedBlock: this.processedBlock,
        block: next?.number ?? null,
        parentHash: next?.parentHash ?? null,
        maxReorgDepth,
      },
    );
  }

  /**
   * Undoes everything processed above `checkpoint` in memory and rewinds processing to it. The
   * batches above `keptUpTo` (≤ checkpoint) are not at the writer: dropped by it, or the held
   * one; their part at or below `checkpoint` is sent again, rebuilt from the store. With
   * `onlyLastBatch` (that part is the held batch alone, still the store's last) the store undoes
   * just that batch, without scanning.
   */
  private undoAbove(
    checkpoint: number,
    keptUpTo: number,
    onlyLastBatch: boolean,
  ): { eventsRemoved: number; idsRestored: number } {
    const { eventsRemoved, discarded, resend } = this.ledger.undoAbove(checkpoint, keptUpTo);
    for (const batch of discarded) this.effects.giveBack(batch.effectCache);
    const idsRestored = onlyLastBatch
      ? this.store.undoLastBatchAbove(checkpoint)
      : this.store.rollBackTo(checkpoint);
    const at = this.recentBlocks.find((b) => b.checkpointId === checkpoint);
    this.rewindTo(at ?? { number: this.processedBlock, checkpointId: checkpoint, hash: null });
    if (resend.length === 0) return { eventsRemoved, idsRestored };
    if (onlyLastBatch) this.sendLastBatch(resend[0]!);
    else {
      const history = resend.some((b) => b.isInReorgThreshold);
      const { encoded, count } = collectUncommittedChanges(this.store, keptUpTo, history);
      this.emitBatch(resend, encoded, count);
    }
    return { eventsRemoved, idsRestored };
  }

  private rewindTo(block: RecordedBlock): void {
    this.recentBlocks = this.recentBlocks.filter((b) => b.checkpointId <= block.checkpointId);
    this.processedCheckpoint = block.checkpointId;
    this.processedBlock = block.number;
  }

  /** A request to the writer, asked again while the writer restarts or the database blips. */
  private async askWriter<Method extends keyof WriterRequests & string>(
    method: Method,
    args: WriterRequests[Method]['args'],
  ): Promise<WriterRequests[Method]['result']> {
    for (;;) {
      try {
        return await this.context.request(method, args);
      } catch (error) {
        if (!(isActorRestarting(error) || isRetryable(error)) || this.stopRequested) throw error;
        await sleep(WRITER_RETRY_MS);
      }
    }
  }

  private emitBatch(
    batches: readonly UncommittedBatch[],
    encodedChanges: EncodedChanges,
    changeCount: number,
  ): void {
    const batch: BatchForWriter = {
      ...mergeForWriter(this.pipeline.name, batches, changeCount, this.pipeline.rawEvents),
      encodedChanges,
    };
    this.context.emit({ type: 'batch-ready', batch }, transferList(encodedChanges));
  }

  // ─── memory and commits ──────────────────────────────────────────────────────────────────────

  /** Entities held (committed, loaded and uncommitted) plus changes queued at the writer. */
  private inMemoryObjects(): number {
    return this.store.size() + this.effects.size() + this.ledger.changeCount;
  }

  /**
   * Tiered backpressure before each batch: drop committed changes (cheap to re-read), then rows
   * loaded from the database, and only if memory is still over target wait for a commit — and
   * only while a batch is queued, so a batch larger than the target cannot deadlock. The held
   * batch is sent only when nothing else is left to wait for (kept, a reorg next can still undo it
   * in memory).
   */
  private async awaitCapacity(): Promise<void> {
    const target = this.context.data.inMemoryObjectsTarget;
    if (this.inMemoryObjects() <= target) return;
    this.dropCommitted();
    if (this.inMemoryObjects() <= target) return;
    this.dropLoaded();
    while (this.inMemoryObjects() > target && this.ledger.length > 0 && !this.stopRequested) {
      if (this.ledger.length === 1) this.releaseHeld();
      await new Promise<void>((resolve) => this.commitWaiters.push(resolve));
      this.dropCommitted();
      this.dropLoaded();
    }
  }

  /**
   * Entity changes and effect outputs, alike. The store keeps up to half the target, its most
   * recently written entities (hot ones, read again soon), so a backfill does not reload them
   * after every drop, and the next drop is some batches away. Entities held whole give up rows
   * only while the store holds more than the whole target (see InMemoryStore.dropCommitted).
   */
  private dropCommitted(): void {
    const target = this.context.data.inMemoryObjectsTarget;
    this.store.dropCommitted(this.ledger.committedCheckpoint, Math.floor(target / 2), target);
    this.effects.dropCommitted(this.ledger.committedCheckpoint);
  }

  private dropLoaded(): void {
    this.store.dropLoaded();
    this.effects.dropLoaded();
  }

  private onCommitted(report: CommitReport): void {
    if (!this.ledger.commit(report.committedCheckpoint)) return;
    // Rows no handler reads are of no use once committed: they go now, not at the capacity rule.
    this.store.dropCommittedAppends(report.committedCheckpoint);
    this.writerBusyMs += report.durationMs;
    for (const resolve of this.commitWaiters.splice(0)) resolve();
    if (this.state.kind === 'running' && this.state.phase === 'caught-up') this.reportProgress();
  }

  /**
   * The writer restarted and lost what it had queued. Not in the middle of a batch: the store's
   * changes above the ledger's last checkpoint would be written as part of it (under an earlier
   * checkpoint), and a crash before the batch commits would leave them applied once too often.
   */
  private requestResend(): number {
    if (!this.batchInProgress) return this.resend();
    this.resendAsked = true;
    return 0;
  }

  /**
   * After a writer restart: everything above the committed checkpoint, as one merged batch built
   * from the store (which holds every uncommitted change), with every uncommitted boundary.
   */
  private resend(): number {
    const batches = this.ledger.resendAll(); // the held one with the rest
    if (batches.length === 0) return 0;
    const { encoded, count } = collectUncommittedChanges(
      this.store,
      this.ledger.committedCheckpoint,
      batches.some((b) => b.isInReorgThreshold),
    );
    this.emitBatch(batches, encoded, count);
    this.context.log.warn(
      {
        pipeline: this.pipeline.name,
        batches: batches.length,
        fromCheckpoint: batches[0]!.fromCheckpoint,
        changes: count,
      },
      're-sent uncommitted changes to the restarted writer',
    );
    return batches.length;
  }

  /** Stops taking new blocks; resolves with the last processed checkpoint once the loop is idle. */
  private async pauseIntake(): Promise<number> {
    if (this.state.kind === 'running') this.requestStop(null);
    await this.loop;
    return this.processedCheckpoint;
  }

  /** The loop is asked to end after its batch (`failure`: it ends failed). */
  private requestStop(failure: PipelineFailure | null): void {
    this.enter({ kind: 'stopping', failure });
    for (const resolve of this.commitWaiters.splice(0)) resolve();
    this.source.wake();
  }

  private get stopRequested(): boolean {
    return this.state.kind !== 'running';
  }

  private setPhase(phase: Extract<RuntimeState, { kind: 'running' }>['phase']): void {
    if (this.state.kind !== 'running' || this.state.phase === phase) return;
    // The backfill's rate says nothing about the live one: start measuring afresh, instead of
    // showing a rate that decays over the whole window.
    if (this.state.phase === 'backfill' && (phase === 'live' || phase === 'caught-up')) {
      this.eventRate.reset();
      this.blockRate.reset();
    }
    if (phase === 'caught-up' || phase === 'live') this.readyAt ??= Date.now();
    this.enter({ ...this.state, phase });
  }

  private enter(state: RuntimeState): void {
    this.state = state;
    this.reportProgress();
  }

  /** The state as /status shows it. */
  private shownState(): PipelineProgress['state'] {
    const { state } = this;
    return state.kind === 'running' ? state.phase : state.kind;
  }

  private failure(): PipelineFailure | null {
    return 'failure' in this.state ? this.state.failure : null;
  }

  private progress(): PipelineProgress {
    const head = this.source?.head() ?? null;
    return {
      pipeline: this.pipeline.name,
      processedCheckpoint: this.processedCheckpoint,
      committedCheckpoint: this.ledger.committedCheckpoint,
      processedBlockNumber: this.processedBlock,
      headBlockNumber: head,
      eventsProcessed: this.eventsProcessed,
      eventsPerSecond: Math.round(this.eventRate.perSecond()),
      blocksPerSecond: Math.round(this.blockRate.perSecond()),
      inMemoryObjects: this.store === undefined ? 0 : this.inMemoryObjects(),
      peakInMemoryObjects: this.peakInMemoryObjects,
      writerBusyMs: Math.round(this.writerBusyMs),
      queuedBatches: this.ledger.length,
      state: this.shownState(),
      failure: this.failure(),
      firstEventAt: this.firstEventAt,
      readyAt: this.readyAt,
      reorgs: Object.values(this.reorgsUndid).reduce((sum, count) => sum + count, 0),
      reorgsUndid: { ...this.reorgsUndid },
      effects: this.effects?.stats() ?? {},
    };
  }

  private reportProgress(): void {
    this.context.emit({ type: 'progress', progress: this.progress() });
  }

  /**
   * An error retrying cannot fix: this pipeline stops in state `failed` (the daemon, its HTTP and
   * the other pipelines go on) and the supervisor is told, so `/status` and `/readyz` name it.
   */
  private fatal(error: unknown): void {
    // A batch processed before the error is written like the others (a reorg too deep to roll
    // back leaves everything processed before it as it was).
    this.releaseHeld();
    this.enter({ kind: 'failed', failure: this.failure() ?? failureOf(error, 'processing') });
    this.context.log.error(
      { err: error, pipeline: this.pipeline.name },
      'pipeline failed; it stays stopped until a restart',
    );
    this.context.emit({
      type: 'fatal',
      error: serializeError(error),
      context: { pipeline: this.pipeline.name, actor: this.context.name },
    });
  }
}

/** The batch's blocks as the writer builds raw event rows from them. */
function rawBlocks(blocks: Block[], fromCheckpoint: number): RawBlock[] {
  return blocks.map((block, index) => ({
    checkpointId: fromCheckpoint + index,
    number: block.number,
    hash: block.hash,
    timestamp: block.timestamp,
    events: block.events,
  }));
}

/**
 * The first blocks holding at most `maxEvents` events (at least one block): `batchSize` counts
 * blocks, and ingested blocks may be large — 500 blocks of 1,000 events made one batch of 500,000
 * events and ~1M changes, whose work and memory grow with it.
 */
export function cutAtEvents(blocks: Block[], maxEvents: number): Block[] {
  let events = 0;
  for (let index = 0; index < blocks.length; index++) {
    events += blocks[index]!.events.length;
    if (events > maxEvents && index > 0) return blocks.slice(0, index);
  }
  return blocks;
}
