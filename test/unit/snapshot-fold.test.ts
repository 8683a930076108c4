// A snapshot read in pages at different transactions, brought to the last one by the shape's log
// (src/materializer/snapshot-fold.ts): against a model that keeps the table at every transaction.
// Random histories of inserts, updates (some columns), deletes and moves across the where clause;
// pages read at random, non-decreasing transactions; the fold must equal the rows in the shape
// at the last page's transaction. STRATA_FOLD_SEED replays one.
import { describe, expect, it } from 'vitest';
import type { ShapeMessage, ShapeView } from '../../src/materializer/shape-messages.ts';
import { messageFor } from '../../src/materializer/shape-messages.ts';
import { foldMessages, type SnapshotRow } from '../../src/materializer/snapshot-fold.ts';
import { mulberry32 } from '../../src/sources/generator.ts';

type Row = { id: string; a: string; b: string };
const COLUMNS = ['id', 'a', 'b'];
const IDS = ['k1', 'k2', 'k3', 'k4', 'k5', 'k6', 'k7', 'k8'];

function runSeed(seed: number, replica: 'default' | 'full'): void {
  const random = mulberry32(seed);
  const int = (n: number) => Math.floor(random() * n);
  const view: ShapeView = {
    relation: ['p', 'T'],
    // a <> '0'
    where: {
      kind: 'compare',
      op: '<>',
      left: { kind: 'column', name: 'a', type: 'text' },
      right: { kind: 'constant', value: '0', type: 'text' },
    },
    columns: COLUMNS,
    replica,
  };
  // The table after each transaction (index = sequence), and the shape's log per transaction.
  const states: Array<Map<string, Row>> = [new Map()];
  const log: ShapeMessage[][] = [[]];
  for (let tx = 1; tx <= 30; tx++) {
    const table = new Map(states[tx - 1]);
    const messages: ShapeMessage[] = [];
    for (let change = 0; change < 1 + int(3); change++) {
      const id = IDS[int(IDS.length)]!;
      const before = table.get(id) ?? null;
      const after: Row | null =
        random() < 0.2
          ? null
          : { id, a: String(int(3)), b: random() < 0.5 ? (before?.b ?? 'x') : String(int(5)) };
      if (after === null) table.delete(id);
      else table.set(id, after);
      const message = messageFor(view, before, after);
      if (message !== null) messages.push(message);
    }
    states.push(table);
    log.push(messages);
  }
  // Pages of two ids each (in id order), each read at its own, later or equal, transaction.
  const rows = new Map<string, SnapshotRow>();
  let at = 1 + int(10);
  const first = at;
  for (let page = 0; page < IDS.length / 2; page++) {
    at = Math.min(30, at + int(6));
    for (const id of IDS.slice(page * 2, page * 2 + 2)) {
      const row = states[at]!.get(id);
      if (row !== undefined && row.a !== '0') rows.set(id, [row.id, row.a, row.b]);
    }
  }
  foldMessages(rows, COLUMNS, log.slice(first + 1, at + 1).flat());
  const expected = [...states[at]!.values()]
    .filter((row) => row.a !== '0')
    .map((row) => [row.id, row.a, row.b])
    .sort();
  expect([...rows.values()].sort(), `seed ${seed}`).toEqual(expected);
}

describe('paged snapshot fold', () => {
  const seeds = process.env.STRATA_FOLD_SEED
    ? [Number(process.env.STRATA_FOLD_SEED)]
    : Array.from({ length: 200 }, (_, i) => i + 1);
  it('brings pages read at different transactions to the last one (replica=default)', () => {
    for (const seed of seeds) runSeed(seed, 'default');
  });
  it('brings pages read at different transactions to the last one (replica=full)', () => {
    for (const seed of seeds) runSeed(seed, 'full');
  });
});
