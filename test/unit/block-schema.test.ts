// A block's events are checked by hand (src/sources/block-schema.ts: zod built a new object per
// event and payload, for blocks of 500,000 events too slow and too large). The zod schema they
// replaced is kept here as the model: over random seeds, blocks of random event-like values —
// good ones, and each way an event can be wrong — are accepted by `readBlock` exactly when the
// model accepts them, and an accepted block reads as the model's output (defaults filled in, extra
// keys dropped). Then the problems' paths, and the cap on how many one block reports.

import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import { MAX_LOG_INDEX, problemText, readBlock } from '../../src/sources/block-schema.ts';
import { mulberry32 } from '../../src/sources/generator.ts';

const noNul = (value: string) => !value.includes('\u0000');
const text = (max: number) => z.string().min(1).max(max).refine(noNul, 'must not contain a NUL character');
const modelEvent = z.object({
  name: text(200),
  payload: z.record(z.string(), z.unknown()),
  logIndex: z.number().int().nonnegative().max(MAX_LOG_INDEX).optional(),
});
const modelBlock = z
  .object({
    number: z.number().int().nonnegative(),
    hash: text(200).nullable().optional(),
    parentHash: text(200).nullable().optional(),
    timestamp: z.number().int().nonnegative(),
    events: z.array(modelEvent),
  })
  .superRefine((block, context) => {
    const seen = new Set<number>();
    for (const [index, event] of block.events.entries()) {
      const logIndex = event.logIndex ?? index;
      if (seen.has(logIndex)) {
        context.addIssue({ code: 'custom', path: ['events', index, 'logIndex'], message: 'twice' });
        return;
      }
      seen.add(logIndex);
    }
  });

/** What the model made of an accepted block: the form the processing path uses. */
function modelReading(value: unknown) {
  const parsed = modelBlock.safeParse(value);
  if (!parsed.success) return undefined;
  return {
    number: parsed.data.number,
    hash: parsed.data.hash ?? null,
    parentHash: parsed.data.parentHash ?? null,
    timestamp: parsed.data.timestamp,
    events: parsed.data.events.map((event, index) => ({
      name: event.name,
      payload: event.payload,
      logIndex: event.logIndex ?? index,
    })),
  };
}

function randomEvent(random: () => number, size: number): unknown {
  const pick = <T>(choices: T[]): T => choices[Math.floor(random() * choices.length)]!;
  const good = random() < 0.85; // most events are fine: a bad one must not hide among bad ones
  const names: unknown[] = ['Transfer', 'x', 'n'.repeat(200)];
  const badNames: unknown[] = ['', 'n'.repeat(201), 'a\u0000b', 7, null, undefined, ['Transfer'], {}];
  const payloads: unknown[] = [
    {},
    { from: '0x1', value: '1' },
    { nested: { deep: [1, 2] } },
    { constructor: 5 },
  ];
  const badPayloads: unknown[] = [null, [], ['a'], 'text', 3, undefined, true];
  const logIndexes: unknown[] = [undefined, undefined, Math.floor(random() * size * 2), 0, MAX_LOG_INDEX];
  const badLogIndexes: unknown[] = [-1, 1.5, MAX_LOG_INDEX + 1, '3', null, Number.NaN, true];
  if (!good && random() < 0.15) return pick<unknown>([null, [], 'Transfer', 5]);
  const wrong = good ? -1 : Math.floor(random() * 3);
  const event: Record<string, unknown> = {
    name: pick(wrong === 0 ? badNames : names),
    payload: pick(wrong === 1 ? badPayloads : payloads),
    logIndex: pick(wrong === 2 ? badLogIndexes : logIndexes),
  };
  if (random() < 0.2) event.extra = 'ignored';
  for (const key of Object.keys(event)) if (event[key] === undefined) delete event[key];
  return event;
}

describe('readBlock', () => {
  it('accepts exactly the blocks the zod schema it replaced accepted, and reads them alike', () => {
    for (let seed = 1; seed <= 400; seed++) {
      const random = mulberry32(seed);
      const size = Math.floor(random() * 6);
      const events = Array.from({ length: size }, () => randomEvent(random, size));
      const block = {
        number: seed,
        timestamp: 1_700_000_000,
        hash: random() < 0.5 ? null : `0x${seed}`,
        events,
      };
      // A JSON round trip: the ingest route and NDJSON files see parsed JSON, never `undefined`s.
      const value = JSON.parse(JSON.stringify(block));
      const expected = modelReading(value);
      const reading = readBlock(value);
      const context = `seed ${seed}: ${JSON.stringify(value)}`;
      if (expected === undefined) expect(reading.problems, context).toBeDefined();
      else expect(reading.problems?.map(problemText), context).toBeUndefined();
      if (expected !== undefined) expect(reading.block, context).toEqual(expected);
    }
  });

  it('names where each problem is, under the path it is given', () => {
    const block = (events: unknown[]) => ({ number: 4, timestamp: 1, events });
    const paths = (value: unknown) =>
      readBlock(value, ['blocks', 2]).problems?.map((problem) => problem.path.join('.'));
    expect(
      paths(
        block([
          { name: 'a', payload: {} },
          { name: '', payload: [] },
        ]),
      ),
    ).toEqual(['blocks.2.events.1.name', 'blocks.2.events.1.payload']);
    expect(
      paths(
        block([
          { name: 'a', payload: {} },
          { name: 'b', payload: {}, logIndex: 0 },
        ]),
      ),
    ).toEqual(['blocks.2.events.1.logIndex']);
    expect(paths(block([5]))).toEqual(['blocks.2.events.0']);
    expect(paths({ number: -1, timestamp: 1, events: [] })).toEqual(['blocks.2.number']);
    expect(readBlock(block([{ name: 'a\u0000', payload: {} }])).problems?.map(problemText)).toEqual([
      'events.0.name: must not contain a NUL character',
    ]);
  });

  it('reports at most 20 problems for a block of many bad events', () => {
    const events = Array.from({ length: 100_000 }, () => ({ name: 7, payload: {} }));
    const problems = readBlock({ number: 1, timestamp: 1, events }).problems!;
    expect(problems.length).toBeLessThanOrEqual(21);
    expect(problems.length).toBeGreaterThanOrEqual(20);
  });
});
