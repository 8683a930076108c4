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
//
// An entity no handler has read yet skips the map altogether (AppendedBatches): its rows stay in
// their batch's touched arrays until committed, since nothing looks them up by id.

import type { EntityDescription, Schema } from '../schema/define-schema.ts';
import type { EntityRow } from '../schema/wire.ts';
import { AppendedBatches } from './appended-batches.ts';
import { canIndex, FieldIndex, indexKey } from './field-index.ts';

export const LOADED_FROM_DB = -1;

/**
 * Partial field indexes per entity (one per distinct lookup field and other conditions of the
 * handlers' getWhere filters). Handlers whose filters carry per-event values would mint a new one
 * per call; past this many, the field's full index answers instead.
 */
const MAX_PARTIAL_INDEXES = 16;
const keepAll = (): boolean => true;

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
  private readonly latest = new Map<string, StoredChange>();
  /** Overwritten uncommitted changes (kept only inside the reorg threshold). */
  private previous: Array<{ id: string; change: StoredChange }> = [];
  /**
   * Ids the current (or, until the next begins, the last) batch changed, in first-touch order,
   * and alongside each the change it replaced (undefined: absent). A change is a first touch when
   * what it replaces predates the batch, so tracking needs no lookup of its own. Two parallel
   * arrays, not an object per touch: this runs for most writes of a backfill.
   */
  private touchedIds: string[] = [];
  private touchedBefore: Array<StoredChange | undefined> = [];
  /**
   * The change each touched id holds now — while `touchedNowExact`: a backfill's later sets of an
   * id in the same batch update its change in place, so encoding the batch reads its changes
   * without a map lookup per id (0.5–0.9 s of limit (a)'s ~11 s on erc20). Anything else that
   * puts another change under a touched id (a delete, history kept, undo, drops) clears the flag,
   * and the batch's changes are looked up by id as before.
   */
  private touchedNow: StoredChange[] = [];
  private touchedNowExact = true;
  /**
   * Until a handler reads the entity (or deletes one, or a batch keeps history), its sets bypass
   * `latest`: each batch's rows stay in its touched arrays, held here until committed and dropped
   * (see AppendedBatches). `undefined` once that ended — for good: every row still held moved
   * into `latest` then.
   */
  private appended: AppendedBatches<StoredChange> | undefined = new AppendedBatches();
  /** While appending: the current batch's ids and where each sits in the touched arrays. */
  private appendedAt = new Map<string, number>();
  /** First checkpoint of the batch being executed. */
  private batchStart = Number.POSITIVE_INFINITY;
  /** Length of `previous` when the batch began (what an undo truncates it to). */
  private previousMark = 0;
  private loadedCount = 0;
  private forgotten = 0;
  /** Equality indexes `getWhere` asked for, by field (built on first use; see FieldIndex). */
  private fieldIndexes: Map<string, FieldIndex> | undefined;
  /**
   * Whether a handler ever read this entity (`get`, `getOrCreate`, `getWhere`). Rows of an entity
   * nobody reads (transfers, event logs: written once) are never loaded back, so the capacity rule
   * drops them before any row that may be read again.
   */
  private readByHandlers = false;
  /**
   * The `forgotten` count at which this store held every committed row of its entity (its table
   * was empty when the pipeline started, see `markComplete`); -1 when it never did.
   */
  private completeAt = -1;

  constructor(entity: EntityDescription) {
    this.entity = entity;
  }

  /**
   * Counts the times this store forgot ids (dropped, undone, rolled back, cleared). A getWhere
   * filter loaded at one count is still complete at the same count: every row that came to match
   * it since was written here, so it is held (the LoadLayer keeps such filters across batches).
   */
  get generation(): number {
    return this.forgotten;
  }

  /**
   * The entity's table holds no committed row this store lacks (it was empty when processing
   * began here). Until the store forgets an id, an id it does not hold does not exist: reads of
   * absent ids need no database — a backfill from the first block (the common case) reads none.
   */
  markComplete(): void {
    this.completeAt = this.forgotten;
  }

  /** Whether every committed row of the entity is held (see `markComplete`). */
  get isComplete(): boolean {
    return this.completeAt === this.forgotten;
  }

  private forget(id: string): void {
    this.latest.delete(id);
    this.forgotten += 1;
    this.touchedNowExact = false;
  }

  /** Every change the store holds goes through here, so the field indexes see every row. */
  private hold(id: string, change: StoredChange): void {
    this.latest.set(id, change);
    if (this.fieldIndexes !== undefined && change.kind === 'set') this.noteIndexed(id, change.row);
  }

  private noteIndexed(id: string, row: EntityRow): void {
    for (const index of this.fieldIndexes!.values()) index.note(id, row);
  }

  /**
   * Rows whose `field` holds one of `values` and that pass `keep` (a filter's other conditions,
   * `keepKey` naming them), or undefined when the field cannot be indexed. The first call for a
   * (field, keepKey) builds its partial index from the rows held; past MAX_PARTIAL_INDEXES, the
   * field's full index answers and `keep` is checked per row.
   */
  rowsWithValue(
    field: string,
    values: readonly unknown[],
    keep: (row: EntityRow) => boolean,
    keepKey = '',
  ): EntityRow[] | undefined {
    this.stopAppending();
    this.readByHandlers = true;
    const column = this.entity.columns.find((candidate) => candidate.name === field);
    if (column === undefined || !canIndex(column)) return undefined;
    this.fieldIndexes ??= new Map();
    const indexes = this.fieldIndexes;
    let name = `${field}?${keepKey}`;
    if (!indexes.has(name) && indexes.size >= MAX_PARTIAL_INDEXES) name = `${field}?`;
    let index = indexes.get(name);
    // Stale entries are only pruned by lookups: rebuild when they dwarf what is held.
    if (index !== undefined && index.entries > 2 * this.latest.size + 1_024) index = undefined;
    if (index === undefined) {
      index = new FieldIndex(field, name === `${field}?` ? keepAll : keep);
      for (const [id, change] of this.latest) if (change.kind === 'set') index.note(id, change.row);
      indexes.set(name, index);
    }
    const partial = index.keep;
    const exact = name === `${field}?${keepKey}`; // the index checks exactly `keep`
    const rows: EntityRow[] = [];
    const seen = values.length > 1 ? new Set<string>() : undefined;
    for (const value of values) {
      const key = indexKey(value);
      // One map lookup per id answers "still in this index?" (else pruned) and gives the row.
      index.visit(key, (id) => {
        const change = this.latest.get(id);
        if (change === undefined || change.kind !== 'set') return false;
        const row = change.row;
        if (indexKey(row[field]) !== key || !partial(row)) return false;
        if (seen !== undefined) {
          if (seen.has(id)) return true;
          seen.add(id);
        }
        if (exact || keep(row)) rows.push(row);
        return true;
      });
    }
    return rows;
  }

  /** The latest change held for `id` (a handler's, or a row or absence loaded from the database). */
  /** A handler's read by id (see `isRead`). */
  current(id: string): StoredChange | undefined {
    this.stopAppending();
    this.readByHandlers = true;
    return this.latest.get(id);
  }

  /** Whether handlers read this entity (by id or filter) since the store was made. */
  get isRead(): boolean {
    return this.readByHandlers;
  }

  has(id: string): boolean {
    this.stopAppending();
    return this.latest.has(id);
  }

  /** Every row held (the latest `set` per id). */
  *rows(): IterableIterator<EntityRow> {
    this.stopAppending();
    this.readByHandlers = true;
    for (const change of this.latest.values()) if (change.kind === 'set') yield change.row;
  }

  /** How many ids the current (or last) batch changed. */
  batchChangeCount(): number {
    return this.touchedIds.length;
  }

  /** The current (or last) batch's final change per id, in first-touch order. */
  forEachBatchChange(visit: (id: string, change: StoredChange) => void): void {
    this.forEachBatchChangeIn(0, this.touchedIds.length, visit);
  }

  /** `forEachBatchChange` for the ids touched `from`-th up to (not including) `to`-th. */
  forEachBatchChangeIn(from: number, to: number, visit: (id: string, change: StoredChange) => void): void {
    const ids = this.touchedIds;
    if (this.touchedNowExact) {
      const now = this.touchedNow;
      for (let i = from; i < to; i++) visit(ids[i]!, now[i]!);
    } else {
      for (let i = from; i < to; i++) visit(ids[i]!, this.latest.get(ids[i]!)!);
    }
  }

  /** The changes the current (or last) batch made and then overwrote (kept inside the threshold). */
  forEachBatchOverwritten(visit: (id: string, change: StoredChange) => void): void {
    for (let i = this.previousMark; i < this.previous.length; i++) {
      const { id, change } = this.previous[i]!;
      if (change.checkpointId >= this.batchStart) visit(id, change);
    }
  }

  /** Every id's latest change above the committed checkpoint (not loaded ones). */
  forEachUncommitted(committedCheckpoint: number, visit: (id: string, change: StoredChange) => void): void {
    this.appended?.forEachLatestAbove(committedCheckpoint, visit);
    for (const [id, change] of this.latest) {
      if (change.checkpointId !== LOADED_FROM_DB && change.checkpointId > committedCheckpoint)
        visit(id, change);
    }
  }

  /** Every overwritten change above the committed checkpoint, in order. */
  forEachOverwrittenAbove(
    committedCheckpoint: number,
    visit: (id: string, change: StoredChange) => void,
  ): void {
    for (const { id, change } of this.previous) {
      if (change.checkpointId > committedCheckpoint) visit(id, change);
    }
  }

  /** Everything held, latest and overwritten (tests and diagnostics). */
  keptChanges(): Array<{ id: string; change: StoredChange }> {
    const appended: Array<{ id: string; change: StoredChange }> = [];
    this.appended?.forEach((id, change) => {
      appended.push({ id, change });
    });
    return [...[...this.latest].map(([id, change]) => ({ id, change })), ...this.previous, ...appended];
  }

  /** A batch starting at `firstCheckpoint` begins executing. */
  beginBatch(firstCheckpoint: number): void {
    this.forgetTouched();
    this.touchedNowExact = true;
    this.batchStart = firstCheckpoint;
    this.previousMark = this.previous.length;
  }

  /**
   * A handler's `set` at `checkpointId`. An id this batch already set, outside the threshold, is
   * updated in place: no new change object, no second map write (hot accounts are set many times
   * per batch). Nothing else holds such a change: `touched` keeps what predates the batch, and
   * `previous` is only filled inside the threshold.
   */
  applySet(
    id: string,
    row: EntityRow,
    checkpointId: number,
    eventName: string,
    logIndex: number,
    keepHistory: boolean,
  ): void {
    if (this.appended !== undefined && !keepHistory) {
      this.append(id, row, checkpointId, eventName, logIndex);
      return;
    }
    this.stopAppending();
    const before = this.latest.get(id);
    if (
      !keepHistory &&
      before !== undefined &&
      before.kind === 'set' &&
      before.checkpointId >= this.batchStart
    ) {
      before.row = row;
      before.checkpointId = checkpointId;
      before.eventName = eventName;
      before.logIndex = logIndex;
      if (this.fieldIndexes !== undefined) this.noteIndexed(id, row);
      return;
    }
    this.applyOver(id, before, { kind: 'set', row, checkpointId, eventName, logIndex }, keepHistory);
  }

  /** A set while appending: a new row of the batch, or its row for `id` updated in place. */
  private append(
    id: string,
    row: EntityRow,
    checkpointId: number,
    eventName: string,
    logIndex: number,
  ): void {
    const appended = this.appended!;
    const at = this.appendedAt.get(id);
    if (at !== undefined) {
      const change = this.touchedNow[at] as Extract<StoredChange, { kind: 'set' }>;
      change.row = row;
      change.checkpointId = checkpointId;
      change.eventName = eventName;
      change.logIndex = logIndex;
      appended.wrote(checkpointId, false);
      return;
    }
    if (!appended.isOpen(this.touchedIds)) appended.open(this.touchedIds, this.touchedNow, checkpointId);
    this.appendedAt.set(id, this.touchedIds.length);
    this.touchedIds.push(id);
    this.touchedBefore.push(undefined); // not known while appending; stopAppending fills it in
    this.touchedNow.push({ kind: 'set', row, checkpointId, eventName, logIndex });
    appended.wrote(checkpointId, true);
  }

  /**
   * Ends appending: every row still held moves into `latest`, oldest first (an id's later row
   * wins, as sets through `latest` would have left it), and the current batch's touched ids learn
   * what they replaced there. Rows already dropped were committed and counted as forgotten, so an
   * entity held whole stays so only if none were. Nothing to do once it ended.
   */
  private stopAppending(): void {
    const appended = this.appended;
    if (appended === undefined) return;
    this.appended = undefined;
    this.appendedAt = new Map();
    appended.forEach((id, change, batchIds, index) => {
      // The current batch's rows are its touched arrays: an undo restores what they replaced.
      if (batchIds === this.touchedIds) this.touchedBefore[index] = this.latest.get(id);
      this.hold(id, change);
    });
  }

  /** A row from the database (or a known-absent id) — only if nothing newer is held. */
  putLoaded(id: string, row: EntityRow | null): void {
    this.stopAppending();
    if (this.latest.has(id)) return;
    this.hold(id, row === null ? KNOWN_ABSENT : { kind: 'set', row, checkpointId: LOADED_FROM_DB });
    this.loadedCount += 1;
  }

  /** A handler's change at `checkpointId`. */
  apply(id: string, change: StoredChange, keepHistory: boolean): void {
    this.stopAppending();
    this.applyOver(id, this.latest.get(id), change, keepHistory);
  }

  /** `apply` when the caller already looked up what `id` holds (`before`). */
  private applyOver(
    id: string,
    before: StoredChange | undefined,
    change: StoredChange,
    keepHistory: boolean,
  ): void {
    if (before === undefined || before.checkpointId < this.batchStart) {
      this.touchedIds.push(id);
      this.touchedBefore.push(before);
      this.touchedNow.push(change);
    } else this.touchedNowExact = false; // `change` replaces the one `touchedNow` has for `id`
    if (before !== undefined && before.checkpointId === LOADED_FROM_DB) this.loadedCount -= 1;
    if (
      keepHistory &&
      before !== undefined &&
      before.checkpointId !== LOADED_FROM_DB &&
      before.checkpointId < change.checkpointId
    ) {
      this.previous.push({ id, change: before });
    }
    this.hold(id, change);
  }

  /** No batch's changes are tracked any more (the next batch, or an undo, begins afresh). */
  private forgetTouched(): void {
    this.touchedIds = [];
    this.touchedBefore = [];
    this.touchedNow = [];
    if (this.appendedAt.size > 0) this.appendedAt = new Map();
  }

  /** Restores every id the current batch changed to what it was before the batch. */
  undoBatch(): void {
    if (this.appended !== undefined) {
      // Nothing of the batch is in `latest`: its rows are its own arrays.
      this.appended.discardOpen(this.touchedIds);
      this.forgetTouched();
      return;
    }
    this.previous.length = this.previousMark;
    for (let i = this.touchedIds.length - 1; i >= 0; i--) {
      const id = this.touchedIds[i]!;
      const before = this.touchedBefore[i];
      const now = this.latest.get(id);
      if (now !== undefined && now.checkpointId === LOADED_FROM_DB) this.loadedCount -= 1;
      if (before === undefined) this.forget(id);
      else {
        this.hold(id, before);
        if (before.checkpointId === LOADED_FROM_DB) this.loadedCount += 1;
      }
    }
    this.forgetTouched();
  }

  /**
   * Undoes the last batch's changes above `checkpoint` (a reorg orphaned its last blocks before it
   * was sent): each id it changed there gets back its latest change at or below the checkpoint —
   * one the batch made (from `previous`), else what it was before the batch — so `touched` and
   * `previous` then describe exactly the batch's part at or below the checkpoint. Returns how
   * many ids were restored.
   */
  undoLastBatchAbove(checkpoint: number): number {
    this.stopAppending();
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
    const stillTouchedIds: string[] = [];
    const stillTouchedBefore: Array<StoredChange | undefined> = [];
    let restored = 0;
    for (let i = 0; i < this.touchedIds.length; i++) {
      const id = this.touchedIds[i]!;
      const before = this.touchedBefore[i];
      if (this.latest.get(id)!.checkpointId <= checkpoint) {
        stillTouchedIds.push(id);
        stillTouchedBefore.push(before);
        continue;
      }
      restored += 1;
      const index = restoreFrom.get(id);
      if (index !== undefined) {
        this.hold(id, this.previous[index]!.change);
        dropFromPrevious.add(index);
        stillTouchedIds.push(id);
        stillTouchedBefore.push(before);
        continue;
      }
      if (before === undefined) this.forget(id);
      else {
        this.hold(id, before);
        if (before.checkpointId === LOADED_FROM_DB) this.loadedCount += 1;
      }
      const displacedAt = displaced.get(id);
      if (displacedAt !== undefined) dropFromPrevious.add(displacedAt);
    }
    this.touchedIds = stillTouchedIds;
    this.touchedBefore = stillTouchedBefore;
    this.touchedNow = [];
    this.touchedNowExact = false;
    const tail = this.previous
      .slice(this.previousMark)
      .filter(
        (entry, k) => entry.change.checkpointId <= checkpoint && !dropFromPrevious.has(this.previousMark + k),
      );
    this.previous.length = this.previousMark;
    this.previous.push(...tail);
    return restored;
  }

  /**
   * Drops changes whose checkpoint is committed — at most `limit` of the latest ones, least
   * recently written first — and every committed overwritten one; returns how many were dropped.
   * A change's checkpoint is when it was last written, so "least recently written" is "lowest
   * checkpoint": hot ids stay, cold ones go, and writes need not keep the map in any order.
   */
  dropCommitted(committedCheckpoint: number, limit = Number.POSITIVE_INFINITY): number {
    if (this.appended !== undefined) return this.dropCommittedAppends(committedCheckpoint, limit);
    const below = this.dropBelow(committedCheckpoint, limit);
    let dropped = 0;
    for (const [id, change] of this.latest) {
      if (dropped >= limit) break;
      const checkpoint = change.checkpointId;
      if (checkpoint !== LOADED_FROM_DB && checkpoint <= below) {
        this.forget(id);
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

  /**
   * The highest checkpoint to drop at so that about `limit` committed changes go (all of them
   * when they are fewer): the limit-th lowest committed checkpoint.
   */
  private dropBelow(committedCheckpoint: number, limit: number): number {
    if (limit >= this.latest.size) return committedCheckpoint;
    const checkpoints = new Float64Array(this.latest.size);
    let count = 0;
    for (const change of this.latest.values()) {
      const checkpoint = change.checkpointId;
      if (checkpoint !== LOADED_FROM_DB && checkpoint <= committedCheckpoint)
        checkpoints[count++] = checkpoint;
    }
    if (count <= limit) return committedCheckpoint;
    return checkpoints.subarray(0, count).sort()[limit - 1]!;
  }

  /**
   * While appending (no handler reads the entity): drops committed rows, at most `limit`, oldest
   * first. Nothing reads them back, so the actor drops them at each commit.
   */
  dropCommittedAppends(committedCheckpoint: number, limit = Number.POSITIVE_INFINITY): number {
    const dropped = this.appended?.dropCommitted(committedCheckpoint, limit) ?? 0;
    if (dropped > 0) this.forgotten += 1; // the store no longer holds every row it wrote
    return dropped;
  }

  /** Drops rows loaded from the database (and known-absent markers). */
  dropLoaded(): number {
    if (this.loadedCount === 0) return 0;
    let dropped = 0;
    for (const [id, change] of this.latest) {
      if (change.checkpointId === LOADED_FROM_DB) {
        this.forget(id);
        dropped += 1;
      }
    }
    this.loadedCount = 0;
    return dropped;
  }

  size(): number {
    return this.latest.size + this.previous.length + (this.appended?.size ?? 0);
  }

  /**
   * Undoes every change above `checkpoint` (a reorg orphaned those blocks before they were
   * written): each id changed above it gets back its latest change at or below it, from
   * `previous`, or — none held — is forgotten, so its committed row is read again. Exact when every
   * change above `checkpoint` was made inside the reorg threshold (overwritten changes kept).
   * Returns how many ids were restored or forgotten.
   */
  rollBackTo(checkpoint: number): number {
    this.stopAppending();
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
      this.hold(id, change);
      restored.add(id);
      restoredFrom.add(i);
    }
    for (const id of changedAbove) if (!restored.has(id)) this.forget(id);
    this.previous = this.previous.filter(
      (entry, i) => entry.change.checkpointId <= checkpoint && !restoredFrom.has(i),
    );
    // No last batch to undo any more.
    this.previousMark = this.previous.length;
    this.forgetTouched();
    return changedAbove.size;
  }

  /** Forgets everything (after a reorg rollback, when all of it was committed). */
  clear(): void {
    this.appended?.clear();
    this.latest.clear();
    this.forgotten += 1;
    this.fieldIndexes = undefined;
    this.previous = [];
    this.previousMark = 0;
    this.forgetTouched();
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

  /**
   * Drops committed changes until the store holds at most `keepAtMost` objects (0: every
   * committed change), least recently written first within each entity. Entities no handler
   * reads go first (nothing loads them back), then the read entities not held whole, in
   * proportion to their size; what is dropped is read again from the database when next needed.
   * Entities held whole (see EntityStore.markComplete) go last, and only while the store holds
   * more than `spareWholeUpTo` objects: one dropped row costs such an entity the reads its
   * completeness saves, so the store waits for commits rather than give that up.
   */
  dropCommitted(committedCheckpoint: number, keepAtMost = 0, spareWholeUpTo = keepAtMost): number {
    if (keepAtMost === 0) return this.sum((table) => table.dropCommitted(committedCheckpoint));
    let excess = this.size() - keepAtMost;
    if (excess <= 0) return 0;
    let dropped = 0;
    const tables = [...this.tables.values()];
    const tiers = [
      tables.filter((table) => !table.isRead),
      tables.filter((table) => table.isRead && !table.isComplete),
      tables.filter((table) => table.isRead && table.isComplete),
    ];
    for (const [tier, members] of tiers.entries()) {
      if (excess <= 0) break;
      if (tier === 2 && this.size() <= spareWholeUpTo) break;
      const tierSize = members.reduce((sum, table) => sum + table.size(), 0);
      if (tierSize === 0) continue;
      for (const table of members) {
        // The unread tier is emptied in order; the read ones share the excess by size.
        const share = tier === 0 ? excess : Math.ceil((excess * table.size()) / tierSize);
        const count = table.dropCommitted(committedCheckpoint, share);
        dropped += count;
        if (tier === 0) excess -= count;
      }
      if (tier !== 0) excess = this.size() - keepAtMost;
    }
    return dropped;
  }

  dropLoaded(): number {
    return this.sum((table) => table.dropLoaded());
  }

  /** See EntityStore.dropCommittedAppends. */
  dropCommittedAppends(committedCheckpoint: number): number {
    return this.sum((table) => table.dropCommittedAppends(committedCheckpoint));
  }

  /** A batch starting at `firstCheckpoint` begins executing. */
  beginBatch(firstCheckpoint: number): void {
    for (const table of this.tables.values()) table.beginBatch(firstCheckpoint);
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
    return this.sum((table) => table.batchChangeCount());
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
