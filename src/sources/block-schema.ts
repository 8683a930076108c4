// The shape every block must have, wherever it comes from (NDJSON files, the ingest API): checked
// once at the edge with zod so the processing path can trust it.

import { z } from 'zod';
import type { Block } from './types.ts';

export const eventSchema = z.object({
  name: z.string().min(1).max(200),
  payload: z.record(z.string(), z.unknown()),
  /** Position in the block; defaults to the event's index in `events`. */
  logIndex: z.number().int().nonnegative().optional(),
});

export const blockSchema = z.object({
  number: z.number().int().nonnegative().max(Number.MAX_SAFE_INTEGER),
  hash: z.string().min(1).max(200).nullable().optional(),
  parentHash: z.string().min(1).max(200).nullable().optional(),
  /** Unix seconds. */
  timestamp: z.number().int().nonnegative(),
  events: z.array(eventSchema),
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
