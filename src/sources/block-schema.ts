// The shape every block must have, wherever it comes from (NDJSON files, the ingest API): checked
// once at the edge so the processing path can trust it. The limits below are the ranges
// documented in docs/projects.md ("Ingest limits"); each exists because a value beyond it would be
// stored and then fail, or wedge the pipeline, later:
//  - block numbers stop at 2^50 − 1: a block at 2^53 − 1 would leave no number for the next one,
//    and `number + depth` arithmetic stays exact in a JS number;
//  - timestamps (unix seconds) stop at 9999-12-31T23:59:59Z, the last instant a JS Date, ISO 8601
//    and Postgres' timestamptz all hold (handlers turn them into Dates);
//  - log indexes fit Postgres' integer (raw events store them so) and are unique in a block (they
//    key the raw events and name the event that set a row);
//  - strings that Postgres stores as text (hashes, event names) hold no NUL.
//
// A block's fields go through zod; its events are checked by hand, in place. A block may carry
// hundreds of thousands of events, and zod builds a new object for every event and every payload
// it accepts: for one block of 500,000 transfers that was 0.8 s of the thread and ~80 MiB more
// held while the request was stored (bench/RESULTS.md, "A 1M-change transaction"). The event
// rules are few; test/unit/block-schema.test.ts holds them to the zod schema they replaced.

import { z } from 'zod';
import type { Block, SourceEvent } from './types.ts';

export const MAX_BLOCK_NUMBER = 2 ** 50 - 1;
/** 9999-12-31T23:59:59Z in unix seconds. */
export const MAX_TIMESTAMP = 253_402_300_799;
export const MAX_LOG_INDEX = 2 ** 31 - 1;
export const MAX_EVENT_NAME_LENGTH = 200;

const noNul = (value: string) => !value.includes('\u0000');
const text = (max: number) => z.string().min(1).max(max).refine(noNul, 'must not contain a NUL character');

/** A block's own fields; `events` is only checked to be an array here (see `readBlock`). */
const blockFields = z.object({
  number: z.number().int().nonnegative().max(MAX_BLOCK_NUMBER),
  hash: text(200).nullable().optional(),
  parentHash: text(200).nullable().optional(),
  /** Unix seconds. */
  timestamp: z.number().int().nonnegative().max(MAX_TIMESTAMP),
  events: z.array(z.unknown()),
});

/** One thing wrong with the input, at a path into it (`blocks.0.events.3.name`). */
export interface BlockProblem {
  path: ReadonlyArray<string | number>;
  message: string;
}

/** How many problems one block reports at most: a block of 500,000 bad events answers briefly. */
const MAX_PROBLEMS = 20;

export type BlockReading =
  | { block: Block; problems?: undefined }
  | { block?: undefined; problems: BlockProblem[] };

/**
 * Checks one block and returns it in the form the processing path uses (defaults filled in, each
 * event a new `{ name, payload, logIndex }`; payloads are the input's own objects), or what is
 * wrong with it. `path` prefixes the problems' paths (`['blocks', 3]` for a request's fourth).
 */
export function readBlock(value: unknown, path: ReadonlyArray<string | number> = []): BlockReading {
  const fields = blockFields.safeParse(value);
  if (!fields.success) {
    return {
      problems: fields.error.issues.map((issue) => ({
        path: [...path, ...(issue.path as Array<string | number>)],
        message: issue.message,
      })),
    };
  }
  const { number, timestamp, events: rawEvents } = fields.data;
  const problems: BlockProblem[] = [];
  const events: SourceEvent[] = new Array(rawEvents.length);
  let explicitLogIndexes = false;
  for (let index = 0; index < rawEvents.length && problems.length < MAX_PROBLEMS; index++) {
    const event = readEvent(rawEvents[index], index);
    if (Array.isArray(event)) {
      for (const [field, message] of event) {
        problems.push({ path: [...path, 'events', index, ...(field === '' ? [] : [field])], message });
      }
    } else {
      events[index] = event;
      if (event.logIndex !== index) explicitLogIndexes = true;
    }
  }
  if (problems.length === 0 && explicitLogIndexes) {
    // Defaults are the event's index, so an explicit index may collide with a default one too.
    // (Without an explicit index other than an event's own position, none can repeat.)
    const seen = new Set<number>();
    for (let index = 0; index < events.length; index++) {
      const { logIndex } = events[index]!;
      if (seen.has(logIndex)) {
        problems.push({
          path: [...path, 'events', index, 'logIndex'],
          message: `log index ${logIndex} appears twice in block ${number}`,
        });
        break;
      }
      seen.add(logIndex);
    }
  }
  if (problems.length > 0) return { problems };
  return {
    block: {
      number,
      hash: fields.data.hash ?? null,
      parentHash: fields.data.parentHash ?? null,
      timestamp,
      events,
    },
  };
}

/** What is wrong with an event: the field (`''`: the event itself) and the message. */
type EventProblems = Array<[field: string, message: string]>;

/** One event, or what is wrong with it. Keys other than the three are ignored. */
function readEvent(value: unknown, index: number): SourceEvent | EventProblems {
  if (!isPlainObject(value)) return [['', `expected an object, received ${describe(value)}`]];
  const { name, payload, logIndex } = value as { name?: unknown; payload?: unknown; logIndex?: unknown };
  const nameOk =
    typeof name === 'string' && name.length > 0 && name.length <= MAX_EVENT_NAME_LENGTH && noNul(name);
  const logIndexOk =
    logIndex === undefined ||
    (typeof logIndex === 'number' &&
      Number.isInteger(logIndex) &&
      logIndex >= 0 &&
      logIndex <= MAX_LOG_INDEX);
  if (nameOk && logIndexOk && isPlainObject(payload)) {
    return { name, payload, logIndex: (logIndex as number | undefined) ?? index };
  }
  const problems: EventProblems = [];
  if (typeof name !== 'string') problems.push(['name', `expected a string, received ${describe(name)}`]);
  else if (name.length === 0 || name.length > MAX_EVENT_NAME_LENGTH) {
    problems.push(['name', `must have 1 to ${MAX_EVENT_NAME_LENGTH} characters, has ${name.length}`]);
  } else if (!nameOk) problems.push(['name', 'must not contain a NUL character']);
  if (!isPlainObject(payload))
    problems.push(['payload', `expected an object, received ${describe(payload)}`]);
  if (!logIndexOk) {
    problems.push([
      'logIndex',
      `expected an integer from 0 to ${MAX_LOG_INDEX}, received ${describe(logIndex)}`,
    ]);
  }
  return problems;
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return false;
  const prototype = Object.getPrototypeOf(value);
  return prototype === Object.prototype || prototype === null;
}

function describe(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'an array';
  if (typeof value === 'number' || typeof value === 'boolean') return `${typeof value} ${value}`;
  if (typeof value === 'string') return `a string of ${value.length} characters`;
  return typeof value;
}

/** A problem as one line of an error message. */
export function problemText(problem: BlockProblem): string {
  return `${problem.path.join('.') || '(body)'}: ${problem.message}`;
}
