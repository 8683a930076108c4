// The durable ingest log over HTTP (POST /v1/pipelines/:name/events) and resume checks, on a real
// daemon and Postgres: stored blocks are processed at once; bad input gets a 4xx with a code and
// nothing of it is stored; a resume over a changed schema is refused with what changed, and
// `strata reset` rebuilds the pipeline from the ingest log.
import { spawnSync } from 'node:child_process';
import path from 'node:path';
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

const project = fixtureProject('ingest');
const root = path.resolve(import.meta.dirname, '../..');

async function post(url: string, body: string, contentType = 'application/json') {
  const response = await fetch(url, { method: 'POST', headers: { 'content-type': contentType }, body });
  return {
    status: response.status,
    body: (await response.json()) as { error: { code: string; message: string } } & Record<string, unknown>,
  };
}

const block = (number: number, events: unknown[], extra: Record<string, unknown> = {}) => ({
  number,
  timestamp: 1_700_000_000 + number,
  events,
  ...extra,
});
/** Addresses with text that COPY's format and JSON escape; block 11 spends 1…7 from them. */
const HOSTILE = ['back\\slash', 'tab\there', 'new\nline\r', '\\N', 'quote"d', 'ünï 𝄞 ✓', '\\\\t'];
const HOSTILE_TOTALS = Object.fromEntries(HOSTILE.map((address, i) => [address, i + 1]));
const expense = (address: string, amount: number) => ({ name: 'expense', payload: { address, amount } });

async function totals(): Promise<Record<string, number>> {
  const rows = await db.query<{ id: string; debited: string }>(
    'SELECT id, debited FROM pipeline_feed."AccountTotal"',
  );
  return Object.fromEntries(rows.map((row) => [row.id, Number(row.debited)]));
}

async function storedBlocks(): Promise<number[]> {
  const rows = await db.query<{ number: string }>(
    `SELECT number FROM strata.ingest_blocks WHERE pipeline = 'feed' ORDER BY number`,
  );
  return rows.map((row) => Number(row.number));
}

describe('ingest log', () => {
  it('stores pushed blocks, wakes processing, and refuses bad input without storing any of it', async () => {
    const daemon = startDaemonProcess({ DATABASE_URL: db.url }, [], project);
    const url = `${await daemon.url}/v1/pipelines/feed/events`;

    const ok = await post(
      url,
      JSON.stringify({ blocks: [block(1, [expense('a', 5)]), block(2, [expense('b', 7), expense('a', 1)])] }),
    );
    expect(ok).toMatchObject({ status: 200, body: { pipeline: 'feed', stored: 2, head: 2 } });
    // A single block object is accepted too.
    expect((await post(url, JSON.stringify(block(5, [expense('c', 3)])))).status).toBe(200);
    // A bound, not a measure: it includes the actors' start, slow on a busy machine.
    await waitFor(totals, (t) => t.c === 3, 30_000, 'pushed blocks processed');
    expect(await totals()).toEqual({ a: 6, b: 7, c: 3 });

    const refusals: Array<[string, number, string]> = [
      ['{"blocks": [', 400, 'STRATA_ERR_BAD_REQUEST'],
      [JSON.stringify({ blocks: [{ number: 6, events: [] }] }), 400, 'STRATA_ERR_BLOCK_INVALID'],
      [JSON.stringify({ blocks: [block(6, [{ name: 'expense' }])] }), 400, 'STRATA_ERR_BLOCK_INVALID'],
      [JSON.stringify({ blocks: [block(7, []), block(7, [])] }), 400, 'STRATA_ERR_BLOCK_OUT_OF_ORDER'],
      [JSON.stringify({ blocks: [block(5, [expense('d', 1)])] }), 400, 'STRATA_ERR_BLOCK_OUT_OF_ORDER'],
      // A valid first block and a NUL in the second: the whole request is refused.
      [
        JSON.stringify({ blocks: [block(8, [expense('e', 1)]), block(9, [expense('nul\u0000', 1)])] }),
        400,
        'STRATA_ERR_BLOCK_INVALID',
      ],
    ];
    for (const [body, status, code] of refusals) {
      const response = await post(url, body);
      expect(response.status, body).toBe(status);
      expect(response.body.error.code, body).toBe(code);
    }
    expect(await storedBlocks()).toEqual([1, 2, 5]);
    expect((await post(`${await daemon.url}/v1/pipelines/nope/events`, '{}')).body.error.code).toBe(
      'STRATA_ERR_UNKNOWN_PIPELINE',
    );
    const generated = await post(
      `${await daemon.url}/v1/pipelines/generated/events`,
      JSON.stringify(block(1, [])),
    );
    expect(generated).toMatchObject({
      status: 409,
      body: { error: { code: 'STRATA_ERR_NOT_AN_INGEST_PIPELINE' } },
    });

    // The daemon kept serving: a later valid block is still processed.
    expect((await post(url, JSON.stringify(block(10, [expense('a', 4)])))).status).toBe(200);
    await waitFor(totals, (t) => t.a === 10, 30_000, 'later block processed');

    // Text that COPY's format escapes (the log is written with COPY on Postgres) and JSON escapes,
    // in a hash and in payloads, is stored and processed exactly as sent.
    const hash = 'h\t\\x\\N';
    const events = HOSTILE.map((address, amount) => expense(address, amount + 1));
    expect((await post(url, JSON.stringify(block(11, events, { hash })))).status).toBe(200);
    const [stored] = await db.query<{ hash: string; events: unknown }>(
      `SELECT hash, events FROM strata.ingest_blocks WHERE pipeline = 'feed' AND number = 11`,
    );
    expect(stored).toEqual({ hash, events: events.map((event, logIndex) => ({ ...event, logIndex })) });
    await waitFor(totals, (t) => t[HOSTILE[6]!] === 7, 30_000, 'the hostile block processed');
    expect(await totals()).toEqual({ a: 10, b: 7, c: 3, ...HOSTILE_TOTALS });

    // Every request to the ingest pipeline is counted by outcome (a body that is not JSON is
    // refused before the route, an unknown or non-ingest pipeline has no label), with what it stored.
    const metrics = await (await fetch(`${await daemon.url}/metrics`)).text();
    const metric = (line: string) => Number(new RegExp(`^${line} (\\S+)$`, 'm').exec(metrics)?.[1]);
    expect(metric('strata_ingest_requests_total\\{pipeline="feed",outcome="stored"\\}')).toBe(4);
    expect(
      metric('strata_ingest_requests_total\\{pipeline="feed",outcome="STRATA_ERR_BLOCK_INVALID"\\}'),
    ).toBe(3);
    expect(
      metric('strata_ingest_requests_total\\{pipeline="feed",outcome="STRATA_ERR_BLOCK_OUT_OF_ORDER"\\}'),
    ).toBe(2);
    expect(metric('strata_ingest_blocks_total\\{pipeline="feed"\\}')).toBe(5);
    expect(metric('strata_ingest_events_total\\{pipeline="feed"\\}')).toBe(12);
    expect(metric('strata_ingest_request_seconds_count\\{pipeline="feed"\\}')).toBe(9);
    expect(metrics).not.toMatch(/strata_ingest_requests_total\{pipeline="(nope|generated)"/);
    daemon.kill('SIGTERM');
    expect((await daemon.exited).code).toBe(0);
  });

  it('refuses to resume over a changed schema, saying what changed; strata reset rebuilds from the log', async () => {
    const changed = startDaemonProcess({ DATABASE_URL: db.url, SCHEMA_VARIANT: 'changed' }, [], project);
    const exit = await changed.exited;
    expect(exit.code).toBe(1);
    const fatal = changed.logs.find(
      (l) => (l.err as { code?: string } | undefined)?.code === 'STRATA_ERR_SCHEMA_CHANGED',
    );
    const message = (fatal?.err as { message: string } | undefined)?.message;
    expect(message).toMatch(/AccountTotal indexes changed from \[\] to \[debited\]/);
    expect(message).toMatch(/AccountTotal\.lastSeen added \(timestamptz null\)/);
    expect(message).toMatch(/strata reset feed/);
    expect(await totals()).toEqual({ a: 10, b: 7, c: 3, ...HOSTILE_TOTALS }); // nothing touched

    const reset = spawnSync(process.execPath, ['bin/strata.mjs', 'reset', 'feed', '--project', project], {
      cwd: root,
      env: { PATH: process.env.PATH ?? '', DATABASE_URL: db.url, SCHEMA_VARIANT: 'changed' },
      encoding: 'utf8',
    });
    expect(reset.status, reset.stderr).toBe(0);
    expect(reset.stdout).toMatch(/pipeline feed reset/);

    const rebuilt = startDaemonProcess({ DATABASE_URL: db.url, SCHEMA_VARIANT: 'changed' }, [], project);
    await rebuilt.url;
    const rows = await waitFor(
      () =>
        db.query<{ id: string; debited: string; credited: string }>(
          'SELECT id, debited, credited FROM pipeline_feed."AccountTotal"',
        ),
      (r) => r.length === 3 + HOSTILE.length && r.some((row) => row.id === 'a' && Number(row.debited) === 10),
      // From HTTP listening: the process joins the fleet, takes the lease, then processes.
      30_000,
      'the pipeline rebuilt from the ingest log',
    );
    expect(Object.fromEntries(rows.map((row) => [row.id, Number(row.debited)]))).toEqual({
      a: 10,
      b: 7,
      c: 3,
      ...HOSTILE_TOTALS,
    });
    rebuilt.kill('SIGTERM');
    expect((await rebuilt.exited).code).toBe(0);
  });
});
