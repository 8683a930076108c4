// What of the store a batch sends the writer: its changes grouped per entity, sets as ready-made
// COPY text lines (with their checkpoints alongside), deletes as `[checkpointId, id]`, written
// straight into the encoded form that crosses the threads (src/pipeline/change-codec.ts). The
// processing actor does the conversion, so the writer's thread only merges and streams.

import { setImmediate as nextTurn } from 'node:timers/promises';
import { ChangesEncoder, type EncodedChanges } from '../pipeline/change-codec.ts';
import { escapeText, rowToCopyLine } from '../schema/copy-text.ts';
import type { EntityStore, InMemoryStore, StoredChange } from './in-memory-store.ts';

/** Changes encoded between two looks at the clock (collectBatchChangesInTurns). */
const SLICE = 4_096;

/**
 * The changes the current batch made, encoded. With `history` (inside the reorg threshold) also
 * every change of the batch for the history tables: the latest, then the overwritten ones.
 */
export function collectBatchChanges(
  store: InMemoryStore,
  history: boolean,
): { encoded: EncodedChanges; count: number } {
  const encoding = encodeBatchChanges(store, history);
  let step = encoding.next();
  while (step.done !== true) step = encoding.next();
  return step.value;
}

/**
 * `collectBatchChanges`, giving the event loop a turn whenever a stretch took `maxTurnMs`: one
 * block of a million changes takes seconds to encode, and a thread that long deaf to pings is
 * killed as unresponsive (and would be again, on the same block, after its restart).
 */
export async function collectBatchChangesInTurns(
  store: InMemoryStore,
  history: boolean,
  maxTurnMs: number,
): Promise<{ encoded: EncodedChanges; count: number }> {
  const encoding = encodeBatchChanges(store, history);
  let turnStarted = performance.now();
  for (let step = encoding.next(); ; step = encoding.next()) {
    if (step.done === true) return step.value;
    if (performance.now() - turnStarted > maxTurnMs) {
      await nextTurn();
      turnStarted = performance.now();
    }
  }
}

/** Encodes the batch's changes, pausing (yield) after every SLICE of them. */
function* encodeBatchChanges(
  store: InMemoryStore,
  history: boolean,
): Generator<void, { encoded: EncodedChanges; count: number }> {
  const encoder = new ChangesEncoder();
  let count = 0;
  for (const [name, table] of store.tables) {
    const changes = table.batchChangeCount();
    if (changes === 0) continue;
    const entry = new EntryBuilder(encoder);
    const push = (id: string, change: StoredChange) => entry.push(table, id, change, history);
    for (let from = 0; from < changes; from += SLICE) {
      table.forEachBatchChangeIn(from, Math.min(changes, from + SLICE), push);
      yield;
    }
    count += changes;
    if (history) table.forEachBatchOverwritten((id, change) => entry.pushHistory(table, id, change));
    entry.end(name);
  }
  return { encoded: encoder.finish(), count };
}

/**
 * Every change not yet committed (after a writer restart: one merged re-send), with the history
 * of everything kept for it, encoded.
 */
export function collectUncommittedChanges(
  store: InMemoryStore,
  committedCheckpoint: number,
  history: boolean,
): { encoded: EncodedChanges; count: number } {
  const encoder = new ChangesEncoder();
  let count = 0;
  for (const [name, table] of store.tables) {
    const entry = new EntryBuilder(encoder);
    table.forEachUncommitted(committedCheckpoint, (id, change) => {
      entry.push(table, id, change, history);
      count += 1;
    });
    if (history) {
      table.forEachOverwrittenAbove(committedCheckpoint, (id, change) =>
        entry.pushHistory(table, id, change),
      );
    }
    if (entry.size() > 0) entry.end(name);
  }
  return { encoded: encoder.finish(), count };
}

/** One entity's changes: set lines go straight to the encoder, the rest is gathered until `end`. */
class EntryBuilder {
  private readonly encoder: ChangesEncoder;
  private readonly checkpoints: number[] = [];
  /** The event that made each set: its name and log index. */
  private readonly eventNames: string[] = [];
  private readonly logIndexes: number[] = [];
  private readonly deletes: Array<[number, string]> = [];
  /** Written after the set lines (each entity's sets are one byte range). */
  private readonly history: string[] = [];

  constructor(encoder: ChangesEncoder) {
    this.encoder = encoder;
    encoder.beginEntity();
  }

  /**
   * A history line: the entity's columns (a delete keeps only its id; `columns` when already
   * built), checkpoint, s/d.
   */
  pushHistory(table: EntityStore, id: string, change: StoredChange, columns?: string): void {
    columns ??= change.kind === 'set' ? rowToCopyLine(table.entity, change.row) : deletedRowLine(table, id);
    this.history.push(`${columns}\t${change.checkpointId}\t${change.kind === 'set' ? 's' : 'd'}`);
  }

  /** An id's final change — and, with `history`, its history line from the same COPY text. */
  push(table: EntityStore, id: string, change: StoredChange, history: boolean): void {
    if (change.kind === 'delete') {
      this.deletes.push([change.checkpointId, id]);
      if (history) this.pushHistory(table, id, change);
      return;
    }
    // Built once per id per batch, for the final value (`set` only validated).
    const line = rowToCopyLine(table.entity, change.row);
    this.checkpoints.push(change.checkpointId);
    this.eventNames.push(change.eventName ?? '');
    this.logIndexes.push(change.logIndex ?? -1);
    this.encoder.appendLine(line);
    if (history) this.pushHistory(table, id, change, line);
  }

  size(): number {
    return this.checkpoints.length + this.deletes.length;
  }

  end(name: string): void {
    this.encoder.endEntity(
      name,
      {
        checkpoints: this.checkpoints,
        eventNames: this.eventNames,
        logIndexes: this.logIndexes,
        deletes: this.deletes,
      },
      this.history,
    );
  }
}

/** A deleted row in COPY text: the id, every other column NULL. */
function deletedRowLine(table: EntityStore, id: string): string {
  return table.entity.columns.map((column) => (column.name === 'id' ? escapeText(id) : '\\N')).join('\t');
}
