// The durable ingest log: `POST /v1/pipelines/:name/events` appends blocks to
// `strata.ingest_blocks` and answers only once they are committed; the pipeline's processing
// actor reads them back in order as its source. Appends of one pipeline are serialised by a
// transaction-scoped advisory lock, so "strictly increasing block numbers" holds across
// concurrent requests and processes; a request is stored whole or not at all.

import type { Db, Queryable } from '../db/pool.ts';
import { StrataError } from '../errors.ts';
import { type BlockSource, Waker } from './block-source.ts';
import type { Block } from './types.ts';

export async function appendBlocks(
  db: Db,
  pipeline: string,
  blocks: Block[],
): Promise<{ stored: number; head: number }> {
  for (let i = 1; i < blocks.length; i++) {
    if (blocks[i]!.number <= blocks[i - 1]!.number) {
      throw outOfOrder(
        `block ${blocks[i]!.number} follows block ${blocks[i - 1]!.number} in the request`,
        pipeline,
      );
    }
  }
  return db.transaction(async (client) => {
    await client.query(`SELECT pg_advisory_xact_lock(hashtext('strata.ingest:' || $1))`, [pipeline]);
    const head = await storedHead(client, pipeline);
    const first = blocks[0]!;
    if (head !== null && first.number <= head) {
      // A replacement branch (a reorg): blocks with hashes, attached to the stored chain by the
      // first one's parent hash, replace every stored block from its number on. Streams without
      // hashes cannot reorg, so for them this stays an ordering error.
      if (first.hash === null || first.parentHash === null) {
        throw outOfOrder(
          `block ${first.number} is not above the stored head ${head} (a replacement branch needs hash and parentHash)`,
          pipeline,
        );
      }
      const parent = await client.query<{ number: string; hash: string | null }>(
        `SELECT number, hash FROM strata.ingest_blocks WHERE pipeline = $1 AND number < $2
          ORDER BY number DESC LIMIT 1`,
        [pipeline, first.number],
      );
      const stored = parent.rows[0];
      if (stored !== undefined && stored.hash !== first.parentHash) {
        throw new StrataError(
          'STRATA_ERR_BLOCK_INVALID',
          `replacement block ${first.number} does not attach to the stored chain: its parentHash ${first.parentHash} is not the hash of stored block ${stored.number} (${stored.hash})`,
          { details: { pipeline, block: first.number } },
        );
      }
      await client.query('DELETE FROM strata.ingest_blocks WHERE pipeline = $1 AND number >= $2', [
        pipeline,
        first.number,
      ]);
    }
    try {
      await client.query(
        `INSERT INTO strata.ingest_blocks (pipeline, number, hash, parent_hash, timestamp, events)
         SELECT $1, * FROM unnest($2::bigint[], $3::text[], $4::text[], $5::bigint[], $6::jsonb[])`,
        [
          pipeline,
          blocks.map((block) => block.number),
          blocks.map((block) => block.hash),
          blocks.map((block) => block.parentHash),
          blocks.map((block) => block.timestamp),
          blocks.map((block) => JSON.stringify(block.events)),
        ],
      );
    } catch (error) {
      // 22P05: a \u0000 in a payload (jsonb cannot hold it); 22021/22P02: invalid text.
      const code = (error as { code?: string }).code;
      if (code === '22P05' || code === '22021' || code === '22P02') {
        throw new StrataError(
          'STRATA_ERR_BLOCK_INVALID',
          `blocks rejected by the database: ${(error as Error).message}`,
          {
            cause: error,
            details: { pipeline },
          },
        );
      }
      throw error;
    }
    return { stored: blocks.length, head: blocks[blocks.length - 1]!.number };
  });
}

async function storedHead(db: Queryable, pipeline: string): Promise<number | null> {
  const { rows } = await db.query<{ head: string | null }>(
    'SELECT max(number) AS head FROM strata.ingest_blocks WHERE pipeline = $1',
    [pipeline],
  );
  return rows[0]?.head === null || rows[0]?.head === undefined ? null : Number(rows[0].head);
}

function outOfOrder(message: string, pipeline: string): StrataError {
  return new StrataError('STRATA_ERR_BLOCK_OUT_OF_ORDER', message, { details: { pipeline } });
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
