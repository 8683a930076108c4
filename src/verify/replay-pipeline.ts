// `strata verify` / `strata repair`, step two: replays a pipeline's source from its first block up
// to a given block, with the pipeline's own handlers, into scratch tables (a schema of their own).
// The engine's pieces, without its actors: the BatchExecutor runs the handlers over an
// InMemoryStore whose misses the LoadLayer reads from the scratch tables; when the store holds
// more than `flushAtObjects`, everything it holds is written to the scratch tables and forgotten.
// Nothing of the live pipeline is read or written here.

import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { from as copyFrom } from 'pg-copy-streams';
import type { PipelineConfig } from '../config.ts';
import type { Db, Queryable } from '../db/pool.ts';
import { StrataError } from '../errors.ts';
import type { Logger } from '../logger.ts';
import { BatchExecutor } from '../processing/batch-executor.ts';
import { EffectStore } from '../processing/effect-store.ts';
import type { EventHandler } from '../processing/handler-api.ts';
import { InMemoryStore } from '../processing/in-memory-store.ts';
import { LoadLayer } from '../processing/load-layer.ts';
import { rowToCopyLine } from '../schema/copy-text.ts';
import { createPipelineTables, entityTable, quoteIdent } from '../schema/ddl.ts';
import type { EntityDescription, Schema } from '../schema/define-schema.ts';
import { columnType } from '../schema/fields.ts';
import { rowToWire } from '../schema/wire.ts';
import type { BlockSource } from '../sources/block-source.ts';
import { createSource } from '../sources/create-source.ts';
import { generateBlocks } from '../sources/generator.ts';
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
  flushAtObjects: number;
  /** COPY into the scratch tables (Postgres); false where COPY is not available (PGlite). */
  copy: boolean;
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
    handlerOptions: pipeline.options,
  });
  const source = replaySource(pipeline, db);
  const flushAt = options.flushAtObjects;
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
      if (store.size() >= flushAt) await flush(db, scratch, schema, store, options.copy);
      options.onProgress?.(after, events);
    }
    await flush(db, scratch, schema, store, options.copy);
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
      const from = Math.max(after + 1, 1); // the generator's first block is 1
      return generateBlocks(source, from, from + max - 1);
    },
    head: () => null,
    waitForMore: async () => undefined,
    wake: () => undefined,
    close: async () => undefined,
  };
  return canonical;
}

/**
 * Writes every change the store holds to the scratch tables, then forgets them all: in one
 * transaction per flush, each changed id's old row deleted and its new one copied in (COPY on
 * Postgres; multi-row INSERTs where COPY is not available, embedded PGlite).
 */
async function flush(
  db: Db,
  scratch: string,
  schema: Schema,
  store: InMemoryStore,
  copy: boolean,
): Promise<void> {
  await db.transaction(async (client) => {
    for (const entity of schema.entities) {
      const changed: string[] = [];
      const lines: string[] = [];
      const rows: unknown[][] = [];
      store.table(entity.name).forEachUncommitted(0, (id, change) => {
        changed.push(id);
        if (change.kind !== 'set') return;
        if (copy) lines.push(rowToCopyLine(entity, change.row));
        else rows.push(rowToWire(entity, change.row));
      });
      if (changed.length === 0) continue;
      const table = entityTable(scratch, entity.name);
      await client.query(`DELETE FROM ${table} WHERE "id" = ANY($1::text[])`, [changed]);
      if (copy && lines.length > 0) {
        const columns = entity.columns.map((column) => quoteIdent(column.name)).join(', ');
        await pipeline(
          Readable.from([`${lines.join('\n')}\n`]),
          client.query(copyFrom(`COPY ${table} (${columns}) FROM STDIN`)),
        );
      }
      const perChunk = Math.max(1, Math.floor(30_000 / entity.columns.length));
      for (let start = 0; start < rows.length; start += perChunk)
        await insertRows(client, table, entity, rows.slice(start, start + perChunk));
    }
  });
  store.clear();
  // The tables just grew: without statistics the planner scans them for every batch's loads.
  for (const entity of schema.entities) await db.query(`ANALYZE ${entityTable(scratch, entity.name)}`);
}

async function insertRows(
  client: Queryable,
  table: string,
  entity: EntityDescription,
  rows: unknown[][],
): Promise<void> {
  const params: unknown[] = [];
  const tuples = rows.map((row) => {
    const cells = row.map((value, i) => {
      params.push(value);
      return `$${params.length}::${columnType(entity.columns[i]!.spec)}`;
    });
    return `(${cells.join(', ')})`;
  });
  const columns = entity.columns.map((column) => quoteIdent(column.name)).join(', ');
  await client.query(`INSERT INTO ${table} (${columns}) VALUES ${tuples.join(', ')}`, params);
}
