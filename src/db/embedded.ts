// The embedded database: PGlite (Postgres compiled to WASM), in its own worker thread
// (src/db/embedded-thread.ts), exposed on a loopback socket by @electric-sql/pglite-socket so that
// every actor reaches it with the same `pg` pool code it uses for a real Postgres. One code path;
// see bench/RESULTS.md for what the socket costs against calling PGlite directly, and for what
// the thread changed (the main thread answered /status in seconds during an embedded backfill).
//
// PGlite is single-process: two daemons on one data directory would corrupt it, so the directory
// is claimed with a pid lock file first.

import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { Worker } from 'node:worker_threads';
import { StrataError } from '../errors.ts';
import type { Logger } from '../logger.ts';
import { codeModule, PACKAGE_ROOT } from '../package-root.ts';
import type { EmbeddedThreadMessage, EmbeddedThreadOptions } from './embedded-thread.ts';
import type { PgliteStart } from './pglite-template.ts';

export interface EmbeddedDatabase {
  /** A postgres:// URL for `pg`, valid while this process runs. */
  url: string;
  storage: 'disk' | 'memory';
  dataDir: string | null;
  close(): Promise<void>;
}

/** Concurrent socket connections PGlite's multiplexer accepts (actors' pools share these). */
const MAX_CONNECTIONS = 64;

const bootstrapUrl = pathToFileURL(path.join(PACKAGE_ROOT, 'workers/bootstrap.mjs'));
const threadEntry = codeModule('workers/embedded-db');

export async function startEmbeddedDatabase(options: {
  storage: 'disk' | 'memory';
  dataDir: string;
  log: Logger;
}): Promise<EmbeddedDatabase> {
  let releaseLock = () => {};
  if (options.storage === 'disk') {
    mkdirSync(options.dataDir, { recursive: true });
    releaseLock = claimDataDir(options.dataDir);
  }
  const threadOptions: EmbeddedThreadOptions = {
    storage: options.storage,
    dataDir: options.dataDir,
    maxConnections: MAX_CONNECTIONS,
  };
  const worker = new Worker(bootstrapUrl, {
    workerData: { entry: threadEntry.href, options: threadOptions },
    stdout: false,
    stderr: false,
  });
  let closing = false;
  const next = () =>
    new Promise<EmbeddedThreadMessage>((resolve, reject) => {
      const onExit = (code: number) => reject(new Error(`the embedded database thread exited (${code})`));
      worker.once('exit', onExit);
      worker.once('error', reject);
      worker.once('message', (message: EmbeddedThreadMessage) => {
        worker.off('exit', onExit);
        worker.off('error', reject);
        resolve(message);
      });
    });
  let address: string;
  let started: PgliteStart;
  try {
    const first = await next();
    if (first.kind !== 'ready') {
      throw new StrataError(
        'STRATA_ERR_DB_UNAVAILABLE',
        `embedded PGlite could not start: ${first.kind === 'failed' ? first.message : first.kind}`,
      );
    }
    address = first.address;
    started = first.started;
  } catch (error) {
    await worker.terminate();
    releaseLock();
    throw error;
  }
  worker.on('exit', (code) => {
    // Every pool then sees the database unavailable and retries; say why.
    if (!closing) options.log.fatal({ code }, 'the embedded database thread ended unexpectedly');
  });
  options.log.info(
    {
      storage: options.storage,
      dataDir: options.storage === 'disk' ? options.dataDir : null,
      address,
      // 'template': a new database from the kept empty one (src/db/pglite-template.ts).
      started,
    },
    'embedded PGlite started',
  );
  return {
    url: `postgres://postgres@${address}/postgres?sslmode=disable`,
    storage: options.storage,
    dataDir: options.storage === 'disk' ? options.dataDir : null,
    async close() {
      closing = true;
      const closed = next().catch(() => undefined);
      worker.postMessage({ kind: 'close' });
      await closed;
      await worker.terminate();
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
