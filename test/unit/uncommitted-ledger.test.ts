// The processing side's ledger (src/pipeline/uncommitted-ledger.ts) against a simple model over
// random operation sequences: batches of random sizes inside or outside the reorg threshold are
// processed (held or sent), the writer commits at boundaries of sent batches, reorgs undo above a
// random ancestor (the writer keeping a random prefix of what it was sent), and a restarted
// writer gets everything again. The model is a flat list of processed blocks, each with the batch
// it belongs to; after every step the ledger's batches must be exactly the model's uncommitted
// blocks, contiguous from the committed checkpoint, with the model's change count, events removed
// and held batch; merged re-sends must carry every boundary. Replay: the seed is in the test name
// and every failure message.
import { describe, expect, it } from 'vitest';
import {
  lastCheckpoint,
  mergeForWriter,
  type UncommittedBatch,
  UncommittedLedger,
} from '../../src/pipeline/uncommitted-ledger.ts';
import { mulberry32 } from '../../src/sources/generator.ts';

/** One processed block as the model keeps it. */
interface ModelBlock {
  checkpoint: number;
  events: number;
  batch: number;
  history: boolean;
}

function runSeed(seed: number): void {
  const random = mulberry32(seed);
  const int = (below: number) => Math.floor(random() * below);
  const start = int(3) * 10;
  const ledger = new UncommittedLedger(start);
  let committed = start;
  let blocks: ModelBlock[] = [];
  /** Batches the writer was sent (their last checkpoints), in order. */
  let sentUpTo = start;
  let heldBatch: number | null = null;
  const changesOf = new Map<number, number>();
  let nextBatch = 1;
  const where = (step: number, what: string) => `seed ${seed}, step ${step}: ${what}`;

  const processed = () => blocks.at(-1)?.checkpoint ?? committed;
  const boundaries = () => blocks.filter((b, i) => blocks[i + 1]?.batch !== b.batch).map((b) => b.checkpoint);

  const produce = () => {
    if (heldBatch !== null) release();
    const count = 1 + int(5);
    const history = random() < 0.6;
    const from = processed() + 1;
    const id = nextBatch++;
    const events = Array.from({ length: count }, () => int(4));
    const checkpoints = events.map((eventCount, i) => ({
      checkpointId: from + i,
      blockNumber: 100 + from + i,
      blockHash: history ? `0x${from + i}` : null,
      eventCount,
      history,
    }));
    const batch: UncommittedBatch = {
      checkpoints: history
        ? checkpoints
        : [{ ...checkpoints.at(-1)!, eventCount: events.reduce((a, b) => a + b, 0) }],
      isInReorgThreshold: history,
      fromCheckpoint: from,
      fromBlockNumber: 100 + from,
      blockNumbers: checkpoints.map((c) => c.blockNumber),
      changeCount: 1 + int(20),
      effectCache: [],
      rawBlocks: undefined,
    };
    changesOf.set(id, batch.changeCount);
    for (const [i, eventCount] of events.entries())
      blocks.push({ checkpoint: from + i, events: eventCount, batch: id, history });
    const hold = history && random() < 0.7;
    ledger.add(batch, hold);
    if (hold) heldBatch = id;
    else sentUpTo = from + count - 1;
  };
  const release = () => {
    const held = ledger.release();
    expect(held === null, 'release returns the held batch').toBe(heldBatch === null);
    if (held !== null) {
      // The store's count when sent (history may add changes).
      const count = held.changeCount + int(3);
      ledger.recount(held, count);
      changesOf.set(heldBatch!, count);
      sentUpTo = lastCheckpoint(held).checkpointId;
    }
    heldBatch = null;
  };
  const commit = () => {
    const sent = boundaries().filter((c) => c > committed && c <= sentUpTo);
    if (sent.length === 0) return;
    const to = sent[int(sent.length)]!;
    expect(ledger.commit(to)).toBe(true);
    expect(ledger.commit(to), 'a repeated report is not news').toBe(false);
    committed = to;
    const left = blocks.filter((b) => b.checkpoint > to);
    for (const b of blocks) if (b.checkpoint <= to) changesOf.delete(b.batch);
    blocks = left;
  };
  const reorg = (step: number) => {
    const ancestor = committed + int(processed() - committed + 1);
    if (ledger.hasUnhistoriedAbove(ancestor)) {
      // The actor refuses (noHistoryError): only check the model agrees.
      expect(
        blocks.some((b) => b.checkpoint > ancestor && !b.history),
        where(step, 'unhistoried'),
      ).toBe(true);
      return;
    }
    // The writer keeps a prefix of what it was sent: a boundary at or below the ancestor.
    const kept = [committed, ...boundaries().filter((c) => c <= Math.min(ancestor, sentUpTo))];
    const keptUpTo = kept[int(kept.length)]!;
    const expectedEvents = blocks.filter((b) => b.checkpoint > ancestor).reduce((n, b) => n + b.events, 0);
    const discardedBatches = new Set(blocks.filter((b) => b.checkpoint > keptUpTo).map((b) => b.batch));
    const result = ledger.undoAbove(ancestor, keptUpTo);
    expect(result.eventsRemoved, where(step, 'events removed')).toBe(expectedEvents);
    // Whole batches above the ancestor are discarded; the rest of the dropped ones come back.
    const firstOfBatch = new Map<number, number>();
    for (const b of blocks) if (!firstOfBatch.has(b.batch)) firstOfBatch.set(b.batch, b.checkpoint);
    const expectDiscarded = [...discardedBatches].filter((id) => firstOfBatch.get(id)! > ancestor);
    expect(result.discarded.length, where(step, 'discarded')).toBe(expectDiscarded.length);
    for (const id of expectDiscarded) changesOf.delete(id);
    expect(
      result.resend.map((b) => b.fromCheckpoint),
      where(step, 'resend'),
    ).toEqual(
      [...discardedBatches]
        .filter((id) => firstOfBatch.get(id)! <= ancestor)
        .map((id) => firstOfBatch.get(id)),
    );
    blocks = blocks.filter((b) => b.checkpoint <= ancestor);
    heldBatch = null;
    sentUpTo = Math.min(sentUpTo, keptUpTo);
    // What comes back is sent again at once.
    if (result.resend.length > 0) sentUpTo = lastCheckpoint(result.resend.at(-1)!).checkpointId;
  };
  const resendAll = (step: number) => {
    const batches = ledger.resendAll();
    heldBatch = null;
    if (batches.length === 0) return;
    const merged = mergeForWriter('p', batches, ledger.changeCount, false);
    expect(merged.fromCheckpoint, where(step, 'merged from')).toBe(committed + 1);
    expect(merged.toCheckpoint, where(step, 'merged to')).toBe(processed());
    expect(merged.eventCount, where(step, 'merged events')).toBe(blocks.reduce((n, b) => n + b.events, 0));
    expect(merged.blockNumbers, where(step, 'merged block numbers')).toEqual(
      blocks.map((b) => 100 + b.checkpoint),
    );
    sentUpTo = processed();
  };

  for (let step = 0; step < 400; step++) {
    const roll = random();
    if (roll < 0.45) produce();
    else if (roll < 0.6) release();
    else if (roll < 0.8) commit();
    else if (roll < 0.95) reorg(step);
    else resendAll(step);

    // The ledger is the model.
    const batches = ledger.all;
    expect(ledger.committedCheckpoint, where(step, 'committed')).toBe(committed);
    let expectedFrom = committed + 1;
    for (const batch of batches) {
      expect(batch.fromCheckpoint, where(step, 'contiguous')).toBe(expectedFrom);
      expectedFrom = lastCheckpoint(batch).checkpointId + 1;
    }
    expect(expectedFrom - 1, where(step, 'covers what was processed')).toBe(processed());
    const recorded = batches.flatMap((b) => b.checkpoints.map((c) => c.checkpointId));
    const expectedRecorded = blocks
      .filter((b, i) => b.history || blocks[i + 1]?.batch !== b.batch)
      .map((b) => b.checkpoint);
    expect(recorded, where(step, 'recorded checkpoints')).toEqual(expectedRecorded);
    const eventsHeld = batches.reduce((n, b) => n + b.checkpoints.reduce((m, c) => m + c.eventCount, 0), 0);
    // A truncated unhistoried batch never happens (a reorg refuses it), so events add up exactly.
    expect(eventsHeld, where(step, 'events')).toBe(blocks.reduce((n, b) => n + b.events, 0));
    const liveBatches = new Set(blocks.map((b) => b.batch));
    const expectedChanges = [...liveBatches].reduce((n, id) => n + changesOf.get(id)!, 0);
    expect(ledger.changeCount, where(step, 'change count')).toBe(expectedChanges);
    expect(ledger.heldFrom(), where(step, 'held')).toBe(
      heldBatch === null ? null : batches.at(-1)!.fromCheckpoint,
    );
  }
}

const SEEDS = process.env.STRATA_LEDGER_SEED
  ? [Number(process.env.STRATA_LEDGER_SEED)]
  : Array.from({ length: 25 }, (_, i) => 1_000 + i);

describe('UncommittedLedger against a model', () => {
  for (const seed of SEEDS) {
    it(`seed ${seed} (STRATA_LEDGER_SEED=${seed} replays it)`, () => runSeed(seed));
  }
  it('refuses a batch that does not follow the last one', () => {
    const ledger = new UncommittedLedger(0);
    const batch = (from: number, to: number): UncommittedBatch => ({
      checkpoints: [{ checkpointId: to, blockNumber: to, blockHash: null, eventCount: 1, history: false }],
      isInReorgThreshold: false,
      fromCheckpoint: from,
      fromBlockNumber: from,
      blockNumbers: [],
      changeCount: 1,
      effectCache: [],
      rawBlocks: undefined,
    });
    ledger.add(batch(1, 3), false);
    expect(() => ledger.add(batch(5, 6), false)).toThrow(/does not follow 3/);
  });
});
