// The processing actor: one per owned pipeline. It reads blocks from the pipeline's source, runs
// the user's handlers over them in order, keeps the entities they touch in memory stamped with
// the checkpoint that last changed them, and hands each batch to the single writer. It never
// waits for the writer unless memory is over target (commit-gated backpressure), so processing
// runs ahead of persistence: `processedCheckpoint ≥ committedCheckpoint`.
//
// Uncommitted batches stay here until the writer reports them committed. When the writer's
// thread dies, the supervisor restarts it and this actor re-sends them: nothing is lost.
//
// This is the Foundation's vertical slice (one entity, generator source); the processing engine
// issue generalises the store, the LoadLayer and the handler API.

import { setTimeout as sleep } from 'node:timers/promises';
import { pathToFileURL } from 'node:url';
import type { PipelineConfig } from '../config.ts';
import { createDb, type Db, poolReport } from '../db/pool.ts';
import { isRetryable, StrataError, serializeError } from '../errors.ts';
import { accountTable, pipelineSchema } from '../persistence/entity-tables.ts';
import type { BatchForWriter, Change, CommitReport, PipelineProgress } from '../protocol.ts';
import { generateBlocks } from '../sources/generator.ts';
import type { Block } from '../sources/types.ts';
import type { ActorContext, ActorDefinition, ActorInstance } from '../supervisor/actor-host.ts';
import { encodeChanges } from './change-codec.ts';
import {
  ACCOUNT_TOTAL_ENTITY,
  type AccountTotal,
  type HandlerContext,
  type HandlerModule,
} from './handler-api.ts';
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
};

interface CachedAccount {
  total: AccountTotal;
  /** Checkpoint of the last change; 0 when loaded from the database and never changed. */
  lastCheckpoint: number;
}

interface UncommittedBatch {
  meta: Omit<BatchForWriter, 'encodedChanges'>;
  changes: Change[];
}

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
  private readonly pipeline: PipelineConfig;
  private readonly db: Db;
  private handlers: HandlerModule = {};
  private readonly cache = new Map<string, CachedAccount>();
  private readonly uncommitted: UncommittedBatch[] = [];
  private uncommittedChanges = 0;
  private committedCheckpoint = 0;
  private processedCheckpoint = 0;
  private eventsProcessed = 0;
  private readonly eventRate = new RateMeter(10_000);
  private liveStartedAt: number | null = null;
  private state: PipelineProgress['state'] = 'starting';
  private stopRequested = false;
  private loop: Promise<void> = Promise.resolve();
  private commitWaiters: Array<() => void> = [];
  private stopWaiters: Array<() => void> = [];
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
    const module = (await import(pathToFileURL(this.pipeline.handlers).href)) as { default?: unknown };
    if (typeof module.default !== 'object' || module.default === null) {
      throw new StrataError(
        'STRATA_ERR_CONFIG_INVALID',
        `handler module ${this.pipeline.handlers} must export default an object of event handlers`,
      );
    }
    this.handlers = module.default as HandlerModule;
    // The writer creates the pipeline's row before processing starts (see the supervisor wiring).
    const { rows } = await this.db.query<{ committed_checkpoint: string }>(
      'SELECT committed_checkpoint FROM strata.pipelines WHERE name = $1',
      [this.pipeline.name],
    );
    this.committedCheckpoint = Number(rows[0]?.committed_checkpoint ?? 0);
    this.processedCheckpoint = this.committedCheckpoint;
    this.context.log.info(
      { pipeline: this.pipeline.name, resumeFrom: this.committedCheckpoint + 1 },
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
      },
      report: () => poolReport(this.db),
      stop: async () => {
        await this.pauseIntake();
        if (this.progressTimer !== null) clearInterval(this.progressTimer);
        await this.db.close();
      },
    };
  }

  // ─── the loop ────────────────────────────────────────────────────────────────────────────────

  private async run(): Promise<void> {
    const { source, batchSize } = this.pipeline;
    while (!this.stopRequested) {
      await this.awaitCapacity();
      if (this.stopRequested) break;
      const head = this.headBlock();
      if (this.processedCheckpoint >= head) {
        this.state = source.liveBlockIntervalMs > 0 ? 'live' : 'caught-up';
        await this.idle(source.liveBlockIntervalMs > 0 ? Math.min(source.liveBlockIntervalMs, 250) : 250);
        continue;
      }
      if (this.state !== 'live') this.state = 'backfill';
      const from = this.processedCheckpoint + 1;
      const to = Math.min(this.processedCheckpoint + batchSize, head);
      try {
        await this.processBatch(generateBlocks(source, from, to));
        this.retryDelayMs = 0;
      } catch (error) {
        // A lost connection while loading changes nothing in memory: wait and redo the batch.
        if (!isRetryable(error)) throw error;
        this.retryDelayMs = Math.min(5_000, Math.max(100, this.retryDelayMs * 2));
        this.context.log.warn(
          { err: error, pipeline: this.pipeline.name, retryInMs: this.retryDelayMs },
          'batch failed; retrying',
        );
        await this.idle(this.retryDelayMs);
      }
    }
    this.state = 'stopped';
    for (const resolve of this.stopWaiters.splice(0)) resolve();
  }

  private async processBatch(blocks: Block[]): Promise<void> {
    await this.preload(blocks);
    const touched = new Map<string, CachedAccount>();
    let checkpoint = this.processedCheckpoint;
    const context: HandlerContext = {
      account: (address) => {
        const entry = this.cache.get(address) ?? this.createAccount(address);
        entry.lastCheckpoint = checkpoint;
        touched.set(address, entry);
        return entry.total;
      },
    };
    let eventCount = 0;
    for (const block of blocks) {
      checkpoint = block.number; // one checkpoint per processed block
      for (const event of block.events) {
        const handler = this.handlers[event.name];
        if (handler === undefined) continue;
        try {
          handler({ event, block, context });
        } catch (error) {
          throw new StrataError(
            'STRATA_ERR_HANDLER_FAILED',
            `handler for ${event.name} threw in pipeline ${this.pipeline.name} at block ${block.number}, log index ${event.logIndex}: ${error instanceof Error ? error.message : String(error)}`,
            {
              cause: error,
              details: {
                pipeline: this.pipeline.name,
                block: block.number,
                event: event.name,
                logIndex: event.logIndex,
              },
            },
          );
        }
        eventCount += 1;
      }
    }
    const changes: Change[] = [];
    for (const [id, entry] of touched) {
      const { credited, debited, events } = entry.total;
      changes.push({
        type: 'set',
        entity: ACCOUNT_TOTAL_ENTITY,
        id,
        checkpointId: entry.lastCheckpoint,
        values: { credited, debited, events },
      });
    }
    const last = blocks[blocks.length - 1]!;
    const meta: UncommittedBatch['meta'] = {
      pipeline: this.pipeline.name,
      fromCheckpoint: blocks[0]!.number,
      toCheckpoint: last.number,
      toBlockNumber: last.number,
      toBlockHash: last.hash,
      eventCount,
      changeCount: changes.length,
      isInReorgThreshold: false,
    };
    this.uncommitted.push({ meta, changes });
    this.uncommittedChanges += changes.length;
    this.processedCheckpoint = last.number;
    this.eventsProcessed += eventCount;
    this.eventRate.add(eventCount);
    this.emitBatch(meta, changes);
  }

  /**
   * Loads, in one `= ANY($1)` query, every account the batch will touch that is not in memory.
   * The ids are found by a first pass of the handlers against a recording context (Envio's
   * two-pass idea; the processing engine issue measures it against speculative prefetch).
   */
  private async preload(blocks: Block[]): Promise<void> {
    const wanted = new Set<string>();
    const scratch = new Map<string, AccountTotal>();
    const recording: HandlerContext = {
      account: (address) => {
        if (!this.cache.has(address)) wanted.add(address);
        let total = scratch.get(address);
        if (total === undefined) {
          total = { id: address, credited: 0, debited: 0, events: 0 };
          scratch.set(address, total);
        }
        return total;
      },
    };
    for (const block of blocks) {
      for (const event of block.events) {
        try {
          this.handlers[event.name]?.({ event, block, context: recording });
        } catch {
          // The real pass reports handler errors with their position.
        }
      }
    }
    if (wanted.size === 0) return;
    const { rows } = await this.db.query<{ id: string; credited: string; debited: string; events: number }>(
      `SELECT id, credited, debited, events FROM ${pipelineSchema(this.pipeline.name)}.${accountTable} WHERE id = ANY($1)`,
      [[...wanted]],
    );
    for (const row of rows) {
      this.cache.set(row.id, {
        total: {
          id: row.id,
          credited: Number(row.credited),
          debited: Number(row.debited),
          events: row.events,
        },
        lastCheckpoint: 0,
      });
    }
  }

  private createAccount(address: string): CachedAccount {
    const entry: CachedAccount = {
      total: { id: address, credited: 0, debited: 0, events: 0 },
      lastCheckpoint: 0,
    };
    this.cache.set(address, entry);
    return entry;
  }

  private emitBatch(meta: UncommittedBatch['meta'], changes: Change[]): void {
    const encodedChanges = encodeChanges(changes);
    this.context.emit({ type: 'batch-ready', batch: { ...meta, encodedChanges } }, [
      encodedChanges.buffer as ArrayBuffer,
    ]);
  }

  // ─── memory and commits ──────────────────────────────────────────────────────────────────────

  private inMemoryObjects(): number {
    return this.cache.size + this.uncommittedChanges;
  }

  /**
   * Tiered backpressure before each batch: evict entries whose last change is committed (and
   * db-loaded entries never changed), and only if memory is still over target wait for a commit —
   * and only while a batch is queued, so a batch larger than the target cannot deadlock.
   */
  private async awaitCapacity(): Promise<void> {
    const target = this.context.data.inMemoryObjectsTarget;
    if (this.inMemoryObjects() <= target) return;
    this.evictCommitted();
    while (this.inMemoryObjects() > target && this.uncommitted.length > 0 && !this.stopRequested) {
      await new Promise<void>((resolve) => this.commitWaiters.push(resolve));
      this.evictCommitted();
    }
  }

  /** Drops entries whose last change is committed, and db-loaded entries never changed (checkpoint 0). */
  private evictCommitted(): void {
    for (const [id, entry] of this.cache) {
      if (entry.lastCheckpoint <= this.committedCheckpoint) this.cache.delete(id);
    }
  }

  private onCommitted(report: CommitReport): void {
    if (report.committedCheckpoint <= this.committedCheckpoint) return;
    this.committedCheckpoint = report.committedCheckpoint;
    while (
      this.uncommitted.length > 0 &&
      this.uncommitted[0]!.meta.toCheckpoint <= this.committedCheckpoint
    ) {
      const done = this.uncommitted.shift()!;
      this.uncommittedChanges -= done.changes.length;
    }
    for (const resolve of this.commitWaiters.splice(0)) resolve();
  }

  /** After a writer restart: send every uncommitted batch again, in order. */
  private resend(): number {
    for (const batch of this.uncommitted) this.emitBatch(batch.meta, batch.changes);
    if (this.uncommitted.length > 0) {
      this.context.log.warn(
        {
          pipeline: this.pipeline.name,
          batches: this.uncommitted.length,
          fromCheckpoint: this.uncommitted[0]!.meta.fromCheckpoint,
        },
        're-sent uncommitted batches to the restarted writer',
      );
    }
    return this.uncommitted.length;
  }

  /** Stops taking new blocks; resolves with the last processed checkpoint once the loop is idle. */
  private async pauseIntake(): Promise<number> {
    if (!this.stopRequested) {
      this.stopRequested = true;
      this.state = 'stopping';
      for (const resolve of this.commitWaiters.splice(0)) resolve();
      for (const resolve of this.idleWakers.splice(0)) resolve();
    }
    await this.loop;
    return this.processedCheckpoint;
  }

  private readonly idleWakers: Array<() => void> = [];

  private async idle(ms: number): Promise<void> {
    const controller = new AbortController();
    const wake = () => controller.abort();
    this.idleWakers.push(wake);
    await sleep(ms, undefined, { signal: controller.signal }).catch(() => undefined);
    const index = this.idleWakers.indexOf(wake);
    if (index >= 0) this.idleWakers.splice(index, 1);
  }

  /** The generator's head: the backfill, then one block per live interval since it was reached. */
  private headBlock(): number {
    const { blocks, liveBlockIntervalMs } = this.pipeline.source;
    if (liveBlockIntervalMs === 0) return blocks;
    if (this.processedCheckpoint < blocks) return blocks;
    if (this.liveStartedAt === null) {
      this.liveStartedAt = Date.now() - (this.processedCheckpoint - blocks) * liveBlockIntervalMs;
    }
    return blocks + Math.floor((Date.now() - this.liveStartedAt) / liveBlockIntervalMs);
  }

  private progress(): PipelineProgress {
    return {
      pipeline: this.pipeline.name,
      processedCheckpoint: this.processedCheckpoint,
      committedCheckpoint: this.committedCheckpoint,
      processedBlockNumber: this.processedCheckpoint,
      headBlockNumber: this.headBlock(),
      eventsProcessed: this.eventsProcessed,
      eventsPerSecond: Math.round(this.eventRate.perSecond()),
      inMemoryObjects: this.inMemoryObjects(),
      queuedBatches: this.uncommitted.length,
      state: this.state,
    };
  }

  private reportProgress(): void {
    this.context.emit({ type: 'progress', progress: this.progress() });
  }

  private fatal(error: unknown): void {
    this.stopRequested = true;
    this.state = 'stopped';
    this.context.log.error({ err: error, pipeline: this.pipeline.name }, 'pipeline stopped by an error');
    this.context.emit({
      type: 'fatal',
      error: serializeError(error),
      context: { pipeline: this.pipeline.name, actor: this.context.name },
    });
  }
}
