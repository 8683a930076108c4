// A fresh PGlite database starts from a kept copy of an empty one instead of running initdb.
// initdb in WASM is most of PGlite's cold start (measured here: 1.8 s for `PGlite.create()` on a
// new database, 0.3 s from the copy), and every `--memory` start and every new data directory
// pays it. The first fresh start runs initdb as usual and keeps the result (`dumpDataDir`, an
// uncompressed tarball of ~40 MB: loading it is faster than decompressing a 4.5 MB gzip) under
// node_modules/.cache/strata, one file per PGlite version (a copy from another version is never
// loaded). Nothing else is kept in it: the migrations still run on every new database.
//
// The copy is an optimisation only: when it cannot be written (a read-only install) or loaded
// (a damaged file, deleted here), the database starts the usual way.

import { existsSync, mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { PGlite } from '@electric-sql/pglite';
import { PACKAGE_ROOT } from '../package-root.ts';

const CACHE_DIR = path.join(PACKAGE_ROOT, 'node_modules/.cache/strata');

/** The installed PGlite's version (its package.json is not an export: read it beside its entry). */
function pgliteVersion(): string {
  let dir = path.dirname(fileURLToPath(import.meta.resolve('@electric-sql/pglite')));
  while (!existsSync(path.join(dir, 'package.json'))) dir = path.dirname(dir);
  return (JSON.parse(readFileSync(path.join(dir, 'package.json'), 'utf8')) as { version: string }).version;
}

/** How a PGlite database started: reopened, from the kept copy, or by initdb. */
export type PgliteStart = 'existing' | 'template' | 'initdb';

export function templatePath(cacheDir = CACHE_DIR): string {
  return path.join(cacheDir, `pglite-${pgliteVersion()}-empty-datadir.tar`);
}

/** Whether `pgdata` holds no database yet (PGlite then would run initdb there). */
function isFresh(pgdata: string | undefined): boolean {
  return pgdata === undefined || !existsSync(path.join(pgdata, 'PG_VERSION'));
}

/**
 * PGlite on `pgdata` (undefined: in memory), from the kept empty database when `pgdata` is new.
 * `started` says which way it went (for the log).
 */
export async function createPglite(
  pgdata: string | undefined,
  cacheDir = CACHE_DIR,
): Promise<{ db: PGlite; started: PgliteStart }> {
  if (!isFresh(pgdata)) return { db: await PGlite.create(pgdata), started: 'existing' };
  // PGlite makes the data directory but not its parents.
  if (pgdata !== undefined) mkdirSync(path.dirname(pgdata), { recursive: true });
  const template = templatePath(cacheDir);
  if (existsSync(template)) {
    try {
      const loadDataDir = new Blob([readFileSync(template)]);
      return { db: await PGlite.create(pgdata, { loadDataDir }), started: 'template' };
    } catch {
      // A damaged copy: drop it (and what it left in the new data directory), start the usual way.
      rmSync(template, { force: true });
      if (pgdata !== undefined) rmSync(pgdata, { recursive: true, force: true });
    }
  }
  const db = await PGlite.create(pgdata);
  await keepTemplate(db, template);
  return { db, started: 'initdb' };
}

/** Writes the new, still empty database as the template (atomically: a rename). */
async function keepTemplate(db: PGlite, template: string): Promise<void> {
  try {
    const dump = await db.dumpDataDir('none');
    mkdirSync(path.dirname(template), { recursive: true });
    const partial = `${template}.${process.pid}.partial`;
    writeFileSync(partial, Buffer.from(await dump.arrayBuffer()));
    renameSync(partial, template);
  } catch {
    // Not writable here: every fresh start runs initdb, as without the copy.
  }
}
