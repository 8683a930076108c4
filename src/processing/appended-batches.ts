// The rows of an entity no handler has read yet (erc20's Transfer and Allowance: a row per event,
// written once), kept per batch instead of in the store's map. Such a row is only ever encoded for
// the writer, re-sent after a writer restart, and dropped once committed — never looked up by id —
// so a backfill need not pay a lookup, an insert and a delete in a map of ~100,000 entries per
// row, and the processing actor drops a batch's rows as soon as it commits, before they age into
// V8's old generation (together: limit (a) −19% on erc20, bench/README.md). The first read, delete
// or history-kept write of the entity moves every row still held into the map (EntityStore).

/** What the store keeps per row (its StoredChange; generic so this file needs nothing of it). */
interface Change {
  readonly checkpointId: number;
}

/** One batch's rows: the store's arrays of the batch's touched ids and their changes, shared. */
interface AppendedBatch<StoredChange extends Change> {
  readonly ids: readonly string[];
  readonly changes: readonly StoredChange[];
  /** The highest checkpoint of its changes: the batch can go once that is committed. */
  lastCheckpoint: number;
  /** Rows at the front already dropped (committed, then dropped under a limit). */
  dropped: number;
}

export class AppendedBatches<StoredChange extends Change> {
  private batches: Array<AppendedBatch<StoredChange>> = [];
  /** Rows held, over every batch. */
  size = 0;

  /** A batch whose rows the store will push onto `ids` and `changes` (its touched arrays). */
  open(ids: readonly string[], changes: readonly StoredChange[], checkpoint: number): void {
    this.batches.push({ ids, changes, lastCheckpoint: checkpoint, dropped: 0 });
  }

  /** Whether `ids` are the open (last) batch's. */
  isOpen(ids: readonly string[]): boolean {
    return this.batches.at(-1)?.ids === ids;
  }

  /** The open batch gained a row, or one of its rows changed, at `checkpoint`. */
  wrote(checkpoint: number, added: boolean): void {
    const batch = this.batches.at(-1)!;
    if (checkpoint > batch.lastCheckpoint) batch.lastCheckpoint = checkpoint;
    if (added) this.size += 1;
  }

  /** Forgets the open batch (it failed and is undone). */
  discardOpen(ids: readonly string[]): void {
    if (!this.isOpen(ids)) return;
    const batch = this.batches.pop()!;
    this.size -= batch.ids.length - batch.dropped;
  }

  /**
   * Drops committed rows, oldest batch first, at most `limit`; returns how many. Rows of one batch
   * are committed together (the writer commits whole batches).
   */
  dropCommitted(committedCheckpoint: number, limit: number): number {
    let dropped = 0;
    let whole = 0;
    for (const batch of this.batches) {
      if (batch.lastCheckpoint > committedCheckpoint || dropped >= limit) break;
      const left = batch.ids.length - batch.dropped;
      if (left <= limit - dropped) {
        dropped += left;
        whole += 1;
      } else {
        batch.dropped += limit - dropped;
        dropped = limit;
      }
    }
    if (whole > 0) this.batches = this.batches.slice(whole);
    this.size -= dropped;
    return dropped;
  }

  /**
   * Every row held, oldest first (an id may come more than once: its later rows win), with the
   * ids array of its batch and its place there.
   */
  forEach(
    visit: (id: string, change: StoredChange, batchIds: readonly string[], index: number) => void,
  ): void {
    for (const batch of this.batches) {
      for (let i = batch.dropped; i < batch.ids.length; i++)
        visit(batch.ids[i]!, batch.changes[i]!, batch.ids, i);
    }
  }

  /** Each id's latest row above `committedCheckpoint`, once per id (a merged re-send). */
  forEachLatestAbove(committedCheckpoint: number, visit: (id: string, change: StoredChange) => void): void {
    const latest = new Map<string, StoredChange>();
    this.forEach((id, change) => {
      if (change.checkpointId > committedCheckpoint) latest.set(id, change);
    });
    for (const [id, change] of latest) visit(id, change);
  }

  clear(): void {
    this.batches = [];
    this.size = 0;
  }
}
