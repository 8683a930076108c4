// DDL of a pipeline's own Postgres schema, generated from the project's schema declaration, and
// the fingerprint that stops a resume over tables built from a different declaration. Each
// pipeline's entities live in `pipeline_<name>`, apart from Strata's core tables in `strata`.

import { createHash } from 'node:crypto';
import type { Queryable } from '../db/pool.ts';
import { stableJson } from '../stable-json.ts';
import type { EntityDescription, Schema } from './define-schema.ts';
import { columnType } from './fields.ts';

/** The pipeline's Postgres schema, quoted. Pipeline names are validated (^[a-z][a-z0-9_]*$) by config. */
export function pipelineSchema(pipeline: string): string {
  return `"pipeline_${pipeline}"`;
}

export function entityTable(pipeline: string, entity: string): string {
  return `${pipelineSchema(pipeline)}."${entity}"`;
}

export function quoteIdent(name: string): string {
  return `"${name.replace(/"/g, '""')}"`;
}

/**
 * The entity's history table (reorg rollback): one row per change written inside the reorg
 * threshold — the entity's columns (all nullable: a delete keeps only the id), the checkpoint
 * that made it and whether it was a set or a delete — plus *anchor* rows holding an id's stored
 * state before its first history row. Entity names start with a letter, so `_history_` never
 * clashes with one; `_strata_` field names are reserved for the same reason.
 */
export function historyTable(pipeline: string, entity: string): string {
  return `${pipelineSchema(pipeline)}."_history_${entity}"`;
}

export const HISTORY_CHECKPOINT = '_strata_checkpoint';
export const HISTORY_CHANGE = '_strata_change';

function createHistoryTableSql(pipeline: string, entity: EntityDescription): string {
  const columns = entity.columns.map(
    (column) =>
      `${quoteIdent(column.name)} ${columnType(column.spec)}${column.name === 'id' ? ' NOT NULL' : ''}`,
  );
  return (
    `CREATE TABLE IF NOT EXISTS ${historyTable(pipeline, entity.name)} (${columns.join(', ')}, ` +
    `${HISTORY_CHECKPOINT} bigint NOT NULL, ${HISTORY_CHANGE} "char" NOT NULL, ` +
    `PRIMARY KEY ("id", ${HISTORY_CHECKPOINT}))`
  );
}

/** The entity's table and then its secondary indexes (see `createIndexSql`). */
export function createTableSql(pipeline: string, entity: EntityDescription): string[] {
  const columns = entity.columns.map(
    (column) =>
      `${quoteIdent(column.name)} ${columnType(column.spec)}${column.spec.nullable ? '' : ' NOT NULL'}${column.name === 'id' ? ' PRIMARY KEY' : ''}`,
  );
  return [
    `CREATE TABLE IF NOT EXISTS ${entityTable(pipeline, entity.name)} (${columns.join(', ')})`,
    ...createIndexSql(pipeline, entity),
  ];
}

/** The entity's secondary indexes (built after the backfill when they are deferred). */
export function createIndexSql(pipeline: string, entity: EntityDescription): string[] {
  const statements: string[] = [];
  for (const index of entity.indexes) {
    const name = `${entity.name}_${index.join('_')}`.slice(0, 50);
    const suffix = createHash('sha1').update(index.join(',')).digest('hex').slice(0, 8);
    statements.push(
      `CREATE INDEX IF NOT EXISTS ${quoteIdent(`${name}_${suffix}`)} ON ${entityTable(pipeline, entity.name)} (${index.map(quoteIdent).join(', ')})`,
    );
  }
  return statements;
}

/**
 * Creates the pipeline's schema and tables; with `indexes: false` the secondary indexes are left
 * for `createPipelineIndexes` (a backfill writes 2–3× faster into tables without them).
 */
export async function createPipelineTables(
  db: Queryable,
  pipeline: string,
  schema: Schema,
  options: { indexes: boolean } = { indexes: true },
): Promise<void> {
  await db.query(`CREATE SCHEMA IF NOT EXISTS ${pipelineSchema(pipeline)}`);
  for (const entity of schema.entities) {
    const [table, ...indexes] = createTableSql(pipeline, entity);
    await db.query(table!);
    await db.query(createHistoryTableSql(pipeline, entity));
    // A rollback and pruning select by checkpoint (the primary key leads with the id).
    await db.query(
      `CREATE INDEX IF NOT EXISTS ${quoteIdent(`_history_${entity.name}_checkpoint`)} ON ${historyTable(pipeline, entity.name)} (${HISTORY_CHECKPOINT})`,
    );
    if (options.indexes) for (const statement of indexes) await db.query(statement);
  }
}

export async function createPipelineIndexes(db: Queryable, pipeline: string, schema: Schema): Promise<void> {
  for (const entity of schema.entities) {
    for (const statement of createIndexSql(pipeline, entity)) await db.query(statement);
  }
}

export async function dropPipelineTables(db: Queryable, pipeline: string): Promise<void> {
  await db.query(`DROP SCHEMA IF EXISTS ${pipelineSchema(pipeline)} CASCADE`);
}

/** What a pipeline's stored data depends on: its entity schema and the identity of its source. */
export type PipelineFingerprint = {
  schema: Record<string, { fields: Record<string, string>; indexes: string[] }>;
  source: Record<string, unknown>;
  /** The pipeline's handler options, when it has any. */
  options?: Record<string, unknown>;
};

export function fingerprintHash(fingerprint: PipelineFingerprint): string {
  return createHash('sha256').update(stableJson(fingerprint)).digest('hex').slice(0, 16);
}

/** Human-readable differences between the stored and the current fingerprint. */
export function fingerprintChanges(before: PipelineFingerprint, after: PipelineFingerprint): string[] {
  const changes: string[] = [];
  const entities = new Set([...Object.keys(before.schema), ...Object.keys(after.schema)]);
  for (const name of [...entities].sort()) {
    const was = before.schema[name];
    const now = after.schema[name];
    if (was === undefined) {
      changes.push(`entity ${name} added`);
      continue;
    }
    if (now === undefined) {
      changes.push(`entity ${name} removed`);
      continue;
    }
    const fields = new Set([...Object.keys(was.fields), ...Object.keys(now.fields)]);
    for (const field of fields) {
      if (was.fields[field] === undefined) changes.push(`${name}.${field} added (${now.fields[field]})`);
      else if (now.fields[field] === undefined)
        changes.push(`${name}.${field} removed (was ${was.fields[field]})`);
      else if (was.fields[field] !== now.fields[field])
        changes.push(`${name}.${field} changed from ${was.fields[field]} to ${now.fields[field]}`);
    }
    if (stableJson(was.indexes) !== stableJson(now.indexes))
      changes.push(`${name} indexes changed from [${was.indexes.join('; ')}] to [${now.indexes.join('; ')}]`);
  }
  const sourceKeys = new Set([...Object.keys(before.source), ...Object.keys(after.source)]);
  for (const key of [...sourceKeys].sort()) {
    if (stableJson(before.source[key]) !== stableJson(after.source[key]))
      changes.push(
        `source.${key} changed from ${stableJson(before.source[key])} to ${stableJson(after.source[key])}`,
      );
  }
  if (stableJson(before.options ?? {}) !== stableJson(after.options ?? {}))
    changes.push(
      `options changed from ${stableJson(before.options ?? {})} to ${stableJson(after.options ?? {})}`,
    );
  return changes;
}
