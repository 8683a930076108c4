// The materializer's core without threads: routing through the equality index gives exactly the
// messages a scan of every shape gives (random shapes, random changes; STRATA_ROUTING_SEED replays
// a run); nothing of a transaction is visible before its commit marker; offsets and compact ids.
import { describe, expect, it } from 'vitest';
import { Materializer, type RowChange } from '../../src/materializer/materializer.ts';
import { parseOffset } from '../../src/materializer/shape-log.ts';
import { messageFor, rowKey, type ShapeView } from '../../src/materializer/shape-messages.ts';
import { compileWhere } from '../../src/materializer/where-compile.ts';
import { defineSchema } from '../../src/schema/define-schema.ts';
import { t } from '../../src/schema/fields.ts';
import { mulberry32 } from '../../src/sources/generator.ts';

const schema = defineSchema({
  Account: {
    fields: { id: t.text(), owner: t.text().nullable(), balance: t.bigint(), n: t.integer() },
  },
});
const entity = schema.entities[0]!;
const COLUMNS = ['id', 'owner', 'balance', 'n'];
const OWNERS = ['alice', 'bob', 'carol', 'dave', null];

const row = (id: string, owner: string | null, balance: number, n: number) => ({
  id,
  owner,
  balance: String(balance),
  n: String(n),
});

async function view(where: string | null, replica: 'default' | 'full' = 'default'): Promise<ShapeView> {
  return {
    relation: ['p', 'Account'],
    where: where === null ? null : await compileWhere(where, entity),
    columns: COLUMNS,
    replica,
  };
}

describe('materializer core', () => {
  const seed = Number(process.env.STRATA_ROUTING_SEED ?? Date.now() % 100_000);
  it(`indexed routing sends what a scan of every shape sends (seed ${seed}; STRATA_ROUTING_SEED=${seed} replays it)`, async () => {
    const random = mulberry32(seed);
    const pick = <T>(items: readonly T[]): T => items[Math.floor(random() * items.length)]!;
    const wheres = [
      () => `owner = '${pick(OWNERS.slice(0, 4))}'`,
      () => `owner IN ('${pick(OWNERS.slice(0, 4))}', '${pick(OWNERS.slice(0, 4))}')`,
      () => `n = ${Math.floor(random() * 5)} AND balance > ${Math.floor(random() * 50)}`,
      () => `balance >= ${Math.floor(random() * 100)}`,
      () => `owner IS NULL OR n = 1`,
      () => `id = 'a${Math.floor(random() * 10)}'`,
      () => null,
    ];
    const materializer = new Materializer();
    const views = new Map<string, ShapeView>();
    for (let i = 0; i < 60; i++) {
      const v = await view(pick(wheres)(), pick(['default', 'full'] as const));
      views.set(`h${i}`, v);
      materializer.add(`h${i}`, 'p', 'Account', v, 0);
    }
    const state = new Map<string, ReturnType<typeof row>>();
    const expected = new Map<string, string[]>([...views.keys()].map((h) => [h, []]));
    for (let checkpoint = 1; checkpoint <= 40; checkpoint++) {
      const changes: RowChange[] = [];
      for (let k = 0; k < 8; k++) {
        const id = `a${Math.floor(random() * 10)}`;
        const before = state.get(id) ?? null;
        const after =
          random() < 0.15
            ? null
            : row(id, pick(OWNERS), Math.floor(random() * 100), Math.floor(random() * 5));
        if (after === null) state.delete(id);
        else state.set(id, after);
        changes.push({ before, after });
        for (const [handle, v] of views) {
          const message = messageFor(v, before, after);
          if (message !== null) expected.get(handle)!.push(`${checkpoint}:${JSON.stringify(message)}`);
        }
      }
      // Two fragments, then the commit marker.
      materializer.applyFragment({
        pipeline: 'p',
        entity: 'Account',
        sequence: checkpoint,
        fragment: 0,
        changes: changes.slice(0, 3),
      });
      materializer.applyFragment({
        pipeline: 'p',
        entity: 'Account',
        sequence: checkpoint,
        fragment: 1,
        changes: changes.slice(3),
      });
      materializer.commit('p', checkpoint);
    }
    for (const [handle, messages] of expected) {
      const shape = materializer.byHandle(handle)!;
      const got = shape.log
        .readAfter({ tx: 0, op: Number.POSITIVE_INFINITY }, 10_000)
        .messages.map((json) => {
          const { headers, ...rest } = JSON.parse(json);
          const { lsn, op_position: _, ...plain } = headers;
          return `${lsn}:${JSON.stringify({ ...rest, headers: plain })}`;
        });
      expect(got, `seed ${seed}, shape ${handle}`).toEqual(messages);
    }
  });

  it('shows nothing of a transaction before its commit marker; offsets order within it', async () => {
    const materializer = new Materializer();
    const shape = materializer.add('h', 'p', 'Account', await view(`owner = 'alice'`), 5);
    materializer.applyFragment({
      pipeline: 'p',
      entity: 'Account',
      sequence: 6,
      fragment: 0,
      changes: [
        { before: null, after: row('x', 'alice', 1, 1) },
        { before: null, after: row('y', 'bob', 1, 1) },
        { before: null, after: row('z', 'alice', 2, 1) },
      ],
    });
    const start = parseOffset('5_inf')!;
    expect(shape.log.readAfter(start, 100)).toEqual({ messages: [], last: start });
    expect(materializer.commit('p', 6).map((s) => s.handle)).toEqual(['h']);
    const { messages, last } = shape.log.readAfter(start, 100);
    expect(messages.map((m) => JSON.parse(m).key)).toEqual([
      rowKey(['p', 'Account'], 'x'),
      rowKey(['p', 'Account'], 'z'),
    ]);
    expect(messages.map((m) => JSON.parse(m).headers.lsn)).toEqual(['6', '6']);
    expect(last).toEqual({ tx: 6, op: 1 });
    // Exclusive lower bound: after 6_0 comes 6_1 only.
    expect(shape.log.readAfter({ tx: 6, op: 0 }, 100).messages).toHaveLength(1);
    // A transaction at or below the snapshot's checkpoint is in the snapshot already.
    const late = materializer.add('late', 'p', 'Account', await view(null), 6);
    materializer.applyFragment({
      pipeline: 'p',
      entity: 'Account',
      sequence: 6,
      fragment: 0,
      changes: [{ before: null, after: row('w', 'alice', 1, 1) }],
    });
    materializer.commit('p', 6);
    expect(late.log.size).toBe(0);
  });

  it('compaction keeps the last transactions; only a reader that missed a dropped change must refetch', async () => {
    const materializer = new Materializer(4); // keep 4 transactions, compact every 4
    const busy = materializer.add('busy', 'p', 'Account', await view(`owner = 'alice'`), 0);
    const quiet = materializer.add('quiet', 'p', 'Account', await view(`owner = 'carol'`), 0);
    for (let sequence = 1; sequence <= 8; sequence++) {
      materializer.applyFragment({
        pipeline: 'p',
        entity: 'Account',
        sequence,
        fragment: 0,
        changes: [{ before: null, after: row(`a${sequence}`, 'alice', sequence, 1) }],
      });
      materializer.commit('p', sequence);
    }
    // At 8, transactions up to 4 were dropped.
    expect(busy.log.size).toBe(4);
    expect(busy.log.readAfter(parseOffset('4_0')!, 100).messages).toHaveLength(4);
    expect(busy.log.serves(parseOffset('3_0')!)).toBe(false); // it missed 4_0
    expect(busy.log.serves(parseOffset('4_0')!)).toBe(true); // it has everything dropped
    // A quiet shape dropped nothing: its readers at the snapshot's offset go on.
    expect(quiet.log.serves(parseOffset('0_inf')!)).toBe(true);
    // Restored after the store was compacted to 6: anything before 6_inf may be missing.
    quiet.log.missingThrough(6);
    expect(quiet.log.serves(parseOffset('0_inf')!)).toBe(false);
    expect(quiet.log.serves(parseOffset('6_inf')!)).toBe(true);
  });

  it('SSE resumes from <tx>_0 after an up-to-date: that means after the whole transaction, and no answer ends at op 0 of a longer one', async () => {
    const materializer = new Materializer();
    const shape = materializer.add('h', 'p', 'Account', await view(null), 0);
    for (const [sequence, ids] of [
      [1, ['a', 'b', 'c']],
      [2, ['d']],
    ] as const) {
      materializer.applyFragment({
        pipeline: 'p',
        entity: 'Account',
        sequence,
        fragment: 0,
        changes: ids.map((id) => ({ before: null, after: row(id, 'alice', 1, 1) })),
      });
      materializer.commit('p', sequence);
    }
    // The client saw transaction 1 whole (its up-to-date said lsn 1) and resumes from `1_0`.
    const resumed = shape.log.readAfter(parseOffset('1_0')!, 100);
    expect(resumed.messages.map((m) => JSON.parse(m).key)).toEqual([rowKey(['p', 'Account'], 'd')]);
    // A read cut at one message would end at 1_0: it takes 1_1 too, so no answer names 1_0.
    const cut = shape.log.readAfter(parseOffset('0_inf')!, 1);
    expect(cut.last).toEqual({ tx: 1, op: 1 });
    expect(cut.messages).toHaveLength(2);
  });

  it('mints one compact id per handle for the life of the process', async () => {
    const materializer = new Materializer();
    const a = materializer.add('ha', 'p', 'Account', await view(null), 0);
    materializer.remove('ha');
    const again = materializer.add('ha', 'p', 'Account', await view(null), 0);
    const b = materializer.add('hb', 'p', 'Account', await view(null), 0);
    expect(again.id).toBe(a.id);
    expect(b.id).toBe(a.id + 1);
    expect(materializer.ids.describe(99)).toBe('unknown, id: 99');
    expect(materializer.ids.describe(b.id)).toBe('hb');
  });

  it('replica=default updates carry the key and the changed columns; unchanged projections send nothing', async () => {
    const v = { ...(await view(null)), columns: ['id', 'owner'] };
    expect(messageFor(v, row('x', 'a', 1, 1), row('x', 'a', 2, 1))).toBeNull();
    expect(messageFor(v, row('x', 'a', 1, 1), row('x', 'b', 1, 1))?.value).toEqual({ id: 'x', owner: 'b' });
    const moved = await view(`owner = 'a'`, 'full');
    expect(messageFor(moved, row('x', 'a', 1, 1), row('x', 'b', 1, 1))).toMatchObject({
      headers: { operation: 'delete' },
      value: { id: 'x', owner: 'a', balance: '1', n: '1' },
    });
    expect(messageFor(moved, row('x', 'b', 1, 1), row('x', 'a', 1, 1))?.headers.operation).toBe('insert');
  });
});
