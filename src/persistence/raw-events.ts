// Raw events (a pipeline's `rawEvents: true`): every processed event as a row of
// `pipeline_<name>._raw_events`, built here at write time from the batch's blocks — processing
// pays nothing but handing the blocks over. Payloads go to jsonb as they are; a NUL byte
// (`\u0000`, refused by jsonb) costs nothing until Postgres refuses it, then the transaction is
// retried with payloads escaped (src/persistence/nul-escape.ts). A reorg rollback deletes the
// rows above its target with the entities' history.

import type { Queryable } from '../db/pool.ts';
import type { RawBlock } from '../protocol.ts';
import { pipelineSchema } from '../schema/ddl.ts';
import { escapeUnstorableInJsonText } from './nul-escape.ts';

export function rawEventsTable(pipeline: string): string {
  return `${pipelineSchema(pipeline)}."_raw_events"`;
}

export function createRawEventsTableSql(pipeline: string): string {
  return `CREATE TABLE IF NOT EXISTS ${rawEventsTable(pipeline)} (
    checkpoint_id   bigint  NOT NULL,
    block_number    bigint  NOT NULL,
    log_index       integer NOT NULL,
    block_hash      text,
    block_timestamp bigint  NOT NULL,
    name            text    NOT NULL,
    payload         jsonb   NOT NULL,
    PRIMARY KEY (checkpoint_id, log_index)
  )`;
}

/** Rows above `committedCheckpoint` only: a merged re-send may repeat committed blocks. */
export async function writeRawEvents(
  client: Queryable,
  pipeline: string,
  blocks: readonly RawBlock[],
  committedCheckpoint: number,
  escapeNul: boolean,
): Promise<number> {
  const checkpoints: number[] = [];
  const numbers: number[] = [];
  const logIndexes: number[] = [];
  const hashes: Array<string | null> = [];
  const timestamps: number[] = [];
  const names: string[] = [];
  const payloads: string[] = [];
  for (const block of blocks) {
    if (block.checkpointId <= committedCheckpoint) continue;
    for (const event of block.events) {
      checkpoints.push(block.checkpointId);
      numbers.push(block.number);
      logIndexes.push(event.logIndex);
      hashes.push(block.hash);
      timestamps.push(block.timestamp);
      names.push(event.name);
      const json = JSON.stringify(event.payload);
      payloads.push(escapeNul ? escapeUnstorableInJsonText(json) : json);
    }
  }
  if (names.length === 0) return 0;
  await client.query(
    `INSERT INTO ${rawEventsTable(pipeline)}
       (checkpoint_id, block_number, log_index, block_hash, block_timestamp, name, payload)
     SELECT * FROM unnest($1::bigint[], $2::bigint[], $3::int[], $4::text[], $5::bigint[], $6::text[], $7::jsonb[])`,
    [checkpoints, numbers, logIndexes, hashes, timestamps, names, payloads],
  );
  return names.length;
}
