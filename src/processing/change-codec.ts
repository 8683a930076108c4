// How a batch's changes cross from the processing actor to the writer: encoded into one buffer
// that is *transferred* (moved, not copied) with postMessage. bench/batch-transfer.ts measured
// this against structured clone of the objects; see bench/RESULTS.md for the figures and
// bench/README.md for the decision.

import type { Change } from '../protocol.ts';

const encoder = new TextEncoder();
const decoder = new TextDecoder();

export function encodeChanges(changes: readonly Change[]): Uint8Array {
  return encoder.encode(JSON.stringify(changes));
}

export function decodeChanges(bytes: Uint8Array): Change[] {
  return JSON.parse(decoder.decode(bytes)) as Change[];
}
