// Preparing a pipeline's storage before its first write: the pipeline's row in
// `strata.pipelines`, its Postgres schema and entity tables (generated from the schema
// declaration), and the fingerprint check that refuses to resume over data built from a
// different schema or source — with a message that says what changed and how to reset.

import pg from 'pg';
import type { PipelineConfig } from '../config.ts';
import { refuseWhileOwned } from '../coordination/lease-store.ts';
import type { Queryable } from '../db/pool.ts';
import { StrataError } from '../errors.ts';
import { deletePipeline, markIndexesReady, readBuild, recordBuild } from '../pipeline/checkpoint-store.ts';
import { pipelineFingerprint } from '../pipeline/fingerprint.ts';
import {
  createPipelineIndexes,
  createPipelineTables,
  dropPipelineTables,
  fingerprintChanges,
  fingerprintHash,
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
  const existing = await readBuild(db, pipeline.name);
  if (existing?.fingerprintHash != null && existing.fingerprintHash !== hash) {
    const changes =
      existing.fingerprint === null ? ['(unknown)'] : fingerprintChanges(existing.fingerprint, fingerprint);
    throw new StrataError(
      'STRATA_ERR_SCHEMA_CHANGED',
      `pipeline ${pipeline.name} was built with a different schema or source:\n${changes.map((c) => `  - ${c}`).join('\n')}\n` +
        `Its tables no longer match. To rebuild it from its source, run: strata reset ${pipeline.name}`,
      { details: { pipeline: pipeline.name, changes } },
    );
  }
  const indexesNow = !pipeline.deferIndexes || existing?.indexesReady === true;
  await createPipelineTables(db, pipeline.name, schema, { indexes: indexesNow });
  if (pipeline.rawEvents) await db.query(createRawEventsTableSql(pipeline.name));
  await recordBuild(db, pipeline.name, hash, fingerprint, indexesNow);
  return { indexesReady: indexesNow };
}

/** Builds the deferred secondary indexes and records that they exist. */
export async function buildDeferredIndexes(db: Queryable, pipeline: string, schema: Schema): Promise<void> {
  await createPipelineIndexes(db, pipeline, schema);
  await markIndexesReady(db, pipeline);
}

/**
 * `strata reset <pipeline>`: drops the pipeline's schema and its progress (checkpoints cascade),
 * so the next start rebuilds it from its source. The ingest log is kept: it is the source.
 * Refused while a live process holds the pipeline's lease (its lease row stays locked until done).
 */
export async function resetPipeline(url: string, pipeline: string): Promise<void> {
  const client = new pg.Client({ connectionString: url });
  // Without a listener a connection lost between statements would throw from an event emitter.
  client.on('error', () => undefined);
  await client.connect();
  try {
    await client.query('BEGIN');
    await client.query(`SELECT pg_advisory_xact_lock(hashtext('strata.pipeline-ddl'))`);
    await refuseWhileOwned(client, pipeline, 'reset');
    await dropPipelineTables(client, pipeline);
    await deletePipeline(client, pipeline);
    await client.query('COMMIT');
  } finally {
    await client.end();
  }
}
