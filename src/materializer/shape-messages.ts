// How one committed row change becomes a shape's log message, as Electric turns updates into
// shape changes: in → in is an update (replica=default: the key column plus the changed
// columns; replica=full: the whole new row and `old_value`), out → in an insert, in → out a delete
// (the key column only, or with replica=full the whole old row), and an update whose projected
// columns did not change sends nothing. Values are Postgres text (or null), as in snapshots.

import type { WhereExpr } from './where-ast.ts';
import { matches, type TextRow } from './where-eval.ts';

export interface ShapeView {
  /** `["<pipeline>", "<Entity>"]`. */
  relation: readonly [string, string];
  where: WhereExpr | null;
  /** Projected columns, the key column (`id`) first. */
  columns: readonly string[];
  replica: 'default' | 'full';
}

export type Operation = 'insert' | 'update' | 'delete';

export interface ShapeMessage {
  key: string;
  value: Record<string, string | null>;
  old_value?: Record<string, string | null>;
  headers: { operation: Operation; relation: readonly [string, string] } & Record<string, unknown>;
}

/** Electric's key form: `"schema"."table"/"id"`, with `/` doubled inside the id. */
export function rowKey(relation: readonly [string, string], id: string): string {
  return `${quoteKeyPart(relation[0])}.${quoteKeyPart(relation[1])}/"${id.replaceAll('/', '//')}"`;
}

function quoteKeyPart(part: string): string {
  return `"${part.replaceAll('/', '//').replaceAll('.', '..')}"`;
}

function project(row: TextRow, columns: readonly string[]): Record<string, string | null> {
  const value: Record<string, string | null> = {};
  for (const column of columns) value[column] = row[column] ?? null;
  return value;
}

export function inShape(shape: ShapeView, row: TextRow | null): row is TextRow {
  return row !== null && (shape.where === null || matches(shape.where, row));
}

/** The message a change from `before` to `after` (null: no row) makes in the shape, if any. */
export function messageFor(
  shape: ShapeView,
  before: TextRow | null,
  after: TextRow | null,
): ShapeMessage | null {
  const wasIn = inShape(shape, before);
  const isIn = inShape(shape, after);
  if (!wasIn && !isIn) return null;
  const row = (isIn ? after : before) as TextRow;
  const key = rowKey(shape.relation, row.id as string);
  const headers = (operation: Operation) => ({ operation, relation: shape.relation });
  if (isIn && !wasIn)
    return { key, value: project(after as TextRow, shape.columns), headers: headers('insert') };
  if (wasIn && !isIn) {
    const value =
      shape.replica === 'full' ? project(before as TextRow, shape.columns) : { id: before!.id ?? null };
    return { key, value, headers: headers('delete') };
  }
  const changed = shape.columns.filter(
    (column) => (before as TextRow)[column] !== (after as TextRow)[column],
  );
  if (changed.length === 0) return null;
  if (shape.replica === 'full') {
    return {
      key,
      value: project(after as TextRow, shape.columns),
      old_value: project(before as TextRow, changed),
      headers: headers('update'),
    };
  }
  return {
    key,
    value: project(after as TextRow, ['id', ...changed.filter((c) => c !== 'id')]),
    headers: headers('update'),
  };
}
