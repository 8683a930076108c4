// The writer keeps only the changes some shape can show — and never fewer: until a table's
// clauses are known every change matters, a shape's clause counts from when it is added, and
// installing the materializer's list only ever adds.
import { describe, expect, it } from 'vitest';
import { compileWhere } from '../../src/materializer/where-compile.ts';
import { ShapeTables } from '../../src/pipeline/shape-tables.ts';
import { defineSchema } from '../../src/schema/define-schema.ts';
import { t } from '../../src/schema/fields.ts';

const schema = defineSchema({
  Account: { fields: { id: t.text(), owner: t.text().nullable(), balance: t.bigint() } },
});
const entity = schema.entities[0]!;
const where = (text: string) => compileWhere(text, entity);
const row = (id: string, owner: string | null, balance: number) => ({ id, owner, balance: String(balance) });

describe('shape filters', () => {
  it('keeps a change when its old or new row matches some shape, every change while the clauses are unknown', async () => {
    const restarted = new ShapeTables({ p: ['Account'] });
    const unknown = restarted.filter('p', 'Account')!;
    expect(unknown.matters(null, row('x', 'nobody', 1))).toBe(true);

    const tables = new ShapeTables();
    tables.addShape('p', 'Account', await where(`id = 'a'`));
    tables.addShape('p', 'Account', await where(`balance > 100`));
    const filter = tables.filter('p', 'Account')!;
    expect(filter.matters(null, row('a', null, 1))).toBe(true); // indexed eq
    expect(filter.matters(row('b', null, 1), row('b', null, 500))).toBe(true); // moves in
    expect(filter.matters(row('b', null, 500), row('b', null, 1))).toBe(true); // moves out
    expect(filter.matters(row('c', null, 1), row('c', null, 2))).toBe(false);
    expect(filter.matters(row('c', null, 1), null)).toBe(false);

    // The materializer's list arrives: the restarted writer's table now filters, and a clause
    // added meanwhile (a shape opened after the list was made) stays.
    restarted.addShape('p', 'Account', await where(`owner = 'carol'`));
    restarted.install([{ pipeline: 'p', entity: 'Account', where: await where(`id = 'a'`) }]);
    expect(unknown.matters(null, row('x', 'nobody', 1))).toBe(false);
    expect(unknown.matters(null, row('x', 'carol', 1))).toBe(true);
    expect(unknown.matters(null, row('a', null, 1))).toBe(true);

    // A shape over the whole table: everything matters.
    restarted.addShape('p', 'Account', null);
    expect(unknown.matters(null, row('x', 'nobody', 1))).toBe(true);
  });

  it('reads only the ids shapes name when every clause pins the id, every id otherwise', async () => {
    const ids = ['a', 'b', 'c', 'd'];
    const tables = new ShapeTables();
    tables.addShape('p', 'Account', await where(`id = 'a'`));
    tables.addShape('p', 'Account', await where(`id IN ('c', 'zz') AND balance > 5`));
    const filter = tables.filter('p', 'Account')!;
    expect(filter.idsThatMayMatter(ids)).toEqual(['a', 'c']);
    // A clause on another column needs the rows themselves: every id is read.
    tables.addShape('p', 'Account', await where(`owner = 'carol'`));
    expect(filter.idsThatMayMatter(ids)).toEqual(ids);
    const scanned = new ShapeTables();
    scanned.addShape('p', 'Account', await where(`id = 'a'`));
    scanned.addShape('p', 'Account', await where(`balance > 100`));
    expect(scanned.filter('p', 'Account')!.idsThatMayMatter(ids)).toEqual(ids);
    // Clauses not known yet (a restarted writer): every id.
    const restarted = new ShapeTables({ p: ['Account'] });
    expect(restarted.filter('p', 'Account')!.idsThatMayMatter(ids)).toEqual(ids);
  });
});
