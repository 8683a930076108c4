// NUL bytes cost nothing on the normal write path: rows go to Postgres as they are. Postgres
// refuses a NUL in text (22021, "invalid byte sequence for encoding UTF8: 0x00") and the JSON
// escape \u0000 in jsonb (22P05, "unsupported Unicode escape sequence"); then, and only then, the
// writer retries the transaction with the rows of the tables that hold one escaped, so unrelated
// rows and tables in the same transaction are never lost. Escaped form: the six characters
// `\u0000` (in text fields and inside JSON strings alike, at any depth).

import { escapeText, unescapeText } from '../schema/copy-text.ts';
import type { EntityDescription } from '../schema/define-schema.ts';
import type { FieldSpec } from '../schema/fields.ts';
import { arrayLiteral, parseArrayLiteral } from '../schema/wire.ts';

/** Is this Postgres refusing a NUL (text) or a \u0000 escape (jsonb)? */
export function isNulEncodingError(error: unknown): boolean {
  for (
    let current = error as { code?: unknown; message?: unknown; cause?: unknown } | null, depth = 0;
    current != null && depth < 8;
    current = current.cause as typeof current, depth++
  ) {
    if (current.code === '22021' || current.code === '22P05') return true;
    if (typeof current.message === 'string' && /0x00|\\u0000/.test(current.message)) return true;
  }
  return false;
}

const RAW_NUL = '\u0000';
/** The six characters a NUL is stored as. */
const STORED_NUL = '\\u0000';
// A NUL in a JSON string (JSON.stringify writes it as the escape), in COPY text.
const JSON_NUL_IN_COPY = '\\\\u0000';

/**
 * An entity's COPY text rows (followed by `trailingColumns` more columns that hold no text, like
 * a history row's checkpoint) with every NUL made storable, or null when they hold none. Only
 * lines that can hold one are touched; in them each field is decoded and mended by its column's
 * type — a text value's NULs become the six characters `\u0000`, a JSON value's are replaced in its
 * strings at any depth, an array's in each element — so a value that merely contains those six
 * characters is never changed.
 */
export function escapeNulInCopyRows(
  entity: EntityDescription,
  rows: string,
  trailingColumns = 0,
): string | null {
  if (!rows.includes(RAW_NUL) && !rows.includes(JSON_NUL_IN_COPY)) return null;
  const lines = rows.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i]!;
    if (!line.includes(RAW_NUL) && !line.includes(JSON_NUL_IN_COPY)) continue;
    const fields = line.split('\t');
    for (let c = 0; c < fields.length - trailingColumns; c++) {
      const field = fields[c]!;
      if (field === '\\N') continue;
      fields[c] = escapeText(mendColumn(entity.columns[c]!.spec, unescapeText(field)));
    }
    lines[i] = fields.join('\t');
  }
  return lines.join('\n');
}

function mendColumn(spec: FieldSpec, text: string): string {
  if (!spec.array) return mendScalar(spec.kind, text);
  return arrayLiteral(
    parseArrayLiteral(text).map((element) => (element === null ? null : mendScalar(spec.kind, element))),
  );
}

function mendScalar(kind: FieldSpec['kind'], text: string): string {
  if (kind === 'json') return JSON.stringify(mendJson(JSON.parse(text)));
  return text.replaceAll(RAW_NUL, STORED_NUL);
}

function mendJson(value: unknown): unknown {
  if (typeof value === 'string') return value.replaceAll(RAW_NUL, STORED_NUL);
  if (Array.isArray(value)) return value.map(mendJson);
  if (value === null || typeof value !== 'object') return value;
  return Object.fromEntries(
    Object.entries(value).map(([key, inner]) => [mendJson(key) as string, mendJson(inner)]),
  );
}

/**
 * JSON text with every `\u0000` escape made storable in jsonb: the escape becomes the six
 * characters `\u0000` in the string (an escaped backslash followed by `u0000`). An escape is
 * one when an even number of backslashes precedes it.
 */
export function escapeNulInJsonText(json: string): string {
  if (!json.includes('\\u0000')) return json;
  return json.replace(/(?<!\\)((?:\\\\)*)\\u0000/g, '$1\\\\u0000');
}
