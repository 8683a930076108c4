// The one way Strata talks to a database: a `pg` pool, whether the server is Postgres or the
// embedded PGlite behind its socket server (src/db/embedded.ts). Settings that node-postgres
// leaves dangerous by default are fixed here: a connection timeout (it has none), TCP keepalives
// (so a dead peer is noticed), and an `error` listener on the pool (without one, an idle client
// whose server goes away crashes the process).

import pg from 'pg';
import { StrataError } from '../errors.ts';
import type { Logger } from '../logger.ts';

export interface DbOptions {
  url: string;
  max: number;
  connectTimeoutMs: number;
  applicationName: string;
  log: Logger;
  /**
   * PGlite is a single session multiplexed over many sockets. Its multiplexer keeps a
   * transaction's statements together but may interleave the Parse/Bind/Execute messages of two
   * connections' parameterized statements outside a transaction. With this set, every
   * parameterized statement outside `transaction()` runs in its own BEGIN/COMMIT so it is
   * never interleaved. Postgres does not need it.
   */
  isolateStatements?: boolean;
  /**
   * Postgres ends a session left idle inside a transaction this long (the writer in a fleet: a
   * process paused mid-transaction must not keep the rows and the lease row it locked).
   */
  idleInTransactionTimeoutMs?: number;
}

export interface DbPoolStats {
  total: number;
  idle: number;
  waiting: number;
}

/** Anything that runs a parameterized statement: a pool (`Db`) or a transaction's client. */
export interface Queryable {
  query<Row extends pg.QueryResultRow = pg.QueryResultRow>(
    text: string,
    params?: unknown[],
  ): Promise<pg.QueryResult<Row>>;
}

export interface Db {
  query<Row extends pg.QueryResultRow = pg.QueryResultRow>(
    text: string,
    params?: unknown[],
  ): Promise<pg.QueryResult<Row>>;
  /** Runs `work` in one transaction on one connection; rolls back if it throws. */
  transaction<T>(work: (client: pg.PoolClient) => Promise<T>): Promise<T>;
  stats(): DbPoolStats;
  close(): Promise<void>;
}

// int8 (bigint) arrives as a string by default: keep it so (checkpoint ids stay exact), but
// counts we read with ::int casts come back as numbers.

export function createDb(options: DbOptions): Db {
  const pool = new pg.Pool({
    connectionString: options.url,
    max: options.max,
    connectionTimeoutMillis: options.connectTimeoutMs,
    idleTimeoutMillis: 30_000,
    keepAlive: true,
    keepAliveInitialDelayMillis: 10_000,
    application_name: options.applicationName,
    ...(options.idleInTransactionTimeoutMs === undefined
      ? {}
      : { idle_in_transaction_session_timeout: options.idleInTransactionTimeoutMs }),
  });
  pool.on('error', (error) => {
    // An idle client lost its connection. The pool drops it; the next query opens a new one.
    options.log.warn({ err: error }, 'idle database connection lost');
  });
  // pg-pool listens for a client's 'error' only while it is idle: a checked-out client whose
  // connection is terminated between two statements (inside a transaction, during COPY) emits
  // 'error' with no listener, which kills the thread. The statement in progress rejects anyway
  // (and the transaction is replayed by its caller), so the event only needs to be observed.
  pool.on('connect', (client) => {
    client.on('error', (error) => {
      options.log.warn({ err: error }, 'database connection lost while in use');
    });
  });

  async function transaction<T>(work: (client: pg.PoolClient) => Promise<T>): Promise<T> {
    const client = await connect(pool);
    try {
      await client.query('BEGIN');
      const result = await work(client);
      await client.query('COMMIT');
      client.release();
      return result;
    } catch (error) {
      try {
        await client.query('ROLLBACK');
        client.release();
      } catch {
        client.release(true); // the connection is unusable; do not return it to the pool
      }
      throw classify(error);
    }
  }

  return {
    async query<Row extends pg.QueryResultRow>(text: string, params?: unknown[]) {
      if (options.isolateStatements === true && params !== undefined && params.length > 0) {
        return transaction((client) => client.query<Row>(text, params));
      }
      try {
        return await pool.query<Row>(text, params);
      } catch (error) {
        throw classify(error);
      }
    },
    transaction,
    stats: () => ({ total: pool.totalCount, idle: pool.idleCount, waiting: pool.waitingCount }),
    close: () => pool.end(),
  };
}

async function connect(pool: pg.Pool): Promise<pg.PoolClient> {
  try {
    return await pool.connect();
  } catch (error) {
    throw classify(error);
  }
}

/** SQLSTATE classes and socket errors after which the same statement may succeed. */
const RETRYABLE_SQLSTATE = /^(08|40|53|57P0[1-3])/;
const RETRYABLE_NODE_CODES = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ETIMEDOUT',
  'EPIPE',
  'ENOTFOUND',
  'EAI_AGAIN',
]);

/**
 * SQLSTATEs of a server that answered but will not take this connection: the database does not
 * exist (3D000) or the credentials are wrong (28000, 28P01). Retrying cannot help.
 */
const REFUSED_SQLSTATE = new Set(['3D000', '28000', '28P01']);

/**
 * Marks connection-level failures as retryable STRATA_ERR_DB_UNAVAILABLE and a refused connection
 * as STRATA_ERR_DB_REFUSED; leaves SQL errors alone.
 */
export function classify(error: unknown): unknown {
  if (!(error instanceof Error)) return error;
  const code = (error as { code?: unknown }).code;
  if (typeof code === 'string' && REFUSED_SQLSTATE.has(code)) {
    return new StrataError('STRATA_ERR_DB_REFUSED', `the database refused the connection: ${error.message}`, {
      cause: error,
    });
  }
  const connectionLost =
    (typeof code === 'string' && (RETRYABLE_NODE_CODES.has(code) || /^08/.test(code))) ||
    /timeout exceeded when trying to connect|Connection terminated|terminating connection|the database system is (starting up|shutting down|in recovery mode)|Client has encountered a connection error|Client was closed/i.test(
      error.message,
    );
  if (connectionLost) {
    return new StrataError('STRATA_ERR_DB_UNAVAILABLE', `database unavailable: ${error.message}`, {
      cause: error,
    });
  }
  if (typeof code === 'string' && RETRYABLE_SQLSTATE.test(code)) {
    (error as { retryable?: boolean }).retryable = true;
  }
  return error;
}

/** Pool counts as flat numbers, for an actor's self report. */
export function poolReport(db: Db): Record<string, number> {
  const stats = db.stats();
  return { dbPoolTotal: stats.total, dbPoolIdle: stats.idle, dbPoolWaiting: stats.waiting };
}
