import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import pg from 'pg';
import { from as copyFrom } from 'pg-copy-streams';

const client = new pg.Client({ connectionString: 'postgres://postgres@127.0.0.1:5432/erc20dev' });
await client.connect();
const N = 100_000;
const rows = Array.from({ length: N }, (_, i) => [
  `${i}-0`,
  `0x${((i * 7919) % 50000).toString(16).padStart(40, '0')}`,
  `0x${((i * 104729) % 50000).toString(16).padStart(40, '0')}`,
  `${i}123456789000000000`,
  i,
  new Date(1735689600000 + i * 12000).toISOString(),
]);
for (const indexes of [false, true]) {
  await client.query(
    'DROP TABLE IF EXISTS t_bench; CREATE TABLE t_bench (id text primary key, "from" text not null, "to" text not null, value numeric(78,0) not null, "blockNumber" integer not null, timestamp timestamptz not null)',
  );
  if (indexes) await client.query('CREATE INDEX ON t_bench ("from"); CREATE INDEX ON t_bench ("to")');
  let t = performance.now();
  const cols = rows[0]!.map((_, c) => rows.map((r) => r[c]));
  const tPrep = performance.now();
  await client.query(
    'INSERT INTO t_bench SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::numeric[], $5::int[], $6::timestamptz[]) ON CONFLICT (id) DO UPDATE SET "from" = EXCLUDED."from", "to"=EXCLUDED."to", value=EXCLUDED.value, "blockNumber"=EXCLUDED."blockNumber", timestamp=EXCLUDED.timestamp',
    cols,
  );
  const unnestMs = performance.now() - t;
  await client.query('TRUNCATE t_bench');
  t = performance.now();
  const text = rows.map((r) => r.join('\t')).join('\n') + '\n';
  await pipeline(Readable.from([text]), client.query(copyFrom('COPY t_bench FROM STDIN')));
  const copyMs = performance.now() - t;
  await client.query('TRUNCATE t_bench');
  t = performance.now();
  await client.query('CREATE TEMP TABLE IF NOT EXISTS s_bench (LIKE t_bench) ON COMMIT DELETE ROWS');
  await client.query('BEGIN');
  await pipeline(Readable.from([text]), client.query(copyFrom('COPY s_bench FROM STDIN')));
  await client.query(
    'INSERT INTO t_bench SELECT * FROM s_bench ON CONFLICT (id) DO UPDATE SET "from" = EXCLUDED."from", "to"=EXCLUDED."to", value=EXCLUDED.value, "blockNumber"=EXCLUDED."blockNumber", timestamp=EXCLUDED.timestamp',
  );
  await client.query('COMMIT');
  const copyUpsertMs = performance.now() - t;
  console.log({
    indexes,
    unnestMs: Math.round(unnestMs),
    prepMs: Math.round(tPrep - t),
    copyMs: Math.round(copyMs),
    copyUpsertMs: Math.round(copyUpsertMs),
  });
}
await client.end();
