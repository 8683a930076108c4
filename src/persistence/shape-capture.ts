// What the writer captures for the materializer (live shapes): for each table that has shapes,
// the run's rows before and after the write, read inside the write transaction as Postgres text
// (so they are exactly what a snapshot of the table shows), sent after COMMIT in bounded
// fragments and then a commit marker. The same fragments are appended to `strata.shape_log` inside
// the transaction, so a restarted materializer (or another process) rebuilds every shape's log
// from them. Tables without shapes cost nothing.

import type pg from 'pg';
import { setIds } from '../pipeline/change-codec.ts';
import type { ShapeTables } from '../pipeline/shape-tables.ts';
import type { EntityChanges } from '../protocol.ts';
import { entityTable, HISTORY_CHECKPOINT, historyTable, quoteIdent } from '../schema/ddl.ts';
import type { Schema } from '../schema/define-schema.ts';

/** A row as clients get it: column → Postgres text (null for NULL). */
export type CapturedRow = Record<string, string | null>;

export interface CapturedChange {
  before: CapturedRow | null;
  after: CapturedRow | null;
}

/** Changes per fragment message: a transaction never crosses to the materializer in one piece. */
export const MAX_FRAGMENT_CHANGES = 1_000;

export class ShapeCapture {
  constructor(private readonly tables: ShapeTables) {}

  capture(pipeline: string, entity: string): void {
    this.tables.add(pipeline, entity);
  }

  captures(pipeline: string): boolean {
    return this.tables.has(pipeline);
  }

  /**
   * Inside the write transaction, before the run is written: the captured entities' ids in the
   * run and their stored rows. Call `after` once the run is written.
   */
  async before(
    client: pg.PoolClient,
    pipeline: string,
    schema: Schema,
    runChanges: readonly EntityChanges[],
  ): Promise<PendingCapture> {
    const pending = new PendingCapture(pipeline, schema);
    // Timestamps as text in UTC, as snapshots read them.
    await client.query(`SET LOCAL TimeZone = 'UTC'`);
    for (const entity of this.tables.entities(pipeline)) {
      const ids = new Set<string>();
      for (const changes of runChanges) {
        const part = changes[entity];
        if (part === undefined) continue;
        for (const id of setIds(part)) ids.add(id);
        for (const [, id] of part.deletes) ids.add(id);
      }
      if (ids.size > 0)
        pending.entities.set(entity, {
          ids: [...ids],
          before: await readRows(client, pipeline, schema, entity, [...ids]),
        });
    }
    return pending;
  }

  /**
   * Inside a rollback's transaction, before it: the captured entities' ids it will restore or
   * delete (those with history above the target) and their stored rows.
   */
  async beforeRollback(
    client: pg.PoolClient,
    pipeline: string,
    schema: Schema,
    toCheckpoint: number,
  ): Promise<PendingCapture> {
    const pending = new PendingCapture(pipeline, schema);
    await client.query(`SET LOCAL TimeZone = 'UTC'`);
    for (const entity of this.tables.entities(pipeline)) {
      const { rows } = await client.query<{ id: string }>(
        `SELECT DISTINCT "id" FROM ${historyTable(pipeline, entity)} WHERE ${HISTORY_CHECKPOINT} > $1`,
        [toCheckpoint],
      );
      const ids = rows.map((row) => row.id);
      if (ids.length > 0)
        pending.entities.set(entity, { ids, before: await readRows(client, pipeline, schema, entity, ids) });
    }
    return pending;
  }
}

export class PendingCapture {
  readonly entities = new Map<
    string,
    { ids: string[]; before: Map<string, CapturedRow>; after?: Map<string, CapturedRow> }
  >();

  constructor(
    private readonly pipeline: string,
    private readonly schema: Schema,
  ) {}

  /** Inside the write transaction, after the run is written. */
  async after(client: pg.PoolClient): Promise<void> {
    for (const [entity, captured] of this.entities) {
      captured.after = await readRows(client, this.pipeline, this.schema, entity, captured.ids);
    }
  }

  /**
   * Inside the write transaction, once its commit sequence is known: appends the fragments to the
   * durable shape log (one statement; the changes as JSON text, parsed only on a replay).
   */
  async persist(client: pg.PoolClient, sequence: number): Promise<void> {
    const fragments = this.fragments();
    if (fragments.length === 0) return;
    await client.query(
      `INSERT INTO strata.shape_log (pipeline, sequence, entity, fragment, changes)
       SELECT $1, $2, * FROM unnest($3::text[], $4::int[], $5::text[])`,
      [
        this.pipeline,
        sequence,
        fragments.map((f) => f.entity),
        fragments.map((f) => f.fragment),
        fragments.map((f) => JSON.stringify(f.changes)),
      ],
    );
  }

  private built: CapturedFragment[] | null = null;

  /** The captured changes per entity, in fragments of at most MAX_FRAGMENT_CHANGES (numbered per entity). */
  fragments(): readonly CapturedFragment[] {
    if (this.built !== null) return this.built;
    const built: CapturedFragment[] = [];
    for (const [entity, { ids, before, after }] of this.entities) {
      let changes: CapturedChange[] = [];
      let fragment = 0;
      for (const id of ids) {
        const change = { before: before.get(id) ?? null, after: after?.get(id) ?? null };
        if (change.before === null && change.after === null) continue;
        changes.push(change);
        if (changes.length === MAX_FRAGMENT_CHANGES) {
          built.push({ entity, fragment: fragment++, changes });
          changes = [];
        }
      }
      if (changes.length > 0) built.push({ entity, fragment, changes });
    }
    this.built = built;
    return built;
  }
}

export interface CapturedFragment {
  entity: string;
  /** Its place among the transaction's fragments of this entity, from 0. */
  fragment: number;
  changes: CapturedChange[];
}

/** Drops the stored log's transactions up to `through` and records the floor (readers before it refetch). */
export async function compactShapeLog(
  client: pg.PoolClient,
  pipeline: string,
  through: number,
): Promise<void> {
  await client.query(`DELETE FROM strata.shape_log WHERE pipeline = $1 AND sequence <= $2`, [
    pipeline,
    through,
  ]);
  await client.query(
    `UPDATE strata.pipelines SET shape_log_floor = $2 WHERE name = $1 AND shape_log_floor < $2`,
    [pipeline, through],
  );
}

async function readRows(
  client: pg.PoolClient,
  pipeline: string,
  schema: Schema,
  entity: string,
  ids: string[],
): Promise<Map<string, CapturedRow>> {
  const description = schema.entities.find((e) => e.name === entity)!;
  const columns = description.columns.map((c) => `${quoteIdent(c.name)}::text AS ${quoteIdent(c.name)}`);
  const { rows } = await client.query<CapturedRow>(
    `SELECT ${columns.join(', ')} FROM ${entityTable(pipeline, entity)} WHERE "id" = ANY($1::text[])`,
    [ids],
  );
  return new Map(rows.map((row) => [row.id as string, row]));
}
