// The encoded batch that crosses from the processing actor to the writer: whatever the sizes —
// many entities, text in several megabyte chunks, multi-byte characters, one line longer than a
// chunk — it decodes to exactly what was encoded, batch after batch.
import { describe, expect, it } from 'vitest';
import { decodeChanges, encodeChanges } from '../../src/pipeline/change-codec.ts';
import type { EntityChanges } from '../../src/protocol.ts';
import { mulberry32 } from '../../src/sources/generator.ts';

/** `count` random COPY lines of up to `width` characters; about a third of them take 2–3 bytes. */
function randomLines(random: () => number, count: number, width: number): string[] {
  const alphabet = ['a', 'b', '7', '\\t', 'é', 'ß', '€', '字', '0x'];
  return Array.from({ length: count }, (_, i) => {
    let line = `id-${i}`;
    const length = Math.floor(random() * width);
    for (let k = 0; k < length; k++) line += alphabet[Math.floor(random() * alphabet.length)];
    return `${line}\t${Math.floor(random() * 1e9)}`;
  });
}

function randomChanges(seed: number): EntityChanges {
  const random = mulberry32(seed);
  const changes: EntityChanges = {};
  for (const [name, count, width] of [
    ['Account', 20_000, 60],
    ['Transfer', 15_000, 140],
    ['Empty', 0, 0],
    ['Huge', 1, 1_500_000], // one line longer than a chunk
  ] as const) {
    const lines = randomLines(random, count, width);
    const history = random() < 0.5 ? randomLines(random, Math.floor(count / 3), width) : undefined;
    changes[name] = {
      checkpoints: lines.map((_, i) => i + 1),
      eventNames: lines.map((_, i) => (i % 2 === 0 ? 'Transfer' : 'Approval')),
      logIndexes: lines.map((_, i) => i % 10),
      rows: lines.map((line) => `${line}\n`).join(''),
      deletes: [[7, `gone-${seed}`]],
      ...(history === undefined ? {} : { history: history.map((line) => `${line}\n`).join('') }),
    };
  }
  return changes;
}

describe('change codec', () => {
  it('decodes what it encoded, across chunks and batch after batch (seeds 8101–8104)', () => {
    for (const seed of [8101, 8102, 8103, 8104]) {
      const changes = randomChanges(seed);
      const encoded = encodeChanges(changes);
      const textBytes = Object.values(changes).reduce(
        (sum, part) => sum + Buffer.byteLength(part.rows) + Buffer.byteLength(part.history ?? ''),
        0,
      );
      expect(textBytes, `seed ${seed}`).toBeGreaterThan(4 * 1024 * 1024);
      // The buffer to transfer holds the text once, not a grown buffer's spare room.
      expect(encoded.byteLength, `seed ${seed}`).toBeLessThan(textBytes + 1024 * 1024);
      expect(encoded.buffer.byteLength).toBe(encoded.byteLength);
      const decoded = decodeChanges(encoded);
      // Each part's sets also come as their bytes, which the writer COPYs without decoding: the
      // same text, in UTF-8 (read before `rows`, which decodes them on first use).
      for (const [name, part] of Object.entries(decoded)) {
        expect(part.rowBytes?.equals(Buffer.from(changes[name]!.rows)), `seed ${seed}, ${name}`).toBe(true);
      }
      expect(decoded, `seed ${seed}`).toEqual(changes);
      // Not a property a copy carries (structured clone, spread): only the text is the part's.
      expect(Object.keys(decoded.Account!)).not.toContain('rowBytes');
    }
  });
});
