// Large snapshots in chunks with fixed boundaries (Electric's `offset=-1`, then `0_<chunk>`): a
// snapshot is read once, in one repeatable-read transaction, cut into chunks of at most
// `chunkBytes`, and kept for a while, so the same (handle, offset) always answers the same bytes
// and a CDN may cache it. Concurrent initial requests of a shape share one snapshot, and so do
// requests within SHARE_MS of it (a reconnect storm costs one read). A chunk's offset names its
// snapshot's commit sequence and its number, packed into the decimal `op` of `0_<op>`: offset
// `0_*` is free, since a shape's log holds transactions from 1 on.

import { LRUCache } from 'lru-cache';

/** Chunks per snapshot the packing leaves room for (10 TB at the default chunk size). */
const CHUNKS_PER_SNAPSHOT = 1_048_576;
/** Kept snapshots, in total (the least recently read go first). */
const CACHE_BYTES = 256 * 1024 * 1024;
/** A snapshot is kept this long after its last read (a cached `offset=-1` answer may point at it). */
const CACHE_TTL_MS = 10 * 60_000;
/** Initial requests within this long of a snapshot get it instead of a new one. */
const SHARE_MS = 2_000;

export interface SnapshotRead {
  /** The pipeline's commit sequence the rows reflect. */
  sequence: number;
  /** The rows' insert messages, joined by commas, a chunk at a time (see ChunkBuilder). */
  chunks: Buffer[];
}

export interface SnapshotChunk {
  sequence: number;
  /** Its messages joined by commas, as UTF-8 (outside the JS heap: cheap to keep and to send). */
  joined: Buffer;
  /** The offset naming the next chunk, or null for the last one. */
  next: string | null;
}

interface Snapshot {
  sequence: number;
  chunks: Buffer[];
}

/**
 * Cuts a snapshot's messages into chunks of at most `chunkBytes` (a message never splits),
 * written as UTF-8 into a reused buffer: the message strings die young, and a kept snapshot is
 * a few large buffers rather than millions of strings for the garbage collector to trace.
 */
export class ChunkBuilder {
  private readonly chunks: Buffer[] = [];
  private buffer = Buffer.allocUnsafe(64 * 1024);
  private used = 0;

  constructor(private readonly chunkBytes: number) {}

  add(message: string): void {
    // At most 3 bytes per UTF-16 unit, and a comma.
    const most = message.length * 3 + 1;
    if (this.used > 0 && this.used + Buffer.byteLength(message) + 1 > this.chunkBytes) this.cut();
    if (this.used + most > this.buffer.length) {
      const grown = Buffer.allocUnsafe(Math.max(this.buffer.length * 2, this.used + most));
      this.buffer.copy(grown, 0, 0, this.used);
      this.buffer = grown;
    }
    if (this.used > 0) this.buffer[this.used++] = 0x2c; // ','
    this.used += this.buffer.write(message, this.used);
  }

  finish(): Buffer[] {
    if (this.used > 0 || this.chunks.length === 0) this.cut();
    return this.chunks;
  }

  private cut(): void {
    this.chunks.push(Buffer.from(this.buffer.subarray(0, this.used)));
    this.used = 0;
  }
}

/** `0_<op>` of chunk `chunk` of the snapshot at `sequence`. */
export function chunkOffset(sequence: number, chunk: number): string {
  return `0_${sequence * CHUNKS_PER_SNAPSHOT + chunk}`;
}

/** The snapshot and chunk an `op` of offset `0_<op>` names. */
export function parseChunkOffset(op: number): { sequence: number; chunk: number } {
  return { sequence: Math.floor(op / CHUNKS_PER_SNAPSHOT), chunk: op % CHUNKS_PER_SNAPSHOT };
}

export class SnapshotChunks {
  private readonly kept = new LRUCache<string, Snapshot>({
    maxSize: CACHE_BYTES,
    sizeCalculation: (snapshot) =>
      Math.max(
        1,
        snapshot.chunks.reduce((sum, chunk) => sum + chunk.length, 0),
      ),
    ttl: CACHE_TTL_MS,
    updateAgeOnGet: true,
  });
  /** Per handle, its newest snapshot (or the read under way). */
  private readonly newest = new Map<string, { taken: Promise<Snapshot>; startedAt: number }>();

  /** The first chunk of a snapshot of `handle`: a fresh one, or one taken just now. */
  async first(handle: string, read: () => Promise<SnapshotRead>): Promise<SnapshotChunk> {
    const recent = this.newest.get(handle);
    let taken: Promise<Snapshot>;
    if (recent !== undefined && performance.now() - recent.startedAt < SHARE_MS) taken = recent.taken;
    else {
      taken = read().then((snapshot) => this.keep(handle, snapshot));
      const entry = { taken, startedAt: performance.now() };
      this.newest.set(handle, entry);
      taken.catch(() => {
        if (this.newest.get(handle) === entry) this.newest.delete(handle);
      });
    }
    return chunkOf(await taken, 0);
  }

  /** Chunk `chunk` of the snapshot at `sequence`; null when it is no longer kept. */
  chunk(handle: string, sequence: number, chunk: number): SnapshotChunk | null {
    const snapshot = this.kept.get(`${handle}\u0000${sequence}`);
    if (snapshot === undefined || chunk >= snapshot.chunks.length) return null;
    return chunkOf(snapshot, chunk);
  }

  /** A rotated shape's snapshots go with it. */
  forget(handle: string): void {
    this.newest.delete(handle);
    for (const key of this.kept.keys()) if (key.startsWith(`${handle}\u0000`)) this.kept.delete(key);
  }

  private keep(handle: string, read: SnapshotRead): Snapshot {
    const { chunks } = read;
    if (chunks.length > CHUNKS_PER_SNAPSHOT) throw new Error('snapshot has too many chunks');
    const snapshot = { sequence: read.sequence, chunks };
    // One chunk needs no keeping: its answer says up-to-date and names no further chunk.
    if (chunks.length > 1) this.kept.set(`${handle}\u0000${read.sequence}`, snapshot);
    return snapshot;
  }
}

function chunkOf(snapshot: Snapshot, chunk: number): SnapshotChunk {
  const last = chunk === snapshot.chunks.length - 1;
  return {
    sequence: snapshot.sequence,
    joined: snapshot.chunks[chunk]!,
    next: last ? null : chunkOffset(snapshot.sequence, chunk + 1),
  };
}
