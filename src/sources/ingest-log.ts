// The durable ingest log: `POST /v1/pipelines/:name/events` appends blocks to
// `strata.ingest_blocks` and answers only once they are committed; the pipeline's processing
// actor reads them back in order as its source. Appends of one pipeline are serialised by a
// transaction-scoped advisory lock, so "strictly increasing block numbers" holds across
// concurrent requests and processes; a request is stored whole or not at all.

import { Readable } from 'node:stream';
import { pipeline as streamPipeline } from 'node:stream/promises';
import type pg from 'pg';
import { from as copyFrom } from 'pg-copy-streams';
import type { Db, Queryable } from '../db/pool.ts';
import { StrataError } from '../errors.ts';
import { copyField, escapeText } from '../schema/copy-text.ts';
import { type BlockSource, Waker } from './block-source.ts';
import type { Block } from './types.ts';

/**
 * A request's blocks as rows of `strata.ingest_blocks`, from `$2`: the blocks as one JSON value
 * that Postgres takes apart. (Bound as arrays instead, node-postgres escaped every block's events
 * into an array literal — for one block of 500,000 events seconds of the main thread and copies
 * of the whole request.)
 */
const REQUEST_ROWS = `(SELECT (b->>'number')::bigint AS number, b->>'hash' AS hash, b->>'parentHash' AS parent_hash,
   (b->>'timestamp')::bigint AS timestamp, b->'events' AS events
   FROM jsonb_array_elements($2::jsonb) AS b)`;

export interface AppendOptions {
  /** The pipeline's reorg threshold: a replacement branch must attach within it. */
  maxReorgDepth: number;
  /**
   * Stream the rows in with `COPY … FROM STDIN` (Postgres), built a slice of events at a time,
   * instead of one statement whose parameter is the whole request as JSON (embedded PGlite, whose
   * socket does not take COPY). For one block of 500,000 events the statement held the request's
   * JSON text two or three times over (the string, its bytes, the protocol message) and the main
   * thread for over a second; the COPY holds one slice and yields between slices.
   */
  copy: boolean;
}

export interface AppendResult {
  /** Blocks stored by this request (0 for a retry of blocks already stored). */
  stored: number;
  /** The stored head after the request. */
  head: number;
  /** A replacement branch: the first block number it replaced. */
  replacedFrom?: number;
  /** True when every block of the request was already stored, identically (a retried request). */
  alreadyStored?: boolean;
}

/**
 * Appends a request's blocks to the log, or replaces the stored tail with them (a reorg), in one
 * transaction under the pipeline's advisory lock. Everything that could wedge processing is
 * refused before anything changes (docs/projects.md, "Ingest limits"):
 *  - numbers strictly increase and hashed blocks chain (`parentHash` = the previous block's hash),
 *    within the request and onto the stored head;
 *  - a replacement branch starts with a hashed block that attaches to a stored block, no deeper
 *    than `maxReorgDepth` below the highest block the log ever held, and replaces no block stored
 *    without a hash;
 *  - a request whose blocks are all stored already, identically, is a retry: 200, nothing changes
 *    (a client whose connection dropped after COMMIT can safely send it again).
 * The log is never shortened except by an accepted replacement, atomically with it.
 */
export async function appendBlocks(
  db: Db,
  pipeline: string,
  blocks: Block[],
  options: AppendOptions,
): Promise<AppendResult> {
  checkRequestChain(pipeline, blocks);
  const first = blocks[0]!;
  const last = blocks[blocks.length - 1]!;
  return db.transaction(async (client) => {
    await client.query(`SELECT pg_advisory_xact_lock(hashtext('strata.ingest:' || $1))`, [pipeline]);
    const head = await storedHeadBlock(client, pipeline);
    let replacedFrom: number | undefined;
    if (head !== null && first.number <= head.number) {
      if (last.number <= head.number && (await allStoredIdentically(client, pipeline, blocks))) {
        return { stored: 0, head: head.number, alreadyStored: true };
      }
      await checkReplacement(client, pipeline, blocks, head.number, options.maxReorgDepth);
      await client.query('DELETE FROM strata.ingest_blocks WHERE pipeline = $1 AND number >= $2', [
        pipeline,
        first.number,
      ]);
      replacedFrom = first.number;
    } else if (head !== null && chainBreaks(head, first)) {
      throw chainBroken(
        pipeline,
        first,
        `block ${first.number} does not chain: its parentHash ${first.parentHash} is not the hash of the stored head, block ${head.number} (${head.hash}); to replace stored blocks, send the branch from its first differing block`,
      );
    }
    try {
      if (options.copy) await copyBlocks(client, pipeline, blocks);
      else {
        await client.query(
          `INSERT INTO strata.ingest_blocks (pipeline, number, hash, parent_hash, timestamp, events)
           SELECT $1, r.number, r.hash, r.parent_hash, r.timestamp, r.events FROM ${REQUEST_ROWS} AS r`,
          requestParams(pipeline, blocks),
        );
      }
    } catch (error) {
      throw refusedByDatabase(error, pipeline);
    }
    await client.query(
      `INSERT INTO strata.ingest_high_water (pipeline, number) VALUES ($1, $2)
       ON CONFLICT (pipeline) DO UPDATE SET number = greatest(strata.ingest_high_water.number, EXCLUDED.number)`,
      [pipeline, last.number],
    );
    return {
      stored: blocks.length,
      head: last.number,
      ...(replacedFrom === undefined ? {} : { replacedFrom }),
    };
  });
}

/** Numbers increase strictly and hashed blocks chain, inside the request. */
function checkRequestChain(pipeline: string, blocks: Block[]): void {
  for (let i = 1; i < blocks.length; i++) {
    const previous = blocks[i - 1]!;
    const block = blocks[i]!;
    if (block.number <= previous.number) {
      throw outOfOrder(`block ${block.number} follows block ${previous.number} in the request`, pipeline);
    }
    if (chainBreaks(previous, block)) {
      throw chainBroken(
        pipeline,
        block,
        `block ${block.number} does not chain: its parentHash ${block.parentHash} is not the hash of block ${previous.number} before it in the request (${previous.hash})`,
      );
    }
  }
}

/** A block names a parent hash that is not its predecessor's (both known). */
/**
 * A block does not name its predecessor's hash. Once blocks carry hashes, the next one must name
 * its parent: a block without a parentHash after a hashed one could follow a branch processing has
 * not seen (a replacement stored under it), and nothing would tell.
 */
function chainBreaks(previous: { hash: string | null }, block: Block): boolean {
  return previous.hash !== null && block.parentHash !== previous.hash;
}

/**
 * A replacement branch must be one a processing actor can roll back to and find the fork in:
 *  - every block carries a hash and a parentHash (processing finds the fork by them wherever its
 *    reading stands on the old branch);
 *  - its first block attaches to a stored block by its parent hash;
 *  - it replaces no block stored without a hash (those were processed without history);
 *  - it lies no deeper than maxReorgDepth below the highest block the log has held (blocks below
 *    that may have been processed without history).
 * One query reads the parent, the high-water mark and the first unhashed stored block it would
 * replace.
 */
async function checkReplacement(
  client: Queryable,
  pipeline: string,
  blocks: Block[],
  head: number,
  maxReorgDepth: number,
): Promise<void> {
  const first = blocks[0]!;
  const unhashedSent = blocks.find((block) => block.hash === null || block.parentHash === null);
  if (unhashedSent === first) {
    throw outOfOrder(
      `block ${first.number} is not above the stored head ${head} (a replacement branch needs hash and parentHash)`,
      pipeline,
    );
  }
  if (unhashedSent !== undefined) {
    throw chainBroken(
      pipeline,
      unhashedSent,
      `block ${unhashedSent.number} of a replacement branch has no ${unhashedSent.hash === null ? 'hash' : 'parentHash'}; every block of a replacement branch needs both`,
    );
  }
  const { rows } = await client.query<{
    parent_number: string | null;
    parent_hash: string | null;
    high_water: string | null;
    unhashed: string | null;
  }>(
    `SELECT parent.number AS parent_number, parent.hash AS parent_hash,
            (SELECT number FROM strata.ingest_high_water WHERE pipeline = $1) AS high_water,
            (SELECT min(number) FROM strata.ingest_blocks
              WHERE pipeline = $1 AND number >= $2 AND hash IS NULL) AS unhashed
       FROM (SELECT 1) AS one
       LEFT JOIN LATERAL (SELECT number, hash FROM strata.ingest_blocks
                           WHERE pipeline = $1 AND number < $2 ORDER BY number DESC LIMIT 1) AS parent ON true`,
    [pipeline, first.number],
  );
  const found = rows[0]!;
  if (found.parent_number === null) {
    throw chainBroken(
      pipeline,
      first,
      `replacement block ${first.number} attaches to no stored block (nothing is stored below it); a replacement branch starts above a block it keeps`,
    );
  }
  if (found.parent_hash !== first.parentHash) {
    throw chainBroken(
      pipeline,
      first,
      `replacement block ${first.number} does not attach to the stored chain: its parentHash ${first.parentHash} is not the hash of stored block ${found.parent_number} (${found.parent_hash})`,
    );
  }
  if (found.unhashed !== null) {
    throw chainBroken(
      pipeline,
      first,
      `replacement block ${first.number} would replace stored block ${found.unhashed}, which has no hash; blocks without hashes cannot be replaced`,
    );
  }
  const highest = Math.max(head, Number(found.high_water ?? head));
  const depth = highest - Number(found.parent_number);
  if (depth > maxReorgDepth) {
    throw new StrataError(
      'STRATA_ERR_REPLACEMENT_TOO_DEEP',
      `replacement block ${first.number} would roll back ${depth} blocks (to block ${found.parent_number}, from block ${highest}), more than the pipeline's maxReorgDepth ${maxReorgDepth}; nothing was changed`,
      {
        details: {
          pipeline,
          block: first.number,
          ancestor: Number(found.parent_number),
          highest,
          maxReorgDepth,
        },
      },
    );
  }
}

/** Every block of the request is stored with the same hash, parent, timestamp and events. */
async function allStoredIdentically(client: Queryable, pipeline: string, blocks: Block[]): Promise<boolean> {
  try {
    const { rows } = await client.query<{ same: number }>(
      `SELECT count(*)::int AS same
         FROM ${REQUEST_ROWS} AS r
         JOIN strata.ingest_blocks b
           ON b.pipeline = $1 AND b.number = r.number AND b.timestamp = r.timestamp
          AND b.hash IS NOT DISTINCT FROM r.hash AND b.parent_hash IS NOT DISTINCT FROM r.parent_hash
          AND b.events = r.events`,
      requestParams(pipeline, blocks),
    );
    return rows[0]?.same === blocks.length;
  } catch (error) {
    throw refusedByDatabase(error, pipeline);
  }
}

/** `$1` the pipeline, `$2` its request's blocks (see REQUEST_ROWS). */
function requestParams(pipeline: string, blocks: Block[]): unknown[] {
  const stored = blocks.map(({ number, hash, parentHash, timestamp, events }) => ({
    number,
    hash,
    parentHash,
    timestamp,
    events,
  }));
  return [pipeline, JSON.stringify(stored)];
}

/** Characters of COPY text sent per write: large enough that the per-write cost vanishes. */
const COPY_SLICE_CHARS = 1 << 20;

/**
 * The blocks as rows of `strata.ingest_blocks` through COPY, a block's events written out as its
 * JSON array a slice at a time. Each event is stored as `{ name, payload, logIndex }`, what the
 * statement path stores too (the retry check compares the two as jsonb). JSON.stringify escapes
 * every control character, so of COPY's specials only backslashes occur in the JSON text.
 */
async function copyBlocks(client: pg.PoolClient, pipeline: string, blocks: Block[]): Promise<void> {
  // Small blocks share a slice: a request of 10,000 blocks is a few writes, not 10,000.
  function* slices(): Generator<string> {
    let text = '';
    for (const block of blocks) {
      text += `${copyField(pipeline)}\t${block.number}\t${copyField(block.hash)}\t${copyField(block.parentHash)}\t${block.timestamp}\t[`;
      for (let index = 0; index < block.events.length; index++) {
        const { name, payload, logIndex } = block.events[index]!;
        if (index > 0) text += ',';
        text += escapeText(JSON.stringify({ name, payload, logIndex }));
        if (text.length >= COPY_SLICE_CHARS) {
          yield text;
          text = '';
        }
      }
      text += ']\n';
    }
    yield text;
  }
  await streamPipeline(
    Readable.from(slices()),
    client.query(
      copyFrom(
        'COPY strata.ingest_blocks (pipeline, number, hash, parent_hash, timestamp, events) FROM STDIN',
      ),
    ),
  );
}

/** 22P05: a \u0000 in a payload (jsonb cannot hold it); 22021/22P02: invalid text or a lone surrogate. */
function refusedByDatabase(error: unknown, pipeline: string): unknown {
  const code = (error as { code?: string }).code;
  if (code === '22P05' || code === '22021' || code === '22P02') {
    return new StrataError(
      'STRATA_ERR_BLOCK_INVALID',
      `blocks rejected by the database: ${(error as Error).message}`,
      {
        cause: error,
        details: { pipeline },
      },
    );
  }
  return error;
}

async function storedHeadBlock(
  db: Queryable,
  pipeline: string,
): Promise<{ number: number; hash: string | null } | null> {
  const { rows } = await db.query<{ number: string; hash: string | null }>(
    'SELECT number, hash FROM strata.ingest_blocks WHERE pipeline = $1 ORDER BY number DESC LIMIT 1',
    [pipeline],
  );
  const row = rows[0];
  return row === undefined ? null : { number: Number(row.number), hash: row.hash };
}

async function storedHead(db: Queryable, pipeline: string): Promise<number | null> {
  return (await storedHeadBlock(db, pipeline))?.number ?? null;
}

function outOfOrder(message: string, pipeline: string): StrataError {
  return new StrataError('STRATA_ERR_BLOCK_OUT_OF_ORDER', message, { details: { pipeline } });
}

function chainBroken(pipeline: string, block: Block, message: string): StrataError {
  return new StrataError('STRATA_ERR_BLOCK_CHAIN_BROKEN', message, {
    details: { pipeline, block: block.number, parentHash: block.parentHash },
  });
}

/** The ingest log as a block source. Woken by the ingest route; polls as a fallback. */
export class IngestLogSource implements BlockSource {
  readonly finite = false;
  private readonly db: Queryable;
  private readonly pipeline: string;
  private readonly waker = new Waker();
  private knownHead: number | null = null;

  constructor(db: Queryable, pipeline: string) {
    this.db = db;
    this.pipeline = pipeline;
  }

  async read(after: number, max: number): Promise<Block[]> {
    const { rows } = await this.db.query<{
      number: string;
      hash: string | null;
      parent_hash: string | null;
      timestamp: string;
      events: Block['events'];
    }>(
      `SELECT number, hash, parent_hash, timestamp, events FROM strata.ingest_blocks
        WHERE pipeline = $1 AND number > $2 ORDER BY number LIMIT $3`,
      [this.pipeline, after, max],
    );
    const blocks = rows.map((row) => ({
      number: Number(row.number),
      hash: row.hash,
      parentHash: row.parent_hash,
      timestamp: Number(row.timestamp),
      events: row.events,
    }));
    // The head decides the reorg threshold, so it is the stored head, not the last block read:
    // a short read reached it; a full one asks (one backwards index probe).
    const last = blocks[blocks.length - 1];
    if (last !== undefined && blocks.length < max) this.knownHead = last.number;
    else this.knownHead = await storedHead(this.db, this.pipeline);
    return blocks;
  }

  async hashAt(number: number): Promise<string | null | undefined> {
    const { rows } = await this.db.query<{ hash: string | null }>(
      'SELECT hash FROM strata.ingest_blocks WHERE pipeline = $1 AND number = $2',
      [this.pipeline, number],
    );
    return rows[0]?.hash;
  }

  head(): number | null {
    return this.knownHead;
  }

  waitForMore(ms: number): Promise<void> {
    return this.waker.wait(ms);
  }

  wake(): void {
    this.waker.wake();
  }

  async close(): Promise<void> {
    this.waker.wake();
  }
}
