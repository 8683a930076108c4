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
const INITIAL_BYTES = 1024 * 1024;

/**
 * The text is built in a scratch buffer that outlives the encoder (`finish` copies it out into
 * the buffer to transfer), so batch after batch reuses one grown buffer instead of growing a new
 * one. An encoder takes it and gives it back; a second one meanwhile gets its own.
 */
let scratch: Buffer | null = null;

/**
 * Builds one encoded batch: per entity, `beginEntity`, its set lines (`appendLine`) and then
 * `endEntity` with the rest of its changes; `finish` returns the buffer to transfer.
 */
export class ChangesEncoder {
  private text: Buffer = takeScratch();
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
    bytes.set(this.text.subarray(0, this.length), 4 + index.length);
    scratch = this.text;
    return bytes;
  }

  private position(): number {
    this.writePending();
    return this.length;
  }

  private writePending(): void {
    if (this.pending === '') return;
    // UTF-8 needs at most 3 bytes per UTF-16 code unit.
    const needed = this.length + this.pending.length * 3;
    if (needed > this.text.length) {
      const grown = Buffer.allocUnsafeSlow(Math.max(needed, this.text.length * 2));
      this.text.copy(grown, 0, 0, this.length);
      this.text = grown;
    }
    this.length += this.text.write(this.pending, this.length);
    this.pending = '';
    this.pendingLines = 0;
  }
}

function takeScratch(): Buffer {
  const buffer = scratch ?? Buffer.allocUnsafeSlow(INITIAL_BYTES);
  scratch = null;
  return buffer;
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
    changes[name] = {
      checkpoints: entry.checkpoints,
      eventNames: entry.eventNames,
      logIndexes: entry.logIndexes,
      deletes: entry.deletes,
      rows: slice(entry.rows),
      ...(entry.history === undefined ? {} : { history: slice(entry.history) }),
    };
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
