// Runs a pipeline's handlers over one batch of blocks against the InMemoryStore. One checkpoint per
// block: every change a handler makes while processing block i of the batch is stamped with
// `firstCheckpoint + i`.
//
// Loading strategy — both ideas were measured on bench/processing (erc20, see bench/RESULTS.md),
// and the default combines them:
//  - 'two-pass' (Envio): a *preload* pass runs every handler of the batch concurrently against a
//    read-only context; their reads are grouped per tick by the LoadLayer into one `= ANY` query
//    per entity (per dependency level). The *execute* pass then runs the handlers in order and
//    finds everything in memory. Costs one extra (cheap, write-free) run of each handler; finds
//    every read a handler makes, including ones computed from earlier reads.
//  - 'prefetch' (Ponder): no second pass; it learns which payload fields hold the ids each event's
//    handlers read (profiled on misses) and loads those ids before executing. Cheaper per event
//    when the profile is right; every read it cannot predict becomes a sequential round trip.
//  - 'auto' (default): prefetch while the profile predicts the reads, two-pass when it does not.
//    The profile is learned from the first batch's preload pass; a prefetch batch whose execute
//    pass still misses more than 1% of its events switches the next batches to two-pass for a
//    while. On erc20 prefetch was ~20% faster end to end than two-pass (no second run of every
//    handler), while two-pass is the safe choice when reads depend on earlier reads — 'auto' takes
//    the first whenever it works and falls back to the second.

import { setImmediate } from 'node:timers/promises';
import { deepFreeze } from '../deep-freeze.ts';
import { isRetryable, StrataError } from '../errors.ts';
import type { Logger } from '../logger.ts';
import type { EntityDescription, Schema } from '../schema/define-schema.ts';
import { type EntityRow, validateRow } from '../schema/wire.ts';
import type { Block, SourceEvent } from '../sources/types.ts';
import type { EffectStore } from './effect-store.ts';
import { isEffect } from './effects.ts';
import type { EventHandler } from './handler-api.ts';
import type { EntityStore, InMemoryStore } from './in-memory-store.ts';
import type { LoadLayer } from './load-layer.ts';

/** Events between two looks at the clock while a batch runs. */
const YIELD_CHECK_EVENTS = 64;
/** The longest a batch holds the thread's event loop before it lets other work (pings) run. */
export const MAX_TURN_MS = 100;

import { ReadProfile } from './read-profile.ts';
import {
  lookupCondition,
  matches,
  matchesAll,
  type ParsedFilter,
  parseFilter,
  rowOrder,
} from './where-filter.ts';

export type LoadStrategy = 'two-pass' | 'prefetch' | 'auto';

/** 'auto': how many batches run two-pass after a prefetch batch mispredicted. */
const AUTO_TWO_PASS_BATCHES = 20;

export interface BatchExecutorOptions {
  pipeline: string;
  schema: Schema;
  handlers: ReadonlyMap<string, ReadonlyArray<EventHandler<Schema, never>>>;
  store: InMemoryStore;
  loader: LoadLayer;
  effects: EffectStore;
  log: Logger;
  strategy: LoadStrategy;
  /** The pipeline's `options` from the project file, as handlers see them (`context.options`). */
  handlerOptions?: Readonly<Record<string, unknown>>;
}

const NO_OPTIONS: Readonly<Record<string, unknown>> = Object.freeze({});

/**
 * One handler invocation's `context`: its checkpoint, and whether it is still running. Entity
 * accessors (`context.Account`) are created on first use. The hot path allocates little: one
 * context and one accessor per entity the handler touches.
 */
class InvocationContext {
  active = true;
  /** Accessor per entity index, created on first use. */
  readonly accessors: Array<EntityOps | undefined> = [];
  constructor(
    readonly executor: BatchExecutor,
    readonly checkpoint: number,
    readonly block: Block,
    readonly event: SourceEvent,
    readonly isPreload: boolean,
    readonly keepHistory: boolean,
  ) {}

  get options(): Readonly<Record<string, unknown>> {
    return this.executor.handlerOptions;
  }

  get log(): Logger {
    return this.executor.log.child({
      block: this.block.number,
      event: this.event.name,
      logIndex: this.event.logIndex,
    });
  }

  effect(effect: unknown, input: unknown, options?: { cache?: boolean }): Promise<unknown> {
    try {
      this.check('effect', '');
    } catch (error) {
      return Promise.reject(error);
    }
    if (!isEffect(effect)) {
      return Promise.reject(
        new StrataError('STRATA_ERR_EFFECT_INVALID', 'context.effect needs an effect made by createEffect'),
      );
    }
    return this.executor.effects.call(effect, input, this.checkpoint, options);
  }

  /** Throws if the handler already resolved. The message is built only then (hot path). */
  check(subject: string, operation: string): void {
    if (this.active) return;
    const error = new StrataError(
      'STRATA_ERR_CONTEXT_EXPIRED',
      `context.${subject}${operation} was called after the ${this.event.name} handler (block ${this.block.number}, log index ${this.event.logIndex}) had resolved — a missed await?`,
      { details: { event: this.event.name, block: this.block.number, logIndex: this.event.logIndex } },
    );
    if (!this.isPreload) this.executor.lateUse ??= error;
    throw error;
  }
}

class EntityOps {
  constructor(
    private readonly context: InvocationContext,
    private readonly table: EntityStore,
  ) {}

  get(id: string): Promise<EntityRow | undefined> {
    this.context.check(this.table.entity.name, '.get');
    if (typeof id !== 'string') return Promise.reject(idError(this.table.entity, id));
    const change = this.table.current(id);
    if (change !== undefined) return Promise.resolve(change.kind === 'set' ? change.row : undefined);
    if (this.table.isComplete) return Promise.resolve(undefined);
    return this.context.executor.loadMissing(this.context, this.table, id);
  }

  getOrThrow(id: string, message?: string): Promise<EntityRow> {
    return this.get(id).then((row) => {
      if (row !== undefined) return row;
      throw new StrataError(
        'STRATA_ERR_ENTITY_NOT_FOUND',
        message ?? `${this.table.entity.name} ${id} does not exist`,
        {
          details: { entity: this.table.entity.name, id },
        },
      );
    });
  }

  getOrCreate(entity: EntityRow): Promise<EntityRow> {
    this.context.check(this.table.entity.name, '.getOrCreate');
    const id = entity?.id;
    // Fast path: the store answers synchronously (the usual case after the preload pass).
    const change = typeof id === 'string' ? this.table.current(id) : undefined;
    if (change !== undefined) return Promise.resolve(change.kind === 'set' ? change.row : this.write(entity));
    if (typeof id === 'string' && this.table.isComplete) return Promise.resolve(this.write(entity));
    return this.get(id).then((existing) => existing ?? this.write(entity));
  }

  set(entity: EntityRow): void {
    this.context.check(this.table.entity.name, '.set');
    this.write(entity);
  }

  deleteUnsafe(id: string): void {
    this.context.check(this.table.entity.name, '.deleteUnsafe');
    if (typeof id !== 'string') throw idError(this.table.entity, id);
    if (this.context.isPreload) return;
    this.table.apply(
      id,
      {
        kind: 'delete',
        checkpointId: this.context.checkpoint,
        eventName: this.context.event.name,
        logIndex: this.context.event.logIndex,
      },
      this.context.keepHistory,
    );
  }

  async getWhere(filter: unknown, options?: { orderBy?: unknown }): Promise<EntityRow[]> {
    this.context.check(this.table.entity.name, '.getWhere');
    const parsed = parseFilter(this.table.entity, filter);
    const order = rowOrder(this.table.entity, options?.orderBy);
    const loader = this.context.executor.loader;
    if (!loader.isFilterLoaded(parsed)) {
      // Like a missed id: it teaches prefetch, and in the execute pass counts as a misprediction.
      this.context.executor.filterMissed(this.context, parsed);
      await loader.loadWhere(parsed);
    }
    const lookup = lookupCondition(parsed);
    let rows =
      lookup === null
        ? undefined
        : this.table.rowsWithValue(
            lookup.field,
            lookup.values,
            (row) => matchesAll(lookup.rest, row),
            lookup.restKey,
          );
    if (rows === undefined) {
      rows = [];
      for (const row of this.table.rows()) if (matches(parsed, row)) rows.push(row);
    }
    return rows.sort(order);
  }

  private write(entity: EntityRow): EntityRow {
    // The preload pass only collects reads: writes cost nothing there.
    if (this.context.isPreload) return entity;
    // Validate now, so a bad value names the handler that produced it (the wire form is built
    // once per id when the batch ends). The object itself is stored, frozen: a handler that
    // mutates it after `set` gets a TypeError instead of silently changing stored state.
    validateRow(this.table.entity, entity ?? {});
    Object.freeze(entity);
    const { checkpoint, event, keepHistory } = this.context;
    this.table.applySet(entity.id, entity, checkpoint, event.name, event.logIndex, keepHistory);
    return entity;
  }
}

function idError(entity: EntityDescription, id: unknown): StrataError {
  return new StrataError(
    'STRATA_ERR_ENTITY_INVALID',
    `${entity.name} id must be a string, got ${typeof id}`,
    {
      details: { entity: entity.name },
    },
  );
}

/** The `context` class of one schema: InvocationContext plus a lazy accessor per entity. */
function contextClass(schema: Schema, store: InMemoryStore): typeof InvocationContext {
  class Context extends InvocationContext {}
  schema.entities.forEach((entity, index) => {
    const table = store.table(entity.name);
    Object.defineProperty(Context.prototype, entity.name, {
      get(this: Context) {
        let ops = this.accessors[index];
        if (ops === undefined) {
          ops = new EntityOps(this, table);
          this.accessors[index] = ops;
        }
        return ops;
      },
    });
  });
  return Context;
}

function isPromise(value: unknown): value is Promise<unknown> {
  return typeof (value as { then?: unknown } | null)?.then === 'function';
}

const ignore = () => undefined;

export class BatchExecutor {
  readonly loader: LoadLayer;
  readonly effects: EffectStore;
  /** The first use of an expired context during the execute pass (fails the batch). */
  lateUse: StrataError | null = null;
  private options: BatchExecutorOptions;
  readonly log: Logger;
  readonly handlerOptions: Readonly<Record<string, unknown>>;
  private readonly Context: typeof InvocationContext;
  /** 'prefetch'/'auto': what each event's handlers read, learned from misses. */
  private readonly profile = new ReadProfile();
  /** 'auto': batches still to run two-pass after prefetch mispredicted. */
  private twoPassBatchesLeft = 0;
  /** Reads the execute pass had to load itself (prefetch mispredictions), this batch. */
  executeMisses = 0;
  /** Batches executed to the end (see nothingToLoad). */
  private batchesRun = 0;
  /** How the last batch loaded (for /status and tests); 'none': every entity read is held whole. */
  lastLoadMode: 'two-pass' | 'prefetch' | 'none' = 'two-pass';

  constructor(options: BatchExecutorOptions) {
    this.options = options;
    this.loader = options.loader;
    this.effects = options.effects;
    this.log = options.log;
    // A frozen copy: handlers share it, and none may change what another (or the config) sees.
    this.handlerOptions =
      options.handlerOptions === undefined ? NO_OPTIONS : deepFreeze(structuredClone(options.handlerOptions));
    this.Context = contextClass(options.schema, options.store);
  }

  /** New handlers (a `--watch` reload) for the next batch; what they read is profiled afresh. */
  replaceHandlers(handlers: BatchExecutorOptions['handlers']): void {
    this.options = { ...this.options, handlers };
    this.profile.clear();
  }

  /** Runs the batch; on any error the store is exactly as before the batch. */
  async run(blocks: readonly Block[], firstCheckpoint: number, keepHistory: boolean): Promise<number> {
    this.options.store.beginBatch(firstCheckpoint);
    this.executeMisses = 0;
    try {
      const { strategy } = this.options;
      const twoPass =
        strategy === 'two-pass' ||
        (strategy === 'auto' && (this.twoPassBatchesLeft > 0 || this.profile.empty));
      // Every entity handlers read is held whole: no read can miss, nothing to load ahead.
      if (this.nothingToLoad()) this.lastLoadMode = 'none';
      else if (twoPass) {
        this.lastLoadMode = 'two-pass';
        this.twoPassBatchesLeft = Math.max(0, this.twoPassBatchesLeft - 1);
        await this.preload(blocks, firstCheckpoint);
      } else {
        this.lastLoadMode = 'prefetch';
        await this.prefetch(blocks);
      }
      const events = await this.execute(blocks, firstCheckpoint, keepHistory);
      this.batchesRun += 1;
      if (
        strategy === 'auto' &&
        this.lastLoadMode === 'prefetch' &&
        this.executeMisses > Math.max(8, events / 100)
      ) {
        this.log.debug(
          { misses: this.executeMisses, events },
          'prefetch mispredicted; two-pass for the next batches',
        );
        this.twoPassBatchesLeft = AUTO_TWO_PASS_BATCHES;
      }
      if (this.lateUse !== null) {
        const error = this.lateUse;
        this.lateUse = null;
        throw error;
      }
      return events;
    } catch (error) {
      this.options.store.undoBatch();
      throw error;
    } finally {
      this.loader.endBatch();
    }
  }

  /**
   * Whether every entity is held whole, or — once a batch has shown what handlers read — every
   * entity they read. (One read for the first time later, and not held whole, loads as it is read
   * for that one batch.)
   */
  private nothingToLoad(): boolean {
    for (const table of this.options.store.tables.values()) {
      if (!table.isComplete && (table.isRead || this.batchesRun === 0)) return false;
    }
    return true;
  }

  /** A read that missed the store. Outside 'two-pass' the miss also teaches the profile. */
  loadMissing(context: InvocationContext, table: EntityStore, id: string): Promise<EntityRow | undefined> {
    if (this.options.strategy !== 'two-pass') this.profile.learnId(context.event, table.entity.name, id);
    if (!context.isPreload) this.executeMisses += 1;
    return this.loader.load(table.entity.name, id).then(() => {
      const change = table.current(id);
      return change?.kind === 'set' ? change.row : undefined;
    });
  }

  private async preload(blocks: readonly Block[], firstCheckpoint: number): Promise<void> {
    const pending: Array<Promise<unknown>> = [];
    for (let index = 0; index < blocks.length; index++) {
      const block = blocks[index]!;
      for (const event of block.events) {
        const handlers = this.options.handlers.get(event.name);
        if (handlers === undefined) continue;
        for (const handler of handlers) {
          const context = new this.Context(this, firstCheckpoint + index, block, event, true, false);
          // Preload errors are ignored: the execute pass runs the handler again and reports them.
          try {
            const result = handler({ event: event as never, block, context: context as never });
            if (isPromise(result)) pending.push(result.then(ignore, ignore));
          } catch {}
        }
      }
    }
    await Promise.all(pending);
  }

  private async prefetch(blocks: readonly Block[]): Promise<void> {
    if (this.profile.empty) return;
    const { ids, filters } = this.profile.predict(blocks);
    await Promise.all([
      ...[...ids].map(([entity, wanted]) => this.loader.loadMany(entity, wanted)),
      ...filters.map((filter) => this.loader.loadWhere(filter)),
    ]);
  }

  /** A getWhere whose rows were not loaded yet. Outside 'two-pass' it teaches the profile. */
  filterMissed(context: InvocationContext, filter: ParsedFilter): void {
    if (this.options.strategy !== 'two-pass') this.profile.learnFilter(context.event, filter);
    if (!context.isPreload) this.executeMisses += 1;
  }

  private async execute(
    blocks: readonly Block[],
    firstCheckpoint: number,
    keepHistory: boolean,
  ): Promise<number> {
    let events = 0;
    let turnStarted = performance.now();
    for (let index = 0; index < blocks.length; index++) {
      const block = blocks[index]!;
      const checkpoint = firstCheckpoint + index;
      for (const event of block.events) {
        events += 1;
        // Handlers whose reads hit memory resolve in microtasks: a large batch would hold the
        // thread's event loop for seconds, its pings unanswered until the supervisor kills it.
        if (events % YIELD_CHECK_EVENTS === 0 && performance.now() - turnStarted > MAX_TURN_MS) {
          await setImmediate();
          turnStarted = performance.now();
        }
        const handlers = this.options.handlers.get(event.name);
        if (handlers === undefined) continue;
        for (const handler of handlers) {
          const context = new this.Context(this, checkpoint, block, event, false, keepHistory);
          try {
            const result = handler({ event: event as never, block, context: context as never });
            if (isPromise(result)) await result;
          } catch (error) {
            throw this.handlerError(error, block, event);
          } finally {
            context.active = false;
          }
        }
      }
    }
    return events;
  }

  private handlerError(error: unknown, block: Block, event: SourceEvent): unknown {
    // A lost connection while loading is not the handler's fault: the batch is undone and retried.
    if (isRetryable(error)) return error;
    const message = error instanceof Error ? error.message : String(error);
    return new StrataError(
      'STRATA_ERR_HANDLER_FAILED',
      `handler for ${event.name} failed in pipeline ${this.options.pipeline} at block ${block.number}, log index ${event.logIndex}: ${message}`,
      {
        cause: error,
        details: {
          pipeline: this.options.pipeline,
          block: block.number,
          event: event.name,
          logIndex: event.logIndex,
          ...(error instanceof StrataError ? { causeCode: error.code } : {}),
        },
      },
    );
  }
}
