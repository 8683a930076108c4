// How a batch's changes cross from the processing actor to the writer: serialized with
// v8.serialize into one buffer that is *transferred* (moved, not copied) with postMessage,
// through the main-thread router, without the main thread ever decoding it. bench/batch-transfer.ts
// measures the options on this payload (mostly one long string per entity): v8.serialize and
// structured clone are ~2.7× faster than the JSON buffer that won when batches were arrays of
// change objects; of the two, only the serialized buffer crosses the router for free.

import v8 from 'node:v8';
import type { EntityChanges } from '../protocol.ts';

export function encodeChanges(changes: EntityChanges): Uint8Array {
  const bytes = v8.serialize(changes);
  // A transfer moves the whole underlying ArrayBuffer: make sure it holds exactly these bytes.
  if (bytes.byteOffset === 0 && bytes.byteLength === bytes.buffer.byteLength) return bytes;
  return new Uint8Array(bytes);
}

export function decodeChanges(bytes: Uint8Array): EntityChanges {
  return v8.deserialize(bytes) as EntityChanges;
}
