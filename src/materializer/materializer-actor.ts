// The materializer actor (its own worker thread): keeps every shape's definition, routing index
// and log. The writer's committed changes reach it as fragments and commit markers (notifications
// through the main-thread router); after each commit it tells the main thread which shapes
// changed, so the HTTP layer's waiting long-polls read again. Reads never wait inside this
// actor: its mailbox handles one message at a time, and a held request would stall the others.
//
// Shapes are durable (shape-store.ts): a new shape's definition is saved before its handle is
// answered, and the writer appends every fragment to `strata.shape_log` in its own transaction.
// At start this actor loads the shapes and replays their logs from the store, so a restart costs
// clients nothing; what it missed live is read from the store too (shape-feed.ts).

import type { PipelineConfig } from '../config.ts';
import { createDb, type Db } from '../db/pool.ts';
import { StrataError } from '../errors.ts';
import type { ShapeFilter } from '../pipeline/shape-tables.ts';
import type { MaterializerEvent, ShapeChangesFragment, ShapeTail } from '../protocol.ts';
import type { EntityDescription, Schema } from '../schema/define-schema.ts';
import { loadSchema } from '../schema/load-schema.ts';
import type { ActorDefinition, ActorInstance } from '../supervisor/actor-host.ts';
import type { TestFault } from '../test-faults.ts';
import { electricSchema } from './electric-schema.ts';
import { Materializer, type Shape } from './materializer.ts';
import type { ShapeDefinition } from './shape-definition.ts';
import { ShapeFeed } from './shape-feed.ts';
import { formatOffset, parseOffset } from './shape-log.ts';
import type { ShapeView } from './shape-messages.ts';
import { TABLE_LOG_MESSAGES, TABLE_SHAPES } from './shape-report.ts';
import { deleteShape, loadShapes, saveShape, shapeLogBounds } from './shape-store.ts';
import { compileWhere } from './where-compile.ts';
import { whereToSql } from './where-sql.ts';

/** A transaction's messages up to this many per shape ride along with `shapes-changed`. */
const MAX_TAIL_MESSAGES = 100;

export interface MaterializerActorData {
  pipelines: PipelineConfig[];
  /** Logs keep each pipeline's last so many transactions. */
  shapeLogRetention: number;
  testFault: TestFault | null;
  db: { url: string; poolMax: number; connectTimeoutMs: number; isolateStatements: boolean };
}

/** What the HTTP layer needs to serve a shape. */
export interface ShapeInfo {
  handle: string;
  pipeline: string;
  entity: string;
  columns: string[];
  /** The `electric-schema` header's JSON. */
  schema: string;
  /** The snapshot's filter as parameterised SQL (null: every row). */
  whereSql: { sql: string; values: Array<string | null> } | null;
  /** The log holds every transaction after this one (the pipeline's commit sequence). */
  startSequence: number;
}

export type MaterializerMethods = {
  /**
   * The shape of this definition. A new one needs its table captured by the writer first: without
   * `startSequence` a new definition answers `{ capture }` (validated, not created).
   */
  openShape(
    definition: ShapeDefinition,
    startSequence: number | null,
  ): Promise<{ shape: ShapeInfo } | { capture: ShapeFilter }>;
  /** Every shape's clause (the writer keeps only the changes some shape can show). */
  shapeFilters(): ShapeFilter[];
  shapeInfo(handle: string): ShapeInfo | null;
  /** The pipeline of a shape request's `table` (STRATA_ERR_SHAPE_INVALID when none or ambiguous). */
  pipelineOf(table: string): string;
  /**
   * Committed messages after `offset` (serialised), the offset to continue from, the last
   * transaction of the pipeline this actor processed; `compacted` when the reader missed changes
   * the log no longer holds; null for an unknown handle. Offset `now`: the log's head.
   */
  read(
    handle: string,
    offset: string,
    limit: number,
  ): { messages: string[]; offset: string; processed: number } | { compacted: true } | null;
  dropShape(handle: string): Promise<boolean>;
  applyFragment(fragment: ShapeChangesFragment): Promise<void>;
  /** Transaction `sequence` is whole: `fragments` fragments were sent for it. */
  commit(pipeline: string, sequence: number, fragments: number): Promise<void>;
  /** The last transaction of `pipeline` whose changes are in the logs. */
  processed(pipeline: string): number;
  /**
   * Reads what was committed but never arrived live from the store (after the writer restarted:
   * it may have died between a COMMIT and sending its changes; after this actor started: what was
   * sent while it was starting was dropped).
   */
  resync(): Promise<void>;
};

export const materializerActor: ActorDefinition<
  MaterializerActorData,
  MaterializerMethods,
  MaterializerEvent
> = {
  name: 'materializer',
  async start(context) {
    const schemas = new Map<string, Schema>();
    for (const pipeline of context.data.pipelines)
      schemas.set(pipeline.name, await loadSchema(pipeline.schema));
    const { db: dbConfig } = context.data;
    const db: Db = createDb({
      url: dbConfig.url,
      max: dbConfig.poolMax,
      connectTimeoutMs: dbConfig.connectTimeoutMs,
      applicationName: 'strata-materializer',
      log: context.log,
      isolateStatements: dbConfig.isolateStatements,
    });
    const materializer = new Materializer(context.data.shapeLogRetention);
    const byDefinition = new Map<string, Shape>();
    const infos = new Map<string, ShapeInfo>();
    const fault = context.data.testFault;
    const crashAtCommit =
      fault?.kind === 'materializer:crash-at-commit' && context.incarnation === 1 ? fault.commit : null;
    let commits = 0;

    const resolveTable = (table: string): { pipeline: string; entity: EntityDescription } => {
      const dot = table.indexOf('.');
      const candidates = [...schemas].flatMap(([pipeline, schema]) =>
        schema.entities
          .filter((entity) =>
            dot === -1
              ? entity.name === table
              : pipeline === table.slice(0, dot) && entity.name === table.slice(dot + 1),
          )
          .map((entity) => ({ pipeline, entity })),
      );
      if (candidates.length === 1) return candidates[0]!;
      const message =
        candidates.length === 0
          ? `no table ${table}: tables are <pipeline>.<Entity> (or <Entity> when only one pipeline has it)`
          : `table ${table} is ambiguous: name it as ${candidates.map((c) => `${c.pipeline}.${c.entity.name}`).join(' or ')}`;
      throw new StrataError('STRATA_ERR_SHAPE_INVALID', message, { details: { table: [message] } });
    };

    /** A definition validated against its table's schema, and the key shapes are shared by. */
    const compile = async (definition: ShapeDefinition) => {
      const { pipeline, entity } = resolveTable(definition.table);
      const columns = projectedColumns(entity, definition.columns);
      const params = new Map(Object.entries(definition.params).map(([n, value]) => [Number(n), value]));
      const where = definition.where === null ? null : await compileWhere(definition.where, entity, params);
      const key = JSON.stringify([
        pipeline,
        entity.name,
        definition.where,
        definition.params,
        columns,
        definition.replica,
      ]);
      return { pipeline, entity, columns, where, replica: definition.replica, key };
    };

    const register = (
      compiled: Awaited<ReturnType<typeof compile>>,
      handle: string,
      startSequence: number,
    ): ShapeInfo => {
      const { pipeline, entity, columns, where, replica, key } = compiled;
      const view: ShapeView = { relation: [pipeline, entity.name], where, columns, replica };
      const shape = materializer.add(handle, pipeline, entity.name, view, startSequence);
      byDefinition.set(key, shape);
      const info: ShapeInfo = {
        handle,
        pipeline,
        entity: entity.name,
        columns,
        schema: JSON.stringify(electricSchema(entity, columns)),
        whereSql: where === null ? null : whereToSql(where),
        startSequence,
      };
      infos.set(handle, info);
      return info;
    };

    /** Commits transaction `sequence` of `pipeline` and tells the main thread which shapes grew. */
    const commitAndReport = (pipeline: string, sequence: number) => {
      const changed = materializer.commit(pipeline, sequence);
      // Small transactions travel with the event, so the live requests they wake are answered
      // in the main thread without asking this actor again.
      const tails: ShapeTail[] = [];
      for (const shape of changed) {
        const last = shape.log.lastTransaction();
        if (last !== null && last.messages.length <= MAX_TAIL_MESSAGES) {
          tails.push({
            handle: shape.handle,
            from: formatOffset(last.from),
            messages: last.messages,
            offset: formatOffset(last.last),
          });
        }
      }
      context.emit({
        type: 'shapes-changed',
        pipeline,
        sequence,
        handles: changed.map((shape) => shape.handle),
        tails,
      });
    };

    const feed = new ShapeFeed(materializer, db, context.log, commitAndReport);

    // The shapes kept in the store, and their logs rebuilt from their starts.
    const known = new Set(context.data.pipelines.map((pipeline) => pipeline.name));
    const stored = (await loadShapes(db)).filter((shape) => known.has(shape.pipeline));
    const replayFrom = new Map<string, number>();
    const bounds = await shapeLogBounds(db, [...new Set(stored.map((shape) => shape.pipeline))]);
    for (const shape of stored) {
      try {
        register(await compile(shape.definition), shape.handle, shape.startSequence);
        // The store no longer has what its log held up to the floor: older readers must refetch.
        const floor = bounds.get(shape.pipeline)?.floor ?? 0;
        if (floor > shape.startSequence) materializer.byHandle(shape.handle)!.log.missingThrough(floor);
      } catch (error) {
        // The project changed under it (a reset drops shapes, so this is a renamed table): rotate.
        context.log.warn({ err: error, handle: shape.handle }, 'stored shape no longer valid; dropped');
        await deleteShape(db, shape.handle);
        continue;
      }
      const from = Math.max(shape.startSequence, bounds.get(shape.pipeline)?.floor ?? 0);
      replayFrom.set(shape.pipeline, Math.min(replayFrom.get(shape.pipeline) ?? from, from));
    }
    for (const [pipeline, from] of replayFrom) {
      materializer.replayFrom(pipeline, from);
      // Nobody waits yet: commit without telling the main thread.
      await feed.catchUp(pipeline, bounds.get(pipeline)?.committed ?? from, (p, sequence) => {
        materializer.commit(p, sequence);
      });
    }
    if (stored.length > 0)
      context.log.info(
        { shapes: stored.length, pipelines: Object.fromEntries(bounds) },
        'shapes restored from the store',
      );

    const instance: ActorInstance<MaterializerMethods> = {
      methods: {
        async openShape(definition, startSequence) {
          const compiled = await compile(definition);
          const existing = byDefinition.get(compiled.key);
          if (existing !== undefined) return { shape: infos.get(existing.handle)! };
          if (startSequence === null)
            return {
              capture: { pipeline: compiled.pipeline, entity: compiled.entity.name, where: compiled.where },
            };
          const handle = newHandle();
          // Kept before anyone gets the handle: a restart must know every handle a client holds.
          await saveShape(db, {
            handle,
            pipeline: compiled.pipeline,
            entity: compiled.entity.name,
            definition,
            startSequence,
          });
          const info = register(compiled, handle, startSequence);
          context.log.info(
            {
              handle,
              id: materializer.ids.lookup(handle),
              table: `${info.pipeline}.${info.entity}`,
              where: definition.where,
            },
            'shape created',
          );
          return { shape: info };
        },
        shapeInfo: (handle) => infos.get(handle) ?? null,
        pipelineOf: (table) => resolveTable(table).pipeline,
        read(handle, offsetText, limit) {
          const shape = materializer.byHandle(handle);
          if (shape !== undefined && offsetText === 'now')
            return {
              messages: [],
              offset: formatOffset(shape.log.head),
              processed: materializer.processedSequence(shape.pipeline),
            };
          const offset = parseOffset(offsetText);
          if (shape === undefined || offset === null) return null;
          if (!shape.log.serves(offset)) return { compacted: true };
          const { messages, last } = materializer.read(shape, offset, limit);
          return {
            messages,
            offset: formatOffset(last),
            processed: materializer.processedSequence(shape.pipeline),
          };
        },
        async dropShape(handle) {
          const shape = materializer.byHandle(handle);
          if (shape === undefined) return false;
          await deleteShape(db, handle);
          materializer.remove(handle);
          infos.delete(handle);
          for (const [key, candidate] of byDefinition) if (candidate === shape) byDefinition.delete(key);
          context.log.info({ handle, id: shape.id }, 'shape dropped');
          return true;
        },
        applyFragment: (fragment) => feed.fragment(fragment),
        async commit(pipeline, sequence, fragments) {
          commits += 1;
          if (commits === crashAtCommit) {
            context.log.warn({ pipeline, sequence }, 'injected fault: crashing at a commit marker');
            process.exit(1);
          }
          await feed.commit(pipeline, sequence, fragments);
        },
        processed: (pipeline) => materializer.processedSequence(pipeline),
        shapeFilters: () =>
          [...materializer.all()].map((shape) => ({
            pipeline: shape.pipeline,
            entity: shape.entity,
            where: shape.view.where,
          })),
        resync: () => feed.resync([...new Set([...materializer.all()].map((shape) => shape.pipeline))]),
      },
      stop: () => db.close(),
      // Sent with every pong (cheap enough: one pass over the shapes once a ping interval).
      report: () => {
        const figures = materializer.figures();
        const report: Record<string, number> = {
          shapes: figures.shapes,
          shapesIndexed: figures.indexed,
          shapesScanned: figures.scanned,
          shapeLogMessages: figures.logMessages,
        };
        // Reports are flat numbers: per table, under keys the status board reads back.
        for (const [table, counts] of figures.tables) {
          report[`${TABLE_SHAPES}${table}`] = counts.shapes;
          report[`${TABLE_LOG_MESSAGES}${table}`] = counts.logMessages;
        }
        return report;
      },
    };
    return instance;
  },
};

/** The requested columns (the key column always among them, first), or all. */
function projectedColumns(entity: EntityDescription, requested: string[] | null): string[] {
  const all = entity.columns.map((column) => column.name);
  if (requested === null) return all;
  const unknown = requested.filter((name) => !all.includes(name));
  if (unknown.length > 0) {
    const message = `unknown column${unknown.length > 1 ? 's' : ''} ${unknown.join(', ')} in ${entity.name}`;
    throw new StrataError('STRATA_ERR_SHAPE_INVALID', message, { details: { columns: [message] } });
  }
  if (!requested.includes('id')) {
    const message = 'columns must include the primary key (id)';
    throw new StrataError('STRATA_ERR_SHAPE_INVALID', message, { details: { columns: [message] } });
  }
  return ['id', ...new Set(requested.filter((name) => name !== 'id'))];
}

/** A handle never used before (a rotation must give clients one they have not seen). */
function newHandle(): string {
  return `${Date.now()}-${crypto.randomUUID().slice(0, 8)}`;
}
