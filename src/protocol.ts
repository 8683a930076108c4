// Every message that crosses a thread boundary in Strata. Two layers live here:
//  1. the actor envelope (calls, replies, pings, events) that the actor runtime speaks between
//     the supervisor (main thread) and each actor (worker or in-thread), and
//  2. the payloads of the data path: batches from processing to the writer, commits back.
// Messages are discriminated unions on `kind`/`type` with type guards, never enums.

import type { SerializedError } from './errors.ts';

// ─── Actor envelope ─────────────────────────────────────────────────────────────────────────────

/** Main → actor: invoke a method; answered by exactly one `reply` with the same id. */
export interface CallMessage {
  kind: 'call';
  id: number;
  incarnation: number;
  method: string;
  args: unknown[];
}

/** Main → actor: one-way notification (no reply). Runs through the mailbox like a call. */
export interface NotifyMessage {
  kind: 'notify';
  incarnation: number;
  method: string;
  args: unknown[];
}

/** Main → actor: liveness probe, answered outside the mailbox so a busy-but-awaiting actor pongs. */
export interface PingMessage {
  kind: 'ping';
  seq: number;
  incarnation: number;
}

/**
 * Main → actor: the answer to the actor's own request with the same id (see RequestMessage).
 * Handled outside the mailbox: the actor may be awaiting it inside a call.
 */
export type AnswerMessage =
  | { kind: 'answer'; id: number; incarnation: number; ok: true; value: unknown }
  | { kind: 'answer'; id: number; incarnation: number; ok: false; error: SerializedError };

export type ToActorMessage = CallMessage | NotifyMessage | PingMessage | AnswerMessage;

export type ReplyMessage =
  | { kind: 'reply'; id: number; incarnation: number; ok: true; value: unknown }
  | { kind: 'reply'; id: number; incarnation: number; ok: false; error: SerializedError };

/** Figures an actor reports about itself with every pong. */
export interface ActorSelfReport {
  /** Event-loop utilization of the actor's thread since its previous pong (0..1). */
  eventLoopUtilization: number;
  heapUsedBytes: number;
  /** Peak heap in use right after a full GC (what the thread keeps alive; 0 before the first). */
  heapAfterGcPeakBytes: number;
  /** Median heap after the newer half of the recent full GCs (what the thread settles at). */
  heapAfterGcRecentMedianBytes: number;
  /** Messages received but not yet started (the actor handles one at a time). */
  mailboxDepth: number;
  /** The actor's own figures (e.g. its database pool), from `ActorInstance.report`. */
  extra: Record<string, number>;
}

export interface PongMessage {
  kind: 'pong';
  seq: number;
  incarnation: number;
  report: ActorSelfReport;
}

/** Actor → main: the actor finished `start` and accepts calls. */
export interface ReadyMessage {
  kind: 'ready';
  incarnation: number;
}

/** Actor → main: `start` threw; the supervisor treats it as a crash at start. */
export interface StartFailedMessage {
  kind: 'start-failed';
  incarnation: number;
  error: SerializedError;
}

/** Actor → main: a typed domain event, routed by the supervisor (see `ActorEvent`). */
export interface EventMessage {
  kind: 'event';
  incarnation: number;
  event: ActorEvent;
}

/**
 * Actor → main: a request the actor makes of another actor (processing → writer), carried out by
 * the supervisor's router and answered by exactly one `answer` with the same id.
 */
export interface RequestMessage {
  kind: 'request';
  id: number;
  incarnation: number;
  method: string;
  args: unknown;
}

export type FromActorMessage =
  | ReplyMessage
  | PongMessage
  | ReadyMessage
  | StartFailedMessage
  | EventMessage
  | RequestMessage;

export function isFromActorMessage(value: unknown): value is FromActorMessage {
  if (typeof value !== 'object' || value === null) return false;
  const kind = (value as { kind?: unknown }).kind;
  return (
    kind === 'reply' ||
    kind === 'pong' ||
    kind === 'ready' ||
    kind === 'start-failed' ||
    kind === 'event' ||
    kind === 'request'
  );
}

export function isToActorMessage(value: unknown): value is ToActorMessage {
  if (typeof value !== 'object' || value === null) return false;
  const kind = (value as { kind?: unknown }).kind;
  return kind === 'call' || kind === 'notify' || kind === 'ping' || kind === 'answer';
}

// ─── Data path ──────────────────────────────────────────────────────────────────────────────────

/**
 * A batch's changes, per entity, at most one per id. Sets travel as Postgres COPY text: `rows`
 * holds one line per set (tab-separated columns in schema order, the id first, see
 * src/schema/copy-text.ts), aligned with `checkpoints`; deletes as `[checkpointId, id]`. Between
 * threads it travels encoded (src/pipeline/change-codec.ts).
 */
export type EntityChanges = Record<
  string,
  {
    /** One per set, in the order of the lines of `rows` (each line starts with the id). */
    checkpoints: ArrayLike<number> & Iterable<number>;
    /** The event that made each set, name and log index (names the cause of a refused row). */
    eventNames: ArrayLike<string> & Iterable<string>;
    logIndexes: ArrayLike<number> & Iterable<number>;
    rows: string;
    /**
     * `rows` as the UTF-8 bytes they arrived in (one or more views, split between lines), when the
     * part was decoded from transferred buffers (not enumerable): the writer COPYs them as they
     * are, and a part nothing reads as text is never decoded.
     */
    rowBytes?: readonly Buffer[];
    deletes: Array<[number, string]>;
    /**
     * Inside the reorg threshold: every change of the batch (not only the last per id), as COPY
     * lines of the history table — the entity's columns, the checkpoint, `s` or `d`.
     */
    history?: string;
  }
>;

/**
 * A checkpoint the writer records: the last of each batch, and inside the reorg threshold every
 * block's (`history`: its changes were written to the history tables, so a rollback may cross it).
 */
export interface BatchCheckpoint {
  checkpointId: number;
  blockNumber: number;
  blockHash: string | null;
  eventCount: number;
  history: boolean;
}

/**
 * A batch queued for the writer. Its changes travel as an encoded, transferable buffer (see
 * `src/pipeline/change-codec.ts` and `bench/batch-transfer.ts` for why) so that a batch of
 * many thousand changes moves between threads without a structured clone per object. A re-send
 * after a writer restart is one merged batch carrying every uncommitted boundary.
 */
export interface BatchForWriter {
  pipeline: string;
  /** First and last checkpoint the batch covers (inclusive). */
  fromCheckpoint: number;
  toCheckpoint: number;
  fromBlockNumber: number;
  toBlockNumber: number;
  toBlockHash: string | null;
  eventCount: number;
  changeCount: number;
  isInReorgThreshold: boolean;
  checkpoints: BatchCheckpoint[];
  /** Block number of each checkpoint from `fromCheckpoint` on (names a failing row's block). */
  blockNumbers: number[];
  /** The changes as buffers to transfer (src/pipeline/change-codec.ts). */
  encodedChanges: Uint8Array[];
  /** `cache: true` effect outputs produced by the batch: [effect, input key, output JSON]. */
  effectCache: Array<[string, string, string]>;
  /** Raw events (pipelines with `rawEvents`): the batch's blocks, rows are built by the writer. */
  rawBlocks?: RawBlock[];
}

/** What the writer needs of a block to store its events as raw event rows. */
export interface RawBlock {
  checkpointId: number;
  number: number;
  hash: string | null;
  timestamp: number;
  events: Array<{ name: string; logIndex: number; payload: Record<string, unknown> }>;
}

/** What the writer reports after a transaction commits. */
export interface CommitReport {
  pipeline: string;
  committedCheckpoint: number;
  committedBlockNumber: number;
  eventCount: number;
  batches: number;
  rowsWritten: number;
  durationMs: number;
}

/** Where a reorg's orphaned blocks were undone: the cheapest place first. */
export type ReorgUndoneIn = 'unsent batch' | 'queued batches' | 'stored state';

/** Live figures a processing actor reports for `/status`. */
export interface PipelineProgress {
  pipeline: string;
  processedCheckpoint: number;
  committedCheckpoint: number;
  processedBlockNumber: number;
  headBlockNumber: number | null;
  eventsProcessed: number;
  eventsPerSecond: number;
  inMemoryObjects: number;
  /** Highest `inMemoryObjects` seen at a batch start (what the capacity target bounds). */
  peakInMemoryObjects: number;
  queuedBatches: number;
  /** Blocks processed per second over the last ten seconds. */
  blocksPerSecond: number;
  /** Time the writer spent in this pipeline's transactions since the actor started. */
  writerBusyMs: number;
  state: 'starting' | 'backfill' | 'live' | 'caught-up' | 'stopping' | 'stopped' | 'failed';
  /** Why the pipeline is `failed` (null otherwise). */
  failure: PipelineFailure | null;
  /** Wall-clock ms when this incarnation processed its first event (null before). */
  firstEventAt: number | null;
  /** Wall-clock ms when this incarnation first caught up with its source (null before). */
  readyAt: number | null;
  /** Reorgs rolled back by this incarnation. */
  reorgs: number;
  /** The same, by where their orphaned blocks were undone (see the processing actor). */
  reorgsUndid: Record<ReorgUndoneIn, number>;
  /** Effect calls by effect since this incarnation started. */
  effects: Record<
    string,
    { calls: number; memoryHits: number; databaseHits: number; invalidated: number; runs: number }
  >;
}

/**
 * A pipeline stopped by an error retrying cannot fix (a handler threw, a write Postgres refuses, a
 * reorg too deep, a broken source). Only that pipeline stops; the daemon keeps serving.
 */
export interface PipelineFailure {
  code: string;
  message: string;
  /** The block and event it stopped at, when known. */
  block: number | null;
  event: string | null;
  logIndex: number | null;
  /** Which actor stopped it: `processing` or `persistence`. */
  actor: string;
  /** ISO time. */
  at: string;
}

/** What the writer stores as a pipeline's chain metadata (src/persistence/chain-metadata.ts). */
export interface ChainMetadata {
  pipeline: string;
  sourceHeadBlock: number | null;
  processedBlock: number;
  firstEventAt: number | null;
  readyAt: number | null;
  /** When it was staged (wall-clock ms). */
  stagedAt: number;
}

/** Domain events an actor emits to the supervisor, which routes them. */
/** An error an actor cannot recover from, with what it was doing. */
export type FatalEvent = { type: 'fatal'; error: SerializedError; context: Record<string, unknown> };

/** What a processing actor emits. */
export type ProcessingEvent =
  | { type: 'batch-ready'; batch: BatchForWriter }
  | { type: 'progress'; progress: PipelineProgress }
  | FatalEvent;

/** What the writer emits. */
export type PersistenceEvent =
  | { type: 'committed'; report: CommitReport }
  /** A committed transaction's changes to tables with shapes, a bounded fragment at a time. */
  | { type: 'shape-changes'; fragment: ShapeChangesFragment }
  /** After its `fragments` fragments: the pipeline's transaction number `sequence` is whole. */
  | { type: 'shape-commit'; pipeline: string; sequence: number; fragments: number }
  /**
   * A write of the pipeline was refused by the lease fence (another process holds it at a later
   * epoch): the writer dropped the pipeline's queue and writes it no more until granted again.
   */
  | { type: 'fenced'; pipeline: string; epoch: number }
  | FatalEvent;

/** Postgres text of a row's columns (null for NULL), as clients of shapes get it. */
export type TextRow = Readonly<Record<string, string | null>>;

export interface ShapeChangesFragment {
  pipeline: string;
  entity: string;
  /** The transaction's place in the pipeline's commit sequence (strata.pipelines.commit_sequence). */
  sequence: number;
  /** Its place among the transaction's fragments of this entity, from 0 (as in strata.shape_log). */
  fragment: number;
  /** No `before`: inserted; no `after`: deleted. */
  changes: Array<{ before: TextRow | null; after: TextRow | null }>;
}

/** What the materializer emits: after a commit, the shapes whose logs grew. */
export type MaterializerEvent = {
  type: 'shapes-changed';
  pipeline: string;
  sequence: number;
  handles: string[];
  /** For shapes whose new messages are few: the messages themselves. */
  tails: ShapeTail[];
};

/** A shape's last committed transaction: what a live reader at offset `from` gets next. */
export interface ShapeTail {
  handle: string;
  from: string;
  /** Serialised messages. */
  messages: string[];
  /** The offset after them. */
  offset: string;
}

export type ActorEvent = ProcessingEvent | PersistenceEvent | MaterializerEvent;

/** A request an actor may make of another, by method: its argument and its answer. */
export type RequestMap = Record<string, { args: unknown; result: unknown }>;

/** What a processing actor asks of the writer when the chain reorganises. */
export type WriterRequests = {
  discardQueued: { args: DiscardRequest; result: DiscardResult };
  rollback: { args: RollbackRequest; result: RollbackResult };
};

/**
 * Forget the pipeline's queued batches that reach above a checkpoint (they hold orphaned blocks):
 * they are dropped instead of written and rolled back.
 */
export interface DiscardRequest {
  pipeline: string;
  aboveCheckpoint: number;
}

export interface DiscardResult {
  /**
   * The highest checkpoint of the pipeline the writer has committed, is writing or still holds
   * queued. Above `aboveCheckpoint`: a write in flight reaches past it, so the stored state must
   * be rolled back once it commits.
   */
  keptUpTo: number;
}

/** Roll a pipeline's stored state back to a checkpoint (every later one is on an orphaned branch). */
export interface RollbackRequest {
  pipeline: string;
  toCheckpoint: number;
  /** The committed checkpoint the processing actor flushed to (guards against a stale request). */
  fromCheckpoint: number;
}

export interface RollbackResult {
  pipeline: string;
  toCheckpoint: number;
  toBlockNumber: number;
  toBlockHash: string | null;
  /** Events of the rolled-back checkpoints (subtracted from events processed). */
  eventsRemoved: number;
  /** Entity rows restored or deleted. */
  rowsRestored: number;
  /** Whether the target checkpoint was written with history. */
  targetKeptHistory: boolean;
}
