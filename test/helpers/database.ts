// Test isolation: each test file gets its own database on the real Postgres at DATABASE_URL,
// dropped afterwards.

import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { afterAll, beforeAll } from 'vitest';

export const ADMIN_DATABASE_URL = process.env.DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres';
export const REDIS_URL = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';

export interface TestDatabase {
  url: string;
  name: string;
  query<Row extends pg.QueryResultRow = pg.QueryResultRow>(sql: string, params?: unknown[]): Promise<Row[]>;
  /** The number a `SELECT count(*) …` answers. */
  count(sql: string, params?: unknown[]): Promise<number>;
  drop(): Promise<void>;
}

export async function createTestDatabase(prefix = 'strata_test'): Promise<TestDatabase> {
  const name = `${prefix}_${randomBytes(5).toString('hex')}`;
  const admin = new pg.Client({ connectionString: ADMIN_DATABASE_URL });
  await admin.connect();
  await admin.query(`CREATE DATABASE ${name}`);
  await admin.end();
  const url = new URL(ADMIN_DATABASE_URL);
  url.pathname = `/${name}`;
  // A pool, not one client: a test that terminates connections or restarts Postgres must not
  // lose its own (the pool reconnects; the listener keeps a dropped idle one from throwing).
  const client = new pg.Pool({ connectionString: url.toString(), max: 2 });
  client.on('error', () => undefined);
  return {
    url: url.toString(),
    name,
    async query(sql, params) {
      return (await client.query(sql, params)).rows;
    },
    async count(sql, params) {
      const { rows } = await client.query(sql, params);
      return Number(Object.values(rows[0] ?? {})[0]);
    },
    async drop() {
      await client.end();
      const cleanup = new pg.Client({ connectionString: ADMIN_DATABASE_URL });
      await cleanup.connect();
      await cleanup.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
      await cleanup.end();
    },
  };
}

/**
 * A database for this test file: created before its tests, dropped after them. Call at the top
 * level of the file; the answer stands for the database once its tests run.
 */
export function useTestDatabase(prefix?: string): TestDatabase {
  let db: TestDatabase | undefined;
  beforeAll(async () => {
    db = await createTestDatabase(prefix);
  });
  afterAll(async () => {
    await db?.drop();
  });
  const current = () => {
    if (db === undefined) throw new Error('the test database is created in beforeAll');
    return db;
  };
  return {
    get url() {
      return current().url;
    },
    get name() {
      return current().name;
    },
    query: (sql, params) => current().query(sql, params),
    count: (sql, params) => current().count(sql, params),
    drop: () => current().drop(),
  };
}

/** Drops Strata's own schema and a pipeline's, so the next daemon starts from nothing. */
export async function resetPipeline(db: TestDatabase, pipeline: string): Promise<void> {
  await db.query('DROP SCHEMA IF EXISTS strata CASCADE');
  await db.query(`DROP SCHEMA IF EXISTS pipeline_${pipeline} CASCADE`);
}
