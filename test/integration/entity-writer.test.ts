// The writer's set paths on real Postgres: new rows are COPYed straight into the entity's table;
// a run holding an id that already exists falls back, inside the same transaction, to the staging
// upsert — and either way the table ends equal to the last value per id.
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { EntityWriter } from '../../src/persistence/entity-writer.ts';
import { decodeChanges, encodeChanges } from '../../src/pipeline/change-codec.ts';
import type { EntityChanges } from '../../src/protocol.ts';
import { rowToCopyLine } from '../../src/schema/copy-text.ts';
import { createPipelineTables, entityTable } from '../../src/schema/ddl.ts';
import type { Schema } from '../../src/schema/define-schema.ts';
import { loadSchema } from '../../src/schema/load-schema.ts';
import { useTestDatabase } from '../helpers/database.ts';

const db = useTestDatabase('strata_writer');
let client: pg.Client;
let schema: Schema;

beforeAll(async () => {
  const erc20 = await loadSchema(new URL('../../examples/erc20/schema.ts', import.meta.url).pathname);
  schema = { ...erc20, entities: erc20.entities.filter((entity) => entity.name === 'Account') };
  client = new pg.Client({ connectionString: db.url });
  await client.connect();
  await createPipelineTables(client, 'w', schema);
});
afterAll(async () => {
  await client?.end();
});

type Account = { id: string; balance: bigint; transfersOut: number; transfersIn: number };

/** One batch of Account sets, through the same encoding the processing actor sends. */
function accounts(rows: Account[]): EntityChanges {
  const entity = schema.entities[0]!;
  const changes: EntityChanges = {
    Account: {
      checkpoints: rows.map(() => 1),
      eventNames: rows.map(() => 'Transfer'),
      logIndexes: rows.map(() => 0),
      rows: rows.map((row) => `${rowToCopyLine(entity, row)}\n`).join(''),
      deletes: [],
    },
  };
  return decodeChanges(encodeChanges(changes));
}

const account = (id: string, balance: bigint): Account => ({ id, balance, transfersOut: 1, transfersIn: 2 });

/** Whether this session ever used the staging table (it lives as long as the connection). */
async function stagingUsed(): Promise<boolean> {
  const { rows } = await client.query(`SELECT to_regclass('pg_temp.strata_stage_w_0') IS NOT NULL AS used`);
  return rows[0].used as boolean;
}

async function write(writer: EntityWriter, runs: EntityChanges[]): Promise<number> {
  await client.query('BEGIN');
  const { written } = await writer.write(client as unknown as pg.PoolClient, runs);
  // The transaction is still usable after a fallback: the savepoint undid only the failed COPY.
  await client.query('SELECT 1');
  await client.query('COMMIT');
  return written;
}

async function stored(): Promise<Record<string, string>> {
  const { rows } = await client.query(
    `SELECT id, balance::text FROM ${entityTable('w', 'Account')} ORDER BY id`,
  );
  return Object.fromEntries(rows.map((row) => [row.id, row.balance]));
}

describe('EntityWriter set paths', () => {
  it('COPYs new rows straight in, falls back to the upsert on an existing id, and ends on the last values', async () => {
    const writer = new EntityWriter('w', schema, 'copy');
    // Ids with characters COPY escapes: the merge keys lines by the escaped id.
    const odd = 'tab\there\\and';
    expect(await write(writer, [accounts([account('a', 1n), account(odd, 2n)])])).toBe(2);
    expect(await stagingUsed()).toBe(false);
    expect(await stored()).toEqual({ a: '1', [odd]: '2' });

    // `a` exists: the direct COPY fails on it and the whole run goes through staging.
    const run = [
      accounts([account('a', 10n), account('b', 3n)]),
      accounts([account(odd, 20n), account('a', 11n)]),
    ];
    expect(await write(writer, run)).toBe(3);
    expect(await stagingUsed()).toBe(true);
    expect(await stored()).toEqual({ a: '11', b: '3', [odd]: '20' });
  });

  it('merges a run by id with deletes, whichever path it takes', async () => {
    await client.query(`DELETE FROM ${entityTable('w', 'Account')}`);
    const writer = new EntityWriter('w', schema, 'copy');
    const withDelete = accounts([account('x', 5n)]);
    withDelete.Account!.deletes = [[2, 'y']];
    await write(writer, [accounts([account('y', 1n), account('x', 1n)]), withDelete]);
    expect(await stored()).toEqual({ x: '5' });
  });
});
