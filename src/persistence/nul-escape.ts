// NUL bytes cost nothing on the normal write path: rows go to Postgres as they are. Postgres
// refuses a NUL in text (22021, "invalid byte sequence for encoding UTF8: 0x00") and the JSON
// escape \u0000 in jsonb (22P05, "unsupported Unicode escape sequence"); then, and only then, the
// writer retries the transaction with the rows of the tables that hold one escaped, so unrelated
// rows and tables in the same transaction are never lost. Escaped form: the six characters
// `\u0000` (in text fields and inside JSON strings alike, at any depth).

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

// In COPY text a backslash is written `\\`, so JSON's `\u0000` escape appears as `\\u0000`.
const JSON_NUL_ESCAPE = '\\\\u0000';
const RAW_NUL = '\u0000';

/**
 * COPY text rows with every NUL made storable, or null when they hold none. JSON escapes first
 * (`\u0000` in JSON → the escaped backslash `\\u0000`, a literal `\u0000` in the string), then raw
 * NULs of text fields (→ `\\u0000` in COPY text, the literal `\u0000`).
 */
export function escapeNulInCopyText(rows: string): string | null {
  if (!rows.includes(RAW_NUL) && !rows.includes(JSON_NUL_ESCAPE)) return null;
  return rows.replaceAll(JSON_NUL_ESCAPE, '\\\\\\\\u0000').replaceAll(RAW_NUL, JSON_NUL_ESCAPE);
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
