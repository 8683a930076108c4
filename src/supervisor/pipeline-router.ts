// Routes the data path's events between actors, in the main thread: a processing actor's batches
// go to the writer (moving their encoded buffers again, never copying them), the writer's commit
// reports go back to the pipeline's processing actor, its captured changes for live shapes go to
// the materializer, and a processing actor's progress reports
// reach the writer as chain metadata to stage, and a processing actor's requests to the writer
// (a reorg: discard queued batches, roll back stored state) are carried out (the actor runtime
// answers the incarnation that asked).
// Actor references drop events from dead incarnations before they get here, so a batch from a
// crashed processing actor is never written.

import { deserializeError, isActorRestarting } from '../errors.ts';
import type { Logger } from '../logger.ts';
import type { MaterializerMethods } from '../materializer/materializer-actor.ts';
import type { PersistenceMethods } from '../persistence/persistence-actor.ts';
import { transferList } from '../pipeline/change-codec.ts';
import { failureOf } from '../pipeline/failure.ts';
import type { ProcessingMethods } from '../processing/processing-actor.ts';
import type {
  CommitReport,
  PersistenceEvent,
  PipelineFailure,
  PipelineProgress,
  ProcessingEvent,
  WriterRequests,
} from '../protocol.ts';
import type { ActorRef } from './actor-ref.ts';

/** The actors the router connects. */
export interface RoutedActors {
  // biome-ignore lint/suspicious/noExplicitAny: start-up data type is irrelevant to routing.
  persistence: ActorRef<PersistenceMethods, any, PersistenceEvent>;
  // biome-ignore lint/suspicious/noExplicitAny: idem.
  processing: ReadonlyMap<string, ActorRef<ProcessingMethods, any, ProcessingEvent, WriterRequests>>;
  // biome-ignore lint/suspicious/noExplicitAny: idem.
  materializer: ActorRef<MaterializerMethods, any, any>;
}

export interface PipelineRouterOptions {
  log: Logger;
  /** An error that stops the whole daemon (one not tied to a pipeline). */
  onFatal: (error: Error, context: Record<string, unknown>) => void;
  /** A pipeline stopped on an error retrying cannot fix; the daemon goes on. */
  onPipelineFailed?: (pipeline: string, failure: PipelineFailure) => void;
  onCommitted?: (report: CommitReport) => void;
  /** The writer's lease fence refused a write of the pipeline (another process holds it). */
  onFenced?: (pipeline: string, epoch: number) => void;
}

export class PipelineRouter {
  private readonly options: PipelineRouterOptions;
  private readonly progressByPipeline = new Map<string, PipelineProgress>();
  private readonly progressListeners: Array<(progress: PipelineProgress) => void> = [];
  /**
   * The actors, once created. They are created after the router because their events come here:
   * the router exists first, the actors' callbacks name it, then the actors are connected.
   */
  private actors: RoutedActors | null = null;

  constructor(options: PipelineRouterOptions) {
    this.options = options;
  }

  connect(actors: RoutedActors): void {
    this.actors = actors;
  }

  /** Told of every progress report (and of a commit's effect on one). */
  onProgress(listener: (progress: PipelineProgress) => void): void {
    this.progressListeners.push(listener);
  }

  private get connected(): RoutedActors {
    if (this.actors === null) throw new Error('pipeline router used before its actors were connected');
    return this.actors;
  }

  fromProcessing(pipeline: string, event: ProcessingEvent): void {
    switch (event.type) {
      case 'batch-ready': {
        const { batch } = event;
        this.connected.persistence
          .callTransferring('enqueue', [batch], transferList(batch.encodedChanges))
          .catch((error: unknown) => this.onEnqueueFailed(pipeline, error));
        return;
      }
      case 'progress': {
        const { progress } = event;
        this.progressByPipeline.set(pipeline, progress);
        this.connected.persistence
          .call('stageChainMetadata', {
            pipeline,
            sourceHeadBlock: progress.headBlockNumber,
            processedBlock: progress.processedBlockNumber,
            firstEventAt: progress.firstEventAt,
            readyAt: progress.readyAt,
            stagedAt: Date.now(),
          })
          .catch(() => undefined); // a restarting writer gets the next report's figures
        for (const listener of this.progressListeners) listener(progress);
        return;
      }
      case 'fatal':
        // The actor already stopped its loop and reports itself `failed`.
        this.options.onPipelineFailed?.(pipeline, failureOf(deserializeError(event.error), 'processing'));
        return;
    }
  }

  /** A processing actor asks the writer (a reorg: discard queued batches, roll back stored state). */
  writerRequest<Method extends keyof WriterRequests>(
    method: Method,
    args: WriterRequests[Method]['args'],
  ): Promise<WriterRequests[Method]['result']> {
    // Each request is the writer method of the same name (PersistenceMethods has them all).
    const call = this.connected.persistence.call as (
      name: Method,
      request: WriterRequests[Method]['args'],
    ) => Promise<WriterRequests[Method]['result']>;
    return call.call(this.connected.persistence, method, args);
  }

  fromPersistence(event: PersistenceEvent): void {
    switch (event.type) {
      case 'committed': {
        const { report } = event;
        this.connected.processing.get(report.pipeline)?.notify('committed', report);
        const progress = this.progressByPipeline.get(report.pipeline);
        if (progress !== undefined && progress.committedCheckpoint < report.committedCheckpoint) {
          progress.committedCheckpoint = report.committedCheckpoint;
          // Processing reports once a second; what is committed was processed.
          progress.processedCheckpoint = Math.max(progress.processedCheckpoint, report.committedCheckpoint);
          progress.processedBlockNumber = Math.max(
            progress.processedBlockNumber,
            report.committedBlockNumber,
          );
        }
        this.options.onCommitted?.(report);
        if (progress !== undefined) for (const listener of this.progressListeners) listener(progress);
        return;
      }
      // A committed transaction's changes to tables with shapes, then its commit marker.
      case 'shape-changes':
        this.connected.materializer.notify('applyFragment', event.fragment);
        return;
      case 'shape-commit':
        this.connected.materializer.notify('commit', event.pipeline, event.sequence, event.fragments);
        return;
      case 'fenced':
        this.options.onFenced?.(event.pipeline, event.epoch);
        return;
      case 'fatal': {
        const error = deserializeError(event.error);
        const pipeline = event.context.pipeline;
        if (typeof pipeline !== 'string' || !this.connected.processing.has(pipeline)) {
          this.options.onFatal(error, event.context);
          return;
        }
        // The writer stopped writing this pipeline: its processing actor stops and says why.
        const failure = failureOf(error, 'persistence');
        this.connected.processing
          .get(pipeline)!
          .call('failed', failure)
          .catch((reason: unknown) =>
            this.options.log.warn({ pipeline, err: reason }, 'could not tell the pipeline it failed'),
          );
        this.options.onPipelineFailed?.(pipeline, failure);
        return;
      }
    }
  }

  /** The writer came back after a crash: every pipeline re-sends what is not yet committed. */
  writerRestarted(): void {
    for (const processing of this.connected.processing.values()) processing.notify('resend');
  }

  /** New blocks were stored for a pipeline: wake its processing actor. */
  wake(pipeline: string): void {
    this.connected.processing.get(pipeline)?.notify('wake');
  }

  /** The pipeline no longer runs here (handed over or lost): its progress is another process's. */
  forget(pipeline: string): void {
    this.progressByPipeline.delete(pipeline);
  }

  progress(): PipelineProgress[] {
    return [...this.progressByPipeline.values()];
  }

  private onEnqueueFailed(pipeline: string, error: unknown): void {
    // The writer died or is restarting: the batch is still held by the processing actor and is
    // re-sent when the writer is back (writerRestarted). Anything else is a bug.
    if (isActorRestarting(error)) {
      this.options.log.debug({ pipeline, err: error }, 'batch not delivered; it will be re-sent');
      return;
    }
    this.options.onFatal(error instanceof Error ? error : new Error(String(error)), {
      pipeline,
      actor: 'router',
    });
  }
}
