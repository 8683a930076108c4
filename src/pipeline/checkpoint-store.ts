// Every statement on `strata.pipelines` and `strata.checkpoints`, in one place: a pipeline's row
// (fingerprint, deferred indexes, committed checkpoint, chain metadata) and the checkpoints the
// writer records (every block's inside the reorg threshold, else a batch's last). The writer,
// pipeline setup, `strata reset` and the processing actor's resume all come here, so the guarded
// advance of the committed checkpoint — the single-writer check — is written once.
//
// Each function takes the connection or transaction client to run on: the writer calls them inside
// its batch transaction, the processing actor on its own pool.

import type { Queryable } from '../db/pool.ts';
import { StrataError } from '../errors.ts';
import type { BatchCheckpoint, ChainMetadata } from '../protocol.ts';
import type { PipelineFingerprint } from '../schema/ddl.ts';

/** What a pipeline's row says about how it was built. */
export interface StoredBuild {
  fingerprintHash: string | null;
  fingerprint: PipelineFingerprint | null;
  indexesReady: boolean;
}

export async function readBuild(db: Queryable, pipeline: string): Promise<StoredBuild | undefined> {
  const { rows } = await db.query<{
    fingerprint_hash: string | null;
    fingerprint: PipelineFingerprint | null;
    indexes_ready: boolean;
  }>('SELECT fingerprint_hash, fingerprint, indexes_ready FROM strata.pipelines WHERE name = $1', [pipeline]);
  const row = rows[0];
  if (row === undefined) return undefined;
  return {
    fingerprintHash: row.fingerprint_hash,
    fingerprint: row.fingerprint,
    indexesReady: row.indexes_ready,
  };
}

/** Creates the pipeline's row, or records a new build of it (progress is kept). */
export async function recordBuild(
  db: Queryable,
  pipeline: string,
  fingerprintHash: string,
  fingerprint: PipelineFingerprint,
  indexesReady: boolean,
): Promise<void> {
  await db.query(
    `INSERT INTO strata.pipelines (name, fingerprint_hash, fingerprint, indexes_ready) VALUES ($1, $2, $3, $4)
     ON CONFLICT (name) DO UPDATE SET fingerprint_hash = EXCLUDED.fingerprint_hash, fingerprint = EXCLUDED.fingerprint,
       indexes_ready = EXCLUDED.indexes_ready`,
    [pipeline, fingerprintHash, JSON.stringify(fingerprint), indexesReady],
  );
}

export async function markIndexesReady(db: Queryable, pipeline: string): Promise<void> {
  await db.query('UPDATE strata.pipelines SET indexes_ready = true WHERE name = $1', [pipeline]);
}

/** Forgets the pipeline's progress (its checkpoints cascade). */
export async function deletePipeline(db: Queryable, pipeline: string): Promise<void> {
  await db.query('DELETE FROM strata.pipelines WHERE name = $1', [pipeline]);
}

/** Where a pipeline's storage stands: what the writer and the processing actor resume from. */
export interface CommittedPoint {
  pipeline: string;
  committedCheckpoint: number;
  /** -1: nothing committed yet. */
  committedBlock: number;
  /** Whether the committed checkpoint was written with history (a rollback may start there). */
  history: boolean;
  /** Committed transactions so far (writes and rollbacks): the `tx` of live shapes' offsets. */
  commitSequence: number;
}

export async function readCommitted(db: Queryable, pipelines: string[]): Promise<CommittedPoint[]> {
  const { rows } = await db.query<{
    name: string;
    committed_checkpoint: string;
    committed_block: string | null;
    history: boolean | null;
    commit_sequence: string;
  }>(
    `SELECT p.name, p.committed_checkpoint, p.committed_block, c.history, p.commit_sequence FROM strata.pipelines p
       LEFT JOIN strata.checkpoints c ON c.pipeline = p.name AND c.checkpoint_id = p.committed_checkpoint
      WHERE p.name = ANY($1)`,
    [pipelines],
  );
  return rows.map((row) => ({
    pipeline: row.name,
    committedCheckpoint: Number(row.committed_checkpoint),
    committedBlock: row.committed_block === null ? -1 : Number(row.committed_block),
    history: row.history === true,
    commitSequence: Number(row.commit_sequence),
  }));
}

/** A recorded checkpoint as a reorg's common ancestor is looked for. */
export interface RecordedBlock {
  checkpointId: number;
  number: number;
  hash: string | null;
}

/** The last `limit` recorded checkpoints, oldest first. */
export async function recentCheckpoints(
  db: Queryable,
  pipeline: string,
  limit: number,
): Promise<RecordedBlock[]> {
  const { rows } = await db.query<{ checkpoint_id: string; block_number: string; block_hash: string | null }>(
    `SELECT checkpoint_id, block_number, block_hash FROM strata.checkpoints
      WHERE pipeline = $1 ORDER BY checkpoint_id DESC LIMIT $2`,
    [pipeline, limit],
  );
  return rows.reverse().map((row) => ({
    checkpointId: Number(row.checkpoint_id),
    number: Number(row.block_number),
    hash: row.block_hash,
  }));
}

/** Checkpoints at and above `fromCheckpoint`, in order (what a rollback undoes). */
export async function checkpointsFrom(
  db: Queryable,
  pipeline: string,
  fromCheckpoint: number,
): Promise<BatchCheckpoint[]> {
  const { rows } = await db.query<{
    checkpoint_id: string;
    block_number: string;
    block_hash: string | null;
    event_count: number;
    history: boolean;
  }>(
    `SELECT checkpoint_id, block_number, block_hash, event_count, history FROM strata.checkpoints
      WHERE pipeline = $1 AND checkpoint_id >= $2 ORDER BY checkpoint_id`,
    [pipeline, fromCheckpoint],
  );
  return rows.map((row) => ({
    checkpointId: Number(row.checkpoint_id),
    blockNumber: Number(row.block_number),
    blockHash: row.block_hash,
    eventCount: row.event_count,
    history: row.history,
  }));
}

/** Records a run's checkpoints (a re-sent one already recorded is kept as it is). */
export async function recordCheckpoints(
  db: Queryable,
  pipeline: string,
  checkpoints: readonly BatchCheckpoint[],
): Promise<void> {
  await db.query(
    `INSERT INTO strata.checkpoints (pipeline, checkpoint_id, block_number, block_hash, event_count, history)
     SELECT $1, * FROM unnest($2::bigint[], $3::bigint[], $4::text[], $5::int[], $6::boolean[])
     ON CONFLICT DO NOTHING`,
    [
      pipeline,
      checkpoints.map((c) => c.checkpointId),
      checkpoints.map((c) => c.blockNumber),
      checkpoints.map((c) => c.blockHash),
      checkpoints.map((c) => c.eventCount),
      checkpoints.map((c) => c.history),
    ],
  );
}

export async function deleteCheckpointsAbove(
  db: Queryable,
  pipeline: string,
  checkpoint: number,
): Promise<void> {
  await db.query('DELETE FROM strata.checkpoints WHERE pipeline = $1 AND checkpoint_id > $2', [
    pipeline,
    checkpoint,
  ]);
}

/** The last checkpoint at or below `block`, or null. */
export async function lastCheckpointAtOrBelow(
  db: Queryable,
  pipeline: string,
  block: number,
): Promise<number | null> {
  const { rows } = await db.query<{ safe: string | null }>(
    'SELECT max(checkpoint_id) AS safe FROM strata.checkpoints WHERE pipeline = $1 AND block_number <= $2',
    [pipeline, block],
  );
  return rows[0]?.safe == null ? null : Number(rows[0].safe);
}

/** History pruning: the per-block checkpoints below `checkpoint` can no longer be rolled back to. */
export async function pruneHistoryCheckpoints(
  db: Queryable,
  pipeline: string,
  checkpoint: number,
): Promise<void> {
  await db.query('DELETE FROM strata.checkpoints WHERE pipeline = $1 AND checkpoint_id < $2 AND history', [
    pipeline,
    checkpoint,
  ]);
}

/** Moving the committed checkpoint, forwards (a write) or back (a rollback). */
export interface CommitAdvance {
  pipeline: string;
  /** The committed checkpoint the writer believes is stored: anything else means another writer. */
  expected: number;
  toCheckpoint: number;
  toBlockNumber: number;
  toBlockHash: string | null;
  /** Added to `events_processed` (negative for a rollback). */
  eventDelta: number;
}

/**
 * Moves the committed checkpoint, guarded by the one the writer expects: if the row holds another,
 * someone else wrote the pipeline, and the transaction must not commit. Counts the transaction in
 * the pipeline's commit sequence and returns the new value.
 */
export async function advanceCommitted(db: Queryable, advance: CommitAdvance): Promise<number> {
  const updated = await db.query<{ commit_sequence: string }>(
    `UPDATE strata.pipelines
        SET committed_checkpoint = $2, committed_block = $3, committed_block_hash = $4,
            events_processed = events_processed + $5, commit_sequence = commit_sequence + 1,
            updated_at = now()
      WHERE name = $1 AND committed_checkpoint = $6
  RETURNING commit_sequence`,
    [
      advance.pipeline,
      advance.toCheckpoint,
      advance.toBlockNumber,
      advance.toBlockHash,
      advance.eventDelta,
      advance.expected,
    ],
  );
  if (updated.rowCount !== 1) {
    throw new StrataError(
      'STRATA_ERR_WRITE_FAILED',
      `pipeline ${advance.pipeline} was written by someone else (expected committed checkpoint ${advance.expected})`,
      { details: { pipeline: advance.pipeline, expected: advance.expected } },
    );
  }
  return Number(updated.rows[0]!.commit_sequence);
}

/** Writes one pipeline's chain metadata; the first-event and ready-at times keep their first value. */
export async function writeChainMetadata(db: Queryable, metadata: ChainMetadata): Promise<void> {
  await db.query(
    `UPDATE strata.pipelines
        SET source_head_block = $2, processed_block = $3,
            first_event_at = COALESCE(first_event_at, to_timestamp($4::double precision / 1000)),
            ready_at = COALESCE(ready_at, to_timestamp($5::double precision / 1000)),
            metadata_at = to_timestamp($6::double precision / 1000)
      WHERE name = $1`,
    [
      metadata.pipeline,
      metadata.sourceHeadBlock,
      metadata.processedBlock,
      metadata.firstEventAt,
      metadata.readyAt,
      metadata.stagedAt,
    ],
  );
}
