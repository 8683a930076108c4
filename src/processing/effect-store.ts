// The processing actor's effect cache, managed like entity changes (src/processing/in-memory-store.ts):
// every entry is stamped with the checkpoint whose handler produced it, or LOADED_FROM_DB when it
// was read back from strata.effect_cache, and counts toward the in-memory objects target. Entries
// are kept until their checkpoint is committed (the writer stores `cache: true` outputs in the
// batch's own transaction), then they are droppable like committed entity changes; `cache: false`
// outputs follow the same rule but are never stored, so a later miss runs the effect again.
//
// A miss goes: database (cache: true only; the stored output re-validated against the effect's
// current output schema — invalid ones count as misses and are counted) → the rate limiter →
// the effect. Identical calls while one runs share it (one run per distinct input per batch, in
// the preload pass as in the execute pass). Entries produced under another definition of the
// effect (a `--watch` reload) are never served.

import { createHash } from 'node:crypto';
import type { Queryable } from '../db/pool.ts';
import { StrataError } from '../errors.ts';
import type { Logger } from '../logger.ts';
import type { EffectCacheRow } from '../pipeline/uncommitted-ledger.ts';
import { stableJson } from '../stable-json.ts';
import { type Effect, RateLimiter } from './effects.ts';
import { LOADED_FROM_DB } from './in-memory-store.ts';

interface EffectEntry {
  output: unknown;
  checkpointId: number;
}

/** Per effect, since the actor started. */
export interface EffectStats {
  calls: number;
  memoryHits: number;
  databaseHits: number;
  /** Stored outputs that no longer match the output schema (recomputed). */
  invalidated: number;
  runs: number;
}

/** A `cache: true` output to store: [effect, input key, output JSON]. */
export type { EffectCacheRow };

class EffectTable {
  readonly entries = new Map<string, EffectEntry>();
  readonly running = new Map<string, Promise<unknown>>();
  readonly limiter: RateLimiter | null;
  readonly stats: EffectStats = { calls: 0, memoryHits: 0, databaseHits: 0, invalidated: 0, runs: 0 };

  constructor(readonly definition: Effect) {
    this.limiter =
      definition.rateLimit === null
        ? null
        : new RateLimiter(definition.rateLimit.calls, definition.rateLimit.perMs);
  }
}

export class EffectStore {
  private readonly tables = new Map<string, EffectTable>();
  /** Stored outputs produced since the last batch was collected. */
  private fresh: EffectCacheRow[] = [];
  private pendingLoads = new Map<string, Map<string, Array<(output: unknown) => void>>>();
  private loadFailures: Array<(error: unknown) => void> = [];
  private loadScheduled = false;

  constructor(
    private readonly db: Queryable,
    private readonly log: Logger,
  ) {}

  /** `context.effect(effect, input, options)` of a handler running at `checkpointId`. */
  call(
    effect: Effect,
    rawInput: unknown,
    checkpointId: number,
    options?: { cache?: boolean },
  ): Promise<unknown> {
    const parsed = effect.input.safeParse(rawInput);
    if (!parsed.success) {
      return Promise.reject(
        new StrataError(
          'STRATA_ERR_EFFECT_INVALID',
          `effect ${effect.name}: invalid input: ${parsed.error.message}`,
          {
            details: { effect: effect.name },
          },
        ),
      );
    }
    const input = parsed.data;
    const key = inputKey(input);
    const table = this.tableFor(effect);
    table.stats.calls += 1;
    const entry = table.entries.get(key);
    if (entry !== undefined) {
      table.stats.memoryHits += 1;
      return Promise.resolve(entry.output);
    }
    let running = table.running.get(key);
    if (running === undefined) {
      const persist = effect.cache && options?.cache !== false;
      running = this.miss(table, key, input, checkpointId, persist).finally(() => table.running.delete(key));
      table.running.set(key, running);
    }
    return running;
  }

  private async miss(
    table: EffectTable,
    key: string,
    input: unknown,
    checkpointId: number,
    persist: boolean,
  ): Promise<unknown> {
    const effect = table.definition;
    if (effect.cache) {
      const stored = await this.load(effect.name, key);
      if (stored !== undefined) {
        const valid = effect.output.safeParse(stored);
        if (valid.success) {
          table.stats.databaseHits += 1;
          table.entries.set(key, { output: valid.data, checkpointId: LOADED_FROM_DB });
          return valid.data;
        }
        table.stats.invalidated += 1;
      }
    }
    await table.limiter?.acquire();
    table.stats.runs += 1;
    const output = await effect.run({ input, context: { log: this.log.child({ effect: effect.name }) } });
    const valid = effect.output.safeParse(output);
    if (!valid.success) {
      throw new StrataError(
        'STRATA_ERR_EFFECT_INVALID',
        `effect ${effect.name} returned an output that does not match its output schema: ${valid.error.message}`,
        { details: { effect: effect.name } },
      );
    }
    // An entry made under a definition replaced meanwhile is not kept.
    if (this.tables.get(effect.name) === table) {
      table.entries.set(key, { output: valid.data, checkpointId });
      if (persist) this.fresh.push([effect.name, key, toJson(effect.name, valid.data)]);
    }
    return valid.data;
  }

  private tableFor(effect: Effect): EffectTable {
    let table = this.tables.get(effect.name);
    if (table === undefined || table.definition !== effect) {
      // First use, or a new definition (a reload): entries of the old one are not served.
      const stats = table?.stats;
      table = new EffectTable(effect);
      if (stats !== undefined) Object.assign(table.stats, stats);
      this.tables.set(effect.name, table);
    }
    return table;
  }

  /** Stored outputs to write with the batch that produced them (and forget here). */
  takeFresh(): EffectCacheRow[] {
    const fresh = this.fresh;
    this.fresh = [];
    return fresh;
  }

  /**
   * Stored outputs of batches a reorg discarded before they were written: they go with the next
   * batch (an effect's output depends on its input, not on the branch that asked).
   */
  giveBack(rows: EffectCacheRow[]): void {
    if (rows.length > 0) this.fresh = [...rows, ...this.fresh];
  }

  size(): number {
    let size = 0;
    for (const table of this.tables.values()) size += table.entries.size;
    return size;
  }

  dropCommitted(committedCheckpoint: number): number {
    return this.drop(
      (entry) => entry.checkpointId !== LOADED_FROM_DB && entry.checkpointId <= committedCheckpoint,
    );
  }

  dropLoaded(): number {
    return this.drop((entry) => entry.checkpointId === LOADED_FROM_DB);
  }

  /** After a reorg rollback everything is committed or memory-only: all of it becomes droppable. */
  settleAll(): void {
    for (const table of this.tables.values()) {
      for (const entry of table.entries.values()) entry.checkpointId = LOADED_FROM_DB;
    }
  }

  stats(): Record<string, EffectStats> {
    return Object.fromEntries([...this.tables].map(([name, table]) => [name, { ...table.stats }]));
  }

  private drop(droppable: (entry: EffectEntry) => boolean): number {
    let dropped = 0;
    for (const table of this.tables.values()) {
      for (const [key, entry] of table.entries) {
        if (droppable(entry)) {
          table.entries.delete(key);
          dropped += 1;
        }
      }
    }
    return dropped;
  }

  /** One query per effect for the misses of a tick. Resolves with the stored output or undefined. */
  private load(effect: string, key: string): Promise<unknown> {
    return new Promise((resolve, reject) => {
      let keys = this.pendingLoads.get(effect);
      if (keys === undefined) {
        keys = new Map();
        this.pendingLoads.set(effect, keys);
      }
      const waiters = keys.get(key) ?? [];
      waiters.push(resolve);
      keys.set(key, waiters);
      this.loadFailures.push(reject);
      if (!this.loadScheduled) {
        this.loadScheduled = true;
        setImmediate(() => void this.flushLoads());
      }
    });
  }

  private async flushLoads(): Promise<void> {
    const pending = this.pendingLoads;
    const failures = this.loadFailures;
    this.pendingLoads = new Map();
    this.loadFailures = [];
    this.loadScheduled = false;
    try {
      for (const [effect, keys] of pending) {
        const { rows } = await this.db.query<{ input_key: string; output: unknown }>(
          'SELECT input_key, output FROM strata.effect_cache WHERE effect = $1 AND input_key = ANY($2)',
          [effect, [...keys.keys()]],
        );
        const found = new Map(rows.map((row) => [row.input_key, row.output]));
        for (const [key, waiters] of keys) for (const resolve of waiters) resolve(found.get(key));
      }
    } catch (error) {
      for (const reject of failures) reject(error);
    }
  }
}

/** The cache key of an input: its JSON with sorted keys (hashed when long). */
export function inputKey(input: unknown): string {
  const json = stableJson(input);
  return json.length <= 200 ? json : `sha256:${createHash('sha256').update(json).digest('hex')}`;
}

function toJson(effect: string, output: unknown): string {
  try {
    return JSON.stringify(output) ?? 'null';
  } catch (error) {
    throw new StrataError(
      'STRATA_ERR_EFFECT_INVALID',
      `effect ${effect}: a cached output must be JSON (${(error as Error).message}); use cache: false or return strings`,
      { details: { effect } },
    );
  }
}
