// Rows in the text format of Postgres `COPY … FROM STDIN`: columns separated by tabs, one row per
// line, `\N` for NULL, and backslash escapes for backslash, tab, newline and carriage return.
// The writer streams these lines into a staging table (bench: COPY + upsert from staging was
// 2.4× faster than an `unnest` upsert of the same 100k rows here; see bench/README.md), and a
// line can never be split by a value, so a run of batches merges by splitting on '\n'.

import type { WireRow } from './wire.ts';

const NEEDS_ESCAPE = /[\\\t\n\r]/;

function escapeText(value: string): string {
  if (!NEEDS_ESCAPE.test(value)) return value;
  return value.replace(/[\\\t\n\r]/g, (char) =>
    char === '\\' ? '\\\\' : char === '\t' ? '\\t' : char === '\n' ? '\\n' : '\\r',
  );
}

export function copyLine(wire: WireRow): string {
  let line = '';
  for (let i = 0; i < wire.length; i++) {
    const value = wire[i];
    if (i > 0) line += '\t';
    line +=
      value === null || value === undefined
        ? '\\N'
        : typeof value === 'string'
          ? escapeText(value)
          : String(value);
  }
  return line;
}
