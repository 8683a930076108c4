// Migrations on real Postgres: applied once under the advisory lock even when processes race,
// recorded with checksums, and a changed or unknown migration is a typed error.
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { migrate, readMigrations } from '../../src/db/migrator.ts';
import { silentLog } from '../helpers/actors.ts';
import { createTestDatabase, type TestDatabase } from '../helpers/database.ts';

let db: TestDatabase;
beforeEach(async () => {
  db = await createTestDatabase();
});
afterEach(async () => {
  await db.drop();
});

function migrationsDir(files: Record<string, string>): string {
  const dir = mkdtempSync(path.join(tmpdir(), 'strata-migrations-'));
  for (const [name, sql] of Object.entries(files)) writeFileSync(path.join(dir, name), sql);
  return dir;
}

describe('migrator', () => {
  it('applies the shipped migrations once, even when five processes race', async () => {
    const results = await Promise.all(
      Array.from({ length: 5 }, () => migrate({ url: db.url, log: silentLog })),
    );
    const shipped = await readMigrations();
    expect(results.flatMap((r) => r.applied).sort()).toEqual(shipped.map((m) => m.name).sort());
    const rows = await db.query<{ name: string }>('SELECT name FROM strata.migrations ORDER BY id');
    expect(rows.map((r) => r.name)).toEqual(shipped.map((m) => m.name));
    expect(await migrate({ url: db.url, log: silentLog })).toEqual({
      applied: [],
      alreadyApplied: shipped.length,
    });
  });

  it('refuses an applied migration whose file was edited', async () => {
    const dir = migrationsDir({ '0001_a.sql': 'CREATE TABLE strata.a (x int);' });
    await migrate({ url: db.url, log: silentLog, dir });
    writeFileSync(path.join(dir, '0001_a.sql'), 'CREATE TABLE strata.a (x bigint);');
    await expect(migrate({ url: db.url, log: silentLog, dir })).rejects.toMatchObject({
      code: 'STRATA_ERR_MIGRATION_MISMATCH',
      message: expect.stringMatching(/0001_a\.sql was edited/),
    });
  });

  it('refuses a database that has a migration this version does not know', async () => {
    const dir = migrationsDir({ '0001_a.sql': 'SELECT 1;', '0002_b.sql': 'SELECT 2;' });
    await migrate({ url: db.url, log: silentLog, dir });
    const older = migrationsDir({ '0001_a.sql': 'SELECT 1;' });
    await expect(migrate({ url: db.url, log: silentLog, dir: older })).rejects.toMatchObject({
      code: 'STRATA_ERR_MIGRATION_MISMATCH',
    });
  });

  it('rolls back a failing migration and records nothing for it', async () => {
    const dir = migrationsDir({
      '0001_ok.sql': 'CREATE TABLE strata.ok (x int);',
      '0002_bad.sql': 'CREATE TABLE strata.bad (x int); SELECT no_such_column FROM strata.ok;',
    });
    await expect(migrate({ url: db.url, log: silentLog, dir })).rejects.toMatchObject({
      code: 'STRATA_ERR_MIGRATION_FAILED',
    });
    const rows = await db.query<{ name: string }>('SELECT name FROM strata.migrations');
    expect(rows.map((r) => r.name)).toEqual(['0001_ok.sql']);
    const bad = await db.query(`SELECT to_regclass('strata.bad') AS t`);
    expect(bad[0]?.t).toBeNull();
  });

  it('reports an unreachable database as retryable STRATA_ERR_DB_UNAVAILABLE', async () => {
    await expect(
      migrate({ url: 'postgres://postgres@127.0.0.1:1/none', log: silentLog, connectTimeoutMs: 1_000 }),
    ).rejects.toMatchObject({ code: 'STRATA_ERR_DB_UNAVAILABLE', retryable: true });
  });
});
