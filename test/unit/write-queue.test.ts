// The writer's queue (src/pipeline/write-queue.ts) against random operation sequences: two
// pipelines' processing produces batches of random sizes and thresholds; runs are taken and
// committed; the writer restarts (a fresh queue, batches processed meanwhile arriving before the
// merged re-send); reorgs discard above a random ancestor and re-send what of the dropped batches
// lies at or below it; a pipeline fails. Every run must be one pipeline's contiguous batches from
// its committed checkpoint, one threshold, within the change budget, never a failed pipeline's;
// and in the end every live pipeline commits exactly what it processed. Replay: the seed is in the
// test name and every failure message.
import { describe, expect, it } from 'vitest';
import { type QueuedBatch, WriteQueue } from '../../src/pipeline/write-queue.ts';
import { mulberry32 } from '../../src/sources/generator.ts';

const MAX_CHANGES = 50;
const PIPELINES = ['a', 'b'] as const;

interface Processing {
  /** Highest checkpoint processed (and sent). */
  processed: number;
  threshold: boolean;
  failed: boolean;
}

function runSeed(seed: number): void {
  const random = mulberry32(seed);
  const int = (below: number) => Math.floor(random() * below);
  let queue = new WriteQueue<QueuedBatch>(MAX_CHANGES);
  /** What "the database" holds: the committed checkpoint of each pipeline. */
  const stored = new Map<string, number>(PIPELINES.map((p) => [p, 0]));
  /** What each processing actor was told is committed (behind `stored` after a lost report). */
  const acked = new Map<string, number>(PIPELINES.map((p) => [p, 0]));
  const processing = new Map<string, Processing>(
    PIPELINES.map((p) => [p, { processed: 0, threshold: false, failed: false }]),
  );
  const where = (step: number, what: string) => `seed ${seed}, step ${step}: ${what}`;

  const batch = (pipeline: string, from: number, to: number, threshold: boolean): QueuedBatch => ({
    pipeline,
    fromCheckpoint: from,
    toCheckpoint: to,
    changeCount: 1 + int(30),
    isInReorgThreshold: threshold,
  });
  const produce = (pipeline: string) => {
    const state = processing.get(pipeline)!;
    if (random() < 0.2) state.threshold = !state.threshold;
    const from = state.processed + 1;
    state.processed += 1 + int(6);
    queue.enqueue(batch(pipeline, from, state.processed, state.threshold));
  };
  /** Everything above what processing was told is committed, as one merged batch (a re-send). */
  const resend = (pipeline: string) => {
    const state = processing.get(pipeline)!;
    const committed = acked.get(pipeline)!;
    if (state.processed > committed)
      queue.enqueue(batch(pipeline, committed + 1, state.processed, state.threshold));
  };
  const takeAndCommit = (step: number) => {
    const { run, alreadyCommitted } = queue.takeRun();
    // Reported again: the processing actor learns what a lost report did not tell it.
    for (const p of alreadyCommitted) acked.set(p, stored.get(p)!);
    if (run.length === 0) return false;
    const pipeline = run[0]!.pipeline;
    const committed = stored.get(pipeline)!;
    expect(processing.get(pipeline)!.failed, where(step, 'a failed pipeline written')).toBe(false);
    expect(
      run.every((b) => b.pipeline === pipeline),
      where(step, 'one pipeline per run'),
    ).toBe(true);
    expect(
      run[0]!.fromCheckpoint,
      where(step, 'the run continues the committed checkpoint'),
    ).toBeLessThanOrEqual(committed + 1);
    expect(run[0]!.toCheckpoint, where(step, 'nothing already committed')).toBeGreaterThan(committed);
    for (let i = 1; i < run.length; i++) {
      expect(run[i]!.fromCheckpoint, where(step, 'no gap inside a run')).toBeLessThanOrEqual(
        run[i - 1]!.toCheckpoint + 1,
      );
      expect(run[i]!.toCheckpoint, where(step, 'each batch adds to the run')).toBeGreaterThan(
        run[i - 1]!.toCheckpoint,
      );
    }
    expect(new Set(run.map((b) => b.isInReorgThreshold)).size, where(step, 'one threshold per run')).toBe(1);
    if (run.length > 1) {
      const changes = run.reduce((sum, b) => sum + b.changeCount, 0);
      expect(changes, where(step, 'within the change budget')).toBeLessThanOrEqual(MAX_CHANGES);
    }
    const to = run[run.length - 1]!.toCheckpoint;
    const fate = random();
    if (fate < 0.1) return true; // the write failed before COMMIT: the writer restarts later
    stored.set(pipeline, to);
    if (fate < 0.2) {
      // The writer died after COMMIT, before reporting it: it restarts at once, and processing
      // re-sends batches that are in fact committed.
      restart();
      return true;
    }
    acked.set(pipeline, to);
    queue.setCommitted(pipeline, to);
    return true;
  };
  /**
   * The writer restarts: a fresh queue reads the stored checkpoints; a batch processed meanwhile
   * may arrive before a pipeline's merged re-send.
   */
  const restart = () => {
    queue = new WriteQueue<QueuedBatch>(MAX_CHANGES);
    for (const p of PIPELINES) {
      queue.setCommitted(p, stored.get(p)!);
      if (processing.get(p)!.failed) queue.fail(p);
    }
    for (const p of PIPELINES) {
      const s = processing.get(p)!;
      if (s.failed) continue;
      if (random() < 0.5) {
        // The re-send of what was uncommitted before it follows (the queue must hold the newer
        // batch behind the gap until then).
        const before = s.processed;
        produce(p);
        const committed = acked.get(p)!;
        if (before > committed) queue.enqueue(batch(p, committed + 1, before, s.threshold));
      } else resend(p);
    }
  };

  for (let step = 0; step < 400; step++) {
    const pipeline = PIPELINES[int(2)]!;
    const state = processing.get(pipeline)!;
    const op = random();
    if (op < 0.4) {
      if (!state.failed) produce(pipeline);
    } else if (op < 0.75) {
      takeAndCommit(step);
    } else if (op < 0.85) {
      restart();
    } else if (op < 0.97) {
      if (state.failed) continue;
      // A reorg to an ancestor at or above what is committed: drop what reaches above it, and
      // re-send the part of the dropped batches at or below it.
      const committed = stored.get(pipeline)!;
      const ancestor = committed + int(state.processed - committed + 1);
      const keptUpTo = queue.discardAbove(pipeline, ancestor, null);
      expect(keptUpTo, where(step, 'keptUpTo covers what is committed')).toBeGreaterThanOrEqual(committed);
      expect(keptUpTo, where(step, 'nothing above the ancestor kept')).toBeLessThanOrEqual(ancestor);
      state.processed = ancestor;
      if (keptUpTo < ancestor) queue.enqueue(batch(pipeline, keptUpTo + 1, ancestor, state.threshold));
    } else if (!state.failed && random() < 0.3) {
      state.failed = true;
      queue.fail(pipeline);
      expect(queue.enqueue(batch(pipeline, 1, 1, false)), where(step, 'a failed pipeline refuses')).toBe(
        false,
      );
    }
  }
  // Drain: every live pipeline ends committed at what it processed.
  for (let step = 400; step < 2_000 && takeAndCommit(step); step++);
  for (const p of PIPELINES) {
    const state = processing.get(p)!;
    if (state.failed) continue;
    for (let attempt = 0; stored.get(p) !== state.processed && attempt < 20; attempt++) {
      // A failed write left a gap: the writer restarts and processing re-sends.
      restart();
      for (let step = 0; step < 2_000 && takeAndCommit(2_000 + step); step++);
    }
    expect(stored.get(p), `seed ${seed}: pipeline ${p} committed what it processed`).toBe(state.processed);
  }
}

describe('WriteQueue', () => {
  for (let seed = 1; seed <= 25; seed++) {
    it(`random operations keep the run invariants and commit everything processed (seed ${seed})`, () => {
      runSeed(seed);
    });
  }
});
