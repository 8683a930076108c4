// An in-memory equality index over one field of an entity's store: field value → ids that may
// hold it. `getWhere({ address: { _eq: a } })` answers from the ids under `a` instead of scanning
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
  private readonly buckets = new Map<string, Set<string>>();
  /** Entries across buckets (stale ones included): when far above the store's size, rebuild. */
  entries = 0;

  constructor(field: string) {
    this.field = field;
  }

  note(id: string, row: EntityRow): void {
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
   * Ids that may hold `value`; `holds(id)` says whether one still does, and those that do not
   * are pruned here.
   */
  lookup(value: unknown, holds: (id: string) => boolean): string[] {
    const key = indexKey(value);
    if (key === undefined) return [];
    const bucket = this.buckets.get(key);
    if (bucket === undefined) return [];
    const ids: string[] = [];
    for (const id of bucket) {
      if (holds(id)) ids.push(id);
      else {
        bucket.delete(id);
        this.entries -= 1;
      }
    }
    if (bucket.size === 0) this.buckets.delete(key);
    return ids;
  }
}
