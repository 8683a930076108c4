// A batch is `batchSize` blocks, but never many more events than MAX_BATCH_EVENTS: 500 ingested
// blocks of 1,000 events once made one batch whose work held the processing thread past its
// ping timeout, in a restart loop until the supervisor gave up.
import { describe, expect, it } from 'vitest';
import { cutAtEvents } from '../../src/processing/processing-actor.ts';
import type { Block } from '../../src/sources/types.ts';

const block = (number: number, events: number): Block =>
  ({
    number,
    hash: null,
    parentHash: null,
    timestamp: number,
    events: Array.from({ length: events }, (_, logIndex) => ({ name: 'E', payload: {}, logIndex })),
  }) as unknown as Block;

describe('cutAtEvents', () => {
  it('keeps the first blocks within the event cap, and always at least one block', () => {
    const blocks = [block(1, 400), block(2, 400), block(3, 400)];
    expect(cutAtEvents(blocks, 1_000).map((b) => b.number)).toEqual([1, 2]);
    expect(cutAtEvents(blocks, 1_200).map((b) => b.number)).toEqual([1, 2, 3]);
    expect(cutAtEvents([block(1, 5_000), block(2, 1)], 1_000).map((b) => b.number)).toEqual([1]);
    expect(cutAtEvents([], 1_000)).toEqual([]);
  });
});
