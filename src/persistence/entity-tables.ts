// DDL of a pipeline's own schema. Each pipeline's entities live in `pipeline_<name>`, apart from
// Strata's core tables in `strata`. The slice has one fixed entity table; the processing engine
// generates these from the project's schema declaration.

import type { Queryable } from '../db/pool.ts';

export const accountTable = 'account_total';

/** The pipeline's schema, quoted. Pipeline names are validated (^[a-z][a-z0-9_]*$) by config. */
export function pipelineSchema(pipeline: string): string {
  return `"pipeline_${pipeline}"`;
}

export async function ensurePipelineTables(db: Queryable, pipeline: string): Promise<void> {
  const schema = pipelineSchema(pipeline);
  await db.query(`CREATE SCHEMA IF NOT EXISTS ${schema}`);
  await db.query(`CREATE TABLE IF NOT EXISTS ${schema}.${accountTable} (
    id            text PRIMARY KEY,
    credited      numeric NOT NULL,
    debited       numeric NOT NULL,
    events        integer NOT NULL,
    checkpoint_id bigint  NOT NULL
  )`);
  await db.query('INSERT INTO strata.pipelines (name) VALUES ($1) ON CONFLICT (name) DO NOTHING', [pipeline]);
}
