// The main thread's side of live shapes: opening a shape (the writer starts capturing its table
// first, so its log misses no transaction), consistent snapshots, and waiting long-polls. Shape
// state lives in the materializer actor; long-polls wait here, on its `shapes-changed` events,
// because a call held inside the actor would stall its mailbox.

import { setTimeout as sleep } from 'node:timers/promises';
import type { Db, Queryable } from '../db/pool.ts';
import type { LiveWait, ShapeBackend } from '../http/routes/shapes.ts';
import type { Logger } from '../logger.ts';
import type { MaterializerMethods, ShapeInfo } from '../materializer/materializer-actor.ts';
import type { ShapeDefinition } from '../materializer/shape-definition.ts';
import { rowKey, type ShapeMessage } from '../materializer/shape-messages.ts';
import { loadShapes } from '../materializer/shape-store.ts';
import {
  ChunkBuilder,
  type SnapshotChunk,
  SnapshotChunks,
  type SnapshotRead,
} from '../materializer/snapshot-chunks.ts';
import { foldMessages, type SnapshotRow } from '../materializer/snapshot-fold.ts';
import type { PersistenceMethods } from '../persistence/persistence-actor.ts';
import { readCommitted } from '../pipeline/checkpoint-store.ts';
import type { ShapeTables } from '../pipeline/shape-tables.ts';
import type { MaterializerEvent } from '../protocol.ts';
import { entityTable, quoteIdent } from '../schema/ddl.ts';
import type { ActorRef } from '../supervisor/actor-ref.ts';
import { ShapeTails } from './shape-tails.ts';

/** How long a paged snapshot waits for the materializer to have the transactions it replays. */
const LOG_WAIT_MS = 10_000;
/** Log messages per call while a paged snapshot reads what it replays. */
const LOG_READ_LIMIT = 10_000;

type Caller<Methods extends Record<string, (...args: never[]) => unknown>> = Pick<
  ActorRef<Methods, unknown, never>,
  'call'
>;

export class ShapeService implements ShapeBackend {
  /** handle → resolvers of long-polls waiting for it to grow. */
  private readonly waiters = new Map<string, Set<() => void>>();
  /** pipeline → resolvers waiting for the materializer to have processed a checkpoint. */
  private readonly processedWaiters = new Set<{
    pipeline: string;
    sequence: number;
    resolve: () => void;
  }>();
  private readonly processed = new Map<string, number>();
  /** Per handle, its last transactions' messages (answer live requests without a call). */
  private readonly tails = new ShapeTails();
  /** Shape infos already asked for (a handle's info never changes; a rotation removes it). */
  private readonly infos = new Map<string, ShapeInfo>();
  /**
   * Table names (`erc20.Account`, `Account`) → their pipeline, as the materializer resolved them:
   * its schemas are fixed until it restarts. A fleet member asks before every shape request.
   */
  private readonly pipelines = new Map<string, string>();
  private readonly snapshots: SnapshotChunks;

  constructor(
    private readonly db: Db,
    private readonly log: Logger,
    private readonly materializer: Caller<MaterializerMethods>,
    private readonly writer: Caller<PersistenceMethods>,
    private readonly tables: ShapeTables,
    private readonly snapshot: SnapshotOptions,
  ) {
    this.snapshots = new SnapshotChunks();
  }

  async open(definition: ShapeDefinition): Promise<ShapeInfo> {
    const first = await this.materializer.call('openShape', definition, null);
    if ('shape' in first) return first.shape;
    // A new shape: from the writer's next transaction on its table's changes are captured; the
    // log starts at the checkpoint committed before that.
    const { pipeline, entity, where } = first.capture;
    this.tables.add(pipeline, entity);
    const start = await this.writer.call('captureShapes', pipeline, entity, where);
    const opened = await this.materializer.call('openShape', definition, start);
    if (!('shape' in opened)) throw new Error('materializer did not create the shape');
    // Every transaction up to `start` is in the table a snapshot reads.
    this.processed.set(pipeline, Math.max(start, this.processed.get(pipeline) ?? 0));
    return opened.shape;
  }

  async info(handle: string): Promise<ShapeInfo | null> {
    const known = this.infos.get(handle);
    if (known !== undefined) return known;
    const info = await this.materializer.call('shapeInfo', handle);
    if (info !== null) this.infos.set(handle, info);
    return info;
  }

  /** The pipeline a shape's table belongs to; null when no table of the project has the name. */
  async pipelineOf(table: string): Promise<string | null> {
    const known = this.pipelines.get(table);
    if (known !== undefined) return known;
    const pipeline = await this.materializer.call('pipelineOf', table).catch(() => null);
    if (pipeline !== null) this.pipelines.set(table, pipeline);
    return pipeline;
  }

  /** The materializer restarted: what this thread remembered of its shapes is gone with them. */
  reset(): void {
    this.infos.clear();
    this.pipelines.clear();
    this.tails.clear();
    for (const waiting of [...this.waiters.values()]) for (const wake of [...waiting]) wake();
  }

  /**
   * After the writer or the materializer (re)started: the materializer reads from the store what
   * was committed but never reached it live, and the writer learns every shape's clause (until
   * then it keeps every change of a captured table).
   */
  resync(): void {
    this.materializer.call('resync').catch((error: unknown) => {
      this.log.warn({ err: error }, 'shapes could not catch up from the store; the next transaction retries');
    });
    this.materializer
      .call('shapeFilters')
      .then((filters) => this.writer.call('installShapeFilters', filters))
      .catch((error: unknown) => {
        this.log.warn(
          { err: error },
          "the writer keeps every change of the shapes' tables until the next restart",
        );
      });
  }

  /**
   * This process now owns `pipeline` (a takeover), before it writes any of it: the writer captures
   * every table with a stored shape (all changes, until the materializer's clauses narrow them),
   * and the answer says whether the materializer lacks some of its stored shapes — created on the
   * process that owned it before — and must restart to load them.
   */
  async adoptPipeline(pipeline: string): Promise<boolean> {
    const stored = (await loadShapes(this.db)).filter((shape) => shape.pipeline === pipeline);
    for (const entity of new Set(stored.map((shape) => shape.entity))) {
      this.tables.add(pipeline, entity);
      await this.writer.call('captureShapes', pipeline, entity, null);
    }
    const known = await Promise.all(stored.map((shape) => this.materializer.call('shapeInfo', shape.handle)));
    return known.some((info) => info === null);
  }

  /** Rotates a shape: its log goes, and its waiting long-polls answer at once (409). */
  async drop(handle: string): Promise<boolean> {
    const dropped = await this.materializer.call('dropShape', handle);
    this.infos.delete(handle);
    this.snapshots.forget(handle);
    this.tails.forget(handle);
    for (const wake of [...(this.waiters.get(handle) ?? [])]) wake();
    return dropped;
  }

  async read(handle: string, offset: string, limit: number) {
    const kept = this.tails.after(handle, offset, limit);
    if (kept !== null) {
      const processed = this.processed.get(this.infos.get(handle)?.pipeline ?? '') ?? 0;
      return { ...kept, processed };
    }
    const read = await this.materializer.call('read', handle, offset, limit);
    if (read === null || !('compacted' in read)) return read;
    // The reader missed changes compaction dropped: it must refetch, and a refetch needs a handle
    // it has never seen (Electric's rule), so the shape rotates — its other readers follow at
    // their next request.
    this.log.info({ handle, offset }, 'shape rotated: a reader resumed from before its log was compacted');
    await this.drop(handle);
    return null;
  }

  /** The first chunk of a snapshot of the shape (a new one, or one taken a moment ago). */
  firstSnapshotChunk(info: ShapeInfo): Promise<SnapshotChunk> {
    return this.snapshots.first(info.handle, () => this.readSnapshot(info));
  }

  /** A further chunk of a kept snapshot; null once it is no longer kept. */
  snapshotChunk(info: ShapeInfo, sequence: number, chunk: number): SnapshotChunk | null {
    return this.snapshots.chunk(info.handle, sequence, chunk);
  }

  /**
   * The shape's rows as insert messages and the pipeline's commit sequence they reflect, read in
   * one repeatable-read transaction: the log continues with the transactions after it. Rows come
   * through a cursor a page at a time, as arrays of text, and each message's JSON is written
   * straight from them into the chunk being built (no row objects, never the whole table as rows;
   * Postgres' json_build_object measured twice as slow). On embedded PGlite the pages are read
   * as transactions of their own first (readSnapshotInPages).
   */
  private async readSnapshot(info: ShapeInfo): Promise<SnapshotRead> {
    if (this.snapshot.inPages) {
      const paged = await this.readSnapshotInPages(info);
      if (paged !== null) return paged;
      this.log.warn(
        { handle: info.handle },
        "a paged snapshot could not be brought to one point (the shape's log moved on); read in one transaction",
      );
    }
    const pageRows = this.snapshot.pageRows;
    return this.db.transaction(async (client) => {
      const sequence = await beginSnapshotRead(client, info.pipeline);
      await client.query(
        `DECLARE strata_snapshot NO SCROLL CURSOR FOR ${snapshotSelect(info, [])}`,
        info.whereSql?.values ?? [],
      );
      const message = insertMessageWriter(info);
      const chunks = new ChunkBuilder(this.snapshot.chunkBytes);
      for (;;) {
        const { rows } = await client.query<SnapshotRow>({
          text: `FETCH ${pageRows} FROM strata_snapshot`,
          rowMode: 'array',
        });
        for (const row of rows) chunks.add(message(row));
        if (rows.length < pageRows) break;
      }
      return { sequence, chunks: chunks.finish() };
    });
  }

  /**
   * Embedded PGlite has one backend: a snapshot read in one transaction holds the writer back
   * until it ends. There each page (keyset on the id) is its own short repeatable-read
   * transaction with the commit sequence it shows, and the writer commits between them; the rows
   * are then brought to the last page's sequence by replaying the shape's own log over them
   * (snapshot-fold.ts), so the snapshot is as consistent as one read in a single transaction.
   * Null when the log no longer holds what the replay needs (compacted meanwhile).
   */
  private async readSnapshotInPages(info: ShapeInfo): Promise<SnapshotRead | null> {
    const pageRows = this.snapshot.pageRows;
    const whereValues = info.whereSql?.values ?? [];
    const rows = new Map<string, SnapshotRow>();
    let first: number | null = null;
    let last = 0;
    /** The last id read (null before the first page: any id, even an empty one, comes after). */
    let after: string | null = null;
    for (;;) {
      const page = await this.db.transaction(async (client) => {
        const sequence = await beginSnapshotRead(client, info.pipeline);
        const keyset = after === null ? [] : [`"id" > $${whereValues.length + 1}`];
        const { rows: read } = await client.query<SnapshotRow>({
          text: `${snapshotSelect(info, keyset)} LIMIT ${pageRows}`,
          values: after === null ? whereValues : [...whereValues, after],
          rowMode: 'array',
        });
        return { sequence, rows: read };
      });
      first ??= page.sequence;
      last = page.sequence;
      for (const row of page.rows) rows.set(row[0] as string, row);
      if (page.rows.length < pageRows) break;
      after = page.rows[page.rows.length - 1]![0] as string;
      if (this.snapshot.pageDelayMs > 0) await sleep(this.snapshot.pageDelayMs);
    }
    if (first !== null && last > first) {
      const messages = await this.logBetween(info, first, last);
      if (messages === null) return null;
      foldMessages(rows, info.columns, messages);
      this.log.debug(
        { handle: info.handle, from: first, through: last, replayed: messages.length },
        'paged snapshot brought to one point',
      );
    }
    const message = insertMessageWriter(info);
    const chunks = new ChunkBuilder(this.snapshot.chunkBytes);
    for (const row of rows.values()) chunks.add(message(row));
    return { sequence: last, chunks: chunks.finish() };
  }

  /**
   * The shape's log messages of the transactions after `from` up to `through`, in order, once the
   * materializer has them; null when they are no longer all held (compacted) or never came.
   */
  private async logBetween(info: ShapeInfo, from: number, through: number): Promise<ShapeMessage[] | null> {
    if (!(await this.waitForProcessed(info.pipeline, through, LOG_WAIT_MS))) return null;
    const messages: ShapeMessage[] = [];
    let offset = `${from}_inf`;
    for (;;) {
      const read = await this.materializer.call('read', info.handle, offset, LOG_READ_LIMIT);
      if (read === null || 'compacted' in read) return null;
      for (const text of read.messages) {
        const message = JSON.parse(text) as ShapeMessage;
        if (Number(message.headers.lsn) > through) return messages;
        messages.push(message);
      }
      if (read.messages.length < LOG_READ_LIMIT) return messages;
      offset = read.offset;
    }
  }

  /** Live requests waiting for a change (/status). */
  liveRequests(): number {
    let count = 0;
    for (const waiting of this.waiters.values()) count += waiting.size;
    return count;
  }

  /**
   * Waits for the shape's log to grow: `changed` resolves with when the change reached this thread
   * (performance.now()) — or with null after `timeoutMs` or once `cancel` is called.
   */
  waitForChange(handle: string, timeoutMs: number): LiveWait {
    let waiting = this.waiters.get(handle);
    if (waiting === undefined) {
      waiting = new Set();
      this.waiters.set(handle, waiting);
    }
    const set = waiting;
    let resolve!: (changedAt: number | null) => void;
    const changed = new Promise<number | null>((settle) => {
      resolve = settle;
    });
    const done = (changedAt: number | null) => {
      if (!set.delete(woken)) return; // woken, timed out or cancelled already
      clearTimeout(timer);
      if (set.size === 0 && this.waiters.get(handle) === set) this.waiters.delete(handle);
      resolve(changedAt);
    };
    const woken = () => done(performance.now());
    const cancel = () => done(null);
    const timer = setTimeout(cancel, timeoutMs);
    set.add(woken);
    return { changed, cancel };
  }

  /** Resolves once the materializer has processed the pipeline's transaction `sequence` (false after `timeoutMs`). */
  async waitForProcessed(pipeline: string, sequence: number, timeoutMs: number): Promise<boolean> {
    if ((this.processed.get(pipeline) ?? 0) >= sequence) return true;
    // This thread hears of transactions only as they are processed live: a materializer that
    // restored its shapes from the store at start may be further on already.
    const restored = await this.materializer.call('processed', pipeline);
    this.processed.set(pipeline, Math.max(restored, this.processed.get(pipeline) ?? 0));
    if (restored >= sequence) return true;
    return new Promise<boolean>((resolve) => {
      const waiter = {
        pipeline,
        sequence,
        resolve: () => {
          clearTimeout(timer);
          this.processedWaiters.delete(waiter);
          resolve(true);
        },
      };
      const timer = setTimeout(() => {
        this.processedWaiters.delete(waiter);
        resolve(false);
      }, timeoutMs);
      this.processedWaiters.add(waiter);
    });
  }

  /** The materializer's report after a commit. */
  onEvent(event: MaterializerEvent): void {
    this.processed.set(event.pipeline, Math.max(event.sequence, this.processed.get(event.pipeline) ?? 0));
    const withTail = new Set<string>();
    for (const tail of event.tails) {
      this.tails.add(tail);
      withTail.add(tail.handle);
    }
    // A shape that changed without its messages riding along: its old tail no longer ends at the head.
    for (const handle of event.handles) if (!withTail.has(handle)) this.tails.forget(handle);
    for (const handle of event.handles) {
      for (const wake of [...(this.waiters.get(handle) ?? [])]) wake();
    }
    for (const waiter of [...this.processedWaiters]) {
      if (waiter.pipeline === event.pipeline && waiter.sequence <= event.sequence) waiter.resolve();
    }
    this.log.debug(
      { pipeline: event.pipeline, sequence: event.sequence, shapes: event.handles.length },
      'shapes changed',
    );
  }
}

export interface SnapshotOptions {
  /** Chunk size of a large snapshot's answers. */
  chunkBytes: number;
  /** Rows per round trip while a snapshot is read. */
  pageRows: number;
  /**
   * Each page its own transaction, the rows then brought to the last one's point by the shape's
   * log (embedded PGlite: one backend, where one long transaction holds the writer back).
   */
  inPages: boolean;
  /** Test fault `shapes:snapshot-page-delay`: a wait between pages (0 otherwise). */
  pageDelayMs: number;
}

/**
 * Makes the transaction `client` is in a snapshot read (repeatable read, timestamps as UTC text)
 * and returns the pipeline's commit sequence it shows.
 */
async function beginSnapshotRead(client: Queryable, pipeline: string): Promise<number> {
  // One round trip for both (a simple query may hold several statements).
  await client.query(
    `SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY; SET LOCAL TimeZone = 'UTC'`,
  );
  const [committed] = await readCommitted(client, [pipeline]);
  return committed?.commitSequence ?? 0;
}

/** The shape's rows as text, in id order: its where clause (params $1…) and `more` conditions. */
function snapshotSelect(info: ShapeInfo, more: string[]): string {
  const columns = info.columns.map((name) => `${quoteIdent(name)}::text`).join(', ');
  const conditions = [...(info.whereSql === null ? [] : [`(${info.whereSql.sql})`]), ...more];
  const where = conditions.length === 0 ? '' : ` WHERE ${conditions.join(' AND ')}`;
  return `SELECT ${columns} FROM ${entityTable(info.pipeline, info.entity)}${where} ORDER BY "id"`;
}

/** Writes a snapshot row's insert message (columns in `info.columns` order, the id first). */
function insertMessageWriter(info: ShapeInfo): (row: SnapshotRow) => string {
  const relation: [string, string] = [info.pipeline, info.entity];
  const names = info.columns.map((name, i) => `${i === 0 ? '' : ','}${JSON.stringify(name)}:`);
  const headers = `},"headers":${JSON.stringify({ operation: 'insert', relation })}}`;
  // The key is the relation's quoted prefix and the id with '/' doubled, in quotes.
  const keyPrefix = rowKey(relation, '').slice(0, -1);
  return (row) => {
    const id = row[0] as string;
    let message = `{"key":${JSON.stringify(`${keyPrefix}${id.replaceAll('/', '//')}"`)},"value":{`;
    for (let i = 0; i < names.length; i++) {
      const text = row[i];
      message += names[i]! + (text === null || text === undefined ? 'null' : JSON.stringify(text));
    }
    return message + headers;
  };
}
