// What the single code path costs on the embedded database: the same statements through `pg` over
// @electric-sql/pglite-socket (what Strata does, so actors in worker threads reach PGlite) vs
// calling PGlite directly in-process (only possible from the thread that owns it), same run.
// Run: `node bin/run-ts.mjs bench/embedded-db.ts`.

import { PGlite } from '@electric-sql/pglite';
import { PGLiteSocketServer } from '@electric-sql/pglite-socket';
import pg from 'pg';

const ROUND_TRIPS = 2_000;
const UPSERTS = 20;
const ROWS = 1_000;

const db = await PGlite.create();
await db.exec('CREATE TABLE t (id text PRIMARY KEY, n numeric NOT NULL)');
const server = new PGLiteSocketServer({ db, host: '127.0.0.1', port: 0, maxConnections: 4 });
await server.start();
const client = new pg.Client({ connectionString: `postgres://postgres@${server.getServerConn()}/postgres` });
await client.connect();

const ids = Array.from({ length: ROWS }, (_, i) => `id-${i}`);
const upsertSql = `INSERT INTO t (id, n) SELECT * FROM unnest($1::text[], $2::numeric[])
  ON CONFLICT (id) DO UPDATE SET n = EXCLUDED.n`;

async function measure(query: (sql: string, params: unknown[]) => Promise<unknown>) {
  for (let i = 0; i < 200; i++) await query('SELECT $1::int AS v', [i]);
  let started = performance.now();
  for (let i = 0; i < ROUND_TRIPS; i++) await query('SELECT $1::int AS v', [i]);
  const roundTripUs = ((performance.now() - started) / ROUND_TRIPS) * 1000;
  started = performance.now();
  for (let i = 0; i < UPSERTS; i++) {
    await query('BEGIN', []);
    await query(upsertSql, [ids, ids.map((_, j) => i * j)]);
    await query('COMMIT', []);
  }
  const rowsPerSecond = (UPSERTS * ROWS) / ((performance.now() - started) / 1000);
  return { roundTripUs, rowsPerSecond };
}

const direct = await measure((sql, params) => (params.length === 0 ? db.exec(sql) : db.query(sql, params)));
const socket = await measure((sql, params) => client.query(sql, params.length === 0 ? undefined : params));
console.log(
  `embedded-db: ${ROUND_TRIPS} parameterized round trips; ${UPSERTS} transactions of a ${ROWS}-row unnest upsert`,
);
console.log('path                      round-trip-µs  upserted-rows/s');
for (const [name, r] of [
  ['PGlite direct', direct],
  ['pg → pglite-socket', socket],
] as const) {
  console.log(
    `${name.padEnd(24)} ${r.roundTripUs.toFixed(0).padStart(14)}  ${Math.round(r.rowsPerSecond).toLocaleString('en-US').padStart(15)}`,
  );
}
console.log(
  `socket cost: round trip ×${(socket.roundTripUs / direct.roundTripUs).toFixed(2)}, upsert throughput ×${(socket.rowsPerSecond / direct.rowsPerSecond).toFixed(2)}`,
);
await client.end();
await server.stop();
await db.close();
