// What the writer captures for the materializer (live shapes): for each table that has shapes,
// the run's rows before and after the write, read inside the write transaction as Postgres text
// (so they are exactly what a snapshot of the table shows), appended to `strata.shape_log` in
// bounded fragments inside the same transaction, so a restarted materializer (or another process)
// rebuilds every shape's log from them. Only changes some shape can show are kept (TableFilter:
// the old or the new row matches a shape's `where`). Tables without shapes cost nothing.
//
// Two ways, per entity and run. Up to `inlineMax` changed ids (STRATA_SHAPE_CAPTURE_INLINE_MAX), the rows are read
// into the writer, and after COMMIT its fragments also go to the materializer directly (the
// fast path: no read back). Above it, the rows never enter the writer whole: the "before" rows
// stay in a temporary table, the fragments are built a page at a time through a cursor, and the
// commit marker tells the materializer to read them from the store — so a 1M-change transaction
// costs one page of memory, not the whole transaction.

import type pg from 'pg';
import { appendShapeLog } from '../materializer/shape-store.ts';
import { setIds } from '../pipeline/change-codec.ts';
import type { TableFilter } from '../pipeline/shape-filter.ts';
import type { ShapeFilter, ShapeTables } from '../pipeline/shape-tables.ts';
import type { EntityChanges } from '../protocol.ts';
import { entityTable, HISTORY_CHECKPOINT, historyTable, quoteIdent } from '../schema/ddl.ts';
import type { Schema } from '../schema/define-schema.ts';

/** A row as clients get it: column → Postgres text (null for NULL). */
export type CapturedRow = Record<string, string | null>;

export interface CapturedChange {
  before: CapturedRow | null;
  after: CapturedRow | null;
}

export interface CapturedFragment {
  entity: string;
  /** Its place among the transaction's fragments of this entity, from 0. */
  fragment: number;
  changes: CapturedChange[];
}

/** Changes per fragment: a transaction never crosses to the materializer in one piece. */
export const MAX_FRAGMENT_CHANGES = 1_000;

/** Fragments per INSERT into strata.shape_log. */
const FRAGMENTS_PER_INSERT = 16;

export class ShapeCapture {
  /** `inlineMax`: changed ids of one entity in one run above which its capture stays in Postgres. */
  constructor(
    private readonly tables: ShapeTables,
    private readonly inlineMax: number,
  ) {}

  /** A new shape on the table: its changes matter from the next transaction on. */
  capture(pipeline: string, entity: string, where: ShapeFilter['where']): void {
    this.tables.addShape(pipeline, entity, where);
  }

  /** Every shape's clause, from the materializer (after this writer or the materializer started). */
  install(filters: readonly ShapeFilter[]): void {
    this.tables.install(filters);
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
    const pending = new PendingCapture(pipeline);
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
      const filter = this.tables.filter(pipeline, entity)!;
      // Shapes on single entities (`id = …`) read only their rows, not every row the run changed.
      const read = filter.idsThatMayMatter([...ids]);
      if (read.length === 0) continue;
      const table = new CapturedTable(pipeline, schema, entity, filter);
      pending.entities.push(
        read.length > this.inlineMax
          ? await StoredEntityCapture.fromIds(client, table, pending.entities.length, read)
          : await InlineEntityCapture.read(client, table, read),
      );
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
    const pending = new PendingCapture(pipeline);
    await client.query(`SET LOCAL TimeZone = 'UTC'`);
    for (const entity of this.tables.entities(pipeline)) {
      const { rows } = await client.query<{ n: string }>(
        `SELECT count(DISTINCT "id") AS n FROM ${historyTable(pipeline, entity)} WHERE ${HISTORY_CHECKPOINT} > $1`,
        [toCheckpoint],
      );
      const count = Number(rows[0]!.n);
      if (count === 0) continue;
      const table = new CapturedTable(pipeline, schema, entity, this.tables.filter(pipeline, entity)!);
      if (count > this.inlineMax) {
        pending.entities.push(
          await StoredEntityCapture.fromHistory(client, table, pending.entities.length, toCheckpoint),
        );
      } else {
        const { rows: ids } = await client.query<{ id: string }>(
          `SELECT DISTINCT "id" FROM ${historyTable(pipeline, entity)} WHERE ${HISTORY_CHECKPOINT} > $1`,
          [toCheckpoint],
        );
        pending.entities.push(
          await InlineEntityCapture.read(
            client,
            table,
            ids.map((row) => row.id),
          ),
        );
      }
    }
    return pending;
  }
}

export class PendingCapture {
  readonly entities: EntityCapture[] = [];
  private fragmentTotal = 0;

  constructor(private readonly pipeline: string) {}

  /** Inside the write transaction, after the run is written. */
  async after(client: pg.PoolClient): Promise<void> {
    for (const entity of this.entities) await entity.after(client);
  }

  /**
   * Inside the write transaction, once its commit sequence is known: appends every fragment to
   * the durable shape log.
   */
  async persist(client: pg.PoolClient, sequence: number): Promise<void> {
    const log = new ShapeLogAppender(client, this.pipeline, sequence);
    for (const entity of this.entities) await entity.persist(log);
    await log.flush();
    this.fragmentTotal = log.appended;
  }

  /** Fragments sent to the materializer directly (those of inline captures). */
  fragments(): readonly CapturedFragment[] {
    return this.entities.flatMap((entity) => entity.inlineFragments());
  }

  /** Fragments the transaction has in the store: the materializer reads what it was not sent. */
  get fragmentCount(): number {
    return this.fragmentTotal;
  }
}

interface EntityCapture {
  after(client: pg.PoolClient): Promise<void>;
  persist(log: ShapeLogAppender): Promise<void>;
  inlineFragments(): readonly CapturedFragment[];
}

/** An entity table's captured columns, read as text. */
class CapturedTable {
  readonly columns: string[];
  readonly table: string;
  /** The columns as a text array (NULL for a missing row). */
  readonly rowArray: (alias: string) => string;

  constructor(
    readonly pipeline: string,
    schema: Schema,
    readonly entity: string,
    /** Which changes some shape can show (the others are not kept). */
    readonly filter: TableFilter,
  ) {
    const description = schema.entities.find((e) => e.name === entity)!;
    this.columns = description.columns.map((c) => c.name);
    this.table = entityTable(pipeline, entity);
    this.rowArray = (alias) =>
      `CASE WHEN ${alias}."id" IS NULL THEN NULL ELSE ARRAY[${this.columns
        .map((name) => `${alias}.${quoteIdent(name)}::text`)
        .join(', ')}] END`;
  }

  toRow(values: Array<string | null> | null): CapturedRow | null {
    if (values === null) return null;
    const row: CapturedRow = {};
    for (let i = 0; i < this.columns.length; i++) row[this.columns[i]!] = values[i] ?? null;
    return row;
  }
}

/** Up to the threshold: rows read into the writer, fragments kept for the materializer. */
class InlineEntityCapture implements EntityCapture {
  private afterRows = new Map<string, CapturedRow>();
  private built: CapturedFragment[] | null = null;

  private constructor(
    private readonly table: CapturedTable,
    private readonly ids: string[],
    private readonly beforeRows: Map<string, CapturedRow>,
  ) {}

  static async read(
    client: pg.PoolClient,
    table: CapturedTable,
    ids: string[],
  ): Promise<InlineEntityCapture> {
    return new InlineEntityCapture(table, ids, await readRows(client, table, ids));
  }

  async after(client: pg.PoolClient): Promise<void> {
    this.afterRows = await readRows(client, this.table, this.ids);
  }

  async persist(log: ShapeLogAppender): Promise<void> {
    for (const fragment of this.inlineFragments()) await log.append(fragment);
  }

  inlineFragments(): readonly CapturedFragment[] {
    if (this.built !== null) return this.built;
    const built: CapturedFragment[] = [];
    let changes: CapturedChange[] = [];
    const entity = this.table.entity;
    for (const id of this.ids) {
      const change = { before: this.beforeRows.get(id) ?? null, after: this.afterRows.get(id) ?? null };
      if (change.before === null && change.after === null) continue;
      if (!this.table.filter.matters(change.before, change.after)) continue;
      changes.push(change);
      if (changes.length === MAX_FRAGMENT_CHANGES) {
        built.push({ entity, fragment: built.length, changes });
        changes = [];
      }
    }
    if (changes.length > 0) built.push({ entity, fragment: built.length, changes });
    this.built = built;
    return built;
  }
}

/**
 * Above the threshold: the "before" rows go to a temporary table (dropped at COMMIT), and the
 * fragments are built from it and the written table a page at a time.
 */
class StoredEntityCapture implements EntityCapture {
  private constructor(
    private readonly table: CapturedTable,
    private readonly tempTable: string,
  ) {}

  static async fromIds(
    client: pg.PoolClient,
    table: CapturedTable,
    index: number,
    ids: string[],
  ): Promise<StoredEntityCapture> {
    const capture = await StoredEntityCapture.create(client, table, index);
    await client.query(
      `INSERT INTO ${capture.tempTable} (id, before)
       SELECT i.id, ${table.rowArray('t')} FROM unnest($1::text[]) AS i(id) LEFT JOIN ${table.table} t ON t."id" = i.id`,
      [ids],
    );
    return capture;
  }

  static async fromHistory(
    client: pg.PoolClient,
    table: CapturedTable,
    index: number,
    toCheckpoint: number,
  ): Promise<StoredEntityCapture> {
    const capture = await StoredEntityCapture.create(client, table, index);
    const history = historyTable(table.pipeline, table.entity);
    await client.query(
      `INSERT INTO ${capture.tempTable} (id, before)
       SELECT i.id, ${table.rowArray('t')}
         FROM (SELECT DISTINCT "id" AS id FROM ${history} WHERE ${HISTORY_CHECKPOINT} > $1) AS i
         LEFT JOIN ${table.table} t ON t."id" = i.id`,
      [toCheckpoint],
    );
    return capture;
  }

  private static async create(
    client: pg.PoolClient,
    table: CapturedTable,
    index: number,
  ): Promise<StoredEntityCapture> {
    const tempTable = `pg_temp.strata_capture_${index}`;
    await client.query(`CREATE TEMP TABLE strata_capture_${index} (id text, before text[]) ON COMMIT DROP`);
    return new StoredEntityCapture(table, tempTable);
  }

  async after(): Promise<void> {
    // The written rows are read with the "before" ones, page by page, when persisting.
  }

  async persist(log: ShapeLogAppender): Promise<void> {
    const cursor = `strata_capture_cursor`;
    const client = log.client;
    await client.query(
      `DECLARE ${cursor} NO SCROLL CURSOR FOR
       SELECT c.before, ${this.table.rowArray('t')} AS after
         FROM ${this.tempTable} c LEFT JOIN ${this.table.table} t ON t."id" = c.id`,
    );
    let fragment = 0;
    for (;;) {
      const { rows } = await client.query<Array<Array<string | null> | null>>({
        text: `FETCH ${MAX_FRAGMENT_CHANGES} FROM ${cursor}`,
        rowMode: 'array',
      });
      if (rows.length === 0) break;
      const changes: CapturedChange[] = [];
      for (const [before, after] of rows) {
        if (before === null && after === null) continue;
        const change = { before: this.table.toRow(before ?? null), after: this.table.toRow(after ?? null) };
        if (this.table.filter.matters(change.before, change.after)) changes.push(change);
      }
      if (changes.length > 0) await log.append({ entity: this.table.entity, fragment: fragment++, changes });
    }
    await client.query(`CLOSE ${cursor}`);
  }

  inlineFragments(): readonly CapturedFragment[] {
    return [];
  }
}

/** Appends a transaction's fragments to strata.shape_log, a few per statement. */
class ShapeLogAppender {
  private pending: CapturedFragment[] = [];
  appended = 0;

  constructor(
    readonly client: pg.PoolClient,
    private readonly pipeline: string,
    private readonly sequence: number,
  ) {}

  async append(fragment: CapturedFragment): Promise<void> {
    this.pending.push(fragment);
    this.appended += 1;
    if (this.pending.length === FRAGMENTS_PER_INSERT) await this.flush();
  }

  async flush(): Promise<void> {
    if (this.pending.length === 0) return;
    const fragments = this.pending;
    this.pending = [];
    await appendShapeLog(this.client, this.pipeline, this.sequence, fragments);
  }
}

async function readRows(
  client: pg.PoolClient,
  table: CapturedTable,
  ids: string[],
): Promise<Map<string, CapturedRow>> {
  const columns = table.columns.map((name) => `${quoteIdent(name)}::text AS ${quoteIdent(name)}`);
  const { rows } = await client.query<CapturedRow>(
    `SELECT ${columns.join(', ')} FROM ${table.table} WHERE "id" = ANY($1::text[])`,
    [ids],
  );
  return new Map(rows.map((row) => [row.id as string, row]));
}
