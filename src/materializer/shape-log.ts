// One shape's log: its messages at offsets `<tx>_<op>` — tx the pipeline's commit sequence (it
// counts committed transactions and only grows), op the shape's messages within that transaction
// — appended only whole transactions at a time: a commit marker makes a transaction's messages
// visible at once, so no reader ever sees part of one. A shape's log starts at its snapshot's
// transaction (`<tx>_inf`: everything up to and including it is in the snapshot). Compaction
// drops the entries of old transactions; a reader whose offset is before the last dropped entry
// missed something and must refetch, while one after it (a quiet shape's reader) missed nothing.

export interface Offset {
  tx: number;
  /** Infinity for `inf`. */
  op: number;
}

const OFFSET_TEXT = /^(\d+)_(\d+|inf)$/;

/**
 * `<tx>_<op>` (decimal, op may be `inf`); null when malformed. `-1` and `now` are the caller's.
 *
 * `<tx>_0` reads as `<tx>_inf`, after the whole transaction: the client's SSE mode resumes from
 * `<global_last_seen_lsn>_0` after an up-to-date, which it only gets at a transaction's end, and
 * read literally that would send it the rest of the transaction again. No answer of ours ends
 * right after op 0 of a transaction that has more (`readAfter` never cuts there), so no client
 * holds `<tx>_0` meaning anything else.
 */
export function parseOffset(text: string): Offset | null {
  const match = OFFSET_TEXT.exec(text);
  if (match === null) return null;
  const tx = Number(match[1]);
  const op = match[2] === 'inf' || match[2] === '0' ? Number.POSITIVE_INFINITY : Number(match[2]);
  if (!Number.isSafeInteger(tx) || (op !== Number.POSITIVE_INFINITY && !Number.isSafeInteger(op)))
    return null;
  return { tx, op };
}

export function formatOffset(offset: Offset): string {
  return `${offset.tx}_${offset.op === Number.POSITIVE_INFINITY ? 'inf' : offset.op}`;
}

export function compareOffsets(a: Offset, b: Offset): number {
  return a.tx !== b.tx ? a.tx - b.tx : a.op === b.op ? 0 : a.op < b.op ? -1 : 1;
}

interface Entry {
  offset: Offset;
  /** The message, serialised once for every reader. */
  json: string;
}

/**
 * Two boundaries, as in Electric's storage (seed 001): entries are *written* as a transaction's
 * changes stream in, and become visible only when its commit marker *commits* them. What is
 * pending is just the entries past the committed boundary — no second copy of the transaction.
 */
export class ShapeLog {
  private readonly entries: Entry[] = [];
  /** Entries below this index are committed (visible). */
  private committedLength = 0;
  /** The offset a reader is up to date at: the last committed entry's, or the snapshot's. */
  private headOffset: Offset;
  /** Transactions up to this one are in the log (or in the snapshot it starts from). */
  private sequence: number;
  private writing: number | null = null;
  private lastCommit: { from: Offset; start: number } | null = null;
  /** The last entry compaction dropped (or the point before which entries may be missing). */
  private compactedThrough: Offset | null = null;

  /** Everything up to and including `startSequence` is in the shape's snapshot. */
  constructor(startSequence: number) {
    this.headOffset = { tx: startSequence, op: Number.POSITIVE_INFINITY };
    this.sequence = startSequence;
  }

  get head(): Offset {
    return this.headOffset;
  }

  get size(): number {
    return this.committedLength;
  }

  get committedSequence(): number {
    return this.sequence;
  }

  /**
   * Writes one message of transaction number `sequence` (invisible until `commit`).
   * A transaction at or below the log's last is already in the snapshot: skipped.
   */
  write(sequence: number, message: object): void {
    if (sequence <= this.sequence) return;
    this.writing = sequence;
    const op = this.entries.length - this.committedLength;
    this.entries.push({
      offset: { tx: sequence, op },
      json: JSON.stringify(withLogHeaders(message, sequence, op)),
    });
  }

  /** Transaction `sequence` ended: its written messages become visible. */
  commit(sequence: number): boolean {
    if (sequence <= this.sequence) return false;
    this.sequence = sequence;
    const wrote = this.writing === sequence && this.entries.length > this.committedLength;
    this.writing = null;
    if (!wrote) return false;
    this.lastCommit = { from: this.headOffset, start: this.committedLength };
    this.committedLength = this.entries.length;
    this.headOffset = this.entries[this.committedLength - 1]!.offset;
    return true;
  }

  /** The last committed transaction's messages and the head before it (what a live reader there gets). */
  lastTransaction(): { from: Offset; messages: string[]; last: Offset } | null {
    if (this.lastCommit === null) return null;
    const messages = this.entries
      .slice(this.lastCommit.start, this.committedLength)
      .map((entry) => entry.json);
    return { from: this.lastCommit.from, messages, last: this.headOffset };
  }

  /** Drops the committed entries of transactions up to `sequence`. */
  compact(sequence: number): void {
    let dropped = 0;
    while (dropped < this.committedLength && this.entries[dropped]!.offset.tx <= sequence) dropped += 1;
    if (dropped === 0) return;
    this.compactedThrough = this.entries[dropped - 1]!.offset;
    this.entries.splice(0, dropped);
    this.committedLength -= dropped;
    if (this.lastCommit !== null) {
      this.lastCommit =
        this.lastCommit.start >= dropped
          ? { ...this.lastCommit, start: this.lastCommit.start - dropped }
          : null;
    }
  }

  /** Transactions up to `sequence` may be missing (the store was compacted past them before a replay). */
  missingThrough(sequence: number): void {
    const point = { tx: sequence, op: Number.POSITIVE_INFINITY };
    if (this.compactedThrough === null || compareOffsets(point, this.compactedThrough) > 0)
      this.compactedThrough = point;
  }

  /** Whether a reader at `offset` missed nothing compaction dropped. */
  serves(offset: Offset): boolean {
    return this.compactedThrough === null || compareOffsets(offset, this.compactedThrough) >= 0;
  }

  /** Drops written, uncommitted messages (the transaction never committed). */
  abort(): void {
    this.entries.length = this.committedLength;
    this.writing = null;
  }

  /** Committed messages after `offset` (at most `limit`), and the offset of the last one. */
  readAfter(offset: Offset, limit: number): { messages: string[]; last: Offset } {
    // Entries are in offset order: binary search for the first one after `offset`.
    let low = 0;
    let high = this.committedLength;
    while (low < high) {
      const middle = (low + high) >> 1;
      if (compareOffsets(this.entries[middle]!.offset, offset) <= 0) low = middle + 1;
      else high = middle;
    }
    let end = Math.min(low + limit, this.committedLength);
    // Never end right after op 0 of a transaction with more (see parseOffset): take its op 1 too.
    if (end > low && end < this.committedLength) {
      const last = this.entries[end - 1]!.offset;
      if (last.op === 0 && this.entries[end]!.offset.tx === last.tx) end += 1;
    }
    const slice = this.entries.slice(low, end);
    const last = slice.length === 0 ? maxOffset(offset, this.headOffset) : slice[slice.length - 1]!.offset;
    return { messages: slice.map((entry) => entry.json), last };
  }
}

function maxOffset(a: Offset, b: Offset): Offset {
  return compareOffsets(a, b) >= 0 ? a : b;
}

/** A live change's headers: `lsn` (decimal: the client BigInt()s it) and its position. */
function withLogHeaders(message: object, sequence: number, op: number): object {
  const { headers } = message as { headers: object };
  return { ...message, headers: { ...headers, lsn: String(sequence), op_position: op } };
}
