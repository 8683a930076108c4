// Writes a run of batches' entity changes inside the writer's transaction. Per entity, the last
// change per id across the run wins; deletes go out as one `DELETE … WHERE id = ANY($1)`; sets are
// streamed with `COPY … FROM STDIN` into a session-local staging table and upserted from it in
// one `INSERT … SELECT … ON CONFLICT (id) DO UPDATE` — Ponder's approach. Measured here on 100k
// ERC20 transfer rows: unnest upsert 942 ms, COPY + upsert from staging 394 ms (bench/README.md).
// An entity whose sets have all been new rows (events, transfers: written once) is COPYed straight
// into its table instead, under a savepoint: the first existing id aborts that COPY with a unique
// violation, and the run's rows go through the staging upsert (see `DirectCopy`).
// The sets arrive as ready COPY text lines (src/schema/copy-text.ts): this thread never looks at
// a value, it only merges lines by id and streams them.
//
// Embedded PGlite (behind pglite-socket) does not speak the COPY sub-protocol — the connection
// dies with "protocol synchronization was lost" — so there the same lines are split back into
// one text array per column and upserted with `unnest`, each column cast to its type.

import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type pg from 'pg';
import { from as copyFrom } from 'pg-copy-streams';
import type { Db } from '../db/pool.ts';
import { lineId, setIds, textOf } from '../pipeline/change-codec.ts';
import type { EntityChanges } from '../protocol.ts';
import { escapeText, unescapeText } from '../schema/copy-text.ts';
import { entityTable, HISTORY_CHANGE, HISTORY_CHECKPOINT, historyTable, quoteIdent } from '../schema/ddl.ts';
import type { EntityDescription, Schema } from '../schema/define-schema.ts';
import { columnType } from '../schema/fields.ts';
import { escapeUnstorableInCopyRows } from './nul-escape.ts';

interface PreparedEntity {
  createStageSql: string;
  copySql: string;
  entityName: string;
  /** COPY straight into the entity's table (no staging, no upsert): new rows only. */
  directCopySql: string;
  upsertSql: string;
  unnestSql: string;
  deleteSql: string;
  columnCount: number;
  /** History (reorg rollback), see src/schema/ddl.ts `historyTable`. */
  historyCopySql: string;
  historyUnnestSql: string;
  anchorSql: string;
  rollbackSql: [deleteAffected: string, restore: string, dropHistory: string];
  pruneSql: [superseded: string, settled: string];
}

/** Inside the reorg threshold: history rows are written too. */
export interface HistoryWrite {
  /** The committed checkpoint before this write (a merged re-send's lines at or below it are skipped). */
  committedCheckpoint: number;
}

export type WriteMethod = 'copy' | 'unnest';

export class EntityWriter {
  private readonly schema: Schema;
  private readonly prepared = new Map<string, PreparedEntity>();

  private readonly method: WriteMethod;

  private readonly pipeline: string;

  /** Null: every set goes through staging (bench/write-path compares the two). */
  private readonly directCopy: DirectCopy | null;

  constructor(pipeline: string, schema: Schema, method: WriteMethod, options: { directCopy?: boolean } = {}) {
    this.pipeline = pipeline;
    this.schema = schema;
    this.method = method;
    this.directCopy = options.directCopy === false ? null : new DirectCopy();
    for (const [index, entity] of schema.entities.entries()) {
      this.prepared.set(entity.name, prepare(pipeline, entity, index));
    }
  }

  /**
   * Merges the run's changes (in batch order) and writes them. Returns rows written and the
   * entities whose rows had NULs escaped (only with `escapeNul`, after Postgres refused them).
   */
  async write(
    client: pg.PoolClient,
    runChanges: readonly EntityChanges[],
    escapeNul = false,
    history: HistoryWrite | null = null,
  ): Promise<{ written: number; escaped: string[] }> {
    let written = 0;
    const escaped: string[] = [];
    for (const entity of this.schema.entities) {
      const parts = runChanges.map((changes) => changes[entity.name]).filter((part) => part !== undefined);
      if (parts.length === 0) continue;
      const merged = merge(parts);
      // One batch's sets go out as the bytes they came in, unless NULs must be escaped first.
      let rows: string | readonly Buffer[] = merged.rowBytes ?? merged.rows;
      if (escapeNul) {
        const escapedRows = escapeUnstorableInCopyRows(entity, merged.rows);
        if (escapedRows !== null) {
          rows = escapedRows;
          escaped.push(entity.name);
        }
      }
      // History first: anchors copy the stored rows before this write changes them.
      if (history !== null) {
        const lines = historyLines(parts, history.committedCheckpoint);
        const escapedLines = escapeNul ? (escapeUnstorableInCopyRows(entity, lines, 2) ?? lines) : lines;
        await this.writeHistory(client, entity.name, escapedLines, [...merged.ids(), ...merged.deletes]);
      }
      written += await this.writeEntity(client, entity.name, rows, merged.rowCount, merged.deletes);
    }
    return { written, escaped };
  }

  private async writeHistory(
    client: pg.PoolClient,
    entityName: string,
    lines: string,
    ids: string[],
  ): Promise<void> {
    const prepared = this.prepared.get(entityName)!;
    // An id's first history row gets an anchor: its stored state before it (no row: it did not
    // exist), stamped checkpoint 0. Not the committed checkpoint: the state dates from the id's
    // last change, which may be below a rollback target that is below the committed checkpoint
    // (a rollback to there would find no row at or below it and delete the id). An id without
    // history rows last changed at or below the safe checkpoint (pruning keeps the rows above),
    // so 0 is exact for every target a rollback can reach.
    await client.query(prepared.anchorSql, [ids]);
    if (lines === '') return;
    if (this.method === 'unnest') {
      await client.query(prepared.historyUnnestSql, splitColumns(lines, prepared.columnCount + 2));
    } else {
      await pipeline(Readable.from([lines]), client.query(copyFrom(prepared.historyCopySql)));
    }
  }

  /**
   * Restores every entity to its state at `checkpoint` from the history tables (the latest
   * history row at or below it per affected id; none or a delete: the row goes) and drops the
   * history above it. Returns how many ids were restored or deleted.
   */
  async rollback(client: pg.PoolClient, checkpoint: number): Promise<number> {
    let affected = 0;
    for (const entity of this.schema.entities) {
      const [deleteAffected, restore, dropHistory] = this.prepared.get(entity.name)!.rollbackSql;
      const { rowCount } = await client.query(
        `SELECT DISTINCT "id" FROM ${historyTable(this.pipeline, entity.name)} WHERE ${HISTORY_CHECKPOINT} > $1`,
        [checkpoint],
      );
      if (rowCount === 0) continue;
      affected += rowCount ?? 0;
      await client.query(deleteAffected, [checkpoint]);
      await client.query(restore, [checkpoint]);
      await client.query(dropHistory, [checkpoint]);
    }
    return affected;
  }

  /**
   * Drops all history: when writes re-enter the reorg threshold after writes outside it, no
   * rollback can cross those, and rows from before them would be stale anchors for ids they
   * changed (restoring a value older than the one written without history).
   */
  async clearHistory(client: pg.PoolClient): Promise<void> {
    for (const entity of this.schema.entities) {
      await client.query(`DELETE FROM ${historyTable(this.pipeline, entity.name)}`);
    }
  }

  /** Drops history no rollback can reach: below `safeCheckpoint`, keeping one anchor per id. */
  async prune(client: pg.PoolClient, safeCheckpoint: number): Promise<number> {
    let pruned = 0;
    for (const entity of this.schema.entities) {
      for (const sql of this.prepared.get(entity.name)!.pruneSql) {
        pruned += (await client.query(sql, [safeCheckpoint])).rowCount ?? 0;
      }
    }
    return pruned;
  }

  /**
   * After a write failed for a reason other than a lost connection: finds one set that fails on
   * its own, by bisecting each entity's merged rows in transactions that always roll back.
   */
  async findFailingSet(
    db: Db,
    runChanges: readonly EntityChanges[],
    escapeNul: boolean,
  ): Promise<{ entity: string; id: string; error: unknown } | null> {
    for (const entity of this.schema.entities) {
      const parts = runChanges.map((changes) => changes[entity.name]).filter((part) => part !== undefined);
      if (parts.length === 0) continue;
      const merged = merge(parts);
      const ids = merged.ids();
      const rows = merged.rows;
      const lines = (escapeNul ? (escapeUnstorableInCopyRows(entity, rows) ?? rows) : rows)
        .split('\n')
        .slice(0, ids.length);
      const attempt = async (from: number, to: number): Promise<unknown> => {
        try {
          await db.transaction(async (client) => {
            await this.writeEntity(
              client,
              entity.name,
              `${lines.slice(from, to).join('\n')}\n`,
              to - from,
              [],
            );
            throw ROLLBACK;
          });
        } catch (error) {
          return error === ROLLBACK ? null : error;
        }
        return null;
      };
      let from = 0;
      let to = lines.length;
      let error = to > 0 ? await attempt(from, to) : null;
      if (error === null) continue;
      // `error` belongs to [from, to) while `proven`; a passing left half only implies the right.
      let proven = true;
      while (to - from > 1) {
        const middle = from + Math.floor((to - from) / 2);
        const left = await attempt(from, middle);
        if (left !== null) [to, error, proven] = [middle, left, true];
        else [from, proven] = [middle, false];
      }
      if (!proven) error = await attempt(from, to);
      // A failure that needs two rows together (no row fails alone) is not narrowed down.
      if (error === null) return null;
      return { entity: entity.name, id: ids[from]!, error };
    }
    return null;
  }

  private async writeEntity(
    client: pg.PoolClient,
    entityName: string,
    /** COPY text lines, or their UTF-8 bytes. */
    rows: string | readonly Buffer[],
    rowCount: number,
    deletes: string[],
  ): Promise<number> {
    let written = 0;
    const prepared = this.prepared.get(entityName)!;
    if (deletes.length > 0) {
      await client.query(prepared.deleteSql, [deletes]);
      written += deletes.length;
    }
    if (rowCount > 0 && this.method === 'unnest') {
      const text = typeof rows === 'string' ? rows : textOf(rows);
      await client.query(prepared.unnestSql, splitColumns(text, prepared.columnCount));
      written += rowCount;
    } else if (rowCount > 0) {
      if (this.directCopy?.shouldTry(entityName) && (await this.copyDirect(client, prepared, rows))) {
        return written + rowCount;
      }
      // The staging table lives as long as the connection and empties itself at COMMIT.
      await client.query(prepared.createStageSql);
      await pipeline(copyText(rows), client.query(copyFrom(prepared.copySql)));
      await client.query(prepared.upsertSql);
      written += rowCount;
    }
    return written;
  }

  /**
   * COPYs new rows straight into the table under a savepoint. False (the savepoint rolled back,
   * nothing written) when an id already exists: the caller upserts them instead.
   */
  private async copyDirect(
    client: pg.PoolClient,
    prepared: PreparedEntity,
    rows: string | readonly Buffer[],
  ): Promise<boolean> {
    await client.query('SAVEPOINT strata_direct_copy');
    try {
      await pipeline(copyText(rows), client.query(copyFrom(prepared.directCopySql)));
    } catch (error) {
      if ((error as { code?: string }).code !== UNIQUE_VIOLATION) throw error;
      await client.query('ROLLBACK TO SAVEPOINT strata_direct_copy');
      this.directCopy?.conflicted(prepared.entityName);
      return false;
    }
    await client.query('RELEASE SAVEPOINT strata_direct_copy');
    return true;
  }
}

const ROLLBACK = Symbol('rollback');

/**
 * Which entities are worth COPYing straight into their table. Most entities of an event indexer
 * are either append-only (one row per event) or hot (the same ids updated run after run). An
 * append-only entity's rows cost a COPY instead of a COPY into staging plus an upsert from it
 * (bench/processing: about a third of the writer's Postgres time on erc20). A hot entity's direct
 * COPY fails on its first existing id, which is cheap (the COPY stops there) but still wasted, so
 * after a failure the entity goes through staging for `BACKOFF_RUNS` runs before trying again.
 */
class DirectCopy {
  static readonly BACKOFF_RUNS = 16;
  /** Per entity, runs left before the next direct attempt. */
  private readonly backoff = new Map<string, number>();

  shouldTry(entity: string): boolean {
    const left = this.backoff.get(entity) ?? 0;
    if (left === 0) return true;
    this.backoff.set(entity, left - 1);
    return false;
  }

  conflicted(entity: string): void {
    this.backoff.set(entity, DirectCopy.BACKOFF_RUNS);
  }
}

const UNIQUE_VIOLATION = '23505';

/**
 * The run's history lines, in batch order. A merged re-send may straddle the committed
 * checkpoint: the lines at or below it were written by the transaction that committed it.
 */
function historyLines(parts: ReadonlyArray<EntityChanges[string]>, committedCheckpoint: number): string {
  let lines = '';
  for (const part of parts) {
    if (part.history === undefined) continue;
    const straddles =
      Array.prototype.some.call(part.checkpoints, (c: number) => c <= committedCheckpoint) ||
      part.deletes.some(([c]) => c <= committedCheckpoint);
    if (!straddles) {
      lines += part.history;
      continue;
    }
    for (const line of part.history.split('\n')) {
      if (line === '') continue;
      const end = line.lastIndexOf('\t');
      const checkpoint = Number(line.slice(line.lastIndexOf('\t', end - 1) + 1, end));
      if (checkpoint > committedCheckpoint) lines += `${line}\n`;
    }
  }
  return lines;
}

/**
 * Last change per id wins across the run (ids within one batch are unique). `ids` names the lines
 * (only history anchors and failure bisection need them: a single batch computes them on demand).
 */
function merge(parts: ReadonlyArray<EntityChanges[string]>): {
  rows: string;
  /** One part's sets as the bytes they arrived in (none when parts were merged). */
  rowBytes?: readonly Buffer[];
  rowCount: number;
  ids: () => string[];
  deletes: string[];
} {
  if (parts.length === 1) {
    const [part] = parts as [EntityChanges[string]];
    return {
      // Read only if needed: a part decoded from its buffer turns its bytes into text then.
      get rows() {
        return part.rows;
      },
      rowBytes: part.rowBytes,
      rowCount: part.checkpoints.length,
      ids: () => setIds(part),
      deletes: part.deletes.map(([, id]) => id),
    };
  }
  // Keyed by the line's id field as written (escaping is deterministic), unescaped only for `ids`.
  const latest = new Map<string, string | null>();
  for (const part of parts) {
    if (part.checkpoints.length > 0) {
      const lines = part.rows.split('\n'); // values never contain a raw newline (COPY escapes)
      for (let i = 0; i < part.checkpoints.length; i++) {
        const line = lines[i]!;
        const tab = line.indexOf('\t');
        latest.set(tab === -1 ? line : line.slice(0, tab), line);
      }
    }
    for (const [, id] of part.deletes) latest.set(escapeText(id), null);
  }
  const lines: string[] = [];
  const deletes: string[] = [];
  for (const [field, line] of latest) {
    if (line === null) deletes.push(unescapeText(field));
    else lines.push(line);
  }
  return {
    rows: lines.length === 0 ? '' : `${lines.join('\n')}\n`,
    rowCount: lines.length,
    ids: () => lines.map(lineId),
    deletes,
  };
}

/** COPY text lines back into one text array per column (`\N` → null, escapes undone). */
function splitColumns(rows: string, columnCount: number): string[][] {
  const columns: Array<Array<string | null>> = Array.from({ length: columnCount }, () => []);
  const lines = rows.split('\n');
  for (const line of lines) {
    if (line === '') continue;
    const fields = line.split('\t');
    for (let c = 0; c < columnCount; c++) {
      const field = fields[c]!;
      columns[c]!.push(field === '\\N' ? null : unescapeText(field));
    }
  }
  return columns as string[][];
}

function prepare(pipeline: string, entity: EntityDescription, index: number): PreparedEntity {
  const table = entityTable(pipeline, entity.name);
  const stage = quoteIdent(`strata_stage_${pipeline}_${index}`);
  const columns = entity.columns.map((column) => quoteIdent(column.name)).join(', ');
  const updates = entity.columns
    .filter((column) => column.name !== 'id')
    .map((column) => `${quoteIdent(column.name)} = EXCLUDED.${quoteIdent(column.name)}`);
  const conflict =
    updates.length === 0
      ? 'ON CONFLICT ("id") DO NOTHING'
      : `ON CONFLICT ("id") DO UPDATE SET ${updates.join(', ')}`;
  const unnestParams = entity.columns.map((_, i) => `$${i + 1}::text[]`).join(', ');
  const unnestSelect = entity.columns.map((column, i) => `u.c${i}::${columnType(column.spec)}`).join(', ');
  const aliases = entity.columns.map((_, i) => `c${i}`).join(', ');
  const history = historyTable(pipeline, entity.name);
  const historyColumns = `${columns}, ${HISTORY_CHECKPOINT}, ${HISTORY_CHANGE}`;
  const historyParams = entity.columns.map((_, i) => `$${i + 1}::text[]`);
  historyParams.push(`$${entity.columns.length + 1}::text[]`, `$${entity.columns.length + 2}::text[]`);
  const historyAliases = [...entity.columns.map((_, i) => `c${i}`), 'cp', 'ch'].join(', ');
  const affectedIds = `SELECT "id" FROM ${history} WHERE ${HISTORY_CHECKPOINT} > $1`;
  return {
    historyCopySql: `COPY ${history} (${historyColumns}) FROM STDIN`,
    historyUnnestSql:
      `INSERT INTO ${history} (${historyColumns}) SELECT ${unnestSelect}, u.cp::bigint, u.ch::"char" ` +
      `FROM unnest(${historyParams.join(', ')}) AS u(${historyAliases})`,
    anchorSql:
      `INSERT INTO ${history} (${historyColumns}) SELECT ${columns}, 0, 's' FROM ${table} t ` +
      `WHERE t."id" = ANY($1::text[]) AND NOT EXISTS (SELECT 1 FROM ${history} h WHERE h."id" = t."id")`,
    rollbackSql: [
      `DELETE FROM ${table} WHERE "id" IN (${affectedIds})`,
      `INSERT INTO ${table} (${columns}) SELECT ${columns} FROM (` +
        `SELECT DISTINCT ON ("id") * FROM ${history} WHERE "id" IN (${affectedIds}) AND ${HISTORY_CHECKPOINT} <= $1 ` +
        `ORDER BY "id", ${HISTORY_CHECKPOINT} DESC) AS state WHERE ${HISTORY_CHANGE} = 's'`,
      `DELETE FROM ${history} WHERE ${HISTORY_CHECKPOINT} > $1`,
    ],
    pruneSql: [
      `DELETE FROM ${history} h WHERE h.${HISTORY_CHECKPOINT} < $1 AND EXISTS (SELECT 1 FROM ${history} n ` +
        `WHERE n."id" = h."id" AND n.${HISTORY_CHECKPOINT} > h.${HISTORY_CHECKPOINT} AND n.${HISTORY_CHECKPOINT} <= $1)`,
      `DELETE FROM ${history} h WHERE h.${HISTORY_CHECKPOINT} <= $1 AND NOT EXISTS (SELECT 1 FROM ${history} n ` +
        `WHERE n."id" = h."id" AND n.${HISTORY_CHECKPOINT} > $1)`,
    ],
    columnCount: entity.columns.length,
    unnestSql: `INSERT INTO ${table} (${columns}) SELECT ${unnestSelect} FROM unnest(${unnestParams}) AS u(${aliases}) ${conflict}`,
    createStageSql: `CREATE TEMP TABLE IF NOT EXISTS ${stage} (LIKE ${table}) ON COMMIT DELETE ROWS`,
    copySql: `COPY ${stage} (${columns}) FROM STDIN`,
    directCopySql: `COPY ${table} (${columns}) FROM STDIN`,
    entityName: entity.name,
    upsertSql:
      `INSERT INTO ${table} (${columns}) SELECT ${columns} FROM ${stage} ` +
      (updates.length === 0
        ? 'ON CONFLICT ("id") DO NOTHING'
        : `ON CONFLICT ("id") DO UPDATE SET ${updates.join(', ')}`),
    deleteSql: `DELETE FROM ${table} WHERE "id" = ANY($1::text[])`,
  };
}

/** COPY text as a stream: one string, or the pieces of bytes it arrived in. */
function copyText(rows: string | readonly Buffer[]): Readable {
  return Readable.from(typeof rows === 'string' ? [rows] : rows);
}
