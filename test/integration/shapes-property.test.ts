// Shapes, property-style: a random erc20 stream with reorgs posted over the ingest API, random
// shapes drawn from a where-clause generator (comparisons, IN, BETWEEN, LIKE, NOT, arithmetic,
// params), official clients started at random points, and the daemon restarted once midway
// (clients lose the connection, then resume with their handles and offsets: shapes are durable, so
// not one 409 may be answered). At the end every client's rows must
// equal the database's own `SELECT … WHERE <the same text>` on the table — on Postgres, and on
// embedded PGlite (on disk, so the restart keeps it; queried through the daemon's own socket; its
// snapshots read in pages of 3 rows, each its own transaction).
// STRATA_SHAPES_SEED replays.
import { setMaxListeners } from 'node:events';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { isDeepStrictEqual } from 'node:util';
import { Shape, ShapeStream } from '@electric-sql/client';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mulberry32 } from '../../src/sources/generator.ts';
import {
  type DaemonProcess,
  fixtureProject,
  startDaemonProcess,
  statusRecorder,
  waitFor,
} from '../helpers/daemon-process.ts';
import { createTestDatabase, type TestDatabase } from '../helpers/database.ts';

let db: TestDatabase;
beforeAll(async () => {
  db = await createTestDatabase();
});
afterAll(async () => {
  await db?.drop();
});

const SEED = Number(process.env.STRATA_SHAPES_SEED ?? Date.now() % 1_000_000);
const BLOCKS = 36;
const SHAPES = 16;
const ADDRESSES = Array.from({ length: 10 }, (_, i) => `0x${i}`);
const project = fixtureProject('../../examples/erc20');

type Row = Record<string, unknown>;
type Query = <R extends pg.QueryResultRow>(sql: string, values?: unknown[]) => Promise<R[]>;

/** Runs SQL on the embedded PGlite of `daemon`, through the socket it serves its own pools on. */
async function embeddedQuery<R extends pg.QueryResultRow>(
  daemon: DaemonProcess,
  sql: string,
  values: unknown[] = [],
): Promise<R[]> {
  const started = daemon.logs.find((line) => line.msg === 'embedded PGlite started');
  if (started === undefined) throw new Error('the daemon has not logged its embedded database yet');
  const client = new pg.Client({ connectionString: `postgres://postgres@${started.address}/postgres` });
  await client.connect();
  try {
    return (await client.query<R>(sql, values)).rows;
  } finally {
    await client.end();
  }
}

describe.each([
  ['Postgres', true],
  ['embedded PGlite', false],
])(
  `shapes under random streams, reorgs and a restart on %s (seed ${SEED}; STRATA_SHAPES_SEED=${SEED} replays it)`,
  (_name, postgres) => {
    it('every client ends equal to the database evaluating its where clause', async () => {
      const dataDir = mkdtempSync(path.join(tmpdir(), 'strata-shapes-property-'));
      const random = mulberry32(SEED);
      const pick = <T>(items: readonly T[]): T => items[Math.floor(random() * items.length)]!;
      const int = (max: number) => Math.floor(random() * max);

      /** A random clause over Account's fields, and its params. */
      const clause = (): { where: string; params: Record<string, string> } => {
        const params: Record<string, string> = {};
        const param = (value: string) => {
          const n = Object.keys(params).length + 1;
          params[n] = value;
          return `$${n}`;
        };
        const number = () =>
          pick([
            'balance',
            '"transfersIn"',
            '"transfersOut"',
            '("transfersIn" - "transfersOut")',
            '(balance * 2)',
          ]);
        const predicate = (depth: number): string => {
          const roll = random();
          if (depth < 2 && roll < 0.2)
            return `(${predicate(depth + 1)} ${pick(['AND', 'OR'])} ${predicate(depth + 1)})`;
          if (depth < 2 && roll < 0.27) return `NOT (${predicate(depth + 1)})`;
          if (roll < 0.55)
            return `${number()} ${pick(['=', '<>', '<', '<=', '>', '>='])} ${random() < 0.5 ? param(String(int(40) - 20)) : String(int(40) - 20)}`;
          if (roll < 0.7)
            return `id IN (${Array.from({ length: 1 + int(3) }, () => `'${pick(ADDRESSES)}'`).join(', ')})`;
          if (roll < 0.8) return `id = ${param(pick(ADDRESSES))}`;
          if (roll < 0.9)
            return `${number()} ${pick(['BETWEEN', 'NOT BETWEEN'])} ${int(20) - 10} AND ${int(20)}`;
          return `id ${pick(['LIKE', 'NOT LIKE'])} '${pick(['0x1%', '%5', '0x_'])}'`;
        };
        return { where: predicate(0), params };
      };

      // The stream: hashed blocks of random transfers; a reorg replaces the last one or two.
      const blocks: Array<{ number: number; hash: string; parentHash: string | null; events: unknown[] }> =
        [];
      let branch = 0;
      const randomEvents = () =>
        Array.from({ length: 1 + int(3) }, () => ({
          name: 'Transfer',
          payload: { from: pick(ADDRESSES), to: pick(ADDRESSES), value: String(1 + int(9)) },
        }));

      const port = 42_000 + int(8_000);
      const start = () =>
        startDaemonProcess(
          {
            // On PGlite, snapshots of 3 rows a page: each page its own transaction, blocks committing
            // between them, the rows brought to one point by the shape's log (snapshot-fold.ts).
            ...(postgres
              ? { DATABASE_URL: db.url }
              : { STRATA_DATA_DIR: dataDir, STRATA_SHAPE_SNAPSHOT_PAGE_ROWS: '3' }),
            ERC20_SOURCE: 'ingest',
          },
          ['--port', String(port)],
          project,
        );
      let daemon: DaemonProcess = start();
      const query: Query = (sql, values) =>
        postgres ? db.query(sql, values) : embeddedQuery(daemon, sql, values);
      const base = await daemon.url;
      const post = async (posted: typeof blocks) => {
        const response = await fetch(`${base}/v1/pipelines/erc20/events`, {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify({
            blocks: posted.map((b) => ({ ...b, timestamp: 1_700_000_000 + b.number })),
          }),
        });
        expect(response.status, `seed ${SEED}: ${await response.clone().text()}`).toBe(200);
      };

      const stop = new AbortController();
      setMaxListeners(0, stop.signal); // every client's stream listens to it
      // Every status the clients got: a durable shape never sends one of them back to a snapshot.
      const { fetch: recording, statuses } = statusRecorder();
      const clients: Array<{ where: string; params: Record<string, string>; shape: Shape<Row> }> = [];
      const startClient = () => {
        const { where, params } = clause();
        const stream = new ShapeStream<Row>({
          url: `${base}/v1/shape`,
          params: { table: 'Account', where, params } as never,
          signal: stop.signal,
          fetchClient: recording,
          // Through the restart the daemon is briefly unreachable: keep retrying.
          backoffOptions: { initialDelay: 50, maxDelay: 500, multiplier: 1.5 },
        } as never);
        clients.push({ where, params, shape: new Shape(stream) });
      };
      try {
        for (let number = 1; number <= BLOCKS; number++) {
          if (number > 3 && random() < 0.15) {
            // A reorg: the last one or two blocks get a new branch, then this block follows it.
            const depth = Math.min(1 + int(2), blocks.length - 1);
            branch += 1;
            const replaced = blocks.splice(blocks.length - depth, depth).map((b) => ({
              ...b,
              hash: `b${branch}-${b.number}`,
              events: randomEvents(),
            }));
            for (let i = 0; i < replaced.length; i++)
              replaced[i]!.parentHash = i === 0 ? blocks[blocks.length - 1]!.hash : replaced[i - 1]!.hash;
            blocks.push(...replaced);
            await post(replaced);
          }
          const next = {
            number: blocks.length + 1,
            hash: `b${branch}-${blocks.length + 1}`,
            parentHash: blocks.length === 0 ? null : blocks[blocks.length - 1]!.hash,
            events: randomEvents(),
          };
          blocks.push(next);
          await post([next]);
          if (clients.length < SHAPES && random() < SHAPES / BLOCKS + 0.1) startClient();
          if (number === Math.floor(BLOCKS / 2)) {
            daemon.kill('SIGTERM');
            expect((await daemon.exited).code, `seed ${SEED}`).toBe(0);
            daemon = start();
            await daemon.url;
          }
        }
        while (clients.length < SHAPES) startClient();

        const lastBlock = blocks[blocks.length - 1]!.number;
        await waitFor(
          async () =>
            Number(
              (
                await query<{ committed_block: string }>(
                  'SELECT committed_block FROM strata.pipelines WHERE name = $1',
                  ['erc20'],
                )
              )[0]?.committed_block,
            ),
          (committed) => committed === lastBlock,
          30_000,
          `seed ${SEED}: every block committed`,
        );
        for (const client of clients) {
          const values = Object.values(client.params);
          const oracle = async () => {
            const rows = await query<Record<string, string>>(
              `SELECT id, balance::text, "transfersOut"::text, "transfersIn"::text FROM pipeline_erc20."Account" WHERE ${client.where}`,
              values,
            );
            return Object.fromEntries(
              rows.map((r) => [
                r.id,
                {
                  id: r.id,
                  balance: BigInt(r.balance!),
                  transfersOut: Number(r.transfersOut),
                  transfersIn: Number(r.transfersIn),
                },
              ]),
            );
          };
          const expected = await oracle();
          await waitFor(
            async () => Object.fromEntries(client.shape.currentRows.map((row) => [row.id as string, row])),
            (got) => isDeepStrictEqual(got, expected),
            30_000,
            `seed ${SEED}: the client of ${client.where} with ${JSON.stringify(client.params)} equals the database (${JSON.stringify(Object.keys(expected))})`,
          );
        }
        expect(
          statuses.filter((status) => status === 409),
          `seed ${SEED}: 409s answered`,
        ).toEqual([]);
      } finally {
        stop.abort();
        daemon.kill();
        await daemon.exited;
        rmSync(dataDir, { recursive: true, force: true });
      }
    });
  },
);
