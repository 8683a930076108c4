// What reaches the shapes' logs: each committed transaction's fragments as the writer sends them
// live, then its commit marker — and, for whatever never arrived live, the same fragments read
// from the store (`strata.shape_log`), in the same order, so the logs end the same either way.
// Read from the store: transactions before one whose first fragment shows a gap in the sequence;
// a transaction whose marker counts more fragments than arrived (a large one is never sent, or
// the materializer was restarting); and, on `resync`, everything committed up to now (after the
// writer or this actor restarted).

import type { Queryable } from '../db/pool.ts';
import type { Logger } from '../logger.ts';
import type { ShapeChangesFragment } from '../protocol.ts';
import type { Materializer } from './materializer.ts';
import { readShapeLog, shapeLogBounds } from './shape-store.ts';

/** Commits a transaction (its messages become visible) and tells whoever waits. */
export type CommitTransaction = (pipeline: string, sequence: number) => void;

export class ShapeFeed {
  /** Per pipeline, the transaction being streamed live and how many of its fragments arrived. */
  private readonly streaming = new Map<string, { sequence: number; received: number }>();

  constructor(
    private readonly materializer: Materializer,
    private readonly db: Queryable,
    private readonly log: Logger,
    private readonly commitTransaction: CommitTransaction,
  ) {}

  /** A live fragment. */
  async fragment(fragment: ShapeChangesFragment): Promise<void> {
    const { pipeline, sequence } = fragment;
    const processed = this.materializer.processedSequence(pipeline);
    if (sequence <= processed) return; // read from the store already
    // Transactions before this one never arrived: read them from the store first.
    if (sequence > processed + 1) await this.catchUp(pipeline, sequence - 1, this.commitTransaction);
    const current = this.streaming.get(pipeline);
    if (current?.sequence === sequence) current.received += 1;
    else this.streaming.set(pipeline, { sequence, received: 1 });
    this.materializer.applyFragment(fragment);
  }

  /** A live commit marker: transaction `sequence` is whole, with `fragments` fragments in the store. */
  async commit(pipeline: string, sequence: number, fragments: number): Promise<void> {
    const received = this.streaming.get(pipeline);
    this.streaming.delete(pipeline);
    const processed = this.materializer.processedSequence(pipeline);
    if (sequence <= processed) return;
    const arrived = received?.sequence === sequence ? received.received : 0;
    if (arrived === fragments && sequence === processed + 1) {
      this.commitTransaction(pipeline, sequence);
      return;
    }
    // Some of it (or transactions before it) never arrived: the store has all of it.
    this.materializer.abort();
    await this.catchUp(pipeline, sequence, this.commitTransaction);
  }

  /** Reads from the store what the pipelines committed and this feed has not seen. */
  async resync(pipelines: readonly string[]): Promise<void> {
    if (pipelines.length === 0) return;
    for (const [pipeline, { committed }] of await shapeLogBounds(this.db, [...pipelines])) {
      // A transaction being streamed live right now is left to its own commit marker.
      if (this.streaming.has(pipeline)) continue;
      await this.catchUp(pipeline, committed, this.commitTransaction);
    }
  }

  /**
   * Routes the stored transactions after the last processed one, up to `through`, as if they had
   * arrived live; each is committed whole through `commit` (at start: nobody waits to be told).
   */
  async catchUp(pipeline: string, through: number, commit: CommitTransaction): Promise<void> {
    const after = this.materializer.processedSequence(pipeline);
    if (through <= after) return;
    let open: number | null = null;
    try {
      for await (const fragment of readShapeLog(this.db, pipeline, after, through)) {
        if (open !== null && fragment.sequence !== open) commit(pipeline, open);
        open = fragment.sequence;
        this.materializer.applyFragment(fragment);
      }
    } catch (error) {
      this.materializer.abort();
      throw error;
    }
    if (open !== null) commit(pipeline, open);
    if (open !== through) commit(pipeline, through);
    this.log.debug({ pipeline, after, through }, 'shape logs caught up from the store');
  }
}
