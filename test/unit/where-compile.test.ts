// Shape `where` clauses: what compiles (and to what SQL), what is refused and how it says so.
import { describe, expect, it } from 'vitest';
import { compileWhere } from '../../src/materializer/where-compile.ts';
import { matches } from '../../src/materializer/where-eval.ts';
import { whereToSql } from '../../src/materializer/where-sql.ts';
import { defineSchema } from '../../src/schema/define-schema.ts';
import { t } from '../../src/schema/fields.ts';

const schema = defineSchema({
  Account: {
    fields: {
      id: t.text(),
      owner: t.text().nullable(),
      balance: t.bigint(),
      transfersIn: t.integer(),
      price: t.numeric().nullable(),
      active: t.boolean(),
      seen: t.timestamptz().nullable(),
      tags: t.array(t.text()),
    },
  },
});
const account = schema.entities.find((entity) => entity.name === 'Account')!;
const compile = (where: string, params: Record<number, string> = {}) =>
  compileWhere(where, account, new Map(Object.entries(params).map(([k, v]) => [Number(k), v])));

async function refusal(where: string, params: Record<number, string> = {}) {
  try {
    await compile(where, params);
  } catch (error) {
    const e = error as { code: string; message: string; details: { where: string[] } };
    expect(e.code).toBe('STRATA_ERR_SHAPE_WHERE_INVALID');
    expect(e.details.where).toHaveLength(1);
    return e.message;
  }
  throw new Error(`accepted: ${where}`);
}

const row = {
  id: 'a',
  owner: null,
  balance: '115792089237316195423570985008687907853269984665640564039457584007913129639935',
  transfersIn: '7',
  price: '1.50',
  active: 't',
  seen: '2024-05-01 12:00:00.5+00',
  tags: '{x}',
};

describe('where clauses', () => {
  it('binds params to the type their column gives them and renders every constant as a parameter', async () => {
    const expr = await compile(`"transfersIn" > $1 AND id IN ('a', $2) AND price = 1.5`, {
      1: '6',
      2: "b'; DROP TABLE x; --",
    });
    expect(matches(expr, row)).toBe(true);
    const { sql, values } = whereToSql(expr);
    expect(sql).toBe(
      '(("transfersIn" > $1::integer) AND ("id" IN ($2::text, $3::text)) AND ("price" = $4::numeric))',
    );
    expect(values).toEqual(['6', 'a', "b'; DROP TABLE x; --", '1.5']);
  });

  it('compares uint256 balances, timestamps with zones and booleans exactly', async () => {
    expect(
      matches(
        await compile(
          `balance > 115792089237316195423570985008687907853269984665640564039457584007913129639934`,
        ),
        row,
      ),
    ).toBe(true);
    expect(matches(await compile(`balance + 1 > balance`), row)).toBe(true);
    expect(matches(await compile(`seen = '2024-05-01T14:00:00.500+02:00'`), row)).toBe(true);
    expect(matches(await compile(`seen < $1`, { 1: '2024-05-01 12:00:00.499999Z' }), row)).toBe(false);
    expect(matches(await compile('active AND NOT (active = false)'), row)).toBe(true);
  });

  it('follows SQL three-valued logic on NULL', async () => {
    expect(matches(await compile(`owner = 'x' OR true`), row)).toBe(true);
    expect(matches(await compile(`NOT (owner = 'x')`), row)).toBe(false);
    expect(matches(await compile(`owner IS NULL AND price IS NOT NULL`), row)).toBe(true);
    expect(matches(await compile(`id NOT IN ('b', NULL)`), row)).toBe(false);
    expect(matches(await compile(`"transfersIn" BETWEEN SYMMETRIC 9 AND 7`), row)).toBe(true);
  });

  it('LIKE and ILIKE match the whole text with % and _ and backslash escapes', async () => {
    const named = { ...row, owner: 'Ab%c_d' };
    expect(matches(await compile(`owner LIKE 'A_\\%c\\_%'`), named)).toBe(true);
    expect(matches(await compile(`owner LIKE 'a%'`), named)).toBe(false);
    expect(matches(await compile(`owner ILIKE 'a%D'`), named)).toBe(true);
    expect(matches(await compile(`owner NOT LIKE '%.%'`), named)).toBe(true);
  });

  it('refuses what it cannot express, naming it', async () => {
    expect(await refusal('lower(id) = $1', { 1: 'a' })).toContain('functions are not supported (lower)');
    expect(await refusal('id IN (SELECT id FROM x)')).toContain('subqueries');
    expect(await refusal(`id = 'a'; DROP TABLE x`)).toContain('several statements');
    expect(await refusal(`id = 'a' UNION SELECT 1`)).toContain('one expression');
    expect(await refusal(`id = 'a' ORDER BY 1`)).toContain('one expression');
    expect(await refusal('transfersin > 1')).toContain('did you mean "transfersIn"');
    expect(await refusal('nope = 1')).toContain('unknown column nope');
    expect(await refusal('x.id = 1')).toContain('alone');
    expect(await refusal("tags = '{x}'")).toContain('cannot be used in a where clause yet');
    expect(await refusal('id = $1')).toContain('$1 has no value');
    expect(await refusal('"transfersIn" = \'seven\'')).toContain('not a valid integer');
    expect(await refusal('id > 5')).toContain('cannot compare text with integer');
    expect(await refusal('price / 2 > 1')).toContain('integers only');
    expect(await refusal('"transfersIn"')).toContain('boolean');
    expect(await refusal('id = ')).toContain('syntax error');
    expect(await refusal(`${'('.repeat(65)}true${')'.repeat(65)}`)).toContain('deeper than 64');
    expect(await refusal(`id IN (${Array.from({ length: 3000 }, (_, i) => `'${i}'`).join(',')})`)).toContain(
      '16384 bytes',
    );
  });
});
