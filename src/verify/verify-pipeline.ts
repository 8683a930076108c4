// `strata verify <pipeline>` and `strata repair <pipeline>` (docs/operations.md, "Verify and
// repair"): is a pipeline's stored state what its handlers make of its source?
//  1. In one repeatable-read snapshot: the committed block, and a copy of every entity table
//     (schema `pipeline_<name>__live`) — the daemon may keep writing meanwhile.
//  2. The source replayed up to that block with the same handlers into `pipeline_<name>__rebuild`.
//  3. Each table compared: row counts, a hash in id order, the first differing rows.
//  4. `repair` only, when something differs: in one transaction — the lease row locked (refused
//     while a live process holds it), the pipeline row locked (the writer cannot commit until
//     this does: the pipeline is paused) and still at the replayed block — each differing table's
//     rows replaced by the rebuilt ones; the checkpoint stays. Shapes of those tables are dropped,
//     so their clients refetch.
// Both scratch schemas are dropped at the end, whatever happens.

import type { PipelineConfig } from '../config.ts';
import { refuseWhileOwned } from '../coordination/lease-store.ts';
import type { Db } from '../db/pool.ts';
import { StrataError } from '../errors.ts';
import type { Logger } from '../logger.ts';
import { readBuild, readCommitted } from '../pipeline/checkpoint-store.ts';
import { pipelineFingerprint } from '../pipeline/fingerprint.ts';
import { loadPipelineModulesFromSources } from '../processing/pipeline-modules.ts';
import { entityTable, fingerprintHash, pipelineSchema } from '../schema/ddl.ts';
import { compareTable, type TableComparison } from './compare-tables.ts';
import { replayPipeline } from './replay-pipeline.ts';

export interface VerifyReport {
  pipeline: string;
  /** The committed block the live state was read at and the replay went to (-1: nothing yet). */
  block: number;
  replayedBlocks: number;
  replayedEvents: number;
  replayMs: number;
  tables: TableComparison[];
  drift: boolean;
  /** repair only: the tables whose rows were replaced. */
  repaired: string[];
}

export interface VerifyOptions {
  db: Db;
  pipeline: PipelineConfig;
  repair: boolean;
  /** Postgres (COPY into the scratch tables) or embedded PGlite (no COPY over its socket). */
  embedded: boolean;
  /** Objects the replay holds before writing them out (the processing target). */
  flushAtObjects: number;
  log: Logger;
  onStart?: (untilBlock: number) => void;
  onProgress?: (block: number, events: number) => void;
}

export async function verifyPipeline(options: VerifyOptions): Promise<VerifyReport> {
  const { db, pipeline } = options;
  const { schema, handlers } = await loadPipelineModulesFromSources(pipeline);
  const build = await readBuild(db, pipeline.name);
  if (build === undefined)
    throw new StrataError(
      'STRATA_ERR_UNKNOWN_PIPELINE',
      `pipeline ${pipeline.name} has never run on this database: nothing to verify`,
    );
  if (
    build.fingerprintHash !== null &&
    build.fingerprintHash !== fingerprintHash(pipelineFingerprint(pipeline, schema))
  )
    throw new StrataError(
      'STRATA_ERR_SCHEMA_CHANGED',
      `pipeline ${pipeline.name} was built with another schema, source or options than the project declares now: its tables cannot be compared (strata reset ${pipeline.name} rebuilds it)`,
      { details: { pipeline: pipeline.name } },
    );
  // Refused before the replay too (it is checked again, under lock, at the swap).
  if (options.repair) await db.transaction((client) => refuseWhileOwned(client, pipeline.name, 'repair'));
  const live = `${pipeline.name}__live`;
  const rebuild = `${pipeline.name}__rebuild`;
  const dropScratch = async () => {
    await db.query(`DROP SCHEMA IF EXISTS ${pipelineSchema(live)} CASCADE`);
    await db.query(`DROP SCHEMA IF EXISTS ${pipelineSchema(rebuild)} CASCADE`);
  };
  await dropScratch(); // left over by an interrupted run
  try {
    const block = await db.transaction(async (client) => {
      await client.query('SET TRANSACTION ISOLATION LEVEL REPEATABLE READ');
      const [committed] = await readCommitted(client, [pipeline.name]);
      await client.query(`CREATE SCHEMA ${pipelineSchema(live)}`);
      for (const entity of schema.entities)
        await client.query(
          `CREATE TABLE ${entityTable(live, entity.name)} AS SELECT * FROM ${entityTable(pipeline.name, entity.name)}`,
        );
      return committed?.committedBlock ?? -1;
    });
    options.onStart?.(block);
    const started = performance.now();
    const replayed =
      block < 0
        ? { blocks: 0, events: 0 }
        : await replayPipeline({
            db,
            pipeline,
            schema,
            handlers,
            scratch: rebuild,
            untilBlock: block,
            log: options.log,
            copy: !options.embedded,
            flushAtObjects: options.flushAtObjects,
            ...(options.onProgress === undefined ? {} : { onProgress: options.onProgress }),
          });
    if (block < 0) await db.query(`CREATE SCHEMA ${pipelineSchema(rebuild)}`);
    const replayMs = performance.now() - started;
    const tables: TableComparison[] = [];
    for (const entity of schema.entities) {
      if (block < 0)
        await db.query(
          `CREATE TABLE ${entityTable(rebuild, entity.name)} (LIKE ${entityTable(live, entity.name)})`,
        );
      tables.push(
        await compareTable(db, entity, entityTable(live, entity.name), entityTable(rebuild, entity.name)),
      );
    }
    const differing = tables.filter((table) => table.differingRows > 0).map((table) => table.entity);
    const repaired =
      options.repair && differing.length > 0
        ? await swapIn(db, pipeline.name, block, rebuild, differing)
        : [];
    return {
      pipeline: pipeline.name,
      block,
      replayedBlocks: replayed.blocks,
      replayedEvents: replayed.events,
      replayMs,
      tables,
      drift: differing.length > 0,
      repaired,
    };
  } finally {
    await dropScratch();
  }
}

async function swapIn(
  db: Db,
  pipeline: string,
  block: number,
  rebuild: string,
  entities: string[],
): Promise<string[]> {
  return db.transaction(async (client) => {
    await client.query(`SELECT pg_advisory_xact_lock(hashtext('strata.pipeline-ddl'))`);
    await refuseWhileOwned(client, pipeline, 'repair');
    // Locked until COMMIT: the writer's next commit waits here, so nothing moves under the swap.
    const { rows } = await client.query<{ committed_block: string | null }>(
      'SELECT committed_block FROM strata.pipelines WHERE name = $1 FOR UPDATE',
      [pipeline],
    );
    const now = rows[0]?.committed_block == null ? -1 : Number(rows[0].committed_block);
    if (now !== block)
      throw new StrataError(
        'STRATA_ERR_PIPELINE_RUNNING',
        `pipeline ${pipeline} moved on from block ${block} to ${now} while it was rebuilt; stop the daemon running it, then repair`,
        { details: { pipeline, block, now } },
      );
    for (const entity of entities) {
      const target = entityTable(pipeline, entity);
      await client.query(`DELETE FROM ${target}`);
      await client.query(`INSERT INTO ${target} SELECT * FROM ${entityTable(rebuild, entity)}`);
    }
    // Live shapes of the replaced tables would go on from rows that are gone: their clients refetch.
    await client.query('DELETE FROM strata.shapes WHERE pipeline = $1 AND entity = ANY($2::text[])', [
      pipeline,
      entities,
    ]);
    return entities;
  });
}
