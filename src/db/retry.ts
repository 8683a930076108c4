// Replays a unit of database work whole while the database is unavailable (a terminated
// connection, a restart), with capped exponential backoff, until a deadline. Only for work that is
// safe to replay: a transaction that rolled back, or one whose COMMIT outcome is unknown and that
// is idempotent (the ingest append recognises a retried request).

import { setTimeout as sleep } from 'node:timers/promises';
import { StrataError } from '../errors.ts';
import type { Logger } from '../logger.ts';

export async function retryWhileUnavailable<T>(
  work: () => Promise<T>,
  options: { deadlineMs: number; log: Logger; what: string },
): Promise<T> {
  const deadline = Date.now() + options.deadlineMs;
  for (let attempt = 1; ; attempt++) {
    try {
      return await work();
    } catch (error) {
      const unavailable = error instanceof StrataError && error.code === 'STRATA_ERR_DB_UNAVAILABLE';
      const delay = Math.min(2_000, 50 * 2 ** Math.min(attempt - 1, 8));
      if (!unavailable || Date.now() + delay > deadline) throw error;
      options.log.warn({ err: error, attempt, retryInMs: delay }, `${options.what} failed; retrying`);
      await sleep(delay);
    }
  }
}
