// The persistence actor: the single writer. Batches arrive in processing order and are queued;
// exactly one transaction is in flight at a time, so writes land in batch order while processing
// goes on. Each transaction drains the leading run of queued batches of one pipeline that share
// `isInReorgThreshold`, upserts the run's entities (last change per id wins), records the
// checkpoint boundary and advances the pipeline's committed checkpoint — all or nothing — then
// reports the commit.
//
// The pipeline row update is guarded by the committed checkpoint the writer expects, so a batch
// can never be applied twice or over a gap: a re-sent batch at or below the committed checkpoint
// is skipped, a gap is a bug and stops the pipeline.

import { setTimeout as sleep } from 'node:timers/promises';
import { createDb, type Db, poolReport } from '../db/pool.ts';
import { isRetryable, StrataError, serializeError } from '../errors.ts';
import { decodeChanges } from '../processing/change-codec.ts';
import type { BatchForWriter, Change } from '../protocol.ts';
import type { ActorContext, ActorDefinition, ActorInstance } from '../supervisor/actor-host.ts';
import { accountTable, ensurePipelineTables, pipelineSchema } from './entity-tables.ts';

export interface PersistenceActorData {
  pipelines: string[];
  db: { url: string; poolMax: number; connectTimeoutMs: number; isolateStatements: boolean };
  /** Changes per transaction before a run is cut (bounds transaction size and memory). */
  maxChangesPerWrite: number;
  testFault: string | null;
}

export type PersistenceMethods = {
  enqueue(batch: BatchForWriter): number;
  /** Resolves once every queued batch (of `pipeline`, or all) is committed. */
  flush(pipeline?: string): Promise<Record<string, number>>;
  committedCheckpoints(): Record<string, number>;
};

const MAX_WRITE_ATTEMPTS = 8;

export const persistenceActor: ActorDefinition<PersistenceActorData, PersistenceMethods> = {
  name: 'persistence',
  async start(context) {
    if (context.data.testFault === 'persistence:crash-at-start') {
      throw new StrataError('STRATA_ERR_INTERNAL', 'injected fault: persistence:crash-at-start');
    }
    const writer = new Writer(context);
    await writer.init();
    return writer.instance();
  },
};

class Writer {
  private readonly context: ActorContext<PersistenceActorData>;
  private readonly db: Db;
  private readonly queue: BatchForWriter[] = [];
  private readonly committed = new Map<string, number>();
  private writing = false;
  private failed = false;
  private flushWaiters: Array<() => void> = [];
  private transactions = 0;
  private readonly crashBeforeCommit: number | null;

  constructor(context: ActorContext<PersistenceActorData>) {
    this.context = context;
    const { db } = context.data;
    this.db = createDb({
      url: db.url,
      max: db.poolMax,
      connectTimeoutMs: db.connectTimeoutMs,
      applicationName: 'strata-persistence',
      log: context.log,
      isolateStatements: db.isolateStatements,
    });
    const fault = /^persistence:crash-before-commit:(\d+)$/.exec(context.data.testFault ?? '');
    // Only the first incarnation crashes, so the test sees one crash and a clean recovery.
    this.crashBeforeCommit = fault === null || context.incarnation !== 1 ? null : Number(fault[1]);
  }

  async init(): Promise<void> {
    await this.db.transaction(async (client) => {
      // Concurrent CREATE SCHEMA IF NOT EXISTS from two processes can still collide; serialise.
      await client.query(`SELECT pg_advisory_xact_lock(hashtext('strata.pipeline-ddl'))`);
      for (const pipeline of this.context.data.pipelines) await ensurePipelineTables(client, pipeline);
    });
    const { rows } = await this.db.query<{ name: string; committed_checkpoint: string }>(
      'SELECT name, committed_checkpoint FROM strata.pipelines WHERE name = ANY($1)',
      [this.context.data.pipelines],
    );
    for (const row of rows) this.committed.set(row.name, Number(row.committed_checkpoint));
  }

  instance(): ActorInstance<PersistenceMethods> {
    return {
      methods: {
        enqueue: (batch) => {
          this.queue.push(batch);
          void this.drain();
          return this.queue.length;
        },
        flush: async (pipeline) => {
          while (
            !this.failed &&
            (this.writing || this.queue.some((b) => pipeline === undefined || b.pipeline === pipeline))
          ) {
            await new Promise<void>((resolve) => this.flushWaiters.push(resolve));
          }
          return Object.fromEntries(this.committed);
        },
        committedCheckpoints: () => Object.fromEntries(this.committed),
      },
      report: () => poolReport(this.db),
      stop: async () => {
        // Write what is queued before the thread ends (the shutdown timeout bounds this).
        while (!this.failed && (this.writing || this.queue.length > 0)) {
          await new Promise<void>((resolve) => this.flushWaiters.push(resolve));
        }
        await this.db.close();
      },
    };
  }

  private async drain(): Promise<void> {
    if (this.writing || this.failed) return;
    this.writing = true;
    try {
      for (let run = this.takeRun(); run.length > 0; run = this.takeRun()) {
        await this.writeWithRetry(run);
        if (this.failed) break;
      }
    } finally {
      this.writing = false;
      for (const resolve of this.flushWaiters.splice(0)) resolve();
    }
  }

  /** The leading run of queued batches of one pipeline sharing `isInReorgThreshold`, skipping re-sends. */
  private takeRun(): BatchForWriter[] {
    const run: BatchForWriter[] = [];
    let changes = 0;
    while (this.queue.length > 0) {
      const next = this.queue[0]!;
      const committed = this.committed.get(next.pipeline) ?? 0;
      if (next.toCheckpoint <= committed) {
        this.queue.shift(); // already durable (a re-send after a restart)
        continue;
      }
      const first = run[0];
      if (first !== undefined) {
        const sameRun =
          next.pipeline === first.pipeline && next.isInReorgThreshold === first.isInReorgThreshold;
        if (!sameRun || changes + next.changeCount > this.context.data.maxChangesPerWrite) break;
      }
      run.push(this.queue.shift()!);
      changes += next.changeCount;
    }
    return run;
  }

  private async writeWithRetry(run: BatchForWriter[]): Promise<void> {
    for (let attempt = 1; ; attempt++) {
      try {
        await this.write(run);
        return;
      } catch (error) {
        if (isRetryable(error) && attempt < MAX_WRITE_ATTEMPTS) {
          const delay = Math.min(5_000, 100 * 2 ** (attempt - 1));
          this.context.log.warn({ err: error, attempt, retryInMs: delay }, 'write failed; retrying');
          await sleep(delay);
          continue;
        }
        this.fail(error, run);
        return;
      }
    }
  }

  private async write(run: BatchForWriter[]): Promise<void> {
    const started = performance.now();
    const first = run[0]!;
    const last = run[run.length - 1]!;
    const pipeline = first.pipeline;
    const expected = this.committed.get(pipeline) ?? 0;
    if (first.fromCheckpoint > expected + 1) {
      throw new StrataError(
        'STRATA_ERR_WRITE_FAILED',
        `pipeline ${pipeline}: batch starts at checkpoint ${first.fromCheckpoint} but ${expected} is committed (gap)`,
        { details: { pipeline, fromCheckpoint: first.fromCheckpoint, committedCheckpoint: expected } },
      );
    }
    // Last change per id wins: batches are in order and changes within a batch are per id.
    const latest = new Map<string, Change>();
    let eventCount = 0;
    for (const batch of run) {
      for (const change of decodeChanges(batch.encodedChanges)) latest.set(change.id, change);
      eventCount += batch.eventCount;
    }
    const ids: string[] = [];
    const credited: unknown[] = [];
    const debited: unknown[] = [];
    const events: unknown[] = [];
    const checkpoints: number[] = [];
    for (const change of latest.values()) {
      if (change.type !== 'set') continue;
      ids.push(change.id);
      credited.push(change.values.credited);
      debited.push(change.values.debited);
      events.push(change.values.events);
      checkpoints.push(change.checkpointId);
    }
    this.transactions += 1;
    await this.db.transaction(async (client) => {
      if (ids.length > 0) {
        await client.query(
          `INSERT INTO ${pipelineSchema(pipeline)}.${accountTable} (id, credited, debited, events, checkpoint_id)
           SELECT * FROM unnest($1::text[], $2::numeric[], $3::numeric[], $4::int[], $5::bigint[])
           ON CONFLICT (id) DO UPDATE SET credited = EXCLUDED.credited, debited = EXCLUDED.debited,
             events = EXCLUDED.events, checkpoint_id = EXCLUDED.checkpoint_id`,
          [ids, credited, debited, events, checkpoints],
        );
      }
      await client.query(
        `INSERT INTO strata.checkpoints (pipeline, checkpoint_id, block_number, block_hash, event_count)
         SELECT $1, * FROM unnest($2::bigint[], $3::bigint[], $4::text[], $5::int[])`,
        [
          pipeline,
          run.map((b) => b.toCheckpoint),
          run.map((b) => b.toBlockNumber),
          run.map((b) => b.toBlockHash),
          run.map((b) => b.eventCount),
        ],
      );
      const updated = await client.query(
        `UPDATE strata.pipelines
            SET committed_checkpoint = $2, committed_block = $3, committed_block_hash = $4,
                events_processed = events_processed + $5, updated_at = now()
          WHERE name = $1 AND committed_checkpoint = $6`,
        [pipeline, last.toCheckpoint, last.toBlockNumber, last.toBlockHash, eventCount, expected],
      );
      if (updated.rowCount !== 1) {
        throw new StrataError(
          'STRATA_ERR_WRITE_FAILED',
          `pipeline ${pipeline} was written by someone else (expected committed checkpoint ${expected})`,
          { details: { pipeline, expected } },
        );
      }
      if (this.crashBeforeCommit === this.transactions) {
        this.context.log.warn({ transaction: this.transactions }, 'injected fault: crashing before COMMIT');
        process.exit(1);
      }
    });
    this.committed.set(pipeline, last.toCheckpoint);
    this.context.emit({
      type: 'committed',
      report: {
        pipeline,
        committedCheckpoint: last.toCheckpoint,
        committedBlockNumber: last.toBlockNumber,
        eventCount,
        batches: run.length,
        durationMs: performance.now() - started,
      },
    });
  }

  /** The one fatal path: name the batch range and stop writing; the supervisor ends the process. */
  private fail(error: unknown, run: BatchForWriter[]): void {
    this.failed = true;
    const context = {
      pipeline: run[0]?.pipeline,
      fromCheckpoint: run[0]?.fromCheckpoint,
      toCheckpoint: run[run.length - 1]?.toCheckpoint,
    };
    this.context.log.fatal({ err: error, ...context }, 'batch write failed; not retryable');
    this.context.emit({
      type: 'fatal',
      error: serializeError(error),
      context: { actor: 'persistence', ...context },
    });
  }
}
