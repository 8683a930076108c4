// An in-memory equality index over one field of an entity's store (optionally partial: only rows
// passing a filter's other conditions): field value → ids that may hold it. `getWhere({ address: { _eq: a } })` answers from the ids under `a` instead of scanning
// every row the store holds (a ledger looks up one address's lots per event; a scan made that
// quadratic in the working set).
//
// The index is a superset, never removed from on writes: every row the store takes is noted under
// its value, and an id whose row no longer has the value (overwritten, dropped, undone) is pruned
// when a lookup finds it stale. That keeps the store's many mutation paths (undo, rollback, drops)
// free of index upkeep: only a row being *held* must be noted, which the store does in one place.

import type { ColumnDescription } from '../schema/define-schema.ts';
import type { EntityRow } from '../schema/wire.ts';

/** Field kinds whose equal values have one key. (`numeric` is compared as a number: "1.0" = "1".) */
const INDEXABLE = new Set(['text', 'integer', 'bigint', 'boolean', 'timestamptz']);

export function canIndex(column: ColumnDescription): boolean {
  return !column.spec.array && INDEXABLE.has(column.spec.kind);
}

export function indexKey(value: unknown): string | undefined {
  if (value === null || value === undefined) return undefined; // `= NULL` never matches
  if (value instanceof Date) return String(value.getTime());
  return String(value);
}

export class FieldIndex {
  readonly field: string;
  /**
   * A partial index holds only rows passing this (a filter's other conditions, e.g. a ledger's
   * `amountRemaining > 0`): rows that stop passing leave it at the next lookup and are not visited
   * again — a hot address's thousands of drained lots cost nothing once pruned.
   */
  readonly keep: (row: EntityRow) => boolean;
  private readonly buckets = new Map<string, Set<string>>();
  /** Entries across buckets (stale ones included): when far above the store's size, rebuild. */
  entries = 0;

  constructor(field: string, keep: (row: EntityRow) => boolean) {
    this.field = field;
    this.keep = keep;
  }

  note(id: string, row: EntityRow): void {
    if (!this.keep(row)) return;
    const key = indexKey(row[this.field]);
    if (key === undefined) return;
    let bucket = this.buckets.get(key);
    if (bucket === undefined) {
      bucket = new Set();
      this.buckets.set(key, bucket);
    }
    const before = bucket.size;
    bucket.add(id);
    this.entries += bucket.size - before;
  }

  /**
   * Calls `visit` with every id noted under `key`; an id for which it answers false no longer
   * holds the value and is pruned.
   */
  visit(key: string | undefined, visit: (id: string) => boolean): void {
    if (key === undefined) return;
    const bucket = this.buckets.get(key);
    if (bucket === undefined) return;
    for (const id of bucket) {
      if (visit(id)) continue;
      bucket.delete(id);
      this.entries -= 1;
    }
    if (bucket.size === 0) this.buckets.delete(key);
  }
}
