// The shape every block must have, wherever it comes from (NDJSON files, the ingest API): checked
// once at the edge with zod so the processing path can trust it. The limits below are the ranges
// documented in docs/projects.md ("Ingest limits"); each exists because a value beyond it would be
// stored and then fail, or wedge the pipeline, later:
//  - block numbers stop at 2^50 − 1: a block at 2^53 − 1 would leave no number for the next one,
//    and `number + depth` arithmetic stays exact in a JS number;
//  - timestamps (unix seconds) stop at 9999-12-31T23:59:59Z, the last instant a JS Date, ISO 8601
//    and Postgres' timestamptz all hold (handlers turn them into Dates);
//  - log indexes fit Postgres' integer (raw events store them so) and are unique in a block (they
//    key the raw events and name the event that set a row);
//  - strings that Postgres stores as text (hashes, event names) hold no NUL.

import { z } from 'zod';
import type { Block } from './types.ts';

export const MAX_BLOCK_NUMBER = 2 ** 50 - 1;
/** 9999-12-31T23:59:59Z in unix seconds. */
export const MAX_TIMESTAMP = 253_402_300_799;
export const MAX_LOG_INDEX = 2 ** 31 - 1;

const noNul = (value: string) => !value.includes('\u0000');
const text = (max: number) => z.string().min(1).max(max).refine(noNul, 'must not contain a NUL character');

export const eventSchema = z.object({
  name: text(200),
  payload: z.record(z.string(), z.unknown()),
  /** Position in the block; defaults to the event's index in `events`. */
  logIndex: z.number().int().nonnegative().max(MAX_LOG_INDEX).optional(),
});

export const blockSchema = z
  .object({
    number: z.number().int().nonnegative().max(MAX_BLOCK_NUMBER),
    hash: text(200).nullable().optional(),
    parentHash: text(200).nullable().optional(),
    /** Unix seconds. */
    timestamp: z.number().int().nonnegative().max(MAX_TIMESTAMP),
    events: z.array(eventSchema),
  })
  .superRefine((block, context) => {
    // Defaults are the event's index, so an explicit index may collide with a default one too.
    const seen = new Set<number>();
    for (const [index, event] of block.events.entries()) {
      const logIndex = event.logIndex ?? index;
      if (seen.has(logIndex)) {
        context.addIssue({
          code: 'custom',
          path: ['events', index, 'logIndex'],
          message: `log index ${logIndex} appears twice in block ${block.number}`,
        });
        return;
      }
      seen.add(logIndex);
    }
  });

type ParsedBlock = z.output<typeof blockSchema>;

/** A validated block in the form the processing path uses (defaults filled in). */
export function toBlock(parsed: ParsedBlock): Block {
  return {
    number: parsed.number,
    hash: parsed.hash ?? null,
    parentHash: parsed.parentHash ?? null,
    timestamp: parsed.timestamp,
    events: parsed.events.map((event, index) => ({
      name: event.name,
      payload: event.payload,
      logIndex: event.logIndex ?? index,
    })),
  };
}
