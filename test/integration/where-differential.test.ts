// Shape `where` clauses against Postgres itself: random clauses (every operator shapes support,
// random params) over random rows (NULLs, quotes, non-ASCII, uint256 values). For each clause the
// rows Postgres selects with the user's own text (run here only, as the oracle) must equal the
// rows the in-memory evaluator keeps, and the rows our rendered, parameterised SQL selects.
// STRATA_WHERE_SEED replays a run.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { compileWhere } from '../../src/materializer/where-compile.ts';
import { matches, type TextRow } from '../../src/materializer/where-eval.ts';
import { whereToSql } from '../../src/materializer/where-sql.ts';
import { defineSchema } from '../../src/schema/define-schema.ts';
import { t } from '../../src/schema/fields.ts';
import { mulberry32 } from '../../src/sources/generator.ts';
import { useTestDatabase } from '../helpers/database.ts';

const db = useTestDatabase('strata_where');
const SEED = Number(process.env.STRATA_WHERE_SEED ?? Date.now() % 1_000_000);
const CLAUSES = 400;

const schema = defineSchema({
  Item: {
    fields: {
      id: t.text(),
      name: t.text().nullable(),
      n: t.integer().nullable(),
      big: t.bigint().nullable(),
      price: t.numeric().nullable(),
      flag: t.boolean().nullable(),
      at: t.timestamptz().nullable(),
    },
  },
});
const item = schema.entities[0]!;
const random = mulberry32(SEED);
const pick = <T>(items: readonly T[]): T => items[Math.floor(random() * items.length)]!;
const chance = (p: number) => random() < p;

const WORDS = ['', 'a', 'A', 'ab', 'abc', 'b%c', 'x_y', "o'k", 'é', 'É', 'zz', 'a\\b', '😀'];
const TIMES = [
  '2024-01-01 00:00:00+00',
  '2024-01-01 00:00:00.5+00',
  '2024-06-30 23:59:59+02',
  '2023-12-31 22:00:00-02',
];
const BIG = [
  '0',
  '1',
  '115792089237316195423570985008687907853269984665640564039457584007913129639935',
  '9007199254740993',
];

function randomRow(i: number): Record<string, string | null> {
  const maybe = (value: string) => (chance(0.15) ? null : value);
  return {
    id: `r${i}`,
    name: maybe(pick(WORDS) + (chance(0.5) ? pick(WORDS) : '')),
    n: maybe(String(Math.floor(random() * 200) - 100)),
    big: maybe(pick(BIG)),
    price: maybe(`${Math.floor(random() * 40) - 20}.${pick(['0', '5', '25', '50'])}`),
    flag: maybe(pick(['t', 'f'])),
    at: maybe(pick(TIMES)),
  };
}

/** A random clause as SQL text, and the params it uses (strings, as a client sends them). */
function randomClause(): { where: string; params: string[] } {
  const params: string[] = [];
  const param = (text: string) => {
    params.push(text);
    return `$${params.length}`;
  };
  const quote = (text: string) => `'${text.replaceAll("'", "''")}'`;
  const textValue = () => (chance(0.3) ? param(pick(WORDS)) : quote(pick(WORDS)));
  // A `$n` only as a comparison's operand: Postgres cannot type one inside arithmetic either.
  const number = (depth: number, mayBeParam = depth === 0): string => {
    const roll = random();
    if (roll < 0.3) return pick(['n', 'price', 'big']);
    if (roll < 0.5) return String(Math.floor(random() * 60) - 30);
    if (roll < 0.6) return `${Math.floor(random() * 20)}.5`;
    if (roll < 0.7) return mayBeParam ? param(String(Math.floor(random() * 60) - 30)) : 'price';
    if (depth > 2) return 'n';
    if (roll < 0.8) return `(${number(depth + 1)} ${pick(['+', '-', '*'])} ${number(depth + 1)})`;
    if (roll < 0.88) return `(n ${pick(['/', '%'])} ${1 + Math.floor(random() * 5)})`;
    return `-${pick(['n', 'price'])}`;
  };
  const compare = () => pick(['=', '<>', '<', '<=', '>', '>=']);
  const predicate = (depth: number): string => {
    const roll = random();
    if (depth < 3 && roll < 0.2)
      return `(${predicate(depth + 1)} ${pick(['AND', 'OR'])} ${predicate(depth + 1)})`;
    if (depth < 3 && roll < 0.25) return `NOT (${predicate(depth + 1)})`;
    if (roll < 0.4) {
      // Not two params: Postgres could not type `$1 < $2` either.
      const left = number(1, true);
      return `${left} ${compare()} ${number(1, !left.startsWith('$'))}`;
    }
    if (roll < 0.5) return `name ${compare()} ${textValue()}`;
    if (roll < 0.55) return `at ${compare()} ${quote(pick(TIMES))}`;
    if (roll < 0.6) {
      const form = pick(['flag', 'NOT flag', 'flag = true', 'flag <> $']);
      return form.endsWith('$') ? `flag <> ${param(pick(['t', 'false']))}` : form;
    }
    if (roll < 0.68)
      return `${pick(['name', 'n', 'price', 'flag', 'at', 'big'])} IS ${pick(['', 'NOT '])}NULL`;
    if (roll < 0.76) {
      const list = Array.from({ length: 1 + Math.floor(random() * 3) }, () =>
        String(Math.floor(random() * 20) - 10),
      );
      if (chance(0.2)) list.push('NULL');
      return `n ${pick(['IN', 'NOT IN'])} (${list.join(', ')})`;
    }
    if (roll < 0.82) return `name ${pick(['IN', 'NOT IN'])} (${textValue()}, ${textValue()})`;
    if (roll < 0.92) {
      const pattern = pick(['a%', '%b%', '_', 'A_', '%\\%%', '%', 'é%', "o'%"]);
      return `name ${pick(['LIKE', 'NOT LIKE', 'ILIKE', 'NOT ILIKE'])} ${chance(0.3) ? param(pattern) : quote(pattern)}`;
    }
    return `${pick(['n', 'price'])} ${pick(['BETWEEN', 'NOT BETWEEN', 'BETWEEN SYMMETRIC'])} ${number(3)} AND ${number(3)}`;
  };
  return { where: predicate(0), params };
}

let rows: TextRow[] = [];

beforeAll(async () => {
  await db.query(
    `CREATE TABLE item (id text PRIMARY KEY, name text COLLATE "C", n integer, big numeric(78,0), price numeric, flag boolean, at timestamptz)`,
  );
  for (let i = 0; i < 150; i++) {
    const row = randomRow(i);
    await db.query('INSERT INTO item VALUES ($1, $2, $3, $4, $5, $6, $7)', Object.values(row));
  }
  rows = await db.query<Record<string, string | null>>(
    'SELECT id, name, n::text, big::text, price::text, flag::text, at::text FROM item',
  );
});

afterAll(() => undefined);

describe(`where clauses vs Postgres (seed ${SEED}; STRATA_WHERE_SEED=${SEED} replays it)`, () => {
  it(`${CLAUSES} random clauses select the same rows in memory, in our SQL and in Postgres's own`, async () => {
    let compared = 0;
    for (let i = 0; i < CLAUSES; i++) {
      const { where, params } = randomClause();
      const context = `seed ${SEED}, clause ${i}: ${where} with ${JSON.stringify(params)}`;
      const expr = await compileWhere(where, item, new Map(params.map((p, k) => [k + 1, p])));
      const oracle = (await db.query<{ id: string }>(`SELECT id FROM item WHERE ${where}`, params))
        .map((r) => r.id)
        .sort();
      const { sql, values } = whereToSql(expr);
      const rendered = (await db.query<{ id: string }>(`SELECT id FROM item WHERE ${sql}`, values))
        .map((r) => r.id)
        .sort();
      const inMemory = rows
        .filter((row) => matches(expr, row))
        .map((row) => row.id as string)
        .sort();
      expect(inMemory, context).toEqual(oracle);
      expect(rendered, context).toEqual(oracle);
      compared += 1;
    }
    expect(compared).toBe(CLAUSES);
  });
});
