// What of the store a batch sends the writer: its changes grouped per entity, sets as ready-made
// COPY text lines (with their ids and checkpoints alongside), deletes as `[checkpointId, id]`.
// The processing actor does the conversion, so the writer's thread only merges and streams; the
// wire form (src/pipeline/change-codec.ts) is what crosses the threads.

import type { EntityChanges } from '../protocol.ts';
import { escapeText, rowToCopyLine } from '../schema/copy-text.ts';
import type { EntityStore, InMemoryStore, StoredChange } from './in-memory-store.ts';

/**
 * The changes the current batch made. With `history` (inside the reorg threshold) also every
 * change of the batch for the history tables: the latest, then the overwritten ones.
 */
export function collectBatchChanges(
  store: InMemoryStore,
  history: boolean,
): { changes: EntityChanges; count: number } {
  const changes: EntityChanges = {};
  let count = 0;
  for (const [name, table] of store.tables) {
    if (table.batchChangeCount() === 0) continue;
    const entry = new EntryBuilder();
    table.forEachBatchChange((id, change) => entry.push(table, id, change, history));
    count += table.batchChangeCount();
    if (history) table.forEachBatchOverwritten((id, change) => entry.pushHistory(table, id, change));
    changes[name] = entry.build();
  }
  return { changes, count };
}

/**
 * Every change not yet committed (after a writer restart: one merged re-send), with the history
 * of everything kept for it.
 */
export function collectUncommittedChanges(
  store: InMemoryStore,
  committedCheckpoint: number,
  history: boolean,
): { changes: EntityChanges; count: number } {
  const changes: EntityChanges = {};
  let count = 0;
  for (const [name, table] of store.tables) {
    const entry = new EntryBuilder();
    table.forEachUncommitted(committedCheckpoint, (id, change) => {
      entry.push(table, id, change, history);
      count += 1;
    });
    if (history) {
      table.forEachOverwrittenAbove(committedCheckpoint, (id, change) =>
        entry.pushHistory(table, id, change),
      );
    }
    if (entry.size() > 0) changes[name] = entry.build();
  }
  return { changes, count };
}

class EntryBuilder {
  private readonly ids: string[] = [];
  private readonly checkpoints: number[] = [];
  /** The event that made each set: its name and log index. */
  private readonly eventNames: string[] = [];
  private readonly logIndexes: number[] = [];
  /** The sets' COPY lines, each ending in '\n', appended to one string (no array, no join). */
  private rows = '';
  private readonly deletes: Array<[number, string]> = [];
  private readonly history: string[] = [];

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
    this.ids.push(id);
    this.checkpoints.push(change.checkpointId);
    this.eventNames.push(change.eventName ?? '');
    this.logIndexes.push(change.logIndex ?? -1);
    this.rows += `${line}\n`;
    if (history) this.pushHistory(table, id, change, line);
  }

  size(): number {
    return this.ids.length + this.deletes.length;
  }

  build(): EntityChanges[string] {
    return {
      ids: this.ids,
      checkpoints: this.checkpoints,
      eventNames: this.eventNames,
      logIndexes: this.logIndexes,
      rows: this.rows,
      deletes: this.deletes,
      ...(this.history.length === 0 ? {} : { history: `${this.history.join('\n')}\n` }),
    };
  }
}

/** A deleted row in COPY text: the id, every other column NULL. */
function deletedRowLine(table: EntityStore, id: string): string {
  return table.entity.columns.map((column) => (column.name === 'id' ? escapeText(id) : '\\N')).join('\t');
}
