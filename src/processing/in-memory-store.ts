// The InMemoryStore: for every entity of a pipeline, the latest change per id, each stamped with
// the checkpoint that made it. It is the processing actor's working set and the source of truth
// for everything not yet committed:
//  - `Set`/`Delete` changes made by handlers carry their checkpoint (> 0);
//  - rows read from the database carry LOADED_FROM_DB (and so do known-absent ids, as `Delete`
//    markers) — always droppable, never written back;
//  - a change is kept at least until the writer has committed its checkpoint (commit-gated);
//  - inside the reorg threshold, an uncommitted change overwritten by a later checkpoint moves to
//    `previous`, so every checkpoint's value reaches the history tables (reorg rollback).
//
// Counters are maintained on every mutation so the capacity check before each batch needs no scan.
// A batch's own changes are tracked in `touched` together with what they replaced, which gives the
// batch's change list without scanning and lets a failed batch be undone exactly — or, while it
// is the last batch, its part above a reorg's common ancestor.

import type { EntityDescription, Schema } from '../schema/define-schema.ts';
import type { EntityRow } from '../schema/wire.ts';

export const LOADED_FROM_DB = -1;

/**
 * A handler's change also names the event that made it (its name and log index, as plain fields:
 * no object per change, and not the event itself, which would keep payloads alive), so a row the
 * database refuses can be traced to it.
 */
export type StoredChange =
  | { kind: 'set'; row: EntityRow; checkpointId: number; eventName?: string; logIndex?: number }
  | { kind: 'delete'; checkpointId: number; eventName?: string; logIndex?: number };

/** Every known-absent id shares this marker (the LoadLayer records thousands per batch). */
const KNOWN_ABSENT: StoredChange = Object.freeze({ kind: 'delete', checkpointId: LOADED_FROM_DB });

export class EntityStore {
  readonly entity: EntityDescription;
  readonly latest = new Map<string, StoredChange>();
  /** Overwritten uncommitted changes (kept only inside the reorg threshold). */
  previous: Array<{ id: string; change: StoredChange }> = [];
  /**
   * Ids the current (or, until the next begins, the last) batch changed, each with the change it
   * replaced (undefined: absent), in first-touch order. A change is a first touch when what it
   * replaces predates the batch, so tracking needs no lookup of its own.
   */
  touched: Array<{ id: string; before: StoredChange | undefined }> = [];
  /** First checkpoint of the batch being executed. */
  batchStart = Number.POSITIVE_INFINITY;
  /** Length of `previous` when the batch began (what an undo truncates it to). */
  previousMark = 0;
  loadedCount = 0;

  constructor(entity: EntityDescription) {
    this.entity = entity;
  }

  /** A row from the database (or a known-absent id) — only if nothing newer is held. */
  putLoaded(id: string, row: EntityRow | null): void {
    if (this.latest.has(id)) return;
    this.latest.set(id, row === null ? KNOWN_ABSENT : { kind: 'set', row, checkpointId: LOADED_FROM_DB });
    this.loadedCount += 1;
  }

  /** A handler's change at `checkpointId`. */
  apply(id: string, change: StoredChange, keepHistory: boolean): void {
    const before = this.latest.get(id);
    if (before === undefined || before.checkpointId < this.batchStart) this.touched.push({ id, before });
    if (before !== undefined && before.checkpointId === LOADED_FROM_DB) this.loadedCount -= 1;
    if (
      keepHistory &&
      before !== undefined &&
      before.checkpointId !== LOADED_FROM_DB &&
      before.checkpointId < change.checkpointId
    ) {
      this.previous.push({ id, change: before });
    }
    this.latest.set(id, change);
  }

  /** Restores every id the current batch changed to what it was before the batch. */
  undoBatch(): void {
    this.previous.length = this.previousMark;
    for (let i = this.touched.length - 1; i >= 0; i--) {
      const { id, before } = this.touched[i]!;
      const now = this.latest.get(id);
      if (now !== undefined && now.checkpointId === LOADED_FROM_DB) this.loadedCount -= 1;
      if (before === undefined) this.latest.delete(id);
      else {
        this.latest.set(id, before);
        if (before.checkpointId === LOADED_FROM_DB) this.loadedCount += 1;
      }
    }
    this.touched = [];
  }

  /**
   * Undoes the last batch's changes above `checkpoint` (a reorg orphaned its last blocks before it
   * was sent): each id it changed there gets back its latest change at or below the checkpoint —
   * one the batch made (from `previous`), else what it was before the batch — so `touched` and
   * `previous` then describe exactly the batch's part at or below the checkpoint. Returns how
   * many ids were restored.
   */
  undoLastBatchAbove(checkpoint: number): number {
    // The batch's overwritten changes start at previousMark, in order: per id, the last one within
    // the batch and at or below the checkpoint, and the one from before the batch it displaced.
    const restoreFrom = new Map<string, number>();
    const displaced = new Map<string, number>();
    for (let i = this.previousMark; i < this.previous.length; i++) {
      const { id, change } = this.previous[i]!;
      if (change.checkpointId < this.batchStart) displaced.set(id, i);
      else if (change.checkpointId <= checkpoint) restoreFrom.set(id, i);
    }
    const dropFromPrevious = new Set<number>();
    const stillTouched: typeof this.touched = [];
    let restored = 0;
    for (const touch of this.touched) {
      const { id, before } = touch;
      if (this.latest.get(id)!.checkpointId <= checkpoint) {
        stillTouched.push(touch);
        continue;
      }
      restored += 1;
      const index = restoreFrom.get(id);
      if (index !== undefined) {
        this.latest.set(id, this.previous[index]!.change);
        dropFromPrevious.add(index);
        stillTouched.push(touch);
        continue;
      }
      if (before === undefined) this.latest.delete(id);
      else {
        this.latest.set(id, before);
        if (before.checkpointId === LOADED_FROM_DB) this.loadedCount += 1;
      }
      const displacedAt = displaced.get(id);
      if (displacedAt !== undefined) dropFromPrevious.add(displacedAt);
    }
    this.touched = stillTouched;
    const tail = this.previous
      .slice(this.previousMark)
      .filter(
        (entry, k) => entry.change.checkpointId <= checkpoint && !dropFromPrevious.has(this.previousMark + k),
      );
    this.previous.length = this.previousMark;
    this.previous.push(...tail);
    return restored;
  }

  /** Drops changes whose checkpoint is committed; returns how many were dropped. */
  dropCommitted(committedCheckpoint: number): number {
    let dropped = 0;
    for (const [id, change] of this.latest) {
      if (change.checkpointId !== LOADED_FROM_DB && change.checkpointId <= committedCheckpoint) {
        this.latest.delete(id);
        dropped += 1;
      }
    }
    // `previousMark` keeps pointing at the last batch's first overwritten change.
    const keep: typeof this.previous = [];
    let mark = 0;
    for (const [index, entry] of this.previous.entries()) {
      if (entry.change.checkpointId <= committedCheckpoint) continue;
      keep.push(entry);
      if (index < this.previousMark) mark += 1;
    }
    dropped += this.previous.length - keep.length;
    this.previous = keep;
    this.previousMark = mark;
    return dropped;
  }

  /** Drops rows loaded from the database (and known-absent markers). */
  dropLoaded(): number {
    if (this.loadedCount === 0) return 0;
    let dropped = 0;
    for (const [id, change] of this.latest) {
      if (change.checkpointId === LOADED_FROM_DB) {
        this.latest.delete(id);
        dropped += 1;
      }
    }
    this.loadedCount = 0;
    return dropped;
  }

  size(): number {
    return this.latest.size + this.previous.length;
  }

  /**
   * Undoes every change above `checkpoint` (a reorg orphaned those blocks before they were
   * written): each id changed above it gets back its latest change at or below it, from
   * `previous`, or — none held — is forgotten, so its committed row is read again. Exact when every
   * change above `checkpoint` was made inside the reorg threshold (overwritten changes kept).
   * Returns how many ids were restored or forgotten.
   */
  rollBackTo(checkpoint: number): number {
    const changedAbove = new Set<string>();
    for (const [id, change] of this.latest) {
      if (change.checkpointId > checkpoint) changedAbove.add(id);
    }
    // A change in `previous` above the checkpoint was overwritten by one in `latest` above it.
    if (changedAbove.size === 0) return 0;
    // An id's entries in `previous` are in checkpoint order: its last one at or below the
    // checkpoint is its value there.
    const restoredFrom = new Set<number>();
    const restored = new Set<string>();
    for (let i = this.previous.length - 1; i >= 0; i--) {
      const { id, change } = this.previous[i]!;
      if (change.checkpointId > checkpoint || !changedAbove.has(id) || restored.has(id)) continue;
      this.latest.set(id, change);
      restored.add(id);
      restoredFrom.add(i);
    }
    for (const id of changedAbove) if (!restored.has(id)) this.latest.delete(id);
    this.previous = this.previous.filter(
      (entry, i) => entry.change.checkpointId <= checkpoint && !restoredFrom.has(i),
    );
    // No last batch to undo any more.
    this.previousMark = this.previous.length;
    this.touched = [];
    return changedAbove.size;
  }

  /** Forgets everything (after a reorg rollback, when all of it was committed). */
  clear(): void {
    this.latest.clear();
    this.previous = [];
    this.previousMark = 0;
    this.touched = [];
    this.loadedCount = 0;
  }
}

export class InMemoryStore {
  readonly tables: ReadonlyMap<string, EntityStore>;

  constructor(schema: Schema) {
    this.tables = new Map(schema.entities.map((entity) => [entity.name, new EntityStore(entity)]));
  }

  table(entity: string): EntityStore {
    const table = this.tables.get(entity);
    if (table === undefined) throw new Error(`no entity ${entity} in this pipeline's schema`);
    return table;
  }

  size(): number {
    return this.sum((table) => table.size());
  }

  dropCommitted(committedCheckpoint: number): number {
    return this.sum((table) => table.dropCommitted(committedCheckpoint));
  }

  dropLoaded(): number {
    return this.sum((table) => table.dropLoaded());
  }

  /** A batch starting at `firstCheckpoint` begins executing. */
  beginBatch(firstCheckpoint: number): void {
    for (const table of this.tables.values()) {
      table.touched = [];
      table.batchStart = firstCheckpoint;
      table.previousMark = table.previous.length;
    }
  }

  undoBatch(): void {
    for (const table of this.tables.values()) table.undoBatch();
  }

  clear(): void {
    for (const table of this.tables.values()) table.clear();
  }

  /** See EntityStore.rollBackTo. */
  rollBackTo(checkpoint: number): number {
    return this.sum((table) => table.rollBackTo(checkpoint));
  }

  /** How many ids the last batch changed (its change count). */
  lastBatchChangeCount(): number {
    return this.sum((table) => table.touched.length);
  }

  /** See EntityStore.undoLastBatchAbove. */
  undoLastBatchAbove(checkpoint: number): number {
    return this.sum((table) => table.undoLastBatchAbove(checkpoint));
  }

  private sum(read: (table: EntityStore) => number): number {
    let total = 0;
    for (const table of this.tables.values()) total += read(table);
    return total;
  }
}
