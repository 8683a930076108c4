// Applies `migrations/NNNN_name.sql` in order, each in its own transaction, under a session
// advisory lock so that N processes starting together apply each migration exactly once.
// Applied migrations are recorded with a checksum in `strata.migrations`; a changed or missing
// file is a typed error, never a silent skip (migrations are append-only).

import { createHash } from 'node:crypto';
import { readdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import pg from 'pg';
import { StrataError } from '../errors.ts';
import type { Logger } from '../logger.ts';
import { PACKAGE_ROOT } from '../package-root.ts';
import { classify } from './pool.ts';

export const MIGRATIONS_DIR = path.join(PACKAGE_ROOT, 'migrations');
/** Arbitrary constant naming the migration lock (pg_advisory_lock takes a bigint). */
const MIGRATION_LOCK_KEY = 7_317_201_001;
const FILE_NAME = /^(\d{4})_[a-z0-9_]+\.sql$/;

export interface Migration {
  id: number;
  name: string;
  sql: string;
  checksum: string;
}

export interface MigrationResult {
  applied: string[];
  alreadyApplied: number;
}

export async function readMigrations(dir = MIGRATIONS_DIR): Promise<Migration[]> {
  const files = (await readdir(dir)).filter((file) => file.endsWith('.sql')).sort();
  const migrations: Migration[] = [];
  for (const file of files) {
    const match = FILE_NAME.exec(file);
    if (match === null) {
      throw new StrataError(
        'STRATA_ERR_MIGRATION_MISMATCH',
        `migration file ${file} is not named NNNN_name.sql`,
      );
    }
    const sql = await readFile(path.join(dir, file), 'utf8');
    const id = Number(match[1]);
    if (migrations.some((migration) => migration.id === id)) {
      throw new StrataError('STRATA_ERR_MIGRATION_MISMATCH', `two migration files share number ${match[1]}`);
    }
    migrations.push({ id, name: file, sql, checksum: createHash('sha256').update(sql).digest('hex') });
  }
  return migrations;
}

export async function migrate(options: {
  url: string;
  log: Logger;
  dir?: string;
  connectTimeoutMs?: number;
}): Promise<MigrationResult> {
  const migrations = await readMigrations(options.dir);
  // A dedicated connection: the advisory lock is held by the session.
  const client = new pg.Client({
    connectionString: options.url,
    connectionTimeoutMillis: options.connectTimeoutMs ?? 5_000,
    application_name: 'strata-migrate',
  });
  client.on('error', (error) => options.log.warn({ err: error }, 'migration connection error'));
  try {
    await client.connect();
  } catch (error) {
    const classified = classify(error);
    if (classified instanceof StrataError && classified.code === 'STRATA_ERR_DB_REFUSED') {
      throw new StrataError(
        'STRATA_ERR_DB_REFUSED',
        `cannot connect to run migrations: ${(error as Error).message} (check DATABASE_URL)`,
        { cause: error },
      );
    }
    throw new StrataError(
      'STRATA_ERR_DB_UNAVAILABLE',
      `cannot connect to run migrations: ${(error as Error).message}`,
      {
        cause: error,
      },
    );
  }
  try {
    await client.query('SELECT pg_advisory_lock($1)', [MIGRATION_LOCK_KEY]);
    await client.query(`CREATE SCHEMA IF NOT EXISTS strata`);
    await client.query(`CREATE TABLE IF NOT EXISTS strata.migrations (
      id integer PRIMARY KEY,
      name text NOT NULL,
      checksum text NOT NULL,
      applied_at timestamptz NOT NULL DEFAULT now()
    )`);
    const { rows } = await client.query<{ id: number; name: string; checksum: string }>(
      'SELECT id, name, checksum FROM strata.migrations ORDER BY id',
    );
    for (const row of rows) {
      const file = migrations.find((migration) => migration.id === row.id);
      if (file === undefined) {
        throw new StrataError(
          'STRATA_ERR_MIGRATION_MISMATCH',
          `the database has migration ${row.name} that this version of Strata does not know; run a newer Strata`,
          { details: { migration: row.name } },
        );
      }
      if (file.checksum !== row.checksum) {
        throw new StrataError(
          'STRATA_ERR_MIGRATION_MISMATCH',
          `migration ${row.name} was edited after it was applied (checksum differs); migrations are append-only`,
          { details: { migration: row.name } },
        );
      }
    }
    const applied: string[] = [];
    for (const migration of migrations) {
      if (rows.some((row) => row.id === migration.id)) continue;
      try {
        await client.query('BEGIN');
        await client.query(migration.sql);
        await client.query('INSERT INTO strata.migrations (id, name, checksum) VALUES ($1, $2, $3)', [
          migration.id,
          migration.name,
          migration.checksum,
        ]);
        await client.query('COMMIT');
      } catch (error) {
        await client.query('ROLLBACK').catch(() => undefined);
        throw new StrataError(
          'STRATA_ERR_MIGRATION_FAILED',
          `migration ${migration.name} failed: ${(error as Error).message}`,
          {
            cause: error,
            details: { migration: migration.name },
          },
        );
      }
      applied.push(migration.name);
      options.log.info({ migration: migration.name }, 'migration applied');
    }
    return { applied, alreadyApplied: rows.length };
  } finally {
    await client.query('SELECT pg_advisory_unlock($1)', [MIGRATION_LOCK_KEY]).catch(() => undefined);
    await client.end().catch(() => undefined);
  }
}
