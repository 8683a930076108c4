// Runs a named query: one read-only transaction on the daemon's pool, the pipeline's schema as the
// search path (the SQL names its entities bare: "CreditLot"), the declaration's statement timeout,
// and at most maxRows + 1 rows fetched (one more says the answer would have been too long).

import type { Db } from '../db/pool.ts';
import { StrataError } from '../errors.ts';
import type { NamedQuery } from './named-query.ts';

const QUERY_CANCELED = '57014';

export async function runNamedQuery(
  db: Db,
  pipeline: string,
  name: string,
  query: NamedQuery,
  values: unknown[],
): Promise<Array<Record<string, unknown>>> {
  const rows = await db.transaction(async (client) => {
    await client.query('SET TRANSACTION READ ONLY');
    // Pipeline names are validated identifiers (config); the timeout is an integer.
    await client.query(`SET LOCAL search_path TO "pipeline_${pipeline}", pg_catalog`);
    await client.query(`SET LOCAL statement_timeout = ${Math.floor(query.timeoutMs)}`);
    try {
      const result = await client.query(
        `SELECT * FROM (${query.compiled.text}\n) AS named_query LIMIT ${query.maxRows + 1}`,
        values,
      );
      return result.rows as Array<Record<string, unknown>>;
    } catch (error) {
      throw queryError(pipeline, name, query, error);
    }
  });
  if (rows.length > query.maxRows) {
    throw new StrataError(
      'STRATA_ERR_QUERY_FAILED',
      `query ${name} of pipeline ${pipeline} returned more than its maxRows (${query.maxRows}); give it a limit parameter`,
      { details: { pipeline, query: name } },
    );
  }
  return rows;
}

function queryError(pipeline: string, name: string, query: NamedQuery, error: unknown): unknown {
  const code = (error as { code?: unknown }).code;
  if (code === QUERY_CANCELED)
    return new StrataError(
      'STRATA_ERR_QUERY_TIMEOUT',
      `query ${name} of pipeline ${pipeline} ran longer than ${query.timeoutMs} ms`,
      {
        details: { pipeline, query: name },
      },
    );
  // A SQL error (SQLSTATE of five characters): the declaration's, so its message helps its author.
  if (typeof code === 'string' && code.length === 5 && !code.startsWith('08'))
    return new StrataError(
      'STRATA_ERR_QUERY_FAILED',
      `query ${name} of pipeline ${pipeline} failed: ${(error as Error).message}`,
      {
        details: { pipeline, query: name, sqlstate: code },
      },
    );
  return error;
}
