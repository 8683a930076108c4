// The materializer actor (its own worker thread): keeps every shape's definition, routing index
// and log. The writer's committed changes reach it as fragments and commit markers (notifications
// through the main-thread router); after each commit it tells the main thread which shapes
// changed, so the HTTP layer's waiting long-polls read again. Reads never wait inside this
// actor: its mailbox handles one message at a time, and a held request would stall the others.

import type { PipelineConfig } from '../config.ts';
import { StrataError } from '../errors.ts';
import type { MaterializerEvent, ShapeChangesFragment, ShapeTail } from '../protocol.ts';
import type { EntityDescription, Schema } from '../schema/define-schema.ts';
import { loadSchema } from '../schema/load-schema.ts';
import type { ActorDefinition, ActorInstance } from '../supervisor/actor-host.ts';
import { electricSchema } from './electric-schema.ts';
import { Materializer, type Shape } from './materializer.ts';
import { formatOffset, parseOffset } from './shape-log.ts';
import type { ShapeView } from './shape-messages.ts';
import { compileWhere } from './where-compile.ts';
import { whereToSql } from './where-sql.ts';

/** A transaction's messages up to this many per shape ride along with `shapes-changed`. */
const MAX_TAIL_MESSAGES = 100;

export interface MaterializerActorData {
  pipelines: PipelineConfig[];
}

/** A shape as a request defines it (what its identity is made of). */
export interface ShapeDefinition {
  /** `<pipeline>.<Entity>`, or `<Entity>` when one pipeline alone has it. */
  table: string;
  where: string | null;
  /** `params[n]`, 1-based. */
  params: Record<string, string>;
  columns: string[] | null;
  replica: 'default' | 'full';
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
  ): Promise<{ shape: ShapeInfo } | { capture: { pipeline: string; entity: string } }>;
  shapeInfo(handle: string): ShapeInfo | null;
  /** Committed messages after `offset` (serialised), the offset to continue from, the last transaction of the pipeline this actor processed. */
  read(
    handle: string,
    offset: string,
    limit: number,
  ): { messages: string[]; offset: string; processed: number } | null;
  dropShape(handle: string): boolean;
  applyFragment(fragment: ShapeChangesFragment): void;
  commit(pipeline: string, sequence: number): void;
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
    const materializer = new Materializer();
    const byDefinition = new Map<string, Shape>();
    const infos = new Map<string, ShapeInfo>();

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

    const instance: ActorInstance<MaterializerMethods> = {
      methods: {
        async openShape(definition, startSequence) {
          const { pipeline, entity } = resolveTable(definition.table);
          const columns = projectedColumns(entity, definition.columns);
          const params = new Map(Object.entries(definition.params).map(([n, value]) => [Number(n), value]));
          const where =
            definition.where === null ? null : await compileWhere(definition.where, entity, params);
          const key = JSON.stringify([
            pipeline,
            entity.name,
            definition.where,
            definition.params,
            columns,
            definition.replica,
          ]);
          const existing = byDefinition.get(key);
          if (existing !== undefined) return { shape: infos.get(existing.handle)! };
          if (startSequence === null) return { capture: { pipeline, entity: entity.name } };
          const view: ShapeView = {
            relation: [pipeline, entity.name],
            where,
            columns,
            replica: definition.replica,
          };
          const handle = newHandle();
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
          context.log.info(
            { handle, id: shape.id, table: `${pipeline}.${entity.name}`, where: definition.where },
            'shape created',
          );
          return { shape: info };
        },
        shapeInfo: (handle) => infos.get(handle) ?? null,
        read(handle, offsetText, limit) {
          const shape = materializer.byHandle(handle);
          const offset = parseOffset(offsetText);
          if (shape === undefined || offset === null) return null;
          const { messages, last } = materializer.read(shape, offset, limit);
          return {
            messages,
            offset: formatOffset(last),
            processed: materializer.processedSequence(shape.pipeline),
          };
        },
        dropShape(handle) {
          const shape = materializer.byHandle(handle);
          if (shape === undefined) return false;
          materializer.remove(handle);
          infos.delete(handle);
          for (const [key, candidate] of byDefinition) if (candidate === shape) byDefinition.delete(key);
          context.log.info({ handle, id: shape.id }, 'shape dropped');
          return true;
        },
        applyFragment: (fragment) => materializer.applyFragment(fragment),
        commit(pipeline, sequence) {
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
        },
      },
      // Sent with every pong (cheap enough: one pass over the shapes once a ping interval).
      report: () => {
        const figures = materializer.figures();
        return {
          shapes: figures.shapes,
          shapesIndexed: figures.indexed,
          shapesScanned: figures.scanned,
          shapeLogMessages: figures.logMessages,
        };
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
