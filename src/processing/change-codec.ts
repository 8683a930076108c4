// How a batch's changes cross from the processing actor to the writer: grouped per entity, each
// set as `[checkpointId, ...wireRow]` (columns in schema order, values already in the text form
// Postgres parses) and each delete as `[checkpointId, id]`, JSON-encoded into one buffer that is
// *transferred* (moved, not copied) with postMessage. bench/batch-transfer.ts measured this
// against structured clone of the objects; see bench/RESULTS.md and bench/README.md.

import type { EntityChanges } from '../protocol.ts';
import { rowToWire } from '../schema/wire.ts';
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
    if (table.touched.size === 0) continue;
    const entry: EntityChanges[string] = { sets: [], deletes: [] };
    for (const id of table.touched.keys()) {
      pushChange(entry, table, id, table.latest.get(id)!);
      count += 1;
    }
    changes[name] = entry;
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
    const entry: EntityChanges[string] = { sets: [], deletes: [] };
    for (const [id, change] of table.latest) {
      if (change.checkpointId === LOADED_FROM_DB || change.checkpointId <= committedCheckpoint) continue;
      pushChange(entry, table, id, change);
      count += 1;
    }
    if (entry.sets.length + entry.deletes.length > 0) changes[name] = entry;
  }
  return { changes, count };
}

function pushChange(
  entry: EntityChanges[string],
  table: EntityStore,
  id: string,
  change: StoredChange,
): void {
  if (change.kind === 'delete') {
    entry.deletes.push([change.checkpointId, id]);
    return;
  }
  // Built once per id per batch, for the final value (`set` only validated).
  const wire = rowToWire(table.entity, change.row);
  wire.unshift(change.checkpointId);
  entry.sets.push(wire);
}

export function encodeChanges(changes: EntityChanges): Uint8Array {
  return encoder.encode(JSON.stringify(changes));
}

export function decodeChanges(bytes: Uint8Array): EntityChanges {
  return JSON.parse(decoder.decode(bytes)) as EntityChanges;
}
