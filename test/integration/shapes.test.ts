// Live shapes with the official Electric client (@electric-sql/client, pinned) against a real
// daemon, on Postgres and on embedded PGlite: initial sync, live inserts and updates through the
// ingest API, a where clause with params, columns, replica=full, rows moving in and out of a
// shape, a reorg (compensating changes), rotation with DELETE (409 and refetch, no lost change),
// server-sent events (live_sse), and hostile where clauses refused with Electric's body; then
// durability: clients keep their handles and offsets through a materializer crash, a writer dying
// between COMMIT and sending, and a daemon restart, and are never sent back to a snapshot (409).
// What the shapes must hold comes from an independent fold of the posted chain, not from the
// daemon's tables.
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { isDeepStrictEqual } from 'node:util';
import { Shape, ShapeStream } from '@electric-sql/client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  fixtureProject,
  getJson,
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

const project = fixtureProject('../../examples/erc20');

type Transfer = [from: string, to: string, value: number];
type Row = Record<string, unknown>;

/** The chain as posted (a replacement swaps its last block) and the erc20 fold of it. */
class Chain {
  readonly blocks: Transfer[][] = [];

  constructor(private readonly base: string) {}

  async push(...transfers: Transfer[]): Promise<void> {
    this.blocks.push(transfers);
    const number = this.blocks.length;
    await this.post({
      number,
      hash: `h-${number}`,
      parentHash: number === 1 ? null : `h-${number - 1}`,
      transfers,
    });
  }

  /** A reorg: a new branch in the last block's place. */
  async replaceLast(...transfers: Transfer[]): Promise<void> {
    const number = this.blocks.length;
    this.blocks[number - 1] = transfers;
    await this.post({ number, hash: `r-${number}`, parentHash: `h-${number - 1}`, transfers });
  }

  private async post(block: {
    number: number;
    hash: string;
    parentHash: string | null;
    transfers: Transfer[];
  }) {
    const { transfers, ...rest } = block;
    const events = transfers.map(([from, to, value]) => ({
      name: 'Transfer',
      payload: { from, to, value: String(value) },
    }));
    const response = await fetch(`${this.base}/v1/pipelines/erc20/events`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ blocks: [{ timestamp: 1_700_000_000 + block.number, ...rest, events }] }),
    });
    expect(response.status, await response.clone().text()).toBe(200);
  }

  /** examples/erc20's Account rows, as the client parses them (int8 → BigInt, int4 → number). */
  accounts(): Record<string, Row> {
    const accounts: Record<
      string,
      { id: string; balance: bigint; transfersOut: number; transfersIn: number }
    > = {};
    const account = (id: string) => (accounts[id] ??= { id, balance: 0n, transfersOut: 0, transfersIn: 0 });
    for (const block of this.blocks) {
      for (const [from, to, value] of block) {
        account(from).balance -= BigInt(value);
        account(from).transfersOut += 1;
        account(to).balance += BigInt(value);
        account(to).transfersIn += 1;
      }
    }
    return accounts;
  }
}

const pick = (rows: Record<string, Row>, keep: (row: Row) => boolean, columns?: string[]) =>
  Object.fromEntries(
    Object.entries(rows)
      .filter(([, row]) => keep(row))
      .map(([id, row]) => [
        id,
        columns === undefined ? row : Object.fromEntries(columns.map((c) => [c, row[c]])),
      ]),
  );
const byId = (rows: Row[]) => Object.fromEntries(rows.map((row) => [row.id as string, row]));

describe.each([
  ['Postgres', () => ({ DATABASE_URL: db.url }), [] as string[]],
  ['embedded PGlite', () => ({}), ['--memory']],
])('live shapes with @electric-sql/client on %s', (_name, env, args) => {
  it('syncs, follows live changes and reorgs, filters with where/params/columns, and survives a rotation', async () => {
    const daemon = startDaemonProcess({ ...env(), ERC20_SOURCE: 'ingest' }, args, project);
    const base = await daemon.url;
    const chain = new Chain(base);
    const stop = new AbortController();
    try {
      await chain.push(['0xa', '0xb', 100], ['0xc', '0xd', 5]);
      // What the SSE client received: proof it streamed rather than fell back to long-polls.
      const streamed: string[] = [];
      const recording: typeof fetch = async (input, init) => {
        const response = await fetch(input, init);
        streamed.push(response.headers.get('content-type') ?? '');
        return response;
      };
      const stream = (params: Record<string, unknown>, liveSse = false) =>
        new ShapeStream<Row>({
          url: `${base}/v1/shape`,
          params: params as never,
          signal: stop.signal,
          liveSse,
          ...(liveSse ? { fetchClient: recording } : {}),
        });
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
      // Server-sent events instead of long-polls.
      const received = new Shape(stream({ table: 'Account', where: '"transfersIn" > 0' }, true));

      // Until every shape equals the fold of the chain as posted so far.
      const settled = () => {
        const table = chain.accounts();
        const expected = [
          table,
          pick(table, (row) => (row.balance as bigint) > 50n, ['id', 'balance']),
          pick(table, (row) => row.id === '0xb' || row.id === '0xe'),
          pick(table, (row) => (row.transfersIn as number) > 0),
        ];
        return waitFor(
          async () => [all, rich, pair, received].map((shape) => byId(shape.currentRows)),
          (got) => isDeepStrictEqual(got, expected),
          // A bound, not a measure: the first one includes the actors' start on a busy machine.
          60_000,
          `shapes equal the fold of ${chain.blocks.length} blocks`,
        );
      };
      await settled();
      // offset=now: no snapshot, only what changes from here on (whole rows with replica=full).
      const fromNow = new Shape(
        new ShapeStream<Row>({
          url: `${base}/v1/shape`,
          params: { table: 'Account', replica: 'full' } as never,
          offset: 'now',
          signal: stop.signal,
        }),
      );
      await waitFor(
        async () => fromNow.isUpToDate,
        (upToDate) => upToDate,
        15_000,
        'the offset=now client is up to date',
      );
      expect(fromNow.currentRows).toEqual([]);

      // 0xb drops to 40 (leaves `rich`), 0xe arrives with 60 (enters both filtered shapes).
      await chain.push(['0xb', '0xe', 60]);
      await settled();
      expect(Object.keys(byId(rich.currentRows))).toEqual(['0xe']);
      await waitFor(
        async () => byId(fromNow.currentRows),
        (got) =>
          isDeepStrictEqual(
            got,
            pick(chain.accounts(), (row) => row.id === '0xb' || row.id === '0xe'),
          ),
        15_000,
        'the offset=now client holds just the changed rows',
      );

      // Rotation: every client of the handle gets 409 and refetches a new one; nothing is lost.
      const handle = all.handle;
      const rotated = await fetch(`${base}/v1/shape?table=Account&handle=${handle}`, { method: 'DELETE' });
      expect(rotated.status).toBe(202);
      const stale = await fetch(`${base}/v1/shape?table=Account&handle=${handle}&offset=0_inf`);
      expect(stale.status).toBe(409);
      expect(stale.headers.get('electric-handle')).not.toBe(handle);
      await chain.push(['0xd', '0xf', 3], ['0xa', '0xe', 7]);
      await settled();
      expect(all.handle).not.toBe(handle);

      // A reorg replaces the last block: clients get its compensating changes (0xg goes, 0xe
      // gets back its balance) and then the new branch's.
      await chain.push(['0xe', '0xg', 11]);
      await settled();
      await chain.replaceLast(['0xe', '0xh', 2]);
      await settled();
      expect(byId(all.currentRows)['0xg']).toBeUndefined();
      expect(streamed).toContain('text/event-stream');

      // The operator's view: shapes on /status (reported with the materializer's pongs), requests
      // and 409s in /metrics.
      const status = await waitFor(
        async () =>
          (await (await fetch(`${base}/status`)).json()) as {
            shapes?: {
              shapes: number;
              indexed: number;
              scanned: number;
              tables: Array<{ table: string; shapes: number }>;
            };
          },
        // The IN shape is routed through the index, the others are scanned.
        (body) => (body.shapes?.shapes ?? 0) >= 3 && (body.shapes?.indexed ?? 0) >= 1,
        15_000,
        'shapes on /status',
      );
      expect(status.shapes!.scanned).toBeGreaterThanOrEqual(2);
      expect(status.shapes!.tables).toEqual([
        expect.objectContaining({ table: 'erc20.Account', shapes: status.shapes!.shapes }),
      ]);
      const metrics = await (await fetch(`${base}/metrics`)).text();
      expect(metrics).toMatch(/^strata_shape_requests_total\{kind="initial",status="200"\} [1-9]/m);
      expect(metrics).toMatch(/^strata_shape_requests_total\{kind="catch-up",status="409"\} [1-9]/m);
      expect(metrics).toMatch(/^strata_shape_fanout_seconds_count [1-9]/m);

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

/** A port free right now (the restarted daemon must answer where its clients already point). */
async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  await new Promise((resolve) => server.close(resolve));
  return port;
}

describe.each([
  [
    'Postgres, the materializer crashing at a commit',
    (own: TestDatabase) => ({ DATABASE_URL: own.url }),
    'materializer:crash-at-commit:3',
  ],
  [
    'embedded PGlite on disk, the writer dying between COMMIT and sending the changes',
    (_own: TestDatabase) => ({}),
    'persistence:crash-after-commit:3',
  ],
])('durable shapes on %s', (_name, env, fault) => {
  it('clients keep their handles and offsets through the crash and a daemon restart: no 409, nothing missed', async () => {
    const dataDir = mkdtempSync(path.join(tmpdir(), 'strata-shapes-'));
    const own = await createTestDatabase(); // the first test's chain is in the shared one
    const port = await freePort();
    const start = (faults: Record<string, string>) =>
      startDaemonProcess(
        { ...env(own), STRATA_DATA_DIR: dataDir, ERC20_SOURCE: 'ingest', ...faults },
        ['--port', String(port)],
        project,
      );
    let daemon = start({ STRATA_TEST_FAULT: fault });
    const base = await daemon.url;
    const chain = new Chain(base);
    const stop = new AbortController();
    const { fetch: recording, statuses } = statusRecorder();
    const stream = (params: Record<string, unknown>) =>
      new ShapeStream<Row>({
        url: `${base}/v1/shape`,
        params: params as never,
        signal: stop.signal,
        fetchClient: recording,
        // Through the restart the daemon is briefly unreachable: keep retrying.
        backoffOptions: { initialDelay: 50, maxDelay: 500, multiplier: 1.5 },
      } as never);
    try {
      await chain.push(['0xa', '0xb', 100]);
      const all = new Shape(stream({ table: 'Account' }));
      const rich = new Shape(stream({ table: 'Account', where: 'balance > $1', params: { 1: '20' } }));
      const settled = () => {
        const table = chain.accounts();
        const expected = [table, pick(table, (row) => (row.balance as bigint) > 20n)];
        return waitFor(
          async () => [all, rich].map((shape) => byId(shape.currentRows)),
          (got) => isDeepStrictEqual(got, expected),
          60_000,
          `shapes equal the fold of ${chain.blocks.length} blocks`,
        );
      };
      await settled();
      const handles = [all.handle, rich.handle];
      // One block at a time: each its own transaction, so the fault's count is reached.
      for (let i = 0; i < 6; i++) {
        await chain.push(['0xb', `0x${i}`, 10 + i]);
        await settled();
      }
      daemon.kill('SIGTERM');
      expect((await daemon.exited).code).toBe(0);
      // The fault did strike (and the actor was restarted) before the restart.
      expect(daemon.logs.some((line) => String(line.msg).startsWith('injected fault'))).toBe(true);
      expect(daemon.logs.some((line) => line.msg === 'restarting actor')).toBe(true);
      daemon = start({});
      await daemon.url;
      await chain.push(['0xa', '0xc', 30], ['0xb', '0xa', 1]);
      await settled();
      expect([all.handle, rich.handle]).toEqual(handles);
      expect(statuses.filter((status) => status === 409)).toEqual([]);
    } finally {
      stop.abort();
      daemon.kill();
      await daemon.exited;
      rmSync(dataDir, { recursive: true, force: true });
      await own.drop();
    }
    // A crash, a restart and PGlite on disk: ~80 s in the suite on 2 cores, past 120 s beside two
    // CPU hogs and the fleet's daemons.
  }, 300_000);
});

describe('shape log retention', () => {
  it('a reader resuming from before a compacted change refetches under a new handle; the store keeps the retention', async () => {
    const own = await createTestDatabase();
    const daemon = startDaemonProcess(
      { DATABASE_URL: own.url, ERC20_SOURCE: 'ingest', STRATA_SHAPE_LOG_RETENTION: '2' },
      [],
      project,
    );
    try {
      const base = await daemon.url;
      const chain = new Chain(base);
      await chain.push(['0xa', '0xb', 100]);
      // Ready once the actors run (a bound for a busy machine, not a measure).
      const snapshot = await waitFor(
        () => fetch(`${base}/v1/shape?table=Account&offset=-1`),
        (response) => response.status === 200,
        60_000,
        'the first snapshot',
      );
      const handle = snapshot.headers.get('electric-handle')!;
      const offset = snapshot.headers.get('electric-offset')!;
      // Six more transactions, each changing the shape: with a retention of 2 the first are dropped.
      let head = offset;
      for (let i = 0; i < 6; i++) {
        await chain.push(['0xa', '0xb', 1]);
        const live = await fetch(`${base}/v1/shape?table=Account&handle=${handle}&offset=${head}&live=true`);
        expect(live.status).toBe(200);
        head = live.headers.get('electric-offset')!;
      }
      // The head reader missed nothing; the snapshot-time reader missed dropped changes.
      const current = await fetch(`${base}/v1/shape?table=Account&handle=${handle}&offset=${head}`);
      expect(current.status).toBe(200);
      const stale = await fetch(`${base}/v1/shape?table=Account&handle=${handle}&offset=${offset}`);
      expect(stale.status).toBe(409);
      expect(stale.headers.get('electric-handle')).not.toBe(handle);
      const [stored] = await own.query<{ min: string | null; floor: string }>(
        `SELECT (SELECT min(sequence) FROM strata.shape_log)::text AS min, shape_log_floor::text AS floor
           FROM strata.pipelines WHERE name = 'erc20'`,
      );
      expect(Number(stored!.floor)).toBeGreaterThan(Number(offset.split('_')[0]));
      expect(Number(stored!.min)).toBeGreaterThan(Number(stored!.floor));
    } finally {
      daemon.kill();
      await daemon.exited;
      await own.drop();
    }
  });
});

describe.each([
  ['Postgres', true],
  ['embedded PGlite', false],
])('large snapshots on %s', (_name, postgres) => {
  it('come in chunks with fixed boundaries: the same offset answers the same bytes, and the official client syncs through them while blocks arrive', async () => {
    const own = await createTestDatabase();
    // A few rows per chunk, and per round trip of the snapshot's cursor.
    const daemon = startDaemonProcess(
      {
        ...(postgres ? { DATABASE_URL: own.url } : {}),
        ERC20_SOURCE: 'ingest',
        STRATA_SHAPE_CHUNK_BYTES: '400',
        STRATA_SHAPE_SNAPSHOT_PAGE_ROWS: '4',
        STRATA_SHAPE_CAPTURE_INLINE_MAX: '10000',
      },
      postgres ? [] : ['--memory'],
      project,
    );
    const stop = new AbortController();
    let base = '';
    const committed = (block: number) =>
      waitFor(
        () => getJson<{ pipelines: Array<{ committedCheckpoint: number }> }>(`${base}/status`),
        (status) => (status.body.pipelines[0]?.committedCheckpoint ?? 0) >= block,
        60_000,
        `block ${block} committed`,
      );
    try {
      base = await daemon.url;
      const chain = new Chain(base);
      await chain.push(...Array.from({ length: 30 }, (_, i): Transfer => ['0xa', `0x${100 + i}`, i + 1]));
      await committed(1);
      let response = await waitFor(
        () => fetch(`${base}/v1/shape?table=Account&offset=-1`),
        (r) => r.status === 200,
        60_000,
        'the first chunk',
      );
      const handle = response.headers.get('electric-handle')!;
      const rows: Row[] = [];
      let chunks = 0;
      for (;;) {
        chunks += 1;
        const body = (await response.json()) as Array<{ value?: Row; headers: { control?: string } }>;
        for (const message of body) if (message.value !== undefined) rows.push(message.value);
        const offset = response.headers.get('electric-offset')!;
        if (response.headers.has('electric-up-to-date')) {
          expect(body[body.length - 1]!.headers.control).toBe('up-to-date');
          expect(offset).toMatch(/^[1-9]\d*_inf$/);
          break;
        }
        expect(offset).toMatch(/^0_\d+$/);
        const url = `${base}/v1/shape?table=Account&handle=${handle}&offset=${offset}`;
        response = await fetch(url);
        expect(response.status).toBe(200);
        // Fixed boundaries: asked again, the chunk is byte for byte the same.
        const again = await fetch(url);
        expect(await again.text()).toBe(await response.clone().text());
      }
      expect(chunks).toBeGreaterThan(3);
      expect(Object.keys(byId(rows)).sort()).toEqual(Object.keys(chain.accounts()).sort());
      // A new client's snapshot while blocks keep arriving.
      const shape = new Shape(
        new ShapeStream<Row>({
          url: `${base}/v1/shape`,
          params: { table: 'Account', where: "id <> 'none'" } as never,
          signal: stop.signal,
        }),
      );
      for (let i = 0; i < 5; i++)
        await chain.push(['0xa', `0x${100 + i * 7}`, 1], [`0x${101 + i}`, '0xb', 1]);
      await waitFor(
        async () => byId(shape.currentRows),
        (got) => isDeepStrictEqual(got, chain.accounts()),
        60_000,
        'the client equals the fold',
      );
      // One transaction changing 10,002 rows: above the inline capture's limit (set to 10,000 here), its changes
      // stay in Postgres and the materializer reads them from the store (11 fragments).
      await chain.push(...Array.from({ length: 5_001 }, (_, i): Transfer => [`0xf${i}`, `0xe${i}`, 1]));
      await waitFor(
        async () => byId(shape.currentRows),
        (got) => isDeepStrictEqual(got, chain.accounts()),
        60_000,
        'the client equals the fold after a large transaction',
      );
      if (postgres) {
        const [largest] = await own.query<{ n: string }>(
          `SELECT max(n)::text AS n FROM (SELECT count(*) AS n FROM strata.shape_log GROUP BY sequence) s`,
        );
        expect(Number(largest!.n)).toBe(11);
      }
    } finally {
      stop.abort();
      daemon.kill();
      await daemon.exited;
      await own.drop();
    }
  });
});
