// How a batch's changes cross from the processing actor to the writer: grouped per entity, sets
// as ready-made COPY text lines (with their ids and checkpoints alongside), deletes as
// `[checkpointId, id]`, JSON-encoded into one buffer that is *transferred* (moved, not copied)
// with postMessage. bench/batch-transfer.ts measured this against structured clone of the
// objects; see bench/RESULTS.md and bench/README.md. The processing actor does the conversion,
// so the writer's thread only merges and streams.

import type { EntityChanges } from '../protocol.ts';
import { rowToCopyLine } from '../schema/copy-text.ts';
import {
  type EntityStore,
  type InMemoryStore,
  LOADED_FROM_DB,
  type StoredChange,
} from './in-memory-store.ts';

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** The changes the current batch made (the store's `touched` sets). */
export function collectBatchChanges(store: InMemoryStore): { changes: EntityChanges; count: number } {
  const changes: EntityChanges = {};
  let count = 0;
  for (const [name, table] of store.tables) {
    if (table.touched.length === 0) continue;
    const entry = new EntryBuilder();
    for (const { id } of table.touched) {
      entry.push(table, id, table.latest.get(id)!);
      count += 1;
    }
    changes[name] = entry.build();
  }
  return { changes, count };
}

/** Every change not yet committed (after a writer restart: one merged re-send). */
export function collectUncommittedChanges(
  store: InMemoryStore,
  committedCheckpoint: number,
): { changes: EntityChanges; count: number } {
  const changes: EntityChanges = {};
  let count = 0;
  for (const [name, table] of store.tables) {
    const entry = new EntryBuilder();
    for (const [id, change] of table.latest) {
      if (change.checkpointId === LOADED_FROM_DB || change.checkpointId <= committedCheckpoint) continue;
      entry.push(table, id, change);
      count += 1;
    }
    if (entry.size() > 0) changes[name] = entry.build();
  }
  return { changes, count };
}

class EntryBuilder {
  private readonly ids: string[] = [];
  private readonly checkpoints: number[] = [];
  private readonly lines: string[] = [];
  private readonly deletes: Array<[number, string]> = [];

  push(table: EntityStore, id: string, change: StoredChange): void {
    if (change.kind === 'delete') {
      this.deletes.push([change.checkpointId, id]);
      return;
    }
    // Built once per id per batch, for the final value (`set` only validated).
    this.ids.push(id);
    this.checkpoints.push(change.checkpointId);
    this.lines.push(rowToCopyLine(table.entity, change.row));
  }

  size(): number {
    return this.ids.length + this.deletes.length;
  }

  build(): EntityChanges[string] {
    return {
      ids: this.ids,
      checkpoints: this.checkpoints,
      rows: this.lines.length === 0 ? '' : `${this.lines.join('\n')}\n`,
      deletes: this.deletes,
    };
  }
}

export function encodeChanges(changes: EntityChanges): Uint8Array {
  return encoder.encode(JSON.stringify(changes));
}

export function decodeChanges(bytes: Uint8Array): EntityChanges {
  return JSON.parse(decoder.decode(bytes)) as EntityChanges;
}
