// Live shapes with the official Electric client (@electric-sql/client, pinned) against a real
// daemon on Postgres: initial sync, live inserts and updates through the ingest API, a where
// clause with params, columns, replica=full, rows moving in and out of a shape, rotation with
// DELETE (409 and refetch, no lost change), and hostile where clauses refused with Electric's body.
import { isDeepStrictEqual } from 'node:util';
import { Shape, ShapeStream } from '@electric-sql/client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { fixtureProject, startDaemonProcess, waitFor } from '../helpers/daemon-process.ts';
import { createTestDatabase, type TestDatabase } from '../helpers/database.ts';

let db: TestDatabase;
beforeAll(async () => {
  db = await createTestDatabase();
});
afterAll(async () => {
  await db?.drop();
});

const project = fixtureProject('../../examples/erc20');
let block = 0;
const transfer = (from: string, to: string, value: number) => ({
  name: 'Transfer',
  payload: { from, to, value: String(value) },
});

/** Appends a block (hashes chain them), or with `replace` puts a new branch in the last one's place. */
async function push(base: string, ...events: unknown[]): Promise<void> {
  block += 1;
  await post(base, {
    number: block,
    hash: `h-${block}`,
    parentHash: block === 1 ? null : `h-${block - 1}`,
    events,
  });
}

async function replaceLast(base: string, ...events: unknown[]): Promise<void> {
  await post(base, { number: block, hash: `r-${block}`, parentHash: `h-${block - 1}`, events });
}

async function post(base: string, block: Record<string, unknown>): Promise<void> {
  const response = await fetch(`${base}/v1/pipelines/erc20/events`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ blocks: [{ timestamp: 1_700_000_000 + (block.number as number), ...block }] }),
  });
  expect(response.status, await response.clone().text()).toBe(200);
}

type Row = Record<string, unknown>;

/** The table's rows as the client parses them (int8 → BigInt, int4 → number), by id. */
async function stored(
  where = 'true',
  params: unknown[] = [],
  columns = ['id', 'balance', 'transfersOut', 'transfersIn'],
) {
  const rows = await db.query<Record<string, string>>(
    `SELECT ${columns.map((c) => `"${c}"::text AS "${c}"`).join(', ')} FROM pipeline_erc20."Account" WHERE ${where}`,
    params,
  );
  return byId(
    rows.map((row) =>
      Object.fromEntries(
        Object.entries(row).map(([k, v]) => [k, k === 'balance' ? BigInt(v) : k === 'id' ? v : Number(v)]),
      ),
    ),
  );
}

const byId = (rows: Row[]) => Object.fromEntries(rows.map((row) => [row.id as string, row]));

describe('live shapes with @electric-sql/client', () => {
  it('syncs, follows live changes and reorgs, filters with where/params/columns, and survives a rotation', async () => {
    const daemon = startDaemonProcess({ DATABASE_URL: db.url, ERC20_SOURCE: 'ingest' }, [], project);
    const base = await daemon.url;
    const stop = new AbortController();
    try {
      await push(base, transfer('0xa', '0xb', 100), transfer('0xc', '0xd', 5));
      await waitFor(
        () => stored(),
        (rows) => Object.keys(rows).length === 4,
        20_000,
        'first block stored',
      );

      const stream = (params: Record<string, unknown>) =>
        new ShapeStream<Row>({ url: `${base}/v1/shape`, params: params as never, signal: stop.signal });
      const all = new Shape(stream({ table: 'Account' }));
      const rich = new Shape(
        stream({
          table: 'erc20.Account',
          where: 'balance > $1',
          params: { 1: '50' },
          columns: ['id', 'balance'],
        }),
      );
      const pair = new Shape(stream({ table: 'Account', where: `id IN ('0xb', '0xe')`, replica: 'full' }));

      const rowsOf = async (shape: Shape<Row>) => byId(await shape.rows);
      expect(await rowsOf(all)).toEqual(await stored());
      expect(await rowsOf(rich)).toEqual(await stored('balance > $1', ['50'], ['id', 'balance']));
      expect(await rowsOf(pair)).toEqual(await stored(`id IN ('0xb', '0xe')`));

      // 0xb drops to 40 (leaves `rich`), 0xe arrives with 60 (enters both filtered shapes).
      await push(base, transfer('0xb', '0xe', 60));
      // Until the shapes equal the table (re-read each time: the block may still be processing)
      // and the table holds `block`'s changes.
      const settled = (done: (table: Record<string, Row>) => boolean) =>
        waitFor(
          async () => {
            const expected = [
              await stored(),
              await stored('balance > $1', ['50'], ['id', 'balance']),
              await stored(`id IN ('0xb', '0xe')`),
            ];
            const got = [byId(all.currentRows), byId(rich.currentRows), byId(pair.currentRows)];
            return { expected, got };
          },
          ({ expected, got }) => done(expected[0]!) && isDeepStrictEqual(got, expected),
          20_000,
          'shapes equal the table',
        );
      await settled((table) => table['0xe'] !== undefined);
      expect(Object.keys(byId(rich.currentRows)).sort()).toEqual(['0xe']);

      // Rotation: every client of the handle gets 409 and refetches a new one; nothing is lost.
      const handle = all.handle;
      const rotated = await fetch(`${base}/v1/shape?table=Account&handle=${handle}`, { method: 'DELETE' });
      expect(rotated.status).toBe(202);
      const stale = await fetch(`${base}/v1/shape?table=Account&handle=${handle}&offset=0_inf`);
      expect(stale.status).toBe(409);
      expect(stale.headers.get('electric-handle')).not.toBe(handle);
      await push(base, transfer('0xd', '0xf', 3), transfer('0xa', '0xe', 7));
      await settled((table) => table['0xf'] !== undefined);
      expect(all.handle).not.toBe(handle);

      // A reorg replaces the last block: clients get its compensating changes (0xg goes, 0xe
      // gets back its balance) and then the new branch's.
      await push(base, transfer('0xe', '0xg', 11));
      await settled((table) => table['0xg'] !== undefined);
      await replaceLast(base, transfer('0xe', '0xh', 2));
      await settled((table) => table['0xg'] === undefined && table['0xh'] !== undefined);

      // Hostile where clauses: Electric's 400 body, nothing created.
      for (const where of ['lower(id) = 1', `id = 'a'; DROP TABLE x`, '(SELECT 1) = 1', 'nope = 1']) {
        const response = await fetch(
          `${base}/v1/shape?table=Account&offset=-1&where=${encodeURIComponent(where)}`,
        );
        expect(response.status, where).toBe(400);
        const body = (await response.json()) as { message: string; errors: { where: string[] } };
        expect(body.errors.where).toHaveLength(1);
      }
    } finally {
      stop.abort();
      daemon.kill();
      await daemon.exited;
    }
  });
});
