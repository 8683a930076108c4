// The LoadLayer: every read that misses the InMemoryStore comes here, and reads are grouped per
// tick — all ids of one entity requested before the next macrotask become ONE
// `WHERE id = ANY($1)` query; `getWhere` filters with an `_eq`/`_in` field merge into one
// `= ANY` query per (entity, field, other conditions); other filters run as their own queries,
// concurrently.
// Results land in the store marked LOADED_FROM_DB; ids the database does not have are cached as
// known-absent, so a miss costs one query per batch at most.
//
// Grouping "per tick" uses setImmediate, not a microtask: handlers of a preload pass each run up
// to their first `await`, their continuations run as microtasks, and only once the microtask
// queue is empty does the flush run — so reads that depend on earlier reads of the same pass are
// grouped too (one query per dependency level, not per handler).

import { setImmediate as nextTurn } from 'node:timers/promises';
import type { Queryable } from '../db/pool.ts';
import { entityTable, quoteIdent } from '../schema/ddl.ts';
import type { EntityDescription } from '../schema/define-schema.ts';
import { rowFromDb } from '../schema/wire.ts';
import type { InMemoryStore } from './in-memory-store.ts';
import {
  arrayCast,
  type Condition,
  lookupCondition,
  type ParsedFilter,
  sqlFor,
  sqlValue,
} from './where-filter.ts';

/** Loaded filters remembered across batches, at most (a ledger's: one per address). */
const MAX_LOADED_FILTERS = 100_000;
/** Waiters resolved per event-loop turn (see flush). */
const RESOLVE_CHUNK = 64;

interface Waiter {
  resolve: () => void;
  reject: (error: unknown) => void;
}

/** Filters sharing a lookup field and their other conditions: one `= ANY($1) AND …` query. */
interface MergedLoad {
  entity: EntityDescription;
  field: string;
  values: unknown[];
  rest: Condition[];
}

export interface LoadLayerStats {
  queries: number;
  rowsLoaded: number;
}

export class LoadLayer {
  private readonly db: Queryable;
  private readonly pipeline: string;
  private readonly store: InMemoryStore;
  private pendingIds = new Map<string, Set<string>>();
  private pendingFilters = new Map<string, ParsedFilter>();
  private waiters: Waiter[] = [];
  private scheduled = false;
  /**
   * Filters whose committed rows are in the store, with the store's generation then: valid
   * across batches until the store forgets a row of that entity (see EntityStore.generation).
   */
  private readonly loadedFilters = new Map<string, { entity: string; generation: number }>();
  readonly stats: LoadLayerStats = { queries: 0, rowsLoaded: 0 };

  constructor(db: Queryable, pipeline: string, store: InMemoryStore) {
    this.db = db;
    this.pipeline = pipeline;
    this.store = store;
  }

  /** Resolves once `id` of `entity` is in the store (as a row or as known-absent). */
  load(entity: string, id: string): Promise<void> {
    return this.loadMany(entity, [id]);
  }

  loadMany(entity: string, ids: Iterable<string>): Promise<void> {
    const table = this.store.table(entity);
    // What a complete store lacks does not exist: nothing to ask.
    if (table.isComplete) return Promise.resolve();
    let pending = this.pendingIds.get(entity);
    let added = false;
    for (const id of ids) {
      if (table.has(id)) continue;
      if (pending === undefined) {
        pending = new Set();
        this.pendingIds.set(entity, pending);
      }
      pending.add(id);
      added = true;
    }
    return added ? this.enqueue() : Promise.resolve();
  }

  /** Resolves once every committed row matching `filter` is in the store. */
  loadWhere(filter: ParsedFilter): Promise<void> {
    if (this.isFilterLoaded(filter)) return Promise.resolve();
    this.pendingFilters.set(filter.key, filter);
    return this.enqueue();
  }

  isFilterLoaded(filter: ParsedFilter): boolean {
    if (this.store.table(filter.entity.name).isComplete) return true;
    const loaded = this.loadedFilters.get(filter.key);
    return loaded !== undefined && loaded.generation === this.store.table(loaded.entity).generation;
  }

  /**
   * Marks complete every entity whose table has no row (see EntityStore.markComplete): from the
   * first block on, or for an entity no handler has written yet. Call only while no write of the
   * pipeline can still commit (processing starts after the writer flushed its earlier
   * incarnation's batches). Returns the entities marked.
   */
  async markEmptyTablesComplete(): Promise<string[]> {
    const entities = [...this.store.tables.values()].map((table) => table.entity);
    if (entities.length === 0) return [];
    const probes = entities.map(
      (entity, index) => `EXISTS (SELECT 1 FROM ${entityTable(this.pipeline, entity.name)}) AS "${index}"`,
    );
    const { rows } = await this.db.query<Record<string, boolean>>(`SELECT ${probes.join(', ')}`);
    const marked: string[] = [];
    entities.forEach((entity, index) => {
      if (rows[0]![String(index)] === true) return;
      this.store.table(entity.name).markComplete();
      marked.push(entity.name);
    });
    return marked;
  }

  /** A batch ended: filters whose rows the store may have forgotten since are let go. */
  endBatch(): void {
    if (this.loadedFilters.size > MAX_LOADED_FILTERS) {
      this.loadedFilters.clear();
      return;
    }
    for (const [key, { entity, generation }] of this.loadedFilters)
      if (generation !== this.store.table(entity).generation) this.loadedFilters.delete(key);
  }

  private enqueue(): Promise<void> {
    const promise = new Promise<void>((resolve, reject) => this.waiters.push({ resolve, reject }));
    if (!this.scheduled) {
      this.scheduled = true;
      setImmediate(() => void this.flush());
    }
    return promise;
  }

  private async flush(): Promise<void> {
    this.scheduled = false;
    const ids = this.pendingIds;
    const filters = this.pendingFilters;
    const waiters = this.waiters;
    this.pendingIds = new Map();
    this.pendingFilters = new Map();
    this.waiters = [];
    try {
      const queries: Array<Promise<void>> = [];
      for (const [entity, wanted] of ids) {
        const table = this.store.table(entity);
        const missing = [...wanted].filter((id) => !table.has(id));
        if (missing.length > 0) queries.push(this.loadIds(table.entity, missing));
      }
      // Filters with one `_eq`/`_in` field and the same other conditions share one query.
      const merged = new Map<string, MergedLoad>();
      for (const filter of filters.values()) {
        const lookup = lookupCondition(filter);
        if (lookup === null) {
          queries.push(this.loadFilter(filter));
          continue;
        }
        const key = `${filter.entity.name}.${lookup.field}?${lookup.restKey}`;
        const group = merged.get(key);
        if (group === undefined)
          merged.set(key, {
            entity: filter.entity,
            field: lookup.field,
            values: lookup.values,
            rest: lookup.rest,
          });
        else group.values.push(...lookup.values);
      }
      for (const group of merged.values()) queries.push(this.loadByField(group));
      await Promise.all(queries);
      for (const [key, filter] of filters) {
        const entity = filter.entity.name;
        this.loadedFilters.set(key, { entity, generation: this.store.table(entity).generation });
      }
      // Each waiter's handler continues in a microtask as soon as it is resolved: resolving a
      // preload pass's thousands at once would run all their synchronous work (a ledger's drain
      // over many lots) in one turn of the event loop, with the actor's pings unanswered. In
      // chunks, with a turn between them, the thread stays responsive.
      for (let start = 0; start < waiters.length; start += RESOLVE_CHUNK) {
        if (start > 0) await nextTurn();
        for (const waiter of waiters.slice(start, start + RESOLVE_CHUNK)) waiter.resolve();
      }
    } catch (error) {
      for (const waiter of waiters) waiter.reject(error);
    }
  }

  private async loadIds(entity: EntityDescription, ids: string[]): Promise<void> {
    const rows = await this.select(entity, `"id" = ANY($1::text[])`, [ids]);
    const table = this.store.table(entity.name);
    const found = new Set<string>();
    for (const row of rows) {
      table.putLoaded(row.id as string, rowFromDb(entity, row));
      found.add(row.id as string);
    }
    for (const id of ids) if (!found.has(id)) table.putLoaded(id, null);
  }

  private async loadByField({ entity, field, values, rest }: MergedLoad): Promise<void> {
    const column = entity.columns.find((candidate) => candidate.name === field)!;
    const unique = [...new Set(values.map((value) => sqlValue(column, value)))];
    const others = sqlFor(rest, 2);
    const where = `${quoteIdent(field)} = ANY($1::${arrayCast(column)})${others.where === '' ? '' : ` AND ${others.where}`}`;
    this.putRows(entity, await this.select(entity, where, [unique, ...others.params]));
  }

  private async loadFilter(filter: ParsedFilter): Promise<void> {
    const { where, params } = sqlFor(filter.conditions);
    this.putRows(filter.entity, await this.select(filter.entity, where, params));
  }

  private putRows(entity: EntityDescription, rows: Array<Record<string, unknown>>): void {
    const table = this.store.table(entity.name);
    for (const row of rows) table.putLoaded(row.id as string, rowFromDb(entity, row));
  }

  private async select(
    entity: EntityDescription,
    where: string,
    params: unknown[],
  ): Promise<Array<Record<string, unknown>>> {
    const columns = entity.columns.map((column) => quoteIdent(column.name)).join(', ');
    this.stats.queries += 1;
    const { rows } = await this.db.query<Record<string, unknown>>(
      `SELECT ${columns} FROM ${entityTable(this.pipeline, entity.name)} WHERE ${where}`,
      params,
    );
    this.stats.rowsLoaded += rows.length;
    return rows;
  }
}
