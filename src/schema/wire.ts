// Converting entity values between their three forms:
//  - JavaScript (what handlers see: bigint, Date, objects),
//  - wire (what crosses threads to the writer: JSON-safe, one array per row in column order, in
//    the text form Postgres parses — so the writer never looks at a value, it only forwards it),
//  - database (what `pg` returns when the LoadLayer reads rows).
// Validation happens here, once, when a handler calls `set`: a bad value is reported to the
// handler that produced it instead of failing a whole write transaction later.

import { StrataError } from '../errors.ts';
import type { EntityDescription } from './define-schema.ts';
import type { FieldSpec } from './fields.ts';

export type EntityRow = Record<string, unknown> & { id: string };
export type WireRow = unknown[];

const NUMERIC = /^-?(\d+(\.\d*)?|\.\d+)$/;
const INT32_MIN = -2_147_483_648;
const INT32_MAX = 2_147_483_647;

/**
 * Checks a handler's row against the entity without converting it (no allocation): `set` calls
 * this on every write, while the wire form is built once per id per batch, for the final value.
 */
export function validateRow(entity: EntityDescription, row: Record<string, unknown>): void {
  const columns = entity.columns;
  for (let i = 0; i < columns.length; i++) {
    const column = columns[i]!;
    const value = row[column.name];
    if (!column.spec.array && isValidScalar(column.spec, value)) continue;
    // Slow path (arrays, nulls, errors): the converter validates and throws the precise error.
    valueToWire(entity.name, column.name, column.spec, value);
  }
}

function isValidScalar(spec: FieldSpec, value: unknown): boolean {
  switch (spec.kind) {
    case 'text':
      return typeof value === 'string';
    case 'integer':
      return Number.isInteger(value) && (value as number) >= INT32_MIN && (value as number) <= INT32_MAX;
    case 'bigint':
      return typeof value === 'bigint';
    case 'boolean':
      return typeof value === 'boolean';
    case 'timestamptz':
      return value instanceof Date && !Number.isNaN(value.getTime());
    default:
      return false;
  }
}

/** Checks a handler's row against the entity and returns it in wire form (column order). */
export function rowToWire(entity: EntityDescription, row: Record<string, unknown>): WireRow {
  const out: unknown[] = new Array(entity.columns.length);
  for (let i = 0; i < entity.columns.length; i++) {
    const column = entity.columns[i]!;
    out[i] = valueToWire(entity.name, column.name, column.spec, row[column.name]);
  }
  return out;
}

export function valueToWire(entity: string, field: string, spec: FieldSpec, value: unknown): unknown {
  if (value === null || value === undefined) {
    if (spec.nullable) return null;
    throw invalid(entity, field, spec, value);
  }
  if (spec.array) {
    if (!Array.isArray(value)) throw invalid(entity, field, spec, value);
    const elementSpec: FieldSpec = { ...spec, array: false, nullable: true };
    return arrayLiteral(value.map((element) => scalarToWire(entity, field, elementSpec, element)));
  }
  return scalarToWire(entity, field, spec, value);
}

function scalarToWire(entity: string, field: string, spec: FieldSpec, value: unknown): unknown {
  if (value === null || value === undefined) {
    if (spec.nullable) return null;
    throw invalid(entity, field, spec, value);
  }
  switch (spec.kind) {
    case 'text':
      if (typeof value === 'string') return value;
      break;
    case 'integer':
      if (Number.isInteger(value) && (value as number) >= INT32_MIN && (value as number) <= INT32_MAX)
        return value;
      break;
    case 'bigint':
      if (typeof value === 'bigint') return value.toString();
      break;
    case 'numeric':
      if (typeof value === 'string' && NUMERIC.test(value)) return value;
      break;
    case 'boolean':
      if (typeof value === 'boolean') return value;
      break;
    case 'timestamptz':
      if (value instanceof Date && !Number.isNaN(value.getTime())) return value.toISOString();
      break;
    case 'json':
      return JSON.stringify(value, (_key, inner: unknown) =>
        typeof inner === 'bigint' ? inner.toString() : inner,
      );
  }
  throw invalid(entity, field, spec, value);
}

/** A one-dimensional Postgres array literal: `{"a","b",NULL}`. Elements are already wire values. */
export function arrayLiteral(elements: unknown[]): string {
  const parts = elements.map((element) => {
    if (element === null) return 'NULL';
    const text = String(element);
    return `"${text.replace(/\\/g, '\\\\').replace(/"/g, '\\"')}"`;
  });
  return `{${parts.join(',')}}`;
}

/** The elements of an array literal made by `arrayLiteral` (every element quoted, or NULL). */
export function parseArrayLiteral(literal: string): Array<string | null> {
  const elements: Array<string | null> = [];
  let i = 1; // after '{'
  while (i < literal.length - 1) {
    if (literal.startsWith('NULL', i)) {
      elements.push(null);
      i += 4;
    } else {
      let text = '';
      for (i += 1; literal[i] !== '"'; i++) text += literal[i] === '\\' ? literal[++i] : literal[i];
      elements.push(text);
      i += 1; // the closing quote
    }
    if (literal[i] === ',') i += 1;
  }
  return elements;
}

/** A row read by `pg` back into the JavaScript form handlers see. */
export function rowFromDb(entity: EntityDescription, dbRow: Record<string, unknown>): EntityRow {
  const row: Record<string, unknown> = {};
  for (const column of entity.columns) {
    row[column.name] = valueFromDb(column.spec, dbRow[column.name]);
  }
  return row as EntityRow;
}

function valueFromDb(spec: FieldSpec, value: unknown): unknown {
  if (value === null || value === undefined) return null;
  if (spec.array) return (value as unknown[]).map((element) => scalarFromDb(spec, element));
  return scalarFromDb(spec, value);
}

function scalarFromDb(spec: FieldSpec, value: unknown): unknown {
  if (value === null) return null;
  if (spec.kind === 'bigint') return BigInt(value as string);
  if (spec.kind === 'timestamptz' && !(value instanceof Date)) return new Date(value as string);
  return value;
}

function invalid(entity: string, field: string, spec: FieldSpec, value: unknown): StrataError {
  const expected = `${spec.kind}${spec.array ? '[]' : ''}${spec.nullable ? ' or null' : ''}`;
  const shown = typeof value === 'bigint' ? `${value}n` : (JSON.stringify(value) ?? String(value));
  return new StrataError(
    'STRATA_ERR_ENTITY_INVALID',
    `${entity}.${field} must be ${expected}, got ${shown?.slice(0, 80)} (${value === null ? 'null' : typeof value})`,
    { details: { entity, field, expected } },
  );
}
