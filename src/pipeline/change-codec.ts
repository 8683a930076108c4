// How a batch's changes cross from the processing actor to the writer: one buffer that is
// *transferred* (moved, not copied) with postMessage, through the main-thread router, without the
// main thread ever decoding it.
//
// Layout: [u32 LE length of the index][index: v8.serialize][text: UTF-8]. The text holds every
// entity's COPY lines (its sets, then its history lines); the index holds per entity the byte
// ranges of both and the small per-set arrays (checkpoint, event name, log index) and deletes.
// The processing actor writes the lines straight into the buffer in chunks of a few hundred
// (`ChangesEncoder`), instead of appending them to one long string for v8.serialize to flatten and
// copy: on erc20 that string building and serializing was about a tenth of the processing
// actor's time (bench/README.md, "Where the processing time goes").

import v8 from 'node:v8';
import type { EntityChanges } from '../protocol.ts';
import { unescapeText } from '../schema/copy-text.ts';

type EntityPart = EntityChanges[string];

interface IndexedEntity {
  checkpoints: number[];
  eventNames: string[];
  logIndexes: number[];
  deletes: Array<[number, string]>;
  /** Byte range of the sets' lines in the text. */
  rows: [start: number, end: number];
  history?: [start: number, end: number];
}

/** Lines gathered into one string before they are written: fewer, larger writes. */
const LINES_PER_WRITE = 256;
/** The text is written into chunks of this size (larger only for one write that needs more). */
const CHUNK_BYTES = 1024 * 1024;

/**
 * Chunks outlive their encoder (`finish` copies the text out into the buffer to transfer), so
 * batch after batch writes into the same memory instead of new pages (fresh chunks made a
 * 10,000-change batch 20% slower to encode: bench:transfer). An encoder takes chunks from here and
 * gives them back. At most KEPT_CHUNKS are kept: a single huge batch (a block of a million
 * changes) must not leave the thread holding its size for good, as one buffer grown by doubling
 * and kept did (256 MiB after a 155 MiB batch).
 */
const spareChunks: Buffer[] = [];
const KEPT_CHUNKS = 8;

/**
 * Builds one encoded batch: per entity, `beginEntity`, its set lines (`appendLine`) and then
 * `endEntity` with the rest of its changes; `finish` returns the buffer to transfer.
 *
 * The text goes into a list of chunks, copied once into the buffer to transfer: a buffer grown by
 * doubling held up to twice the text, three times while it grew, beside the copy.
 */
export class ChangesEncoder {
  /** Full chunks, each to its written length. */
  private readonly full: Buffer[] = [];
  private chunk: Buffer = takeChunk();
  private chunkLength = 0;
  /** Bytes written so far, over every chunk. */
  private length = 0;
  private pending = '';
  private pendingLines = 0;
  private readonly index: Record<string, IndexedEntity> = {};
  private entityStart = 0;

  beginEntity(): void {
    this.entityStart = this.position();
  }

  /** One COPY line (without its newline). */
  appendLine(line: string): void {
    this.pending += `${line}\n`;
    if (++this.pendingLines === LINES_PER_WRITE) this.writePending();
  }

  /** Closes the entity begun last: its set lines are everything appended since. */
  endEntity(
    name: string,
    sets: Pick<IndexedEntity, 'checkpoints' | 'eventNames' | 'logIndexes' | 'deletes'>,
    historyLines: readonly string[],
  ): void {
    const rowsEnd = this.position();
    const entry: IndexedEntity = { ...sets, rows: [this.entityStart, rowsEnd] };
    if (historyLines.length > 0) {
      for (const line of historyLines) this.appendLine(line);
      entry.history = [rowsEnd, this.position()];
    }
    this.index[name] = entry;
  }

  finish(): Uint8Array {
    this.writePending();
    const index = v8.serialize(this.index);
    // A fresh ArrayBuffer of exactly these bytes: a transfer moves the whole buffer.
    const bytes = new Uint8Array(4 + index.length + this.length);
    new DataView(bytes.buffer).setUint32(0, index.length, true);
    bytes.set(index, 4);
    let at = 4 + index.length;
    for (const written of [...this.full, this.chunk.subarray(0, this.chunkLength)]) {
      bytes.set(written, at);
      at += written.length;
      giveBack(written);
    }
    return bytes;
  }

  private position(): number {
    this.writePending();
    return this.length;
  }

  private writePending(): void {
    if (this.pending === '') return;
    // UTF-8 needs at most 3 bytes per UTF-16 code unit.
    const needed = this.pending.length * 3;
    if (this.chunkLength + needed > this.chunk.length) {
      this.full.push(this.chunk.subarray(0, this.chunkLength));
      this.chunk = needed > CHUNK_BYTES ? Buffer.allocUnsafeSlow(needed) : takeChunk();
      this.chunkLength = 0;
    }
    const written = this.chunk.write(this.pending, this.chunkLength);
    this.chunkLength += written;
    this.length += written;
    this.pending = '';
    this.pendingLines = 0;
  }
}

function takeChunk(): Buffer {
  return spareChunks.pop() ?? Buffer.allocUnsafeSlow(CHUNK_BYTES);
}

/** A chunk (or the written part of one) back to the spares, unless enough are kept. */
function giveBack(written: Buffer): void {
  if (written.buffer.byteLength === CHUNK_BYTES && spareChunks.length < KEPT_CHUNKS)
    spareChunks.push(Buffer.from(written.buffer));
}

/** Encodes already-collected changes (benchmarks and tests; the actor streams into the encoder). */
export function encodeChanges(changes: EntityChanges): Uint8Array {
  const encoder = new ChangesEncoder();
  for (const [name, part] of Object.entries(changes)) {
    encoder.beginEntity();
    for (const line of textLines(part.rows)) encoder.appendLine(line);
    encoder.endEntity(name, part, part.history === undefined ? [] : textLines(part.history));
  }
  return encoder.finish();
}

export function decodeChanges(bytes: Uint8Array): EntityChanges {
  const buffer = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const indexLength = buffer.readUInt32LE(0);
  const index = v8.deserialize(buffer.subarray(4, 4 + indexLength)) as Record<string, IndexedEntity>;
  const textStart = 4 + indexLength;
  const slice = ([start, end]: [number, number]) =>
    buffer.toString('utf8', textStart + start, textStart + end);
  const changes: EntityChanges = {};
  for (const [name, entry] of Object.entries(index)) {
    // The sets' text is decoded when first read: a writer COPYing one batch streams the bytes
    // (a block of a million changes is ~150 MB of text, held twice more as a string and as the
    // copy the COPY stream made of it).
    const rowBytes = buffer.subarray(textStart + entry.rows[0], textStart + entry.rows[1]);
    let text: string | undefined;
    const part: EntityPart = {
      checkpoints: entry.checkpoints,
      eventNames: entry.eventNames,
      logIndexes: entry.logIndexes,
      deletes: entry.deletes,
      get rows() {
        text ??= rowBytes.toString('utf8');
        return text;
      },
      ...(entry.history === undefined ? {} : { history: slice(entry.history) }),
    };
    Object.defineProperty(part, 'rowBytes', { value: rowBytes, enumerable: false });
    changes[name] = part;
  }
  return changes;
}

/** The ids of a part's sets, in line order: each line's first column (`id` always comes first). */
export function setIds(part: EntityPart): string[] {
  return textLines(part.rows).map(lineId);
}

/** A COPY line's id: its first field, unescaped. */
export function lineId(line: string): string {
  const tab = line.indexOf('\t');
  return unescapeText(tab === -1 ? line : line.slice(0, tab));
}

/** Text of whole lines, each ending in '\n', as lines (values never hold a raw newline). */
function textLines(text: string): string[] {
  if (text === '') return [];
  return text.slice(0, -1).split('\n');
}
