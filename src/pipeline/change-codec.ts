// How a batch's changes cross from the processing actor to the writer: buffers that are
// *transferred* (moved, not copied) with postMessage, through the main-thread router, without the
// main thread ever decoding them.
//
// Layout: the first buffer is [u32 LE length of the index][index: v8.serialize][text: UTF-8]; any
// further buffers continue the text. The text holds every entity's COPY lines (its sets, then its
// history lines); the index holds per entity the byte ranges of both (offsets into the whole
// text) and the small per-set arrays (checkpoint, event name, log index) and deletes. Every
// buffer boundary falls between lines.
// The processing actor writes the lines straight into the buffer in chunks of a few hundred
// (`ChangesEncoder`), instead of appending them to one long string for v8.serialize to flatten and
// copy: on erc20 that string building and serializing was about a tenth of the processing
// actor's time (bench/README.md, "Where the processing time goes").

import v8 from 'node:v8';
import type { EntityChanges } from '../protocol.ts';
import { unescapeText } from '../schema/copy-text.ts';

type EntityPart = EntityChanges[string];

/**
 * One entity's entry in the index. The per-set arrays travel as typed arrays, and the event names
 * as a table of the distinct names and each set's index into it: v8.serialize copies a typed
 * array's bytes, where an array of a million numbers or strings is written (and read back into
 * the writer's heap, a string object per set) one element at a time.
 */
interface IndexedEntity {
  checkpoints: Float64Array;
  logIndexes: Int32Array;
  eventNameTable: string[];
  eventNameOf: Uint16Array | Uint32Array;
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
 * Text up to this size is copied into one buffer with the index (the chunks go back to be
 * reused); larger text travels in the chunks it was written into. Copying a block of a million
 * changes (~150 MB of text) held it twice at the batch's end, the processing thread's fullest
 * moment; chunks transferred are new memory for the next batch, which a batch this large repays.
 */
const ONE_BUFFER_BYTES = 4 * CHUNK_BYTES;

/** A batch's changes as they travel: buffers to transfer (see the layout above). */
export type EncodedChanges = Uint8Array[];

/** The transfer list that moves an encoded batch to another thread. */
export function transferList(encoded: EncodedChanges): ArrayBuffer[] {
  return encoded.map((bytes) => bytes.buffer as ArrayBuffer);
}

/**
 * Chunks outlive their encoder (`finish` copies a batch's text out into the buffer to transfer), so
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
 * `endEntity` with the rest of its changes; `finish` returns the buffers to transfer.
 *
 * The text goes into a list of chunks (a buffer grown by doubling held up to twice the text, three
 * times while it grew), copied once into the buffer to transfer or, when large, transferred.
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
    sets: Pick<EntityPart, 'checkpoints' | 'eventNames' | 'logIndexes' | 'deletes'>,
    historyLines: readonly string[],
  ): void {
    const rowsEnd = this.position();
    const { table, indexes } = nameTable(sets.eventNames);
    const entry: IndexedEntity = {
      checkpoints: Float64Array.from(sets.checkpoints),
      logIndexes: Int32Array.from(sets.logIndexes),
      eventNameTable: table,
      eventNameOf: indexes,
      deletes: sets.deletes,
      rows: [this.entityStart, rowsEnd],
    };
    if (historyLines.length > 0) {
      for (const line of historyLines) this.appendLine(line);
      entry.history = [rowsEnd, this.position()];
    }
    this.index[name] = entry;
  }

  finish(): EncodedChanges {
    this.writePending();
    const index = v8.serialize(this.index);
    const written = [...this.full, this.chunk.subarray(0, this.chunkLength)];
    const large = this.length > ONE_BUFFER_BYTES;
    // A fresh ArrayBuffer of exactly these bytes: a transfer moves the whole buffer.
    const first = new Uint8Array(4 + index.length + (large ? 0 : this.length));
    new DataView(first.buffer).setUint32(0, index.length, true);
    first.set(index, 4);
    if (large) {
      // Each chunk is its own ArrayBuffer (never one of the spares again: a transfer detaches it).
      return [first, ...written.filter((chunk) => chunk.length > 0)];
    }
    let at = 4 + index.length;
    for (const chunk of written) {
      first.set(chunk, at);
      at += chunk.length;
      giveBack(chunk);
    }
    return [first];
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

/** The distinct names (in first-seen order) and each name's index into them. */
function nameTable(names: ArrayLike<string>): { table: string[]; indexes: Uint16Array | Uint32Array } {
  const table: string[] = [];
  const positions = new Map<string, number>();
  const raw = new Uint32Array(names.length);
  let last: string | undefined;
  let lastAt = 0;
  for (let i = 0; i < names.length; i++) {
    const name = names[i]!;
    // Runs of one name are the rule (a batch's sets of an entity mostly come from one event).
    if (name !== last) {
      let at = positions.get(name);
      if (at === undefined) {
        at = table.length;
        table.push(name);
        positions.set(name, at);
      }
      last = name;
      lastAt = at;
    }
    raw[i] = lastAt;
  }
  return { table, indexes: table.length <= 0xffff ? Uint16Array.from(raw) : raw };
}

/** Encodes already-collected changes (benchmarks and tests; the actor streams into the encoder). */
export function encodeChanges(changes: EntityChanges): EncodedChanges {
  const encoder = new ChangesEncoder();
  for (const [name, part] of Object.entries(changes)) {
    encoder.beginEntity();
    for (const line of textLines(part.rows)) encoder.appendLine(line);
    encoder.endEntity(name, part, part.history === undefined ? [] : textLines(part.history));
  }
  return encoder.finish();
}

export function decodeChanges(encoded: EncodedChanges): EntityChanges {
  const [first, ...rest] = encoded.map((bytes) =>
    Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength),
  );
  const indexLength = first!.readUInt32LE(0);
  const index = v8.deserialize(first!.subarray(4, 4 + indexLength)) as Record<string, IndexedEntity>;
  const text = new TextPieces([first!.subarray(4 + indexLength), ...rest]);
  const changes: EntityChanges = {};
  for (const [name, entry] of Object.entries(index)) {
    // The sets' text is decoded when first read: a writer COPYing one batch streams the bytes
    // (a block of a million changes is ~150 MB of text, held twice more as a string and as the
    // copy the COPY stream made of it).
    const rowBytes = text.bytes(entry.rows);
    let rows: string | undefined;
    let eventNames: string[] | undefined;
    const part: EntityPart = {
      checkpoints: entry.checkpoints,
      // Only a refused row's attribution reads them: a string per set is made then, not before.
      get eventNames() {
        eventNames ??= Array.from(entry.eventNameOf, (at) => entry.eventNameTable[at]!);
        return eventNames;
      },
      logIndexes: entry.logIndexes,
      deletes: entry.deletes,
      get rows() {
        rows ??= textOf(rowBytes);
        return rows;
      },
      ...(entry.history === undefined ? {} : { history: textOf(text.bytes(entry.history)) }),
    };
    Object.defineProperty(part, 'rowBytes', { value: rowBytes, enumerable: false });
    changes[name] = part;
  }
  return changes;
}

/** The text of an encoded batch, in the buffers it came in. */
class TextPieces {
  private readonly pieces: Buffer[];
  /** Where each piece starts in the whole text. */
  private readonly starts: number[] = [];

  constructor(pieces: Buffer[]) {
    this.pieces = pieces;
    let at = 0;
    for (const piece of pieces) {
      this.starts.push(at);
      at += piece.length;
    }
  }

  /** The bytes of [start, end) of the whole text, as views on the pieces that hold them. */
  bytes([start, end]: [number, number]): Buffer[] {
    const views: Buffer[] = [];
    for (let i = 0; i < this.pieces.length && start < end; i++) {
      const pieceStart = this.starts[i]!;
      const piece = this.pieces[i]!;
      if (start >= pieceStart + piece.length) continue;
      const to = Math.min(end, pieceStart + piece.length);
      views.push(piece.subarray(start - pieceStart, to - pieceStart));
      start = to;
    }
    return views;
  }
}

/** The text of a part's bytes (split between buffers only between lines: each piece decodes alone). */
export function textOf(pieces: readonly Buffer[]): string {
  return pieces.length === 1
    ? pieces[0]!.toString('utf8')
    : pieces.map((piece) => piece.toString('utf8')).join('');
}

/**
 * The ids of a part's sets, in line order: each line's first column (`id` always comes first).
 * A part decoded from pieces is read piece by piece, never joined into one string.
 */
export function setIds(part: EntityPart): string[] {
  if (part.rowBytes === undefined) return textLines(part.rows).map(lineId);
  const ids: string[] = [];
  for (const piece of part.rowBytes)
    for (const line of textLines(piece.toString('utf8'))) ids.push(lineId(line));
  return ids;
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
