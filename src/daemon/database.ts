// Start-up phase `openDatabase`: Postgres at DATABASE_URL, or embedded PGlite behind its socket;
// migrations applied; the main thread's own small pool (ingest, readiness, the module cache's L2).

import type { StrataConfig } from '../config.ts';
import { type EmbeddedDatabase, startEmbeddedDatabase } from '../db/embedded.ts';
import { migrate } from '../db/migrator.ts';
import { createDb, type Db } from '../db/pool.ts';
import type { Logger } from '../logger.ts';
import type { DaemonLifecycle } from './lifecycle.ts';

export interface DaemonDatabase {
  url: string;
  /** The embedded database, when there is no DATABASE_URL. */
  embedded: EmbeddedDatabase | null;
  /** PGlite serves one statement at a time over its socket: pools must not pipeline. */
  isolateStatements: boolean;
  mainDb: Db;
}

export async function openDatabase(
  config: StrataConfig,
  log: Logger,
  lifecycle: DaemonLifecycle,
): Promise<DaemonDatabase> {
  let embedded: EmbeddedDatabase | null = null;
  if (config.database.kind === 'embedded') {
    const started = await startEmbeddedDatabase({
      storage: config.database.storage,
      dataDir: config.database.dataDir,
      log,
    });
    embedded = started;
    lifecycle.onStop('embedded database', () => started.close());
  }
  const url = embedded?.url ?? (config.database.kind === 'postgres' ? config.database.url : '');
  const isolateStatements = embedded !== null;
  await migrate({ url, log, connectTimeoutMs: config.db.connectTimeoutMs });
  const mainDb = createDb({
    url,
    max: 4,
    connectTimeoutMs: config.db.connectTimeoutMs,
    applicationName: 'strata-main',
    log,
    isolateStatements,
  });
  lifecycle.onStop('main database pool', () => mainDb.close());
  return { url, embedded, isolateStatements, mainDb };
}
