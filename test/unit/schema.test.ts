// The schema language: validation (every problem at once), generated DDL, the fingerprint diff
// that explains a refused resume, and the COPY text rows take to the writer.
import { describe, expect, it } from 'vitest';
import { StrataError } from '../../src/errors.ts';
import { pipelineFingerprint } from '../../src/pipeline/fingerprint.ts';
import { escapeText, rowToCopyLine } from '../../src/schema/copy-text.ts';
import { createTableSql, fingerprintChanges } from '../../src/schema/ddl.ts';
import { defineSchema } from '../../src/schema/define-schema.ts';
import { t } from '../../src/schema/fields.ts';
import { rowToWire, validateRow, valueToWire } from '../../src/schema/wire.ts';
import { mulberry32 } from '../../src/sources/generator.ts';

const schema = defineSchema({
  Item: {
    fields: {
      id: t.text(),
      count: t.integer(),
      amount: t.bigint(),
      price: t.numeric(),
      flag: t.boolean(),
      at: t.timestamptz(),
      data: t.json().nullable(),
      tags: t.array(t.text()),
      parent: t.text().nullable(),
    },
    indexes: [['parent'], ['count', 'flag']],
  },
  Group: { fields: { id: t.text(), items: t.derivedFrom('Item', 'parent') } },
});

describe('defineSchema', () => {
  it('lists every problem of a bad declaration at once', () => {
    let error: unknown;
    try {
      defineSchema({
        'bad-name': { fields: { id: t.text() } },
        NoId: { fields: { value: t.integer() } },
        BadId: { fields: { id: t.integer() }, indexes: [['missing']] },
        Dangling: { fields: { id: t.text(), rel: t.derivedFrom('Nope', 'x') } },
      });
    } catch (caught) {
      error = caught;
    }
    expect(error).toBeInstanceOf(StrataError);
    const problems = (error as StrataError).details?.problems as string[];
    expect((error as StrataError).code).toBe('STRATA_ERR_SCHEMA_INVALID');
    expect(problems.join('\n')).toMatch(/entity bad-name: name must match/);
    expect(problems.join('\n')).toMatch(/entity NoId: needs an id field/);
    expect(problems.join('\n')).toMatch(/entity BadId: id must be t.text\(\)/);
    expect(problems.join('\n')).toMatch(/entity BadId: index field missing is not a stored field/);
    expect(problems.join('\n')).toMatch(/Dangling: field rel derives from unknown entity Nope/);
  });

  it('generates DDL with types, nullability, the primary key and indexes; derived fields are not columns', () => {
    const [table, ...indexes] = createTableSql('demo', schema.byName.get('Item')!);
    expect(table).toBe(
      'CREATE TABLE IF NOT EXISTS "pipeline_demo"."Item" ("id" text NOT NULL PRIMARY KEY, "count" integer NOT NULL, "amount" numeric(78,0) NOT NULL, "price" numeric NOT NULL, "flag" boolean NOT NULL, "at" timestamptz NOT NULL, "data" jsonb, "tags" text[] NOT NULL, "parent" text)',
    );
    expect(indexes).toHaveLength(2);
    expect(indexes[1]).toMatch(/ON "pipeline_demo"."Item" \("count", "flag"\)$/);
    expect(createTableSql('demo', schema.byName.get('Group')!)[0]).toBe(
      'CREATE TABLE IF NOT EXISTS "pipeline_demo"."Group" ("id" text NOT NULL PRIMARY KEY)',
    );
  });

  it('explains what changed between two fingerprints', () => {
    const pipeline = { name: 'p', source: { kind: 'ingest' } } as never;
    const before = pipelineFingerprint(pipeline, schema);
    const after = pipelineFingerprint(
      { name: 'p', source: { kind: 'ndjson', path: '/x.ndjson' } } as never,
      defineSchema({
        Item: { fields: { id: t.text(), count: t.bigint(), extra: t.boolean().nullable() } },
      }),
    );
    const changes = fingerprintChanges(before, after);
    expect(changes).toContain('Item.count changed from integer to bigint');
    expect(changes).toContain('Item.extra added (boolean null)');
    expect(changes).toContain('Item.amount removed (was bigint)');
    expect(changes).toContain('entity Group removed');
    expect(changes.some((c) => c.startsWith('Item indexes changed'))).toBe(true);
    expect(changes.some((c) => c.startsWith('source.kind changed from "ingest" to "ndjson"'))).toBe(true);
  });
});

describe('values on their way to Postgres', () => {
  const item = schema.byName.get('Item')!;
  const row = {
    id: 'a\tb',
    count: 3,
    amount: 12345678901234567890123n,
    price: '-1.50',
    flag: true,
    at: new Date('2025-01-01T00:00:00Z'),
    data: { note: 'line\nbreak', back: 'sl\\ash', big: 5n },
    tags: ['x', 'with "quote"', 'comma,brace}'],
    parent: null,
  };

  it('validates every field type and names the offending field', () => {
    expect(() => validateRow(item, row)).not.toThrow();
    expect(() => validateRow(item, { ...row, count: 1.5 })).toThrow(/Item\.count must be integer, got 1\.5/);
    expect(() => validateRow(item, { ...row, count: 2 ** 31 })).toThrow(/Item\.count must be integer/);
    expect(() => validateRow(item, { ...row, amount: 5 })).toThrow(/Item\.amount must be bigint/);
    expect(() => validateRow(item, { ...row, price: '1e5' })).toThrow(/Item\.price must be numeric/);
    expect(() => validateRow(item, { ...row, at: new Date('nope') })).toThrow(/Item\.at must be timestamptz/);
    expect(() => validateRow(item, { ...row, tags: [1] })).toThrow(/Item\.tags must be text/);
    expect(() => validateRow(item, { ...row, flag: undefined })).toThrow(/Item\.flag must be boolean/);
  });

  it('writes COPY text lines with escapes that round-trip', () => {
    const line = rowToCopyLine(item, row as never);
    expect(line.split('\t')).toHaveLength(9); // the tab inside the id is escaped
    expect(line).toContain('a\\tb');
    expect(line).toContain('12345678901234567890123');
    expect(line).toContain('\tt\t2025-01-01T00:00:00.000Z\t');
    expect(line).toContain('"note":"line\\\\nbreak"'); // JSON's \n, then COPY's backslash escape
    expect(line).toContain('{"x","with \\\\"quote\\\\"","comma,brace}"}');
    expect(line.endsWith('\\N')).toBe(true);
    expect(rowToWire(item, row)[2]).toBe('12345678901234567890123');
  });

  it('writes each value as its wire form would be written, for every kind and null (seed 7301)', () => {
    const seed = 7301;
    const random = mulberry32(seed);
    const pick = <T>(values: T[]): T => values[Math.floor(random() * values.length)]!;
    const texts = ['plain', 'a\tb', 'back\\slash', 'line\nbreak\r', '', 'ünïcødé', '\\N'];
    /** The line a row's wire form gives: the reference the encoder must match. */
    const reference = (row: Record<string, unknown>) =>
      item.columns
        .map((column) => {
          const wire = valueToWire(item.name, column.name, column.spec, row[column.name]);
          if (wire === null) return '\\N';
          return typeof wire === 'boolean' ? (wire ? 't' : 'f') : escapeText(String(wire));
        })
        .join('\t');
    for (let i = 0; i < 500; i++) {
      const row = {
        id: pick(texts) + i,
        count: Math.floor(random() * 2 ** 31) * pick([1, -1]),
        amount: BigInt(Math.floor(random() * 1e15)) * pick([1n, -1n, 10n ** 10n]),
        price: pick(['0', '-1.5', '123456789012345678901234567890.25', '.5']),
        flag: random() < 0.5,
        at: new Date(Math.floor(random() * 4e12)),
        data: pick([null, { note: pick(texts) }, [1, 'two', { three: pick(texts) }], 'string']),
        tags: pick([[], [pick(texts)], [pick(texts), null, 'x"y']]),
        parent: pick([null, undefined, pick(texts)]),
      };
      expect(rowToCopyLine(item, row as never), `seed ${seed}, row ${i}`).toBe(reference(row));
    }
  });
});
