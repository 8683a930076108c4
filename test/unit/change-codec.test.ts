// The encoded batch that crosses from the processing actor to the writer: whatever the sizes —
// many entities, text in several megabyte chunks, multi-byte characters, one line longer than a
// chunk — it decodes to exactly what was encoded, batch after batch.
import { describe, expect, it } from 'vitest';
import { decodeChanges, encodeChanges, setIds } from '../../src/pipeline/change-codec.ts';
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

/** Random changes of four entities; `scale` 1 is ~6 MB of text, over several chunks. */
function randomChanges(seed: number, scale = 1): EntityChanges {
  const random = mulberry32(seed);
  const changes: EntityChanges = {};
  for (const [name, count, width] of [
    ['Account', 20_000 * scale, 60],
    ['Transfer', 15_000 * scale, 140],
    ['Empty', 0, 0],
    ['Huge', 1, 1_500_000 * scale], // one line longer than a chunk
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

/** Parts with their per-set lists as plain arrays (they travel, and decode, as typed arrays). */
function plain(changes: EntityChanges) {
  return Object.fromEntries(
    Object.entries(changes).map(([name, part]) => [
      name,
      {
        ...part,
        rows: part.rows,
        checkpoints: Array.from(part.checkpoints),
        eventNames: Array.from(part.eventNames),
        logIndexes: Array.from(part.logIndexes),
        history: part.history || undefined, // no history lines travel as none
      },
    ]),
  );
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
      // Large text travels in the chunks it was written into: no copy of it at the batch's end,
      // and each chunk its own buffer, so that all of them can be transferred together.
      expect(encoded.length, `seed ${seed}`).toBeGreaterThan(2);
      const viewed = encoded.reduce((sum, bytes) => sum + bytes.byteLength, 0);
      expect(viewed, `seed ${seed}`).toBeLessThan(textBytes + 1024 * 1024);
      const moved = structuredClone(encoded, {
        transfer: encoded.map((bytes) => bytes.buffer as ArrayBuffer),
      });
      expect(
        encoded.every((bytes) => bytes.byteLength === 0),
        'detached by the transfer',
      ).toBe(true);
      const decoded = decodeChanges(moved);
      // Each part's sets also come as their bytes, which the writer COPYs without decoding: the
      // same text, in UTF-8 (read before `rows`, which decodes them on first use).
      for (const [name, part] of Object.entries(decoded)) {
        const bytes = Buffer.concat(part.rowBytes ?? []);
        expect(bytes.equals(Buffer.from(changes[name]!.rows)), `seed ${seed}, ${name}`).toBe(true);
        // The ids read piece by piece are the text's.
        expect(setIds(part), `seed ${seed}, ${name}`).toEqual(setIds(changes[name]!));
      }
      expect(plain(decoded), `seed ${seed}`).toEqual(plain(changes));
      // Not a property a copy carries (structured clone, spread): only the text is the part's.
      expect(Object.keys(decoded.Account!)).not.toContain('rowBytes');
    }
  });

  it('copies a small batch into one buffer of exactly its size', () => {
    const changes = randomChanges(8105, 0.1);
    const encoded = encodeChanges(changes);
    expect(encoded).toHaveLength(1);
    expect(encoded[0]!.buffer.byteLength).toBe(encoded[0]!.byteLength);
    expect(plain(decodeChanges(encoded))).toEqual(plain(changes));
  });
});
