// Which entity tables have live shapes, per pipeline: the writer captures their changes for the
// materializer, and the main thread keeps the same set so a restarted writer goes on capturing.

import type { WhereExpr } from '../materializer/where-ast.ts';
import { TableFilter } from './shape-filter.ts';

/**
 * Shape logs are compacted once every this many transactions of a pipeline (by the writer in
 * `strata.shape_log`, by the materializer in memory) — or every `retention`, when that is fewer —
 * down to the configured retention.
 */
export const SHAPE_LOG_COMPACT_EVERY = 256;

/** The transactions compaction drops when transaction `sequence` commits (null: none this time). */
export function shapeLogCompaction(sequence: number, retention: number): number | null {
  const every = Math.min(SHAPE_LOG_COMPACT_EVERY, retention);
  if (sequence % every !== 0 || sequence <= retention) return null;
  return sequence - retention;
}

/** A shape's clause on one table, as the materializer compiled it (null: the whole table). */
export interface ShapeFilter {
  pipeline: string;
  entity: string;
  where: WhereExpr | null;
}

export class ShapeTables {
  private readonly tables = new Map<string, Map<string, TableFilter>>();

  /** Tables captured from the start, their shapes' clauses not known yet (every change matters). */
  constructor(initial: Record<string, string[]> = {}) {
    for (const [pipeline, entities] of Object.entries(initial))
      for (const entity of entities) this.add(pipeline, entity);
  }

  /** Captures the table (if it was not), every change mattering until its clauses are known. */
  add(pipeline: string, entity: string): void {
    this.table(pipeline, entity, false);
  }

  /** A new shape on the table: its clause matters from the next transaction on. */
  addShape(pipeline: string, entity: string, where: WhereExpr | null): void {
    this.table(pipeline, entity, true).add(where);
  }

  /**
   * Every shape's clause, as the materializer has them: tables whose clauses were not known know
   * them now. Only ever adds (a shape opened meanwhile keeps its clause).
   */
  install(filters: readonly ShapeFilter[]): void {
    const byTable = new Map<TableFilter, Array<WhereExpr | null>>();
    for (const { pipeline, entity, where } of filters) {
      const table = this.table(pipeline, entity, true);
      byTable.set(table, [...(byTable.get(table) ?? []), where]);
    }
    for (const entities of this.tables.values())
      for (const table of entities.values()) table.install(byTable.get(table) ?? []);
  }

  /** Whether the pipeline has any table with shapes. */
  has(pipeline: string): boolean {
    return (this.tables.get(pipeline)?.size ?? 0) > 0;
  }

  entities(pipeline: string): ReadonlySet<string> {
    return new Set(this.tables.get(pipeline)?.keys() ?? []);
  }

  /** The table's filter (undefined: not captured). */
  filter(pipeline: string, entity: string): TableFilter | undefined {
    return this.tables.get(pipeline)?.get(entity);
  }

  /** As plain data (a restarted writer's start data). */
  snapshot(): Record<string, string[]> {
    return Object.fromEntries(
      [...this.tables].map(([pipeline, entities]) => [pipeline, [...entities.keys()]]),
    );
  }

  private table(pipeline: string, entity: string, known: boolean): TableFilter {
    let entities = this.tables.get(pipeline);
    if (entities === undefined) {
      entities = new Map();
      this.tables.set(pipeline, entities);
    }
    let table = entities.get(entity);
    if (table === undefined) {
      table = new TableFilter(known);
      entities.set(entity, table);
    }
    return table;
  }
}
