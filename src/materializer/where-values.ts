// The value types a shape's `where` clause works on, and the conversions between Postgres text
// (what rows carry on the way to clients, and what params and literals are) and values that
// compare the way Postgres compares them.

import type { FieldSpec } from '../schema/fields.ts';
import { compareDecimal, type Decimal, parseDecimal } from './decimal.ts';

export type ValueType = 'text' | 'integer' | 'bigint' | 'numeric' | 'boolean' | 'timestamptz';

/** text: string; integer, bigint, numeric: Decimal; boolean; timestamptz: µs since the epoch. */
export type Value = string | Decimal | boolean | number | null;

export const NUMERIC_TYPES: ReadonlySet<ValueType> = new Set(['integer', 'bigint', 'numeric']);

/** The where type of a schema field; null for those a where clause cannot use yet (json, arrays). */
export function fieldValueType(spec: FieldSpec): ValueType | null {
  if (spec.array || spec.kind === 'json') return null;
  return spec.kind;
}

/** Postgres type names a cast may name, to our types. */
const CAST_NAMES: Record<string, ValueType> = {
  text: 'text',
  varchar: 'text',
  int2: 'integer',
  int4: 'integer',
  integer: 'integer',
  int: 'integer',
  int8: 'bigint',
  bigint: 'bigint',
  numeric: 'numeric',
  decimal: 'numeric',
  bool: 'boolean',
  boolean: 'boolean',
  timestamptz: 'timestamptz',
};

export function castTargetType(name: string): ValueType | null {
  return CAST_NAMES[name] ?? null;
}

const TIMESTAMP_TEXT =
  /^(\d{4})-(\d{2})-(\d{2})(?:[T ](\d{2}):(\d{2})(?::(\d{2})(?:\.(\d{1,6})\d*)?)?)?\s*(Z|[+-]\d{2}(?::?\d{2})?)?$/i;

/**
 * Timestamp text — ISO 8601 (`2024-05-01T12:00:00.5Z`) or Postgres output
 * (`2024-05-01 12:00:00.5+00`) — to µs since the epoch; without a zone, UTC. Null if invalid.
 */
function parseTimestamp(text: string): number | null {
  const match = TIMESTAMP_TEXT.exec(text.trim());
  if (match === null) return null;
  const [, y, mo, d, h = '0', mi = '0', s = '0', fraction = '', zone = 'Z'] = match;
  const ms = Date.UTC(Number(y), Number(mo) - 1, Number(d), Number(h), Number(mi), Number(s));
  if (Number.isNaN(ms) || Number(mo) > 12 || Number(d) > 31 || Number(h) > 23 || Number(mi) > 59) return null;
  let offsetMinutes = 0;
  if (zone.toUpperCase() !== 'Z') {
    const sign = zone.startsWith('-') ? -1 : 1;
    const digits = zone.slice(1).replace(':', '');
    offsetMinutes = sign * (Number(digits.slice(0, 2)) * 60 + Number(digits.slice(2, 4) || '0'));
  }
  return (ms - offsetMinutes * 60_000) * 1000 + Number(fraction.padEnd(6, '0'));
}

/** Postgres text of a value of `type` to the value; undefined when the text is not one. */
export function parseValue(type: ValueType, text: string): Value | undefined {
  switch (type) {
    case 'text':
      return text;
    case 'integer':
    case 'bigint': {
      const value = parseDecimal(text);
      return value !== null && value.scale === 0 ? value : undefined;
    }
    case 'numeric':
      return parseDecimal(text) ?? undefined;
    case 'boolean': {
      const word = text.trim().toLowerCase();
      if (['t', 'true', 'yes', 'on', '1', 'y'].includes(word)) return true;
      if (['f', 'false', 'no', 'off', '0', 'n'].includes(word)) return false;
      return undefined;
    }
    case 'timestamptz':
      return parseTimestamp(text) ?? undefined;
  }
}

/** A value as text Postgres parses back to the same value in `type` (parameters of snapshot SQL). */
export function valueToText(type: ValueType, value: Value): string | null {
  if (value === null) return null;
  if (type === 'boolean') return value ? 'true' : 'false';
  if (type === 'timestamptz') {
    const micros = value as number;
    const ms = Math.floor(micros / 1000);
    const iso = new Date(ms).toISOString(); // …ss.mmmZ
    return `${iso.slice(0, -1)}${String(micros - ms * 1000).padStart(3, '0')}Z`;
  }
  if (typeof value === 'string') return value;
  return decimalText(value as Decimal);
}

function decimalText({ units, scale }: Decimal): string {
  if (scale === 0) return units.toString();
  const negative = units < 0n;
  const digits = (negative ? -units : units).toString().padStart(scale + 1, '0');
  return `${negative ? '-' : ''}${digits.slice(0, -scale)}.${digits.slice(-scale)}`;
}

/** Postgres' ordering of two non-null values of one type (text in the "C" collation). */
export function compareValues(a: Value, b: Value): number {
  if (typeof a === 'string') return compareCodePoints(a, b as string);
  if (typeof a === 'number') return a - (b as number);
  if (typeof a === 'boolean') return Number(a) - Number(b as boolean);
  return compareDecimal(a as Decimal, b as Decimal);
}

/**
 * Code point order, which is the byte order of UTF-8 and so Postgres's "C" collation. JavaScript's
 * `<` compares UTF-16 units, which differs only between a surrogate and U+E000–U+FFFF.
 */
function compareCodePoints(a: string, b: string): number {
  const length = Math.min(a.length, b.length);
  for (let i = 0; i < length; i++) {
    const x = a.charCodeAt(i);
    const y = b.charCodeAt(i);
    if (x === y) continue;
    if (x >= 0xd800 && y >= 0xd800) return codePointRank(x) - codePointRank(y);
    return x - y;
  }
  return a.length - b.length;
}

/** Surrogates (U+D800–DFFF, halves of code points above U+FFFF) rank above U+E000–U+FFFF. */
function codePointRank(unit: number): number {
  return unit >= 0xd800 && unit <= 0xdfff ? unit + 0x10000 : unit;
}

/**
 * A value as a routing key: equal values of one type give the same key whatever their text
 * (`1.50` and `1.5`, `t` and `true`).
 */
export function valueKey(value: Value): string {
  if (value === null) return '\u0000null';
  if (typeof value === 'string') return value;
  if (typeof value === 'number') return String(value);
  if (typeof value === 'boolean') return value ? 't' : 'f';
  return normalizedDecimalText(value as Decimal);
}

function normalizedDecimalText(value: Decimal): string {
  let { units, scale } = value;
  while (scale > 0 && units % 10n === 0n) {
    units /= 10n;
    scale -= 1;
  }
  return decimalText({ units, scale });
}
