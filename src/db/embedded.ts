// The embedded database: PGlite (Postgres compiled to WASM) in this process, exposed on a
// loopback socket by @electric-sql/pglite-socket so that every actor reaches it with the same
// `pg` pool code it uses for a real Postgres. One code path; see bench/RESULTS.md for what the
// socket costs against calling PGlite directly.
//
// PGlite is single-process: two daemons on one data directory would corrupt it, so the directory
// is claimed with a pid lock file first.

import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { PGlite } from '@electric-sql/pglite';
import { PGLiteSocketServer } from '@electric-sql/pglite-socket';
import { StrataError } from '../errors.ts';
import type { Logger } from '../logger.ts';

export interface EmbeddedDatabase {
  /** A postgres:// URL for `pg`, valid while this process runs. */
  url: string;
  storage: 'disk' | 'memory';
  dataDir: string | null;
  close(): Promise<void>;
}

/** Concurrent socket connections PGlite's multiplexer accepts (actors' pools share these). */
const MAX_CONNECTIONS = 64;

export async function startEmbeddedDatabase(options: {
  storage: 'disk' | 'memory';
  dataDir: string;
  log: Logger;
}): Promise<EmbeddedDatabase> {
  let releaseLock = () => {};
  let db: PGlite;
  if (options.storage === 'disk') {
    mkdirSync(options.dataDir, { recursive: true });
    releaseLock = claimDataDir(options.dataDir);
    db = await PGlite.create(path.join(options.dataDir, 'pgdata'));
  } else {
    db = await PGlite.create();
  }
  const server = new PGLiteSocketServer({ db, host: '127.0.0.1', port: 0, maxConnections: MAX_CONNECTIONS });
  await server.start();
  const address = server.getServerConn(); // "127.0.0.1:<port>"
  options.log.info(
    { storage: options.storage, dataDir: options.storage === 'disk' ? options.dataDir : null, address },
    'embedded PGlite started',
  );
  return {
    url: `postgres://postgres@${address}/postgres?sslmode=disable`,
    storage: options.storage,
    dataDir: options.storage === 'disk' ? options.dataDir : null,
    async close() {
      await server.stop();
      await db.close();
      releaseLock();
    },
  };
}

function claimDataDir(dataDir: string): () => void {
  const lockFile = path.join(dataDir, 'strata.pid');
  try {
    const holder = Number.parseInt(readFileSync(lockFile, 'utf8'), 10);
    if (Number.isInteger(holder) && holder !== process.pid && isAlive(holder)) {
      throw new StrataError(
        'STRATA_ERR_CONFIG_INVALID',
        `data directory ${dataDir} is in use by process ${holder}; stop it or pass --data-dir / --memory`,
      );
    }
  } catch (error) {
    if (error instanceof StrataError) throw error;
    // no lock file (ENOENT) or an unreadable one: claim it
  }
  writeFileSync(lockFile, String(process.pid));
  return () => rmSync(lockFile, { force: true });
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as { code?: string }).code === 'EPERM';
  }
}
