// Preparing a pipeline's storage before its first write: the pipeline's row in
// `strata.pipelines`, its Postgres schema and entity tables (generated from the schema
// declaration), and the fingerprint check that refuses to resume over data built from a
// different schema or source — with a message that says what changed and how to reset.

import pg from 'pg';
import type { PipelineConfig } from '../config.ts';
import type { Queryable } from '../db/pool.ts';
import { StrataError } from '../errors.ts';
import { pipelineFingerprint } from '../pipeline/fingerprint.ts';
import {
  createPipelineIndexes,
  createPipelineTables,
  dropPipelineTables,
  fingerprintChanges,
  fingerprintHash,
  type PipelineFingerprint,
} from '../schema/ddl.ts';
import type { Schema } from '../schema/define-schema.ts';
import { createRawEventsTableSql } from './raw-events.ts';

/** Run inside one transaction holding the pipeline DDL advisory lock. */
export async function preparePipeline(
  db: Queryable,
  pipeline: PipelineConfig,
  schema: Schema,
): Promise<{ indexesReady: boolean }> {
  const fingerprint = pipelineFingerprint(pipeline, schema);
  const hash = fingerprintHash(fingerprint);
  const { rows } = await db.query<{
    fingerprint_hash: string | null;
    fingerprint: PipelineFingerprint | null;
    indexes_ready: boolean;
  }>('SELECT fingerprint_hash, fingerprint, indexes_ready FROM strata.pipelines WHERE name = $1', [
    pipeline.name,
  ]);
  const existing = rows[0];
  if (existing?.fingerprint_hash != null && existing.fingerprint_hash !== hash) {
    const changes =
      existing.fingerprint === null ? ['(unknown)'] : fingerprintChanges(existing.fingerprint, fingerprint);
    throw new StrataError(
      'STRATA_ERR_SCHEMA_CHANGED',
      `pipeline ${pipeline.name} was built with a different schema or source:\n${changes.map((c) => `  - ${c}`).join('\n')}\n` +
        `Its tables no longer match. To rebuild it from its source, run: strata reset ${pipeline.name}`,
      { details: { pipeline: pipeline.name, changes } },
    );
  }
  const indexesNow = !pipeline.deferIndexes || existing?.indexes_ready === true;
  await createPipelineTables(db, pipeline.name, schema, { indexes: indexesNow });
  if (pipeline.rawEvents) await db.query(createRawEventsTableSql(pipeline.name));
  await db.query(
    `INSERT INTO strata.pipelines (name, fingerprint_hash, fingerprint, indexes_ready) VALUES ($1, $2, $3, $4)
     ON CONFLICT (name) DO UPDATE SET fingerprint_hash = EXCLUDED.fingerprint_hash, fingerprint = EXCLUDED.fingerprint,
       indexes_ready = EXCLUDED.indexes_ready`,
    [pipeline.name, hash, JSON.stringify(fingerprint), indexesNow],
  );
  return { indexesReady: indexesNow };
}

/** Builds the deferred secondary indexes and records that they exist. */
export async function buildDeferredIndexes(db: Queryable, pipeline: string, schema: Schema): Promise<void> {
  await createPipelineIndexes(db, pipeline, schema);
  await db.query('UPDATE strata.pipelines SET indexes_ready = true WHERE name = $1', [pipeline]);
}

/**
 * `strata reset <pipeline>`: drops the pipeline's schema and its progress (checkpoints cascade),
 * so the next start rebuilds it from its source. The ingest log is kept: it is the source.
 */
export async function resetPipeline(url: string, pipeline: string): Promise<void> {
  const client = new pg.Client({ connectionString: url });
  // Without a listener a connection lost between statements would throw from an event emitter.
  client.on('error', () => undefined);
  await client.connect();
  try {
    await client.query('BEGIN');
    await client.query(`SELECT pg_advisory_xact_lock(hashtext('strata.pipeline-ddl'))`);
    await dropPipelineTables(client, pipeline);
    await client.query('DELETE FROM strata.pipelines WHERE name = $1', [pipeline]);
    await client.query('COMMIT');
  } finally {
    await client.end();
  }
}
