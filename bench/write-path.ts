// bench/write-path: how the writer stores sets. The same 100,000 ERC20 Transfer rows (COPY lines,
// as the processing actor produces them) written by src/persistence/entity-writer.ts in its three
// ways — `direct` (new rows: COPY straight into the table), `copy` (COPY into a staging table,
// then INSERT … ON CONFLICT from it) and `unnest` (one INSERT … SELECT FROM unnest(…) ON CONFLICT,
// embedded PGlite's path) — into the erc20 Transfer table with and without its two secondary
// indexes, on real Postgres, interleaved, median of 3.
// Run: `npm run bench:write-path`.

import pg from 'pg';
import { EntityWriter } from '../src/persistence/entity-writer.ts';
import type { EntityChanges } from '../src/protocol.ts';
import { rowToCopyLine } from '../src/schema/copy-text.ts';
import { createIndexSql, createTableSql, entityTable } from '../src/schema/ddl.ts';
import { loadSchema } from '../src/schema/load-schema.ts';

const ROWS = Number(process.env.ROWS ?? 100_000);
const URL_ = process.env.DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres';

const schema = await loadSchema(new URL('../examples/erc20/schema.ts', import.meta.url).pathname);
const transfer = schema.byName.get('Transfer')!;
const address = (i: number) => `0x${(i % 50_000).toString(16).padStart(40, '0')}`;
const ids: string[] = [];
const lines: string[] = [];
for (let i = 0; i < ROWS; i++) {
  const id = `${i}-0`;
  ids.push(id);
  lines.push(
    rowToCopyLine(transfer, {
      id,
      from: address(i * 7_919),
      to: address(i * 104_729),
      value: BigInt(i) * 1_000_000_000n,
      blockNumber: i,
      timestamp: new Date(1_735_689_600_000 + i * 12_000),
    }),
  );
}
const changes: EntityChanges = {
  Transfer: {
    checkpoints: ids.map(() => 1),
    eventNames: ids.map(() => 'Transfer'),
    logIndexes: ids.map(() => 0),
    rows: `${lines.join('\n')}\n`,
    deletes: [],
  },
};

const client = new pg.Client({ connectionString: URL_ });
await client.connect();
await client.query('DROP SCHEMA IF EXISTS "pipeline_writebench" CASCADE');
await client.query('CREATE SCHEMA "pipeline_writebench"');

const METHODS = ['direct', 'copy', 'unnest'] as const;
type Method = (typeof METHODS)[number];

async function once(method: Method, indexes: boolean): Promise<number> {
  await client.query(`DROP TABLE IF EXISTS ${entityTable('writebench', 'Transfer')}`);
  const [table] = createTableSql('writebench', transfer);
  await client.query(table!);
  if (indexes) for (const sql of createIndexSql('writebench', transfer)) await client.query(sql);
  const writer = new EntityWriter(
    'writebench',
    { ...schema, entities: [transfer] },
    method === 'unnest' ? 'unnest' : 'copy',
    { directCopy: method === 'direct' },
  );
  const started = performance.now();
  await client.query('BEGIN');
  await writer.write(client as pg.PoolClient, [changes]);
  await client.query('COMMIT');
  return performance.now() - started;
}

const median = (values: number[]) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)]!;
console.log(`write-path: ${ROWS.toLocaleString('en-US')} Transfer rows in one transaction, median of 3 (ms)`);
console.log('method   no indexes   2 indexes');
const results = new Map<string, number[]>();
for (let round = 0; round < 3; round++) {
  for (const method of METHODS) {
    for (const indexes of [false, true]) {
      const key = `${method}:${indexes}`;
      results.set(key, [...(results.get(key) ?? []), await once(method, indexes)]);
    }
  }
}
for (const method of METHODS) {
  const plain = median(results.get(`${method}:false`)!);
  const indexed = median(results.get(`${method}:true`)!);
  console.log(`${method.padEnd(8)} ${plain.toFixed(0).padStart(10)}   ${indexed.toFixed(0).padStart(9)}`);
}
const without = (method: Method) => median(results.get(`${method}:false`)!);
console.log(`copy is ${(without('unnest') / without('copy')).toFixed(2)}× unnest without indexes`);
console.log(`direct is ${(without('copy') / without('direct')).toFixed(2)}× copy without indexes`);
await client.query('DROP SCHEMA "pipeline_writebench" CASCADE');
await client.end();
