// `strata verify` / `strata repair`, step two: replays a pipeline's source from its first block up
// to a given block, with the pipeline's own handlers, into scratch tables (a schema of their own).
// The engine's pieces, without its actors: the BatchExecutor runs the handlers over an
// InMemoryStore whose misses the LoadLayer reads from the scratch tables; when the store holds
// more than `flushAtObjects`, everything it holds is written to the scratch tables and forgotten.
// Nothing of the live pipeline is read or written here.

import type { PipelineConfig } from '../config.ts';
import type { Db } from '../db/pool.ts';
import { deepFreeze } from '../deep-freeze.ts';
import { StrataError } from '../errors.ts';
import type { Logger } from '../logger.ts';
import { BatchExecutor } from '../processing/batch-executor.ts';
import { EffectStore } from '../processing/effect-store.ts';
import type { EventHandler } from '../processing/handler-api.ts';
import { InMemoryStore } from '../processing/in-memory-store.ts';
import { LoadLayer } from '../processing/load-layer.ts';
import { createPipelineTables, entityTable, quoteIdent } from '../schema/ddl.ts';
import type { EntityDescription, Schema } from '../schema/define-schema.ts';
import { columnType } from '../schema/fields.ts';
import { rowToWire } from '../schema/wire.ts';
import type { BlockSource } from '../sources/block-source.ts';
import { createSource } from '../sources/create-source.ts';
import { generateBlock } from '../sources/generator.ts';
import type { Block } from '../sources/types.ts';

export interface ReplayOptions {
  db: Db;
  pipeline: PipelineConfig;
  schema: Schema;
  handlers: ReadonlyMap<string, ReadonlyArray<EventHandler<Schema, never>>>;
  /** The scratch "pipeline" name: tables go to its schema (`pipeline_<scratch>`). */
  scratch: string;
  /** Replay blocks up to and including this one (the live pipeline's committed block). */
  untilBlock: number;
  log: Logger;
  flushAtObjects?: number;
  onProgress?: (block: number, events: number) => void;
}

export async function replayPipeline(options: ReplayOptions): Promise<{ blocks: number; events: number }> {
  const { db, pipeline, schema, scratch, untilBlock } = options;
  await createPipelineTables(db, scratch, schema, { indexes: true });
  const store = new InMemoryStore(schema);
  const effects = new EffectStore(db, options.log);
  const executor = new BatchExecutor({
    pipeline: pipeline.name,
    schema,
    handlers: options.handlers,
    store,
    loader: new LoadLayer(db, scratch, store),
    effects,
    log: options.log,
    strategy: pipeline.loadStrategy,
    handlerOptions: deepFreeze(structuredClone(pipeline.options)),
  });
  const source = replaySource(pipeline, db);
  const flushAt = options.flushAtObjects ?? 200_000;
  let after = -1;
  let checkpoint = 1;
  let blocks = 0;
  let events = 0;
  try {
    while (after < untilBlock) {
      const read = (await source.read(after, pipeline.batchSize)).filter(
        (block) => block.number <= untilBlock,
      );
      if (read.length === 0) {
        throw new StrataError(
          'STRATA_ERR_SOURCE_INVALID',
          `pipeline ${pipeline.name}'s source ends at block ${after}, but the pipeline committed block ${untilBlock}: it cannot be replayed`,
          { details: { pipeline: pipeline.name, after, untilBlock } },
        );
      }
      events += await executor.run(read, checkpoint, false);
      effects.takeFresh(); // outputs stay in memory only: a replay never writes the live cache
      checkpoint += read.length;
      blocks += read.length;
      after = read.at(-1)!.number;
      if (store.size() >= flushAt) await flush(db, scratch, schema, store);
      options.onProgress?.(after, events);
    }
    await flush(db, scratch, schema, store);
  } finally {
    await source.close();
  }
  return { blocks, events };
}

/**
 * The source as the live pipeline's committed state reflects it: the canonical chain. A
 * generator's injected reorgs end on the canonical blocks, so those are read directly.
 */
function replaySource(pipeline: PipelineConfig, db: Db): BlockSource {
  const source = pipeline.source;
  if (source.kind !== 'generator') return createSource(pipeline, db);
  const canonical: BlockSource = {
    finite: false, // live blocks after the backfill are generated as well: the caller stops
    read: async (after: number, max: number): Promise<Block[]> => {
      const blocks: Block[] = [];
      for (let number = Math.max(after + 1, 1); blocks.length < max; number++)
        blocks.push(generateBlock(source, number));
      return blocks;
    },
    head: () => null,
    waitForMore: async () => undefined,
    wake: () => undefined,
    close: async () => undefined,
  };
  return canonical;
}

/** Writes every change the store holds to the scratch tables, then forgets them all. */
async function flush(db: Db, scratch: string, schema: Schema, store: InMemoryStore): Promise<void> {
  for (const entity of schema.entities) {
    const sets: unknown[][] = [];
    const deletes: string[] = [];
    store.table(entity.name).forEachUncommitted(0, (id, change) => {
      if (change.kind === 'set') sets.push(rowToWire(entity, change.row));
      else deletes.push(id);
    });
    if (deletes.length > 0)
      await db.query(`DELETE FROM ${entityTable(scratch, entity.name)} WHERE "id" = ANY($1::text[])`, [
        deletes,
      ]);
    const perChunk = Math.max(1, Math.floor(30_000 / entity.columns.length));
    for (let start = 0; start < sets.length; start += perChunk)
      await upsert(db, scratch, entity, sets.slice(start, start + perChunk));
  }
  store.clear();
}

async function upsert(db: Db, scratch: string, entity: EntityDescription, rows: unknown[][]): Promise<void> {
  const names = entity.columns.map((column) => quoteIdent(column.name));
  const params: unknown[] = [];
  const tuples = rows.map((row) => {
    const cells = row.map((value, i) => {
      params.push(value);
      return `$${params.length}::${columnType(entity.columns[i]!.spec)}`;
    });
    return `(${cells.join(', ')})`;
  });
  const updates = names.filter((name) => name !== '"id"').map((name) => `${name} = EXCLUDED.${name}`);
  await db.query(
    `INSERT INTO ${entityTable(scratch, entity.name)} (${names.join(', ')}) VALUES ${tuples.join(', ')}
     ON CONFLICT ("id") DO ${updates.length === 0 ? 'NOTHING' : `UPDATE SET ${updates.join(', ')}`}`,
    params,
  );
}
