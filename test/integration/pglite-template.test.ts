// A new embedded database starts from the kept empty one (src/db/pglite-template.ts): the first
// fresh start runs initdb and keeps the copy, later fresh ones load it — in memory and on disk,
// where the database then persists like any other — and a damaged copy is replaced, never fatal.
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { createPglite, templatePath } from '../../src/db/pglite-template.ts';

const scratch = mkdtempSync(path.join(tmpdir(), 'strata-pglite-template-'));
afterAll(() => rmSync(scratch, { recursive: true, force: true }));

describe('PGlite template', () => {
  it('keeps the first fresh database, starts later ones from it, and replaces a damaged copy', async () => {
    const cacheDir = path.join(scratch, 'cache');
    const template = templatePath(cacheDir);

    const first = await createPglite(undefined, cacheDir);
    expect(first.started).toBe('initdb');
    await first.db.close();
    expect(statSync(template).size).toBeGreaterThan(1_000_000);

    // On disk: the new database comes from the copy and persists across a reopen.
    const pgdata = path.join(scratch, 'disk', 'pgdata');
    const fromCopy = await createPglite(pgdata, cacheDir);
    expect(fromCopy.started).toBe('template');
    await fromCopy.db.exec('CREATE TABLE kept (value text); INSERT INTO kept VALUES ($$here$$)');
    await fromCopy.db.close();
    const reopened = await createPglite(pgdata, cacheDir);
    expect(reopened.started).toBe('existing');
    expect((await reopened.db.query<{ value: string }>('SELECT value FROM kept')).rows).toEqual([
      { value: 'here' },
    ]);
    await reopened.db.close();

    // In memory: an empty database (nothing of the disk one leaked into the copy).
    const memory = await createPglite(undefined, cacheDir);
    expect(memory.started).toBe('template');
    const tables = await memory.db.query(`SELECT 1 FROM pg_tables WHERE tablename = 'kept'`);
    expect(tables.rows).toEqual([]);
    await memory.db.close();

    // A damaged copy: the start runs initdb and keeps a good copy again.
    writeFileSync(template, 'not a tarball');
    const repaired = await createPglite(path.join(scratch, 'other', 'pgdata'), cacheDir);
    expect(repaired.started).toBe('initdb');
    expect((await repaired.db.query<{ one: number }>('SELECT 1 AS one')).rows).toEqual([{ one: 1 }]);
    await repaired.db.close();
    expect(readFileSync(template).length).toBeGreaterThan(1_000_000);
  });
});
