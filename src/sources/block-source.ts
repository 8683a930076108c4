// What the processing actor reads blocks from. Three kinds exist (see the pipeline config):
// the deterministic generator, an NDJSON file, and the durable ingest log. Each one is read by
// block number — "the next `max` blocks after block `after`" — which is all resume needs: the
// committed block number is the position.

import type { Block } from './types.ts';

export interface BlockSource {
  /** Up to `max` blocks numbered above `after`, in order; empty when none is available yet. */
  read(after: number, max: number): Promise<Block[]>;
  /**
   * The hash the source now holds for block `number` (undefined: no such block any more). Lets
   * an idle pipeline see a reorg whose new branch is not longer than what it processed; sources
   * that cannot reorg leave it out.
   */
  hashAt?(number: number): Promise<string | null | undefined>;
  /** The highest block number known to exist, or null when unknown. */
  head(): number | null;
  /** True when the stream has a last block (a finite file, a generator with no live phase). */
  readonly finite: boolean;
  /** Resolves when new blocks may be available, or after `ms` — whichever comes first. */
  waitForMore(ms: number): Promise<void>;
  /** Wakes a pending `waitForMore` (e.g. the ingest API stored new blocks). */
  wake(): void;
  close(): Promise<void>;
}

/** A `waitForMore`/`wake` pair built on a timer and a list of sleepers. */
export class Waker {
  private sleepers: Array<() => void> = [];

  wait(ms: number): Promise<void> {
    return new Promise<void>((resolve) => {
      const timer = setTimeout(done, ms);
      const sleepers = this.sleepers;
      function done() {
        clearTimeout(timer);
        const index = sleepers.indexOf(done);
        if (index >= 0) sleepers.splice(index, 1);
        resolve();
      }
      this.sleepers.push(done);
    });
  }

  wake(): void {
    for (const sleeper of this.sleepers.splice(0)) sleeper();
  }
}
