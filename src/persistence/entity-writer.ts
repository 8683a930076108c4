// Writes a run of batches' entity changes inside the writer's transaction: per entity, the last
// change per id across the run wins; deletes go out as one `DELETE … WHERE id = ANY($1)`, sets as
// one `INSERT … SELECT * FROM unnest($1::t1[], $2::t2[], …) ON CONFLICT (id) DO UPDATE`.
// Values arrive in wire form (src/schema/wire.ts) and are forwarded untouched: array columns
// travel as their text literal and are cast in the SELECT, since unnest would flatten a
// two-dimensional parameter.

import type { Queryable } from '../db/pool.ts';
import type { EntityChanges } from '../protocol.ts';
import { entityTable, quoteIdent } from '../schema/ddl.ts';
import type { EntityDescription, Schema } from '../schema/define-schema.ts';
import { columnType } from '../schema/fields.ts';

interface PreparedEntity {
  upsertSql: string;
  deleteSql: string;
  columnCount: number;
}

export class EntityWriter {
  private readonly schema: Schema;
  private readonly prepared = new Map<string, PreparedEntity>();

  constructor(pipeline: string, schema: Schema) {
    this.schema = schema;
    for (const entity of schema.entities) this.prepared.set(entity.name, prepare(pipeline, entity));
  }

  /** Merges the run's changes (in batch order) and writes them. Returns rows written. */
  async write(client: Queryable, runChanges: readonly EntityChanges[]): Promise<number> {
    let written = 0;
    for (const entity of this.schema.entities) {
      const parts = runChanges.map((changes) => changes[entity.name]).filter((part) => part !== undefined);
      if (parts.length === 0) continue;
      const prepared = this.prepared.get(entity.name)!;
      const { columns, deletes } = merge(parts, prepared.columnCount);
      if (deletes.length > 0) {
        await client.query(prepared.deleteSql, [deletes]);
        written += deletes.length;
      }
      if (columns[0]!.length > 0) {
        await client.query(prepared.upsertSql, columns);
        written += columns[0]!.length;
      }
    }
    return written;
  }
}

/** Last change per id wins across the run; sets come out as one array per column. */
function merge(
  parts: ReadonlyArray<EntityChanges[string]>,
  columnCount: number,
): { columns: unknown[][]; deletes: string[] } {
  const columns: unknown[][] = Array.from({ length: columnCount }, () => []);
  if (parts.length === 1) {
    // One batch holds at most one change per id: no merge needed.
    const [part] = parts as [EntityChanges[string]];
    for (const set of part.sets) for (let c = 0; c < columnCount; c++) columns[c]!.push(set[c + 1]);
    return { columns, deletes: part.deletes.map(([, id]) => id) };
  }
  const latest = new Map<string, unknown[] | null>();
  for (const part of parts) {
    for (const set of part.sets) latest.set(set[1] as string, set);
    for (const [, id] of part.deletes) latest.set(id, null);
  }
  const deletes: string[] = [];
  for (const [id, set] of latest) {
    if (set === null) deletes.push(id);
    else for (let c = 0; c < columnCount; c++) columns[c]!.push(set[c + 1]);
  }
  return { columns, deletes };
}

function prepare(pipeline: string, entity: EntityDescription): PreparedEntity {
  const table = entityTable(pipeline, entity.name);
  const names = entity.columns.map((column) => quoteIdent(column.name));
  const aliases = entity.columns.map((_, index) => `c${index}`);
  const params = entity.columns.map(
    (column, index) => `$${index + 1}::${column.spec.array ? 'text' : columnType(column.spec)}[]`,
  );
  const selects = entity.columns.map((column, index) =>
    column.spec.array ? `u.c${index}::${columnType(column.spec)}` : `u.c${index}`,
  );
  const updates = entity.columns
    .filter((column) => column.name !== 'id')
    .map((column) => `${quoteIdent(column.name)} = EXCLUDED.${quoteIdent(column.name)}`);
  return {
    upsertSql:
      `INSERT INTO ${table} (${names.join(', ')}) SELECT ${selects.join(', ')} FROM unnest(${params.join(', ')}) AS u(${aliases.join(', ')}) ` +
      (updates.length === 0
        ? 'ON CONFLICT ("id") DO NOTHING'
        : `ON CONFLICT ("id") DO UPDATE SET ${updates.join(', ')}`),
    deleteSql: `DELETE FROM ${table} WHERE "id" = ANY($1::text[])`,
    columnCount: entity.columns.length,
  };
}
