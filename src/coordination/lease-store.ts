// Every statement on `strata.fleet_processes` and `strata.pipeline_leases` (migrations/0009_fleet.sql),
// in one place: a process's heartbeat, the live fleet, granting, renewing and releasing pipeline
// leases, and the fence every write transaction of a pipeline passes before COMMIT. Times are
// Postgres' `now()`, never this process's clock: a paused process cannot believe it still holds a
// lease because its own clock says so.

import type { Db, Queryable } from '../db/pool.ts';
import { StrataError } from '../errors.ts';

export interface ProcessInfo {
  id: string;
  host: string;
  pid: number;
  version: string;
  url: string | null;
  maxPipelines: number;
}

export interface LiveProcess extends ProcessInfo {
  startedAt: string;
  heartbeatAt: string;
  stopping: boolean;
}

export interface LeaseRow {
  pipeline: string;
  owner: string | null;
  epoch: number;
  /** Milliseconds until it expires, in database time (negative: expired). */
  expiresInMs: number;
  expiresAt: string;
}

/** A granted or renewed lease. */
export interface HeldLease {
  pipeline: string;
  epoch: number;
}

/**
 * Creates the lease rows of the project's pipelines (a row is never deleted), and clears the rows
 * of processes dead for an hour (killed ones never delete their own): once, as a process joins.
 */
export async function prepareFleetRows(db: Queryable, pipelines: readonly string[]): Promise<void> {
  await db.query(`DELETE FROM strata.fleet_processes WHERE expires_at < now() - interval '1 hour'`);
  await db.query(
    `INSERT INTO strata.pipeline_leases (pipeline) SELECT unnest($1::text[]) ON CONFLICT (pipeline) DO NOTHING`,
    [pipelines],
  );
}

/** This process is alive until `ttlMs` from now (database time). */
export async function heartbeat(
  db: Queryable,
  process: ProcessInfo,
  ttlMs: number,
  stopping: boolean,
): Promise<void> {
  await db.query(
    `INSERT INTO strata.fleet_processes (id, host, pid, version, url, max_pipelines, expires_at, stopping)
     VALUES ($1, $2, $3, $4, $5, $6, now() + make_interval(secs => $7::float8 / 1000), $8)
     ON CONFLICT (id) DO UPDATE SET heartbeat_at = now(), expires_at = EXCLUDED.expires_at,
       url = EXCLUDED.url, stopping = EXCLUDED.stopping`,
    [
      process.id,
      process.host,
      process.pid,
      process.version,
      process.url,
      process.maxPipelines,
      ttlMs,
      stopping,
    ],
  );
}

/**
 * The process leaves the fleet: any lease it still holds is released (its actors stopped; a lease
 * it got in a race with its own stop must not outlive the row that lets a restarted process on
 * this host see it is gone), then its row goes.
 */
export async function leaveFleet(db: Queryable, processId: string): Promise<void> {
  await db.query(`UPDATE strata.pipeline_leases SET owner = NULL, expires_at = now() WHERE owner = $1`, [
    processId,
  ]);
  await db.query('DELETE FROM strata.fleet_processes WHERE id = $1', [processId]);
}

/**
 * A process known to be dead (on this host, its pid is gone): its heartbeat and leases expire now,
 * so its pipelines are taken over at once instead of after a TTL. Only ever shortens a wait: the
 * epoch fence keeps it safe even if the guess were wrong.
 */
export async function expireProcess(db: Queryable, processId: string): Promise<void> {
  await db.query(
    `UPDATE strata.fleet_processes SET expires_at = now() - interval '1 millisecond' WHERE id = $1`,
    [processId],
  );
  await db.query(
    `UPDATE strata.pipeline_leases SET expires_at = now() - interval '1 millisecond' WHERE owner = $1 AND expires_at > now()`,
    [processId],
  );
}

/** Every process whose heartbeat has not expired, by id. */
export async function liveProcesses(db: Queryable): Promise<LiveProcess[]> {
  const { rows } = await db.query<{
    id: string;
    host: string;
    pid: number;
    version: string;
    url: string | null;
    max_pipelines: number;
    started_at: Date;
    heartbeat_at: Date;
    stopping: boolean;
  }>(
    `SELECT id, host, pid, version, url, max_pipelines, started_at, heartbeat_at, stopping
       FROM strata.fleet_processes WHERE expires_at > now() ORDER BY id`,
  );
  return rows.map((row) => ({
    id: row.id,
    host: row.host,
    pid: row.pid,
    version: row.version,
    url: row.url,
    maxPipelines: row.max_pipelines,
    startedAt: row.started_at.toISOString(),
    heartbeatAt: row.heartbeat_at.toISOString(),
    stopping: row.stopping,
  }));
}

export async function readLeases(db: Queryable, pipelines: readonly string[]): Promise<LeaseRow[]> {
  const { rows } = await db.query<{
    pipeline: string;
    owner: string | null;
    epoch: string;
    expires_in_ms: number;
    expires_at: Date;
  }>(
    `SELECT pipeline, owner, epoch, expires_at,
            (extract(epoch FROM expires_at - now()) * 1000)::float8 AS expires_in_ms
       FROM strata.pipeline_leases WHERE pipeline = ANY($1::text[]) ORDER BY pipeline`,
    [pipelines],
  );
  return rows.map((row) => ({
    pipeline: row.pipeline,
    owner: row.owner,
    epoch: Number(row.epoch),
    expiresInMs: row.expires_in_ms,
    expiresAt: row.expires_at.toISOString(),
  }));
}

/**
 * Grants the lease to `owner` when it is free (released, or expired: its holder stopped renewing)
 * — the epoch increases, so writes of any earlier holder are refused from now on. Null when
 * another process holds it.
 */
export async function acquireLease(
  db: Db,
  pipeline: string,
  owner: string,
  ttlMs: number,
): Promise<HeldLease | null> {
  // A paused holder may sit on the row's lock (its fence, just before COMMIT) until Postgres ends
  // its idle transaction: give up after a third of a TTL rather than stall the look.
  const rows = await db.transaction(async (client) => {
    await client.query(`SELECT set_config('lock_timeout', $1, true)`, [`${Math.ceil(ttlMs / 3)}ms`]);
    return (await acquireStatement(client, pipeline, owner, ttlMs)).rows;
  });
  const row = rows[0];
  return row === undefined ? null : { pipeline, epoch: Number(row.epoch) };
}

function acquireStatement(db: Queryable, pipeline: string, owner: string, ttlMs: number) {
  return db.query<{ epoch: string }>(
    `UPDATE strata.pipeline_leases
        SET owner = $2, epoch = epoch + 1, acquired_at = now(), renewed_at = now(),
            expires_at = now() + make_interval(secs => $3::float8 / 1000)
      WHERE pipeline = $1 AND (owner IS NULL OR expires_at < now())
      RETURNING epoch`,
    [pipeline, owner, ttlMs],
  );
}

export interface Renewal {
  /** Leases still held (same epoch), now valid for another TTL. */
  renewed: Array<HeldLease & { late: boolean }>;
}

/**
 * Extends the leases `owner` holds at the given epochs. Rows are locked in pipeline order, the
 * order in which a writer transaction fencing several pipelines locks them (no deadlock). A lease missing from the answer was lost
 * (another process took it over). `late`: it had expired before this renewal — no one took it,
 * but the process was paused or the database slow for longer than the TTL.
 */
export async function renewLeases(
  db: Queryable,
  owner: string,
  held: readonly HeldLease[],
  ttlMs: number,
): Promise<Renewal> {
  if (held.length === 0) return { renewed: [] };
  const { rows } = await db.query<{ pipeline: string; epoch: string; late: boolean }>(
    `WITH held AS (SELECT * FROM unnest($2::text[], $3::bigint[]) AS h(pipeline, epoch)),
          before AS (
            SELECT l.pipeline, l.expires_at FROM strata.pipeline_leases l JOIN held USING (pipeline)
             WHERE l.owner = $1 AND l.epoch = held.epoch ORDER BY l.pipeline FOR UPDATE OF l)
     UPDATE strata.pipeline_leases l
        SET expires_at = now() + make_interval(secs => $4::float8 / 1000), renewed_at = now()
       FROM before WHERE l.pipeline = before.pipeline
     RETURNING l.pipeline, l.epoch, before.expires_at < now() AS late`,
    [owner, held.map((lease) => lease.pipeline), held.map((lease) => lease.epoch), ttlMs],
  );
  return {
    renewed: rows.map((row) => ({ pipeline: row.pipeline, epoch: Number(row.epoch), late: row.late })),
  };
}

/** Hands a lease back (a handover): the next process to look takes it at once. */
export async function releaseLease(db: Queryable, owner: string, lease: HeldLease): Promise<boolean> {
  const { rowCount } = await db.query(
    `UPDATE strata.pipeline_leases SET owner = NULL, expires_at = now()
      WHERE pipeline = $1 AND owner = $2 AND epoch = $3`,
    [lease.pipeline, owner, lease.epoch],
  );
  return rowCount === 1;
}

/**
 * The fence, inside a write transaction of the pipeline, just before COMMIT: locks the lease row
 * (FOR SHARE: a takeover's UPDATE waits until this transaction ends) where owner and epoch are
 * still this process's. Nothing there — another process took the lease over, perhaps while this
 * one was paused — and the transaction must roll back.
 */
export async function assertLeaseHeld(
  db: Queryable,
  pipeline: string,
  owner: string,
  epoch: number,
): Promise<void> {
  const { rowCount } = await db.query(
    'SELECT 1 FROM strata.pipeline_leases WHERE pipeline = $1 AND owner = $2 AND epoch = $3 FOR SHARE',
    [pipeline, owner, epoch],
  );
  if (rowCount !== 1) {
    throw new StrataError(
      'STRATA_ERR_LEASE_FENCED',
      `pipeline ${pipeline}: this process no longer holds its lease (epoch ${epoch}); the write was refused`,
      { details: { pipeline, epoch } },
    );
  }
}

/**
 * Who holds the pipeline's lease now (null: nobody), locking its row for the rest of the
 * transaction so no process acquires it meanwhile (`strata reset` refuses to drop a pipeline
 * a live process writes).
 */
export async function lockLiveOwner(
  db: Queryable,
  pipeline: string,
): Promise<{ id: string; host: string | null; pid: number | null } | null> {
  const { rows } = await db.query<{
    owner: string | null;
    live: boolean;
    host: string | null;
    pid: number | null;
  }>(
    `SELECT l.owner, l.owner IS NOT NULL AND l.expires_at > now() AS live, p.host, p.pid
       FROM strata.pipeline_leases l LEFT JOIN strata.fleet_processes p ON p.id = l.owner
      WHERE l.pipeline = $1 FOR UPDATE OF l`,
    [pipeline],
  );
  const row = rows[0];
  return row?.live === true && row.owner !== null ? { id: row.owner, host: row.host, pid: row.pid } : null;
}

/**
 * Refuses (STRATA_ERR_PIPELINE_RUNNING) while a live process holds the pipeline's lease, keeping
 * the lease row locked for the rest of the transaction: `strata reset`, `repair`.
 */
export async function refuseWhileOwned(db: Queryable, pipeline: string, then: string): Promise<void> {
  const owner = await lockLiveOwner(db, pipeline);
  if (owner === null) return;
  throw new StrataError(
    'STRATA_ERR_PIPELINE_RUNNING',
    `pipeline ${pipeline} is being written by process ${owner.id.slice(0, 8)} (host ${owner.host ?? '?'}, pid ${owner.pid ?? '?'}); stop every process of the fleet running it, then ${then}`,
    { details: { pipeline, owner: owner.id } },
  );
}
