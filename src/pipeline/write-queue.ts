// The writer's queue, as a pure state machine (no I/O, no threads): which batches wait, in what
// order, which run to write next, what a reorg discards, which pipelines failed. The persistence
// actor only moves messages and awaits the database around it; test/unit/write-queue.test.ts runs
// it against random operation sequences.
//
// Invariants (checked by that test):
//  - a run is one pipeline's batches, contiguous from its committed checkpoint + 1, sharing
//    `isInReorgThreshold`, within the change budget (a single batch may exceed it);
//  - a batch at or below the committed checkpoint is never written (it is dropped, and its
//    pipeline's commit reported again: a writer that died between COMMIT and its report leaves
//    the processing actor waiting);
//  - a batch beyond a gap waits (after a writer restart, batches processed meanwhile can arrive
//    before the re-send that fills the gap);
//  - a failed pipeline's batches are dropped and never written;
//  - a pipeline started afresh (its lease granted or lost) keeps nothing queued from before.

/** What the queue needs of a batch. */
export interface QueuedBatch {
  pipeline: string;
  fromCheckpoint: number;
  toCheckpoint: number;
  changeCount: number;
  isInReorgThreshold: boolean;
}

export interface TakenRun<Batch extends QueuedBatch> {
  /** The batches to write in one transaction (empty: nothing writable). */
  run: Batch[];
  /** Pipelines whose queued batches turned out to be committed already: report their commit again. */
  alreadyCommitted: string[];
}

export class WriteQueue<Batch extends QueuedBatch> {
  private readonly queue: Batch[] = [];
  private readonly committedBy = new Map<string, number>();
  private readonly failed = new Set<string>();

  constructor(private readonly maxChangesPerRun: number) {}

  get length(): number {
    return this.queue.length;
  }

  committed(pipeline: string): number {
    return this.committedBy.get(pipeline) ?? 0;
  }

  /** Every pipeline's committed checkpoint. */
  committedCheckpoints(): Record<string, number> {
    return Object.fromEntries(this.committedBy);
  }

  /** The committed checkpoint moved (a write or a rollback committed, or read at start). */
  setCommitted(pipeline: string, checkpoint: number): void {
    this.committedBy.set(pipeline, checkpoint);
  }

  isFailed(pipeline: string): boolean {
    return this.failed.has(pipeline);
  }

  /** The pipeline stops: its queued batches are dropped, later ones refused. */
  fail(pipeline: string): void {
    this.failed.add(pipeline);
    this.removeWhere((batch) => batch.pipeline === pipeline);
  }

  /**
   * The pipeline starts afresh at `committed` (its lease was granted — another process may have
   * written it meanwhile — or lost): what was queued is dropped, a failure forgotten.
   */
  restart(pipeline: string, committed: number): void {
    this.failed.delete(pipeline);
    this.removeWhere((batch) => batch.pipeline === pipeline);
    this.committedBy.set(pipeline, committed);
  }

  /** Queues a batch in checkpoint order within its pipeline (a re-send may arrive late); false for a failed pipeline. */
  enqueue(batch: Batch): boolean {
    if (this.failed.has(batch.pipeline)) return false;
    const after = this.queue.findIndex(
      (queued) => queued.pipeline === batch.pipeline && queued.fromCheckpoint > batch.fromCheckpoint,
    );
    if (after < 0) this.queue.push(batch);
    else this.queue.splice(after, 0, batch);
    return true;
  }

  /** Whether a queued batch (of `pipeline`, or any) can be written now — not waiting behind a gap. */
  hasWritable(pipeline?: string): boolean {
    return this.queue.some(
      (batch) =>
        (pipeline === undefined || batch.pipeline === pipeline) &&
        batch.fromCheckpoint <= this.committed(batch.pipeline) + 1,
    );
  }

  hasQueued(pipeline: string): boolean {
    return this.queue.some((batch) => batch.pipeline === pipeline);
  }

  /**
   * The next run: the first queued batch that continues its pipeline's committed checkpoint, then
   * the batches of the same pipeline that follow it without a gap, share its `isInReorgThreshold`
   * and fit the change budget. Batches already committed, or covered by the run (a re-send
   * overlapping what was queued), are dropped.
   */
  takeRun(): TakenRun<Batch> {
    const alreadyCommitted = new Set<string>();
    this.removeWhere((batch) => {
      const durable = batch.toCheckpoint <= this.committed(batch.pipeline);
      if (durable) alreadyCommitted.add(batch.pipeline);
      return durable;
    });
    const start = this.queue.findIndex((batch) => batch.fromCheckpoint <= this.committed(batch.pipeline) + 1);
    if (start < 0) return { run: [], alreadyCommitted: [...alreadyCommitted] };
    const first = this.queue.splice(start, 1)[0]!;
    const run = [first];
    let covered = first.toCheckpoint;
    let changes = first.changeCount;
    for (let i = start; i < this.queue.length; ) {
      const next = this.queue[i]!;
      if (next.pipeline !== first.pipeline) {
        i++;
        continue;
      }
      if (next.toCheckpoint <= covered) {
        this.queue.splice(i, 1);
        continue;
      }
      if (
        next.fromCheckpoint > covered + 1 ||
        next.isInReorgThreshold !== first.isInReorgThreshold ||
        changes + next.changeCount > this.maxChangesPerRun
      ) {
        break;
      }
      run.push(this.queue.splice(i, 1)[0]!);
      covered = next.toCheckpoint;
      changes += next.changeCount;
    }
    return { run, alreadyCommitted: [...alreadyCommitted] };
  }

  /**
   * A reorg's first step: drops the pipeline's queued batches that reach above `aboveCheckpoint`
   * (they hold orphaned blocks) and answers the highest checkpoint the writer still has of the
   * pipeline — committed, in flight (`inFlightTo`) or queued.
   */
  discardAbove(pipeline: string, aboveCheckpoint: number, inFlightTo: number | null): number {
    let keptUpTo = Math.max(this.committed(pipeline), inFlightTo ?? 0);
    this.removeWhere((batch) => batch.pipeline === pipeline && batch.toCheckpoint > aboveCheckpoint);
    for (const batch of this.queue) {
      if (batch.pipeline === pipeline) keptUpTo = Math.max(keptUpTo, batch.toCheckpoint);
    }
    return keptUpTo;
  }

  private removeWhere(drop: (batch: Batch) => boolean): void {
    for (let i = 0; i < this.queue.length; ) {
      if (drop(this.queue[i]!)) this.queue.splice(i, 1);
      else i++;
    }
  }
}
