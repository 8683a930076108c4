// L2 of the module cache: `strata.module_transpile_cache` in Postgres, shared by every process.
// Correctness lives here, not in Redis: each row carries a generation; a transpile captures the
// generation it saw before starting (the row's, or the realm's wipe generation when that is
// newer, or 0) and its upsert only lands over a row whose generation is not newer. Invalidation
// tombstones (body NULL, generation + 1), never DELETEs; a realm-wide wipe bumps the realm's
// generation too, which fences paths that had no row (the anchor's known gap).
// Every method reports failures to its caller; the module service logs them and carries on
// (an L2 failure never fails a request).

import type { Queryable } from '../db/pool.ts';

export interface L2Entry {
  body: string | null;
  sourceMap: string | null;
  sourceHash: string | null;
  transpilerVersion: string | null;
  /** The fencing token a writer must capture. */
  generation: number;
}

export class L2Store {
  private readonly db: Queryable;
  private readonly realm: string;

  constructor(db: Queryable, realm: string) {
    this.db = db;
    this.realm = realm;
  }

  /** The row (body null for a tombstone) with the effective generation, or a generation-only miss. */
  async read(path: string): Promise<L2Entry> {
    const { rows } = await this.db.query<{
      body: string | null;
      source_map: string | null;
      source_hash: string | null;
      transpiler_version: string | null;
      generation: string | null;
      realm_generation: string | null;
    }>(
      `SELECT c.body, c.source_map, c.source_hash, c.transpiler_version, c.generation,
              (SELECT generation FROM strata.module_cache_realms WHERE realm_url = $1) AS realm_generation
         FROM (SELECT 1) AS one
         LEFT JOIN strata.module_transpile_cache c ON c.realm_url = $1 AND c.canonical_path = $2`,
      [this.realm, path],
    );
    const row = rows[0]!;
    const generation = Math.max(Number(row.generation ?? 0), Number(row.realm_generation ?? 0));
    return {
      body: row.body,
      sourceMap: row.source_map,
      sourceHash: row.source_hash,
      transpilerVersion: row.transpiler_version,
      generation,
    };
  }

  /**
   * Stores a transpile made under `capturedGeneration`. Returns false when the write was fenced
   * off (the path was invalidated, or the realm wiped, after the generation was captured).
   */
  async write(
    path: string,
    entry: { body: string; sourceMap: string; sourceHash: string; transpilerVersion: string },
    capturedGeneration: number,
  ): Promise<boolean> {
    const { rowCount } = await this.db.query(
      `INSERT INTO strata.module_transpile_cache
         (realm_url, canonical_path, source_hash, transpiler_version, body, source_map, generation)
       SELECT $1, $2, $3, $4, $5, $6, $7
        WHERE $7 >= COALESCE((SELECT generation FROM strata.module_cache_realms WHERE realm_url = $1), 0)
       ON CONFLICT (realm_url, canonical_path) DO UPDATE
         SET source_hash = EXCLUDED.source_hash, transpiler_version = EXCLUDED.transpiler_version,
             body = EXCLUDED.body, source_map = EXCLUDED.source_map, created_at = now()
       WHERE strata.module_transpile_cache.generation <= EXCLUDED.generation`,
      [
        this.realm,
        path,
        entry.sourceHash,
        entry.transpilerVersion,
        entry.body,
        entry.sourceMap,
        capturedGeneration,
      ],
    );
    return rowCount === 1;
  }

  /** Tombstones paths (creating tombstones where no row exists) and bumps their generations. */
  async invalidate(paths: readonly string[]): Promise<void> {
    if (paths.length === 0) return;
    await this.db.query(
      `INSERT INTO strata.module_transpile_cache (realm_url, canonical_path, generation)
       SELECT $1, path, COALESCE((SELECT generation FROM strata.module_cache_realms WHERE realm_url = $1), 0) + 1
         FROM unnest($2::text[]) AS path
       ON CONFLICT (realm_url, canonical_path) DO UPDATE
         SET body = NULL, source_map = NULL, source_hash = NULL,
             generation = GREATEST(strata.module_transpile_cache.generation, EXCLUDED.generation - 1) + 1`,
      [this.realm, paths],
    );
  }

  /** Tombstones every row of the realm and fences paths without a row (realm generation). */
  async wipe(): Promise<void> {
    await this.db.query(
      `WITH realm AS (
         INSERT INTO strata.module_cache_realms (realm_url, generation)
         SELECT $1, GREATEST(
             COALESCE((SELECT max(generation) FROM strata.module_transpile_cache WHERE realm_url = $1), 0),
             COALESCE((SELECT generation FROM strata.module_cache_realms WHERE realm_url = $1), 0)) + 1
         ON CONFLICT (realm_url) DO UPDATE SET generation = EXCLUDED.generation
         RETURNING generation)
       UPDATE strata.module_transpile_cache
          SET body = NULL, source_map = NULL, source_hash = NULL, generation = (SELECT generation FROM realm)
        WHERE realm_url = $1`,
      [this.realm],
    );
  }
}
