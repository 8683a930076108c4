// `strata verify`, step three: one entity's live rows (a snapshot copy) against the rebuilt ones —
// row counts, a hash of each table's rows in id order, and the first rows that differ, each
// value as Postgres's text so nothing is rounded on the way (bigints, numerics).

import type { Queryable } from '../db/pool.ts';
import { quoteIdent } from '../schema/ddl.ts';
import type { EntityDescription } from '../schema/define-schema.ts';

export interface RowDifference {
  id: string;
  /** Column → text value; null: the row is missing on that side. */
  live: Record<string, string | null> | null;
  rebuilt: Record<string, string | null> | null;
}

export interface TableComparison {
  entity: string;
  liveRows: number;
  rebuiltRows: number;
  liveHash: string;
  rebuiltHash: string;
  /** Rows missing on one side or with any value differing. */
  differingRows: number;
  firstDifferences: RowDifference[];
}

export async function compareTable(
  db: Queryable,
  entity: EntityDescription,
  liveTable: string,
  rebuiltTable: string,
  sample = 5,
): Promise<TableComparison> {
  const columns = entity.columns.map((column) => quoteIdent(column.name));
  const summary = async (table: string) => {
    const { rows } = await db.query<{ rows: string; hash: string }>(
      `SELECT count(*)::text AS rows,
              md5(coalesce(string_agg(md5(ROW(${columns.join(', ')})::text), '' ORDER BY "id"), '')) AS hash
         FROM ${table}`,
    );
    return { rows: Number(rows[0]!.rows), hash: rows[0]!.hash };
  };
  const live = await summary(liveTable);
  const rebuilt = await summary(rebuiltTable);
  const textObject = (alias: string) =>
    `CASE WHEN ${alias}."id" IS NULL THEN NULL ELSE jsonb_build_object(${entity.columns
      .map((column) => `'${column.name}', ${alias}.${quoteIdent(column.name)}::text`)
      .join(', ')}) END`;
  const differs = `l."id" IS NULL OR r."id" IS NULL OR ROW(${columns.map((c) => `l.${c}`).join(', ')}) IS DISTINCT FROM ROW(${columns.map((c) => `r.${c}`).join(', ')})`;
  const from = `${liveTable} l FULL JOIN ${rebuiltTable} r ON l."id" = r."id"`;
  let differingRows = 0;
  let firstDifferences: RowDifference[] = [];
  if (live.hash !== rebuilt.hash || live.rows !== rebuilt.rows) {
    const counted = await db.query<{ n: string }>(`SELECT count(*)::text AS n FROM ${from} WHERE ${differs}`);
    differingRows = Number(counted.rows[0]!.n);
    const { rows } = await db.query<RowDifference>(
      `SELECT coalesce(l."id", r."id") AS id, ${textObject('l')} AS live, ${textObject('r')} AS rebuilt
         FROM ${from} WHERE ${differs} ORDER BY 1 LIMIT ${Math.floor(sample)}`,
    );
    firstDifferences = rows;
  }
  return {
    entity: entity.name,
    liveRows: live.rows,
    rebuiltRows: rebuilt.rows,
    liveHash: live.hash,
    rebuiltHash: rebuilt.hash,
    differingRows,
    firstDifferences,
  };
}
