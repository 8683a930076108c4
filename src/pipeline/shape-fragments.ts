// A captured fragment on its way from the writer to the materializer goes through the main
// thread's router. As plain objects it would be structured-cloned twice — into the main thread and
// out again (~0.7 s of main-thread time in a run with 1,000 live shapes). Serialized once into a
// buffer by the writer, it is moved (transferred) on both hops instead, and decoded only where it
// is used.

import v8 from 'node:v8';
import type { EncodedShapeFragment, ShapeChangesFragment } from '../protocol.ts';

export function encodeShapeFragment(fragment: ShapeChangesFragment): EncodedShapeFragment {
  const { changes, ...rest } = fragment;
  const bytes = v8.serialize(changes);
  // A buffer of its own (not a slice of a shared pool) can be moved as it is.
  const payload =
    bytes.byteOffset === 0 && bytes.byteLength === bytes.buffer.byteLength
      ? (bytes.buffer as ArrayBuffer)
      : (bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength) as ArrayBuffer);
  return { ...rest, payload };
}

export function decodeShapeFragment(encoded: EncodedShapeFragment): ShapeChangesFragment {
  const { payload, ...rest } = encoded;
  return { ...rest, changes: v8.deserialize(new Uint8Array(payload)) as ShapeChangesFragment['changes'] };
}
