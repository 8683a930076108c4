// Where live shapes are kept durably (migration 0008), and every statement on those tables: each
// shape's definition and handle in `strata.shapes`, and each pipeline's captured changes in
// `strata.shape_log`, appended and compacted by the writer inside its own transactions. A materializer that starts — after a crash, a restart, or
// in another process of a fleet — reads its shapes here and rebuilds their logs by routing the
// stored fragments again: the same fragments in the same order give the same offsets.

import type { Queryable } from '../db/pool.ts';
import type { ShapeChangesFragment } from '../protocol.ts';
import type { ShapeDefinition } from './shape-definition.ts';

export interface StoredShape {
  handle: string;
  pipeline: string;
  entity: string;
  definition: ShapeDefinition;
  startSequence: number;
}

/**
 * Appends fragments of transaction `sequence` (the changes as JSON text, parsed only on a
 * replay), in one statement.
 */
export async function appendShapeLog(
  db: Queryable,
  pipeline: string,
  sequence: number,
  fragments: ReadonlyArray<Pick<ShapeChangesFragment, 'entity' | 'fragment' | 'changes'>>,
): Promise<void> {
  await db.query(
    `INSERT INTO strata.shape_log (pipeline, sequence, entity, fragment, changes)
     SELECT $1, $2, * FROM unnest($3::text[], $4::int[], $5::text[])`,
    [
      pipeline,
      sequence,
      fragments.map((f) => f.entity),
      fragments.map((f) => f.fragment),
      fragments.map((f) => JSON.stringify(f.changes)),
    ],
  );
}

/** Drops the stored log's transactions up to `through` and records the floor (readers before it refetch). */
export async function compactShapeLog(db: Queryable, pipeline: string, through: number): Promise<void> {
  await db.query(`DELETE FROM strata.shape_log WHERE pipeline = $1 AND sequence <= $2`, [pipeline, through]);
  await db.query(
    `UPDATE strata.pipelines SET shape_log_floor = $2 WHERE name = $1 AND shape_log_floor < $2`,
    [pipeline, through],
  );
}

/** Fragments read per round trip when a log is replayed (each holds at most 1,000 changes). */
const REPLAY_PAGE = 64;

export async function loadShapes(db: Queryable): Promise<StoredShape[]> {
  const { rows } = await db.query<{
    handle: string;
    pipeline: string;
    entity: string;
    definition: ShapeDefinition;
    start_sequence: string;
  }>(
    `SELECT handle, pipeline, entity, definition, start_sequence FROM strata.shapes ORDER BY created_at, handle`,
  );
  return rows.map((row) => ({
    handle: row.handle,
    pipeline: row.pipeline,
    entity: row.entity,
    definition: row.definition,
    startSequence: Number(row.start_sequence),
  }));
}

/** The tables the writer must capture: those with stored shapes. */
export async function capturedTables(db: Queryable): Promise<Array<{ pipeline: string; entity: string }>> {
  const { rows } = await db.query<{ pipeline: string; entity: string }>(
    `SELECT DISTINCT pipeline, entity FROM strata.shapes`,
  );
  return rows;
}

export async function saveShape(db: Queryable, shape: StoredShape): Promise<void> {
  await db.query(
    `INSERT INTO strata.shapes (handle, pipeline, entity, definition, start_sequence) VALUES ($1, $2, $3, $4, $5)`,
    [shape.handle, shape.pipeline, shape.entity, JSON.stringify(shape.definition), shape.startSequence],
  );
}

export async function deleteShape(db: Queryable, handle: string): Promise<void> {
  await db.query(`DELETE FROM strata.shapes WHERE handle = $1`, [handle]);
}

/**
 * The pipelines' committed transaction counts (what a replay reads up to) and how far their
 * stored logs were compacted (what a replay cannot read).
 */
export async function shapeLogBounds(
  db: Queryable,
  pipelines: string[],
): Promise<Map<string, { committed: number; floor: number }>> {
  const { rows } = await db.query<{ name: string; commit_sequence: string; shape_log_floor: string }>(
    `SELECT name, commit_sequence, shape_log_floor FROM strata.pipelines WHERE name = ANY($1::text[])`,
    [pipelines],
  );
  return new Map(
    rows.map((row) => [
      row.name,
      { committed: Number(row.commit_sequence), floor: Number(row.shape_log_floor) },
    ]),
  );
}

/**
 * The pipeline's stored fragments of transactions `after` < sequence ≤ `through`, in the order
 * the writer sent them (per transaction, each entity's fragments in order), a page at a time.
 */
export async function* readShapeLog(
  db: Queryable,
  pipeline: string,
  after: number,
  through: number,
): AsyncGenerator<ShapeChangesFragment> {
  let cursor: [number, string, number] = [after, '', -1];
  for (;;) {
    const { rows } = await db.query<{ sequence: string; entity: string; fragment: number; changes: string }>(
      `SELECT sequence, entity, fragment, changes FROM strata.shape_log
        WHERE pipeline = $1 AND sequence > $2 AND sequence <= $3 AND (sequence, entity, fragment) > ($4, $5, $6)
        ORDER BY sequence, entity, fragment LIMIT ${REPLAY_PAGE}`,
      [pipeline, after, through, ...cursor],
    );
    for (const row of rows) {
      yield {
        pipeline,
        entity: row.entity,
        sequence: Number(row.sequence),
        fragment: row.fragment,
        changes: JSON.parse(row.changes),
      };
    }
    if (rows.length < REPLAY_PAGE) return;
    const last = rows[rows.length - 1]!;
    cursor = [Number(last.sequence), last.entity, last.fragment];
  }
}
