// Text Postgres cannot store costs nothing on the normal write path: rows go to Postgres as they
// are. Postgres refuses a NUL in text (22021, "invalid byte sequence for encoding UTF8: 0x00"),
// the JSON escape \u0000 in jsonb (22P05, "unsupported Unicode escape sequence"), and a lone UTF-16
// surrogate in jsonb (22P02, "Unicode low surrogate must follow a high surrogate" — JavaScript
// strings may hold one, JSON.stringify writes it as an escape); then, and only then, the writer
// retries the transaction with the rows of the tables that hold one escaped, so unrelated rows and
// tables in the same transaction are never lost. Escaped form: the six characters `\u0000` (or
// `\ud800`, the surrogate's code), in text fields and inside JSON strings alike, at any depth.
// (A lone surrogate in a text column never fails: the driver's UTF-8 encoding stores U+FFFD.)

import { escapeText, unescapeText } from '../schema/copy-text.ts';
import type { EntityDescription } from '../schema/define-schema.ts';
import type { FieldSpec } from '../schema/fields.ts';
import { arrayLiteral, parseArrayLiteral } from '../schema/wire.ts';

/** Is this Postgres refusing a NUL (text), a \u0000 escape or a lone surrogate (jsonb)? */
export function isUnstorableTextError(error: unknown): boolean {
  for (
    let current = error as { code?: unknown; message?: unknown; detail?: unknown; cause?: unknown } | null,
      depth = 0;
    current != null && depth < 8;
    current = current.cause as typeof current, depth++
  ) {
    if (current.code === '22021' || current.code === '22P05') return true;
    if (current.code === '22P02' && /surrogate/i.test(`${current.message} ${current.detail}`)) return true;
    if (typeof current.message === 'string' && /0x00|\\u0000/.test(current.message)) return true;
  }
  return false;
}

const RAW_NUL = '\u0000';
/** A NUL, or a surrogate not part of a pair. */
// biome-ignore lint/suspicious/noControlCharactersInRegex: a NUL is what it looks for.
const UNSTORABLE = /\u0000|[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/g;
/** What JSON.stringify writes for those (`\u0000`, `\udXXX`), in COPY text (backslash doubled). */
const UNSTORABLE_JSON_IN_COPY = /\\\\u(?:0000|d[89a-f])/i;

/** The six characters a NUL or lone surrogate is stored as: its escape, `\u0000` / `\ud800`. */
function storable(text: string): string {
  return text.replace(UNSTORABLE, (char) => `\\u${char.charCodeAt(0).toString(16).padStart(4, '0')}`);
}

/**
 * An entity's COPY text rows (followed by `trailingColumns` more columns that hold no text, like
 * a history row's checkpoint) with every NUL and lone surrogate made storable, or null when they
 * hold none. Only lines that can hold one are touched; in them each field is decoded and mended by
 * its column's type — a text value's NULs become the six characters `\u0000`, a JSON value's are
 * replaced in its strings and keys at any depth, an array's in each element — so a value that
 * merely contains those six characters is never changed.
 */
export function escapeUnstorableInCopyRows(
  entity: EntityDescription,
  rows: string,
  trailingColumns = 0,
): string | null {
  const mayHold = (text: string) => text.includes(RAW_NUL) || UNSTORABLE_JSON_IN_COPY.test(text);
  if (!mayHold(rows)) return null;
  const lines = rows.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i]!;
    if (!mayHold(line)) continue;
    const fields = line.split('\t');
    for (let c = 0; c < fields.length - trailingColumns; c++) {
      if (fields[c] === '\\N') continue;
      fields[c] = escapeText(mendColumn(entity.columns[c]!.spec, unescapeText(fields[c]!)));
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
  return text.replaceAll(RAW_NUL, '\\u0000');
}

function mendJson(value: unknown): unknown {
  if (typeof value === 'string') return storable(value);
  if (Array.isArray(value)) return value.map(mendJson);
  if (value === null || typeof value !== 'object') return value;
  return Object.fromEntries(Object.entries(value).map(([key, inner]) => [storable(key), mendJson(inner)]));
}

/**
 * JSON text (as JSON.stringify writes it) with every `\u0000` and lone-surrogate escape made
 * storable in jsonb: the escape becomes those six characters in the string (an escaped backslash
 * followed by `u0000`). An escape is one when an even number of backslashes precedes it.
 */
export function escapeUnstorableInJsonText(json: string): string {
  if (!/\\u(?:0000|d[89a-f])/i.test(json)) return json;
  return json.replace(/(?<!\\)((?:\\\\)*)\\u(0000|d[89a-f][0-9a-f]{2})/gi, '$1\\\\u$2');
}
