// The materializer's state, without threads or I/O: the shapes of every table, their routing
// indexes and logs. The writer streams each committed transaction in bounded fragments of row
// changes (old and new row, as Postgres text) followed by its commit marker; a fragment's changes
// are routed to the shapes they concern and written to those logs, invisible until the marker
// commits them. Readers (the HTTP layer, through the actor) read committed offsets only.

import { shapeLogCompaction } from '../pipeline/shape-tables.ts';
import type { ShapeChangesFragment } from '../protocol.ts';
import { RoutingIndex } from './routing-index.ts';
import { ShapeIds } from './shape-ids.ts';
import { type Offset, ShapeLog } from './shape-log.ts';
import { messageFor, type ShapeView } from './shape-messages.ts';

/** One row's change in a committed transaction: no `before` for an insert, no `after` for a delete. */
export type RowChange = ShapeChangesFragment['changes'][number];

export interface Shape {
  id: number;
  handle: string;
  pipeline: string;
  entity: string;
  view: ShapeView;
  log: ShapeLog;
}

const tableKey = (pipeline: string, entity: string) => `${pipeline}\u0000${entity}`;

export class Materializer {
  readonly ids = new ShapeIds();
  private readonly shapes = new Map<number, Shape>();
  private readonly tables = new Map<string, { index: RoutingIndex; shapes: Set<number> }>();
  /** Shapes written to by the transaction being streamed. */
  private readonly written = new Set<number>();
  /** Per pipeline, the last transaction (commit sequence) whose commit marker arrived. */
  private readonly processed = new Map<string, number>();

  /** `retention`: the logs keep a pipeline's last so many transactions. */
  constructor(private readonly retention = Number.POSITIVE_INFINITY) {}

  /**
   * Adds a shape whose log starts after transaction `startSequence` (its snapshot holds everything
   * up to there). The handle must be new to this process's registry of live shapes.
   */
  add(handle: string, pipeline: string, entity: string, view: ShapeView, startSequence: number): Shape {
    const id = this.ids.idFor(handle);
    const shape: Shape = { id, handle, pipeline, entity, view, log: new ShapeLog(startSequence) };
    this.processed.set(pipeline, Math.max(startSequence, this.processedSequence(pipeline)));
    this.shapes.set(id, shape);
    const key = tableKey(pipeline, entity);
    let table = this.tables.get(key);
    if (table === undefined) {
      table = { index: new RoutingIndex(), shapes: new Set() };
      this.tables.set(key, table);
    }
    table.index.add(id, view.where);
    table.shapes.add(id);
    return shape;
  }

  remove(handle: string): boolean {
    const id = this.ids.lookup(handle);
    const shape = id === undefined ? undefined : this.shapes.get(id);
    if (shape === undefined) return false;
    this.shapes.delete(shape.id);
    const key = tableKey(shape.pipeline, shape.entity);
    const table = this.tables.get(key)!;
    table.index.remove(shape.id);
    table.shapes.delete(shape.id);
    if (table.shapes.size === 0) this.tables.delete(key);
    this.written.delete(shape.id);
    return true;
  }

  byHandle(handle: string): Shape | undefined {
    const id = this.ids.lookup(handle);
    return id === undefined ? undefined : this.shapes.get(id);
  }

  all(): IterableIterator<Shape> {
    return this.shapes.values();
  }

  /** For /status: shapes, how they are routed, the messages their logs hold; and per table. */
  figures(): {
    shapes: number;
    indexed: number;
    scanned: number;
    logMessages: number;
    tables: Map<string, { shapes: number; logMessages: number }>;
  } {
    let indexed = 0;
    let scanned = 0;
    for (const table of this.tables.values()) {
      const counts = table.index.counts();
      indexed += counts.indexed;
      scanned += counts.scanned;
    }
    let logMessages = 0;
    const tables = new Map<string, { shapes: number; logMessages: number }>();
    for (const shape of this.shapes.values()) {
      logMessages += shape.log.size;
      const name = `${shape.pipeline}.${shape.entity}`;
      const table = tables.get(name) ?? { shapes: 0, logMessages: 0 };
      table.shapes += 1;
      table.logMessages += shape.log.size;
      tables.set(name, table);
    }
    return { shapes: this.shapes.size, indexed, scanned, logMessages, tables };
  }

  processedSequence(pipeline: string): number {
    return this.processed.get(pipeline) ?? 0;
  }

  /** Routes a fragment of a transaction's changes into the logs of the shapes they concern. */
  applyFragment(fragment: ShapeChangesFragment): void {
    const table = this.tables.get(tableKey(fragment.pipeline, fragment.entity));
    if (table === undefined) return;
    for (const { before, after } of fragment.changes) {
      table.index.candidates(before, after, (id) => {
        const shape = this.shapes.get(id)!;
        const message = messageFor(shape.view, before, after);
        if (message === null) return;
        shape.log.write(fragment.sequence, message);
        this.written.add(id);
      });
    }
  }

  /** Drops what the transaction being streamed wrote (it will be read again whole). */
  abort(): void {
    for (const id of this.written) this.shapes.get(id)?.log.abort();
    this.written.clear();
  }

  /**
   * A replay of the pipeline's stored log is to start after transaction `sequence`: every shape's
   * log skips what it already holds (its snapshot or an earlier replay), so the lowest start wins.
   */
  replayFrom(pipeline: string, sequence: number): void {
    this.processed.set(pipeline, sequence);
  }

  /** The commit marker: the transaction's messages become visible. Returns the shapes that changed. */
  commit(pipeline: string, sequence: number): Shape[] {
    this.processed.set(pipeline, Math.max(sequence, this.processedSequence(pipeline)));
    const changed: Shape[] = [];
    for (const id of this.written) {
      const shape = this.shapes.get(id);
      if (shape !== undefined && shape.pipeline === pipeline && shape.log.commit(sequence))
        changed.push(shape);
    }
    this.written.clear();
    const through = shapeLogCompaction(sequence, this.retention);
    if (through !== null) {
      for (const shape of this.shapes.values()) if (shape.pipeline === pipeline) shape.log.compact(through);
    }
    return changed;
  }

  /** Committed messages of `shape` after `offset`. */
  read(shape: Shape, offset: Offset, limit: number): { messages: string[]; last: Offset } {
    return shape.log.readAfter(offset, limit);
  }
}
