// The processing side's record of what it processed and the writer has not committed, as a pure
// state machine (no I/O, no threads, no store): batch boundaries and sizes, never their changes
// (those stay in the InMemoryStore until committed). The processing actor asks it what to send,
// what a commit releases, what a reorg undoes and what a restarted writer must get again;
// test/unit/uncommitted-ledger.test.ts runs it against random operation sequences.
//
// Invariants (checked by that test):
//  - batches are contiguous and in order: each starts right after the previous one's last
//    checkpoint, the first right after the committed checkpoint;
//  - `changeCount` is the sum of the batches' change counts;
//  - the held batch (processed inside the reorg threshold, not yet sent) is the last batch;
//  - undoing above a checkpoint removes exactly the events above it, and what a batch held at or
//    below it stays, truncated to it, to be sent again.

import type { BatchCheckpoint, BatchForWriter, RawBlock } from '../protocol.ts';

/** A `cache: true` effect output: [effect, input key, output JSON]. */
export type EffectCacheRow = [effect: string, inputKey: string, output: string];

/** What is kept of a batch until it is committed: its boundary and size, not its changes. */
export interface UncommittedBatch {
  /** What the writer records: every block's inside the reorg threshold, else only the last. */
  checkpoints: BatchCheckpoint[];
  isInReorgThreshold: boolean;
  fromCheckpoint: number;
  fromBlockNumber: number;
  /** Block number of each of its checkpoints, in order. */
  blockNumbers: number[];
  changeCount: number;
  /** Its `cache: true` effect outputs, until committed (a writer restart gets them again). */
  effectCache: EffectCacheRow[];
  rawBlocks: RawBlock[] | undefined;
}

/** A batch's last checkpoint. */
export function lastCheckpoint(batch: UncommittedBatch): BatchCheckpoint {
  return batch.checkpoints[batch.checkpoints.length - 1]!;
}

/** What undoing everything above a checkpoint took out of the ledger. */
export interface UndoResult {
  /** Events of the checkpoints above it (no longer processed). */
  eventsRemoved: number;
  /** Batches entirely above it: their effect outputs go back to the effect store. */
  discarded: UncommittedBatch[];
  /** What the dropped batches held at or below it, truncated, back in the ledger: send again. */
  resend: UncommittedBatch[];
}

export class UncommittedLedger {
  private batches: UncommittedBatch[] = [];
  private held: UncommittedBatch | null = null;
  private changes = 0;

  constructor(private committed: number) {}

  get committedCheckpoint(): number {
    return this.committed;
  }

  get length(): number {
    return this.batches.length;
  }

  /** Changes the uncommitted batches hold (each counted once per id per batch). */
  get changeCount(): number {
    return this.changes;
  }

  get all(): readonly UncommittedBatch[] {
    return this.batches;
  }

  /** A processed batch; `hold`: not sent yet, until the next read shows its tip still stands. */
  add(batch: UncommittedBatch, hold: boolean): void {
    const expected = this.batches.length === 0 ? null : lastCheckpoint(this.batches.at(-1)!).checkpointId + 1;
    if (expected !== null && batch.fromCheckpoint !== expected) {
      throw new Error(`ledger: batch from ${batch.fromCheckpoint} does not follow ${expected - 1}`);
    }
    if (this.held !== null) throw new Error('ledger: a batch is added while another is held');
    this.batches.push(batch);
    this.changes += batch.changeCount;
    if (hold) this.held = batch;
  }

  /** The held batch, no longer held (the caller sends it), or null. */
  release(): UncommittedBatch | null {
    const { held } = this;
    this.held = null;
    return held;
  }

  /** The last batch's change count as collected when it was sent (history may add changes). */
  recount(batch: UncommittedBatch, changeCount: number): void {
    this.changes += changeCount - batch.changeCount;
    batch.changeCount = changeCount;
  }

  /** The writer committed up to `checkpoint`; false if that is not news. */
  commit(checkpoint: number): boolean {
    if (checkpoint <= this.committed) return false;
    this.committed = checkpoint;
    while (this.batches.length > 0 && lastCheckpoint(this.batches[0]!).checkpointId <= checkpoint) {
      const batch = this.batches.shift()!;
      this.changes -= batch.changeCount;
      if (batch === this.held) this.held = null;
    }
    return true;
  }

  /** A stored-state rollback committed: nothing above `checkpoint` is left anywhere. */
  rolledBackTo(checkpoint: number): void {
    this.committed = checkpoint;
  }

  /** Whether a batch reaching above `checkpoint` was processed without history (cannot be undone). */
  hasUnhistoriedAbove(checkpoint: number): boolean {
    return this.batches.some((b) => lastCheckpoint(b).checkpointId > checkpoint && !b.isInReorgThreshold);
  }

  /** Where the held batch starts, or null. */
  heldFrom(): number | null {
    return this.held?.fromCheckpoint ?? null;
  }

  /**
   * A reorg: the batches above `keptUpTo` (≤ `checkpoint`) are not at the writer — dropped by it,
   * or the held one. Those entirely above `checkpoint` are discarded; the others are truncated to
   * it and stay, to be sent again. Events above `checkpoint` are no longer processed.
   */
  undoAbove(checkpoint: number, keptUpTo: number): UndoResult {
    if (keptUpTo > checkpoint) throw new Error(`ledger: kept ${keptUpTo} is above ${checkpoint}`);
    this.held = null;
    const firstDropped = this.batches.findIndex((b) => lastCheckpoint(b).checkpointId > keptUpTo);
    const dropped = firstDropped < 0 ? [] : this.batches.splice(firstDropped);
    const result: UndoResult = { eventsRemoved: 0, discarded: [], resend: [] };
    for (const batch of dropped) {
      for (const c of batch.checkpoints)
        if (c.checkpointId > checkpoint) result.eventsRemoved += c.eventCount;
      this.changes -= batch.changeCount;
      if (batch.fromCheckpoint > checkpoint) result.discarded.push(batch);
      else result.resend.push(truncateBatch(batch, checkpoint));
    }
    for (const batch of result.resend) {
      this.batches.push(batch);
      this.changes += batch.changeCount;
    }
    return result;
  }

  /** After a writer restart: every batch, to be sent again as one (the held one with the rest). */
  resendAll(): readonly UncommittedBatch[] {
    this.held = null;
    return this.batches;
  }
}

/** The part of a batch at or below a checkpoint (a reorg orphaned the blocks above it). */
function truncateBatch(batch: UncommittedBatch, toCheckpoint: number): UncommittedBatch {
  if (lastCheckpoint(batch).checkpointId <= toCheckpoint) return batch;
  return {
    ...batch,
    checkpoints: batch.checkpoints.filter((c) => c.checkpointId <= toCheckpoint),
    blockNumbers: batch.blockNumbers.slice(0, toCheckpoint - batch.fromCheckpoint + 1),
    rawBlocks: batch.rawBlocks?.filter((block) => block.checkpointId <= toCheckpoint),
  };
}

/** Consecutive batches as one writer batch (a re-send merges them), without its changes. */
export function mergeForWriter(
  pipeline: string,
  batches: readonly UncommittedBatch[],
  changeCount: number,
  withRawBlocks: boolean,
): Omit<BatchForWriter, 'encodedChanges'> {
  const first = batches[0]!;
  const last = lastCheckpoint(batches[batches.length - 1]!);
  const checkpoints = batches.flatMap((b) => b.checkpoints);
  return {
    pipeline,
    fromCheckpoint: first.fromCheckpoint,
    toCheckpoint: last.checkpointId,
    fromBlockNumber: first.fromBlockNumber,
    toBlockNumber: last.blockNumber,
    toBlockHash: last.blockHash,
    eventCount: checkpoints.reduce((sum, c) => sum + c.eventCount, 0),
    changeCount,
    isInReorgThreshold: batches.some((b) => b.isInReorgThreshold),
    checkpoints,
    blockNumbers: batches.flatMap((b) => b.blockNumbers),
    effectCache: batches.flatMap((b) => b.effectCache),
    ...(withRawBlocks ? { rawBlocks: batches.flatMap((b) => b.rawBlocks ?? []) } : {}),
  };
}
