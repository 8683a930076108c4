// What of the store a batch sends the writer: its changes grouped per entity, sets as ready-made
// COPY text lines (with their checkpoints alongside), deletes as `[checkpointId, id]`, written
// straight into the encoded form that crosses the threads (src/pipeline/change-codec.ts). The
// processing actor does the conversion, so the writer's thread only merges and streams.

import { ChangesEncoder } from '../pipeline/change-codec.ts';
import { escapeText, rowToCopyLine } from '../schema/copy-text.ts';
import type { EntityStore, InMemoryStore, StoredChange } from './in-memory-store.ts';

/**
 * The changes the current batch made, encoded. With `history` (inside the reorg threshold) also
 * every change of the batch for the history tables: the latest, then the overwritten ones.
 */
export function collectBatchChanges(
  store: InMemoryStore,
  history: boolean,
): { encoded: Uint8Array; count: number } {
  const encoder = new ChangesEncoder();
  let count = 0;
  for (const [name, table] of store.tables) {
    if (table.batchChangeCount() === 0) continue;
    const entry = new EntryBuilder(encoder);
    table.forEachBatchChange((id, change) => entry.push(table, id, change, history));
    count += table.batchChangeCount();
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
): { encoded: Uint8Array; count: number } {
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
