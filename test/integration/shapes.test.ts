// Live shapes with the official Electric client (@electric-sql/client, pinned) against a real
// daemon, on Postgres and on embedded PGlite: initial sync, live inserts and updates through the
// ingest API, a where clause with params, columns, replica=full, rows moving in and out of a
// shape, a reorg (compensating changes), rotation with DELETE (409 and refetch, no lost change),
// server-sent events (live_sse), and hostile where clauses refused with Electric's body; log
// retention and chunked snapshots (durability through crashes: shapes-durability.test.ts).
// What the shapes must hold comes from an independent fold of the posted chain, not from the
// daemon's tables.
import { setTimeout } from 'node:timers/promises';
import { isDeepStrictEqual } from 'node:util';
import { Shape, ShapeStream } from '@electric-sql/client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { StatusSnapshot } from '../../src/status-types.ts';
import { fixtureProject, getJson, startDaemonProcess, waitFor } from '../helpers/daemon-process.ts';
import { createTestDatabase, type TestDatabase } from '../helpers/database.ts';
import { byId, Chain, pick, type Row, type Transfer } from '../helpers/shape-chain.ts';

let db: TestDatabase;
beforeAll(async () => {
  db = await createTestDatabase();
});
afterAll(async () => {
  await db?.drop();
});

const project = fixtureProject('../../examples/erc20');

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
        // PGlite reads snapshots a page at a time, each its own transaction; a pause between
        // pages lets blocks commit in between (the pages are then brought to one point).
        ...(postgres
          ? { DATABASE_URL: own.url }
          : { STRATA_TEST_FAULT: 'shapes:snapshot-page-delay:40', STRATA_LOG_LEVEL: 'debug' }),
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
      // On PGlite, snapshots read while a block commits between their pages: the rows are brought
      // to the last page's transaction by the shape's log, so the block's change to 0x100 (its
      // page is read first, before the block) is in the snapshot offered at that transaction.
      for (let i = 0; !postgres; i++) {
        expect(i, 'a block committed between the pages of one of 20 snapshots').toBeLessThan(20);
        const where = encodeURIComponent(`id <> 'other-${i}'`);
        const snapshot = readSnapshot(`${base}/v1/shape?table=Account&where=${where}`);
        await setTimeout(60); // the first page (0x100's) is read by now
        await chain.push(['0xa', '0x100', 1]);
        const { handle, offset, rows } = await snapshot;
        const fold = daemon.logs.find(
          (line) => line.msg === 'paged snapshot brought to one point' && line.handle === handle,
        );
        if (fold === undefined || Number(fold.replayed) === 0) continue;
        expect(offset).toBe(`${fold.through}_inf`);
        const expected = chain.accounts()['0x100']!;
        expect(byId(rows)['0x100']).toEqual({
          id: '0x100',
          balance: String(expected.balance),
          transfersOut: String(expected.transfersOut),
          transfersIn: String(expected.transfersIn),
        });
        break;
      }
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

/** A whole snapshot over raw HTTP (every chunk): its handle, the offset it ends at, its rows. */
async function readSnapshot(url: string): Promise<{ handle: string; offset: string; rows: Row[] }> {
  let response = await waitFor(
    () => fetch(`${url}&offset=-1`),
    (r) => r.status === 200,
    20_000,
    'a snapshot',
  );
  const handle = response.headers.get('electric-handle')!;
  const rows: Row[] = [];
  for (;;) {
    const body = (await response.json()) as Array<{ value?: Row }>;
    for (const message of body) if (message.value !== undefined) rows.push(message.value);
    const offset = response.headers.get('electric-offset')!;
    if (response.headers.has('electric-up-to-date')) return { handle, offset, rows };
    response = await fetch(`${url}&handle=${handle}&offset=${offset}`);
  }
}

describe('stopping with clients waiting', () => {
  it('a SIGTERM answers held long-polls and SSE streams at once instead of waiting them out', async () => {
    const own = await createTestDatabase();
    const daemon = startDaemonProcess({ DATABASE_URL: own.url, ERC20_SOURCE: 'ingest' }, [], project);
    try {
      const base = await daemon.url;
      await new Chain(base).push(['0xa', '0xb', 1]);
      await waitFor(
        () => getJson<StatusSnapshot>(`${base}/status`),
        ({ body }) => body.pipelines[0]?.committedCheckpoint === 1,
        20_000,
        'the block committed',
      );
      // 503 until the pipeline's lease is taken (a fleet member starting up).
      const snapshot = await waitFor(
        () => fetch(`${base}/v1/shape?table=Account&offset=-1`),
        (response) => response.status === 200,
        20_000,
        'the snapshot answered',
      );
      await snapshot.text();
      const handle = snapshot.headers.get('electric-handle')!;
      // Read to the head, so the live requests below have nothing to answer with.
      let offset = snapshot.headers.get('electric-offset')!;
      for (;;) {
        const next = await fetch(`${base}/v1/shape?table=Account&handle=${handle}&offset=${offset}`);
        const messages = (await next.json()) as Array<{ headers: { control?: string } }>;
        offset = next.headers.get('electric-offset')!;
        if (messages.every((message) => message.headers.control !== undefined)) break;
      }
      const at = `table=Account&handle=${handle}&offset=${offset}`;
      // Nothing changes: both would be held for the whole long-poll (20 s) or SSE hold.
      const longPoll = fetch(`${base}/v1/shape?${at}&live=true`);
      const sse = fetch(`${base}/v1/shape?${at}&live=true&live_sse=true`).then(
        (response) => response.text(),
        (error: unknown) => `failed: ${error}`,
      );
      await waitFor(
        () => getJson<{ shapes?: { liveRequests: number } }>(`${base}/status`),
        ({ body }) => body.shapes?.liveRequests === 2,
        10_000,
        'both requests held',
      );
      const stopped = performance.now();
      daemon.kill('SIGTERM');
      const answer = await longPoll;
      expect(answer.status).toBe(200);
      expect(await answer.json()).toEqual([{ headers: expect.objectContaining({ control: 'up-to-date' }) }]);
      expect(await sse).toContain('up-to-date');
      expect((await daemon.exited).code).toBe(0);
      // The long-poll alone would have kept the stop waiting ~20 s (the SSE stream ~60 s); a stop
      // on a loaded box takes a few seconds of its own.
      expect(performance.now() - stopped).toBeLessThan(15_000);
    } finally {
      daemon.kill();
      await daemon.exited;
      await own.drop();
    }
  });
});
