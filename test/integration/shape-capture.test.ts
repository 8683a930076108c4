// The writer's capture for live shapes on real Postgres: a run's changes read inline (small runs,
// also sent to the materializer directly) and kept in Postgres (large runs: a temporary table
// and a cursor, never the whole run in the writer) must append the same changes to
// strata.shape_log, in fragments of at most 1,000, with the count the commit marker carries.
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { migrate } from '../../src/db/migrator.ts';
import { compileWhere } from '../../src/materializer/where-compile.ts';
import { EntityWriter } from '../../src/persistence/entity-writer.ts';
import { type CapturedChange, ShapeCapture } from '../../src/persistence/shape-capture.ts';
import { decodeChanges, encodeChanges } from '../../src/pipeline/change-codec.ts';
import { ShapeTables } from '../../src/pipeline/shape-tables.ts';
import type { EntityChanges } from '../../src/protocol.ts';
import { rowToCopyLine } from '../../src/schema/copy-text.ts';
import { createPipelineTables } from '../../src/schema/ddl.ts';
import type { Schema } from '../../src/schema/define-schema.ts';
import { loadSchema } from '../../src/schema/load-schema.ts';
import { silentLog } from '../helpers/actors.ts';
import { useTestDatabase } from '../helpers/database.ts';

const db = useTestDatabase('strata_capture');
let client: pg.Client;
let schema: Schema;

beforeAll(async () => {
  const erc20 = await loadSchema(new URL('../../examples/erc20/schema.ts', import.meta.url).pathname);
  schema = { ...erc20, entities: erc20.entities.filter((entity) => entity.name === 'Account') };
  await migrate({ url: db.url, log: silentLog });
  client = new pg.Client({ connectionString: db.url });
  await client.connect();
  for (const pipeline of ['inline', 'stored', 'all', 'pinned']) {
    await createPipelineTables(client, pipeline, schema);
    await client.query(`INSERT INTO strata.pipelines (name) VALUES ($1)`, [pipeline]);
  }
});
afterAll(async () => {
  await client?.end();
});

type Account = { id: string; balance: bigint; transfersOut: number; transfersIn: number };

function run(sets: Account[], deletes: string[] = []): EntityChanges {
  const entity = schema.entities[0]!;
  return decodeChanges(
    encodeChanges({
      Account: {
        checkpoints: sets.map(() => 1),
        eventNames: sets.map(() => 'Transfer'),
        logIndexes: sets.map(() => 0),
        rows: sets.map((row) => `${rowToCopyLine(entity, row)}\n`).join(''),
        deletes: deletes.map((id) => [1, id] as [number, string]),
      },
    }),
  );
}

const account = (i: number, balance: bigint): Account => ({
  id: `0x${i.toString(16).padStart(6, '0')}`,
  balance,
  transfersOut: 1,
  transfersIn: 2,
});

/** Writes one run as the writer does, capturing it; returns what the commit marker would say. */
async function write(pipeline: string, capture: ShapeCapture, sequence: number, changes: EntityChanges) {
  const writer = new EntityWriter(pipeline, schema, 'copy');
  await client.query('BEGIN');
  const tx = client as unknown as pg.PoolClient;
  const pending = await capture.before(tx, pipeline, schema, [changes]);
  await writer.write(tx, [changes]);
  await pending.after(tx);
  await pending.persist(tx, sequence);
  await client.query('COMMIT');
  return { sent: pending.fragments().length, stored: pending.fragmentCount };
}

/** The stored changes of transaction `sequence`, in a canonical order, and its fragment sizes. */
async function storedChanges(pipeline: string, sequence: number) {
  const { rows } = await client.query<{ changes: string }>(
    `SELECT changes FROM strata.shape_log WHERE pipeline = $1 AND sequence = $2 ORDER BY entity, fragment`,
    [pipeline, sequence],
  );
  const fragments = rows.map((row) => JSON.parse(row.changes) as CapturedChange[]);
  const key = (change: CapturedChange) => (change.after ?? change.before)!.id!;
  return {
    sizes: fragments.map((fragment) => fragment.length),
    changes: fragments.flat().sort((a, b) => key(a).localeCompare(key(b))),
  };
}

describe('shape capture', () => {
  it('stores the same changes whether the run is read inline or kept in Postgres', async () => {
    const inline = new ShapeCapture(new ShapeTables({ inline: ['Account'] }), 1_000_000);
    const stored = new ShapeCapture(new ShapeTables({ stored: ['Account'] }), 1_500);
    const runs = [
      run(Array.from({ length: 2_500 }, (_, i) => account(i, BigInt(i)))), // inserts
      run(
        Array.from({ length: 1_800 }, (_, i) => account(i * 2, -BigInt(i))), // updates and inserts
        Array.from({ length: 300 }, (_, i) => account(i * 2 + 1, 0n).id), // deletes
      ),
      run([account(1, 5n)], [account(3, 0n).id]), // small: inline on both
    ];
    for (const [index, changes] of runs.entries()) {
      const sequence = index + 1;
      const a = await write('inline', inline, sequence, changes);
      const b = await write('stored', stored, sequence, changes);
      const fromInline = await storedChanges('inline', sequence);
      const fromStored = await storedChanges('stored', sequence);
      expect(fromStored.changes).toEqual(fromInline.changes);
      expect(Math.max(...fromStored.sizes)).toBeLessThanOrEqual(1_000);
      expect(a).toEqual({ sent: fromInline.sizes.length, stored: fromInline.sizes.length });
      // Kept in Postgres: nothing sent, the marker counts what the materializer must read.
      expect(b.stored).toBe(fromStored.sizes.length);
      expect(b.sent).toBe(index < 2 ? 0 : b.stored);
    }
    const second = await storedChanges('stored', 2);
    expect(second.changes.filter((c) => c.after === null)).toHaveLength(300);
    expect(second.changes.filter((c) => c.before === null)).toHaveLength(1_800 - 1_250);
  });

  it('with shapes that pin ids, reads and keeps exactly those ids’ changes', async () => {
    const entity = schema.entities[0]!;
    const all = new ShapeCapture(new ShapeTables({ all: ['Account'] }), 1_000_000);
    const tables = new ShapeTables();
    tables.addShape('pinned', 'Account', await compileWhere(`id = '${account(7, 0n).id}'`, entity));
    const pair = `id IN ('${account(8, 0n).id}', '${account(9_999, 0n).id}') AND "balance" > -5`;
    tables.addShape('pinned', 'Account', await compileWhere(pair, entity));
    const pinned = new ShapeCapture(tables, 1_000_000);
    const runs = [
      run(Array.from({ length: 500 }, (_, i) => account(i, BigInt(i)))),
      run([account(7, 70n), account(8, -9n), account(11, 1n)], [account(12, 0n).id]), // 8 moves out
      run([account(11, 2n)], [account(7, 0n).id, account(8, 0n).id]),
    ];
    const shown = (change: CapturedChange) =>
      [account(7, 0n).id, account(8, 0n).id].includes((change.after ?? change.before)!.id!);
    for (const [index, changes] of runs.entries()) {
      await write('all', all, index + 1, changes);
      await write('pinned', pinned, index + 1, changes);
      const everything = await storedChanges('all', index + 1);
      const kept = await storedChanges('pinned', index + 1);
      // What the shapes can show of everything (the clause's other condition decides for id 8).
      const expected = everything.changes.filter(
        (change) =>
          shown(change) &&
          [change.before, change.after].some(
            (row) => row !== null && (row.id === account(7, 0n).id || Number(row.balance) > -5),
          ),
      );
      expect(kept.changes, `run ${index + 1}`).toEqual(expected);
    }
    expect((await storedChanges('pinned', 2)).changes.map((change) => change.after?.balance ?? null)).toEqual(
      ['70', '-9'],
    );
  });
});
