// How a batch's changes cross from the processing actor to the writer: grouped per entity, sets
// as ready-made COPY text lines (with their ids and checkpoints alongside), deletes as
// `[checkpointId, id]`, serialized with v8.serialize into one buffer that is *transferred*
// (moved, not copied) with postMessage, through the main-thread router, without the main thread
// ever decoding it. bench/batch-transfer.ts measures the options on this payload (mostly one
// long string per entity): v8.serialize and structured clone are ~2.7× faster than the JSON
// buffer that won when batches were arrays of change objects; of the two, only the serialized
// buffer crosses the router for free. The processing actor does the conversion, so the writer's
// thread only merges and streams.

import v8 from 'node:v8';
import type { EntityChanges } from '../protocol.ts';
import { rowToCopyLine } from '../schema/copy-text.ts';
import {
  type EntityStore,
  type InMemoryStore,
  LOADED_FROM_DB,
  type StoredChange,
} from './in-memory-store.ts';

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
  const bytes = v8.serialize(changes);
  // A transfer moves the whole underlying ArrayBuffer: make sure it holds exactly these bytes.
  if (bytes.byteOffset === 0 && bytes.byteLength === bytes.buffer.byteLength) return bytes;
  return new Uint8Array(bytes);
}

export function decodeChanges(bytes: Uint8Array): EntityChanges {
  return v8.deserialize(bytes) as EntityChanges;
}
