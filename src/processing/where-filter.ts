// `getWhere` filters: `{ field: { _eq, _gt, _lt, _gte, _lte, _in } }`, several fields (and several
// operators on one field) ANDed. One filter has three readings that must agree:
//  - SQL, to load matching committed rows (`sqlFor`),
//  - in memory, to answer from the store merged with those rows (`matches`),
//  - a key, so that the same filter is loaded once per batch and single-field `_eq`/`_in`
//    filters of many handlers merge into one `= ANY($1)` query (`mergeKey`).
// Values are validated against the field's type first, so SQL parameters are in wire form.

import { StrataError } from '../errors.ts';
import { quoteIdent } from '../schema/ddl.ts';
import type { ColumnDescription, EntityDescription } from '../schema/define-schema.ts';
import type { EntityRow } from '../schema/wire.ts';

export type Operator = '_eq' | '_gt' | '_lt' | '_gte' | '_lte' | '_in';
const OPERATORS = new Set<string>(['_eq', '_gt', '_lt', '_gte', '_lte', '_in']);
const SQL_OPERATOR: Record<Exclude<Operator, '_in'>, string> = {
  _eq: '=',
  _gt: '>',
  _lt: '<',
  _gte: '>=',
  _lte: '<=',
};

export type WhereFilter<Row> = {
  [K in keyof Row]?: {
    _eq?: Row[K];
    _gt?: Row[K];
    _lt?: Row[K];
    _gte?: Row[K];
    _lte?: Row[K];
    _in?: ReadonlyArray<Row[K]>;
  };
};

export interface Condition {
  column: ColumnDescription;
  operator: Operator;
  /** The value (an array for `_in`) as handlers wrote it. */
  value: unknown;
}

export interface ParsedFilter {
  entity: EntityDescription;
  conditions: Condition[];
  /** Canonical text of the filter: equal filters have equal keys. */
  key: string;
}

export function parseFilter(entity: EntityDescription, filter: unknown): ParsedFilter {
  if (typeof filter !== 'object' || filter === null || Array.isArray(filter)) {
    throw filterError(entity, 'the filter must be an object of { field: { operator: value } }');
  }
  const conditions: Condition[] = [];
  for (const [field, operators] of Object.entries(filter)) {
    const column = entity.columns.find((candidate) => candidate.name === field);
    if (column === undefined) throw filterError(entity, `unknown field ${field}`);
    if (column.spec.array || column.spec.kind === 'json')
      throw filterError(
        entity,
        `field ${field} (${column.spec.kind}${column.spec.array ? '[]' : ''}) cannot be filtered`,
      );
    if (typeof operators !== 'object' || operators === null)
      throw filterError(entity, `field ${field}: expected { _eq | _gt | _lt | _gte | _lte | _in: value }`);
    for (const [operator, value] of Object.entries(operators)) {
      if (!OPERATORS.has(operator)) throw filterError(entity, `field ${field}: unknown operator ${operator}`);
      if (operator === '_in') {
        if (!Array.isArray(value)) throw filterError(entity, `field ${field}: _in needs an array`);
        for (const element of value) checkValue(entity, column, element);
      } else checkValue(entity, column, value);
      conditions.push({ column, operator: operator as Operator, value });
    }
  }
  if (conditions.length === 0) throw filterError(entity, 'the filter has no condition');
  conditions.sort((a, b) =>
    a.column.name === b.column.name
      ? a.operator.localeCompare(b.operator)
      : a.column.name.localeCompare(b.column.name),
  );
  return { entity, conditions, key: conditionsKey(conditions) };
}

function conditionsKey(conditions: readonly Condition[]): string {
  return conditions
    .map(
      (condition) =>
        `${condition.column.name}${condition.operator}${JSON.stringify(condition.value, bigintReplacer)}`,
    )
    .join('&');
}

/**
 * The `_eq`/`_in` condition a filter is looked up by (in memory: a field index; in SQL: one
 * `= ANY($1)` query shared by every filter with the same other conditions), if it has one.
 */
export function lookupCondition(
  filter: ParsedFilter,
): { field: string; values: unknown[]; rest: Condition[]; restKey: string } | null {
  const index = filter.conditions.findIndex(
    (condition) => condition.operator === '_eq' || condition.operator === '_in',
  );
  if (index < 0) return null;
  const condition = filter.conditions[index]!;
  const values = condition.operator === '_eq' ? [condition.value] : [...(condition.value as unknown[])];
  const rest = filter.conditions.filter((_, other) => other !== index);
  return { field: condition.column.name, values, rest, restKey: conditionsKey(rest) };
}

/** `WHERE` text and parameters (from `$firstParam`) for conditions (a filter's, or some of them). */
export function sqlFor(
  conditions: readonly Condition[],
  firstParam = 1,
): { where: string; params: unknown[] } {
  const parts: string[] = [];
  const params: unknown[] = [];
  for (const { column, operator, value } of conditions) {
    const ident = quoteIdent(column.name);
    if (operator === '_in') {
      params.push((value as unknown[]).map((element) => sqlValue(column, element)));
      parts.push(`${ident} = ANY($${firstParam + params.length - 1}::${arrayCast(column)})`);
    } else {
      params.push(sqlValue(column, value));
      parts.push(`${ident} ${SQL_OPERATOR[operator]} $${firstParam + params.length - 1}`);
    }
  }
  return { where: parts.join(' AND '), params };
}

export function arrayCast(column: ColumnDescription): string {
  const base = {
    text: 'text',
    integer: 'integer',
    bigint: 'numeric',
    numeric: 'numeric',
    boolean: 'boolean',
    timestamptz: 'timestamptz',
    json: 'jsonb',
  }[column.spec.kind];
  return `${base}[]`;
}

export function sqlValue(column: ColumnDescription, value: unknown): unknown {
  if (typeof value === 'bigint') return value.toString();
  if (value instanceof Date) return value.toISOString();
  void column;
  return value;
}

export function matches(filter: ParsedFilter, row: EntityRow): boolean {
  return matchesAll(filter.conditions, row);
}

export function matchesAll(conditions: readonly Condition[], row: EntityRow): boolean {
  for (const { column, operator, value } of conditions) {
    const actual = row[column.name];
    const numeric = column.spec.kind === 'numeric';
    if (operator === '_in') {
      if (!(value as unknown[]).some((candidate) => compare(actual, candidate, numeric) === 0)) return false;
      continue;
    }
    const order = compare(actual, value, numeric);
    if (order === null) return false;
    if (operator === '_eq' && order !== 0) return false;
    if (operator === '_gt' && !(order > 0)) return false;
    if (operator === '_lt' && !(order < 0)) return false;
    if (operator === '_gte' && !(order >= 0)) return false;
    if (operator === '_lte' && !(order <= 0)) return false;
  }
  return true;
}

/** Orders two values of one field type; null when either is null (SQL: unknown, never matches). */
function compare(a: unknown, b: unknown, numeric: boolean): number | null {
  if (a === null || a === undefined || b === null || b === undefined) return null;
  if (a instanceof Date && b instanceof Date) return a.getTime() - b.getTime();
  if (numeric && a !== b) {
    // numeric fields are decimal strings: compare them as numbers, not as text
    const difference = Number(a) - Number(b);
    if (difference !== 0) return difference;
  }
  if (a === b) return 0;
  return (a as number) < (b as number) ? -1 : 1;
}

function checkValue(entity: EntityDescription, column: ColumnDescription, value: unknown): void {
  const ok =
    value !== undefined &&
    (value === null ||
      {
        text: typeof value === 'string',
        integer: typeof value === 'number',
        bigint: typeof value === 'bigint',
        numeric: typeof value === 'string',
        boolean: typeof value === 'boolean',
        timestamptz: value instanceof Date,
        json: false,
      }[column.spec.kind]);
  if (!ok) throw filterError(entity, `field ${column.name}: ${String(value)} is not a ${column.spec.kind}`);
}

function bigintReplacer(_key: string, value: unknown): unknown {
  return typeof value === 'bigint' ? `${value}n` : value;
}

function filterError(entity: EntityDescription, message: string): StrataError {
  return new StrataError('STRATA_ERR_FILTER_INVALID', `${entity.name}.getWhere: ${message}`, {
    details: { entity: entity.name },
  });
}

export type OrderBy<Row> = ReadonlyArray<
  (keyof Row & string) | readonly [keyof Row & string, 'asc' | 'desc']
>;

/**
 * A comparator for `getWhere`'s `orderBy` (default: by id). Rows always come back in a defined
 * order: which of them happen to be in memory must never decide what a handler sees first, or a
 * replay could differ from the live run. Ascending puts nulls last, as Postgres does; the id
 * breaks every tie.
 */
export function rowOrder(
  entity: EntityDescription,
  orderBy: unknown,
): (a: EntityRow, b: EntityRow) => number {
  if (orderBy !== undefined && !Array.isArray(orderBy))
    throw filterError(entity, 'orderBy must be an array of field names or [field, "asc" | "desc"]');
  const keys: Array<{ field: string; direction: 1 | -1; numeric: boolean }> = [];
  for (const entry of (orderBy ?? []) as unknown[]) {
    const [field, direction] = Array.isArray(entry) ? entry : [entry, 'asc'];
    const column = entity.columns.find((candidate) => candidate.name === field);
    if (column === undefined) throw filterError(entity, `orderBy: unknown field ${String(field)}`);
    if (column.spec.array || column.spec.kind === 'json')
      throw filterError(entity, `orderBy: field ${column.name} cannot be ordered by`);
    if (direction !== 'asc' && direction !== 'desc')
      throw filterError(entity, `orderBy: direction of ${column.name} must be "asc" or "desc"`);
    keys.push({
      field: column.name,
      direction: direction === 'asc' ? 1 : -1,
      numeric: column.spec.kind === 'numeric',
    });
  }
  keys.push({ field: 'id', direction: 1, numeric: false });
  return (a, b) => {
    for (const { field, direction, numeric } of keys) {
      const x = a[field];
      const y = b[field];
      if (x === y) continue;
      if (x === null || x === undefined) return direction; // nulls last ascending, first descending
      if (y === null || y === undefined) return -direction;
      const order = compare(x, y, numeric)!;
      if (order !== 0) return order < 0 ? -direction : direction;
    }
    return 0;
  };
}
