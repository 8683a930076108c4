// Which shapes of one table a change may concern, without looking at every shape. A shape whose
// `where` has, at its top level (alone or ANDed with anything), `column = constant` or
// `column IN (constants)` is filed under that column and those values in a hash index: a change
// costs one lookup per indexed column for its old and its new row, however many such shapes there
// are. Other shapes are scanned. The caller still evaluates each candidate's whole clause: the
// index only narrows the candidates.

import type { WhereExpr } from './where-ast.ts';
import type { TextRow } from './where-eval.ts';
import { parseValue, type ValueType, valueKey } from './where-values.ts';

export interface IndexKey {
  column: string;
  type: ValueType;
  /** Value keys (`valueKey`) the column must have. */
  keys: string[];
}

/** The equality conjunct a shape is indexed by, or null (scanned). */
export function indexKeyOf(where: WhereExpr | null): IndexKey | null {
  if (where === null) return null;
  const conjuncts = where.kind === 'and' ? where.args : [where];
  for (const conjunct of conjuncts) {
    if (conjunct.kind === 'compare' && conjunct.op === '=') {
      const [column, constant] =
        conjunct.left.kind === 'column' ? [conjunct.left, conjunct.right] : [conjunct.right, conjunct.left];
      if (column.kind === 'column' && constant.kind === 'constant' && constant.value !== null)
        return { column: column.name, type: column.type, keys: [valueKey(constant.value)] };
    }
    if (conjunct.kind === 'in' && !conjunct.negated && conjunct.arg.kind === 'column') {
      const values = conjunct.list.flatMap((item) =>
        item.kind === 'constant' && item.value !== null
          ? [valueKey(item.value)]
          : item.kind === 'constant'
            ? []
            : [null],
      );
      // Every item must be a constant (NULL items never match and drop out).
      if (!values.includes(null))
        return { column: conjunct.arg.name, type: conjunct.arg.type, keys: values as string[] };
    }
  }
  return null;
}

export class RoutingIndex {
  /** column → value key → shape ids. */
  private readonly byColumn = new Map<string, FiledColumn>();
  private readonly scanned = new Set<number>();
  private readonly keyOf = new Map<number, IndexKey | null>();

  add(id: number, where: WhereExpr | null): void {
    const key = indexKeyOf(where);
    this.keyOf.set(id, key);
    if (key === null) {
      this.scanned.add(id);
      return;
    }
    let column = this.byColumn.get(key.column);
    if (column === undefined) {
      column = { type: key.type, byValue: new Map() };
      this.byColumn.set(key.column, column);
    }
    for (const value of key.keys) {
      let ids = column.byValue.get(value);
      if (ids === undefined) {
        ids = new Set();
        column.byValue.set(value, ids);
      }
      ids.add(id);
    }
  }

  remove(id: number): void {
    const key = this.keyOf.get(id);
    this.keyOf.delete(id);
    if (key === undefined) return;
    if (key === null) {
      this.scanned.delete(id);
      return;
    }
    const column = this.byColumn.get(key.column)!;
    for (const value of key.keys) {
      const ids = column.byValue.get(value);
      ids?.delete(id);
      if (ids?.size === 0) column.byValue.delete(value);
    }
    if (column.byValue.size === 0) this.byColumn.delete(key.column);
  }

  /** Shapes the change from `before` to `after` (either null) may concern. */
  candidates(before: TextRow | null, after: TextRow | null, visit: (id: number) => void): void {
    for (const id of this.scanned) visit(id);
    for (const [name, column] of this.byColumn) {
      const seen = new Set<number>();
      for (const row of [before, after]) {
        const text = row?.[name];
        if (text === null || text === undefined) continue;
        for (const id of filedUnder(column, text) ?? []) {
          if (seen.has(id)) continue;
          seen.add(id);
          visit(id);
        }
      }
    }
  }

  /**
   * Whether every shape is filed under `column` (none scanned, none under another column): then a
   * row can concern a shape only if its `column` holds one of the filed values.
   */
  allIndexedBy(column: string): boolean {
    return this.scanned.size === 0 && [...this.byColumn.keys()].every((name) => name === column);
  }

  /** Whether some shape is filed under `column` with the value `text` (Postgres text). */
  hasValue(column: string, text: string): boolean {
    const filed = this.byColumn.get(column);
    return filed !== undefined && filedUnder(filed, text) !== undefined;
  }

  /** For /status: shapes routed through the index and shapes scanned. */
  counts(): { indexed: number; scanned: number } {
    return { indexed: this.keyOf.size - this.scanned.size, scanned: this.scanned.size };
  }
}

/** One column's shapes by the value their clause requires (an empty set is never kept). */
interface FiledColumn {
  type: ValueType;
  byValue: Map<string, Set<number>>;
}

/** The shapes filed under the column's value `text` (Postgres text), if any. */
function filedUnder(column: FiledColumn, text: string): Set<number> | undefined {
  const value = parseValue(column.type, text);
  return value === undefined || value === null ? undefined : column.byValue.get(valueKey(value));
}
