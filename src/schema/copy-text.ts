// Rows in the text format of Postgres `COPY … FROM STDIN`: columns separated by tabs, one row per
// line, `\N` for NULL, and backslash escapes for backslash, tab, newline and carriage return.
// The writer streams these lines into a staging table (bench: COPY + upsert from staging was
// 2.4× faster than an `unnest` upsert of the same 100k rows here; see bench/README.md), and a
// line can never be split by a value, so a run of batches merges by splitting on '\n'.

import type { EntityDescription } from './define-schema.ts';
import { type EntityRow, valueToWire } from './wire.ts';

const NEEDS_ESCAPE = /[\\\t\n\r]/;

/** A text value as a COPY field (backslash, tab, newline and carriage return escaped). */
export function escapeText(value: string): string {
  if (!NEEDS_ESCAPE.test(value)) return value;
  return value.replace(/[\\\t\n\r]/g, (char) =>
    char === '\\' ? '\\\\' : char === '\t' ? '\\t' : char === '\n' ? '\\n' : '\\r',
  );
}

/** A nullable text value as a COPY field (`\N` for NULL). */
export function copyField(value: string | null): string {
  return value === null ? '\\N' : escapeText(value);
}

const UNESCAPES: Record<string, string> = { '\\': '\\', t: '\t', n: '\n', r: '\r' };

/** A COPY field back to its text (escapes undone; `\N`, NULL, is the caller's to check). */
export function unescapeText(field: string): string {
  if (!field.includes('\\')) return field;
  return field.replace(/\\(.)/g, (_, char: string) => UNESCAPES[char] ?? char);
}

let lastTime = Number.NaN;
let lastIso = '';

/** `toISOString`, remembering the last answer: a block's rows usually share its timestamp. */
function isoString(date: Date): string {
  const time = date.getTime();
  if (time !== lastTime) {
    lastIso = date.toISOString();
    lastTime = time;
  }
  return lastIso;
}

/**
 * A stored row straight to its COPY line, without the intermediate wire array: rows in the store
 * were validated when they were set (or came from the database), so only the formatting is left.
 * This runs once per changed id per batch — the processing actor's hottest serialization path.
 */
export function rowToCopyLine(entity: EntityDescription, row: EntityRow): string {
  const columns = entity.columns;
  let line = '';
  for (let i = 0; i < columns.length; i++) {
    const column = columns[i]!;
    const value = row[column.name];
    if (i > 0) line += '\t';
    if (value === null || value === undefined) {
      line += '\\N';
      continue;
    }
    const spec = column.spec;
    if (!spec.array) {
      switch (spec.kind) {
        case 'text':
        case 'numeric':
          line += escapeText(value as string);
          continue;
        case 'integer':
        case 'bigint':
          line += String(value);
          continue;
        case 'boolean':
          line += value ? 't' : 'f';
          continue;
        case 'timestamptz':
          line += isoString(value as Date);
          continue;
        default:
          break;
      }
    }
    line += escapeText(valueToWire(entity.name, column.name, spec, value) as string);
  }
  return line;
}
