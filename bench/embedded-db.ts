// What the single code path costs on the embedded database: the same statements through `pg` over
// a loopback socket (what Strata does, so actors in worker threads reach PGlite) vs calling PGlite
// directly in-process (only possible from the thread that owns it), same run. The socket twice:
// pglite-socket's own server, and Strata's (src/db/pglite-socket-server.ts: pglite-socket's
// connection handler with Strata's message order across connections).
// Run: `node bin/run-ts.mjs bench/embedded-db.ts`.

import { PGlite } from '@electric-sql/pglite';
import { PGLiteSocketServer } from '@electric-sql/pglite-socket';
import pg from 'pg';
import { PgliteSocketServer } from '../src/db/pglite-socket-server.ts';

const ROUND_TRIPS = 2_000;
const UPSERTS = 20;
const ROWS = 1_000;

const db = await PGlite.create();
await db.exec('CREATE TABLE t (id text PRIMARY KEY, n numeric NOT NULL)');
const server = new PGLiteSocketServer({ db, host: '127.0.0.1', port: 0, maxConnections: 4 });
await server.start();
const client = new pg.Client({ connectionString: `postgres://postgres@${server.getServerConn()}/postgres` });
await client.connect();
const ours = new PgliteSocketServer(db, 4);
const oursClient = new pg.Client({ connectionString: `postgres://postgres@${await ours.start()}/postgres` });
await oursClient.connect();

const ids = Array.from({ length: ROWS }, (_, i) => `id-${i}`);
const upsertSql = `INSERT INTO t (id, n) SELECT * FROM unnest($1::text[], $2::numeric[])
  ON CONFLICT (id) DO UPDATE SET n = EXCLUDED.n`;

async function measure(query: (sql: string, params: unknown[]) => Promise<unknown>) {
  // A fresh table each time: the upserts leave dead rows, which slowed whichever path ran later.
  await db.exec('DROP TABLE t; CREATE TABLE t (id text PRIMARY KEY, n numeric NOT NULL)');
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

type Measured = Awaited<ReturnType<typeof measure>>;
const paths: Record<'direct' | 'socket' | 'strata', (sql: string, params: unknown[]) => Promise<unknown>> = {
  direct: (sql, params) => (params.length === 0 ? db.exec(sql) : db.query(sql, params)),
  socket: (sql, params) => client.query(sql, params.length === 0 ? undefined : params),
  strata: (sql, params) => oursClient.query(sql, params.length === 0 ? undefined : params),
};
// Three rounds, the order turned each round (whichever path ran later measured differently), medians.
const runs: Record<keyof typeof paths, Measured[]> = { direct: [], socket: [], strata: [] };
const orders: Array<Array<keyof typeof paths>> = [
  ['direct', 'socket', 'strata'],
  ['strata', 'socket', 'direct'],
  ['socket', 'direct', 'strata'],
];
for (const order of orders) for (const path of order) runs[path].push(await measure(paths[path]));
const median = (values: number[]) => [...values].sort((a, b) => a - b)[1]!;
const summary = (path: keyof typeof paths): Measured => ({
  roundTripUs: median(runs[path].map((r) => r.roundTripUs)),
  rowsPerSecond: median(runs[path].map((r) => r.rowsPerSecond)),
});
const direct = summary('direct');
const socket = summary('socket');
const strata = summary('strata');
console.log(
  `embedded-db: ${ROUND_TRIPS} parameterized round trips; ${UPSERTS} transactions of a ${ROWS}-row unnest upsert`,
);
console.log('path (median of 3)         round-trip-µs  upserted-rows/s');
for (const [name, r] of [
  ['PGlite direct', direct],
  ['pg → pglite-socket', socket],
  ['pg → Strata socket', strata],
] as const) {
  console.log(
    `${name.padEnd(24)} ${r.roundTripUs.toFixed(0).padStart(14)}  ${Math.round(r.rowsPerSecond).toLocaleString('en-US').padStart(15)}`,
  );
}
console.log(
  `socket cost: round trip ×${(socket.roundTripUs / direct.roundTripUs).toFixed(2)}, upsert throughput ×${(socket.rowsPerSecond / direct.rowsPerSecond).toFixed(2)}`,
);
console.log(
  `Strata's socket vs pglite-socket's: round trip ×${(strata.roundTripUs / socket.roundTripUs).toFixed(2)}, upsert throughput ×${(strata.rowsPerSecond / socket.rowsPerSecond).toFixed(2)}`,
);
await oursClient.end();
await ours.stop();
await client.end();
await server.stop();
await db.close();
