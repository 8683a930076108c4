// bench/ingest: how fast the ingest API stores blocks — `POST /v1/pipelines/erc20/events`, one
// request after another, each of BLOCKS blocks of EVENTS transfers (the daemon processes them
// meanwhile, as it would) — against the database's own floor in the same run: the same rows
// COPYed by a plain client into a table like `strata.ingest_blocks`. Postgres only (embedded PGlite
// stores a request with one statement; see docs/projects.md, "Large requests").
// Run: `npm run bench:ingest` (REQUESTS=30 BLOCKS=1000 EVENTS=10 by default).

import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import pg from 'pg';
import { from as copyFrom } from 'pg-copy-streams';
import { escapeText } from '../src/schema/copy-text.ts';
import { startBenchDaemon } from './bench-daemon.ts';
import { benchDatabase } from './bench-database.ts';

const REQUESTS = Number(process.env.REQUESTS ?? 30);
const BLOCKS = Number(process.env.BLOCKS ?? 1_000);
const EVENTS = Number(process.env.EVENTS ?? 10);
const db = benchDatabase('strata_bench_ingest');

const address = (i: number) => `0x${(i % 50_000).toString(16).padStart(40, '0')}`;

interface RequestBlock {
  number: number;
  timestamp: number;
  events: Array<{ name: string; payload: Record<string, string> }>;
}

/** The requests' blocks, numbered from 1 on. */
function requests(): RequestBlock[][] {
  let number = 0;
  return Array.from({ length: REQUESTS }, () =>
    Array.from({ length: BLOCKS }, () => {
      number += 1;
      return {
        number,
        timestamp: 1_700_000_000 + number,
        events: Array.from({ length: EVENTS }, (_, k) => ({
          name: 'Transfer',
          payload: { from: address(number * 7 + k), to: address(number * 13 + k), value: String(number) },
        })),
      };
    }),
  );
}

/** The daemon: every request POSTed in turn; seconds until the last is answered. */
async function throughDaemon(bodies: string[]): Promise<number> {
  const daemon = await startBenchDaemon({ DATABASE_URL: db.url, STRATA_BODY_LIMIT_BYTES: String(256 << 20) });
  try {
    const started = performance.now();
    for (const body of bodies) {
      const response = await fetch(`${daemon.base}/v1/pipelines/erc20/events`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body,
      });
      if (response.status !== 200)
        throw new Error(`ingest answered ${response.status}: ${await response.text()}`);
    }
    return (performance.now() - started) / 1_000;
  } finally {
    await daemon.stop();
  }
}

/** The floor: the same rows COPYed by a plain client, one COPY per request, in turn. */
async function copyFloor(blocksPerRequest: RequestBlock[][]): Promise<number> {
  const client = new pg.Client({ connectionString: db.url });
  await client.connect();
  try {
    await client.query('DROP TABLE IF EXISTS bench_ingest_floor');
    await client.query('CREATE TABLE bench_ingest_floor (LIKE strata.ingest_blocks INCLUDING ALL)');
    const started = performance.now();
    for (const blocks of blocksPerRequest) {
      const lines = blocks.map(
        (block) =>
          `erc20\t${block.number}\t\\N\t\\N\t${block.timestamp}\t${escapeText(
            JSON.stringify(block.events.map((event, logIndex) => ({ ...event, logIndex }))),
          )}\n`,
      );
      await pipeline(
        Readable.from([lines.join('')]),
        client.query(
          copyFrom(
            'COPY bench_ingest_floor (pipeline, number, hash, parent_hash, timestamp, events) FROM STDIN',
          ),
        ),
      );
    }
    return (performance.now() - started) / 1_000;
  } finally {
    await client.end();
  }
}

await db.recreate();
const blocks = requests();
const bodies = blocks.map((request) => JSON.stringify({ blocks: request }));
const events = REQUESTS * BLOCKS * EVENTS;
const daemonSeconds = await throughDaemon(bodies);
const floorSeconds = await copyFloor(blocks);
const rate = (seconds: number) => Math.round(events / seconds).toLocaleString('en-US');
const megabytes = bodies.reduce((sum, body) => sum + body.length, 0) / 1_048_576;
console.log(
  `bench/ingest: ${REQUESTS} requests of ${BLOCKS.toLocaleString('en-US')} blocks × ${EVENTS} events (${megabytes.toFixed(0)} MiB of JSON), Postgres, node ${process.version}`,
);
console.log(
  `  POST /v1/pipelines/erc20/events, in turn: ${daemonSeconds.toFixed(2)} s, ${rate(daemonSeconds)} events/s stored (the daemon processes them meanwhile)`,
);
console.log(
  `  the same rows COPYed by a plain client:  ${floorSeconds.toFixed(2)} s, ${rate(floorSeconds)} events/s`,
);
console.log(`  daemon / floor: ${(daemonSeconds / floorSeconds).toFixed(2)}×`);
