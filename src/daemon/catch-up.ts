// What a pipeline catching up sets off: the writer builds its deferred secondary indexes (once,
// at its first `caught-up` or `live` report), and with --exit-when-caught-up the daemon stops —
// exit 0 once every pipeline has committed its whole finite source and its indexes are built,
// exit 1 when every pipeline is done or failed and at least one failed (a batch job that cannot
// finish).

import type { StrataConfig } from '../config.ts';
import { EXIT_NON_RETRYABLE } from '../errors.ts';
import type { Logger } from '../logger.ts';
import type { PipelineProgress } from '../protocol.ts';
import type { DaemonLifecycle } from './lifecycle.ts';

export class CatchUpWatch {
  private readonly indexes = new Map<string, 'building' | 'ready'>();

  constructor(
    private readonly config: StrataConfig,
    private readonly log: Logger,
    private readonly lifecycle: DaemonLifecycle,
    private readonly buildIndexes: (pipeline: string) => Promise<unknown>,
    /** Every pipeline's latest progress. */
    private readonly progress: () => PipelineProgress[],
  ) {}

  /** A pipeline reported progress. */
  onProgress(progress: PipelineProgress): void {
    if (progress.state === 'caught-up' || progress.state === 'live') this.requestIndexes(progress.pipeline);
    this.exitIfDone();
  }

  private requestIndexes(pipeline: string): void {
    if (this.indexes.has(pipeline)) return;
    this.indexes.set(pipeline, 'building');
    this.buildIndexes(pipeline).then(
      () => {
        this.indexes.set(pipeline, 'ready');
        this.exitIfDone();
      },
      (error: unknown) => {
        this.indexes.delete(pipeline); // asked again at the next progress report
        this.log.warn({ pipeline, err: error }, 'building deferred indexes failed; will retry');
      },
    );
  }

  private exitIfDone(): void {
    const { config, log, lifecycle } = this;
    const all = this.progress();
    if (!config.processing.exitWhenCaughtUp || lifecycle.state !== 'running') return;
    if (all.length !== config.pipelines.length) return;
    const committedAll = (p: PipelineProgress) =>
      p.state === 'caught-up' && p.committedCheckpoint >= p.processedCheckpoint;
    const failed = all.filter((p) => p.state === 'failed');
    if (failed.length > 0 && all.every((p) => p.state === 'failed' || committedAll(p))) {
      log.error(
        { failed: failed.map((p) => p.pipeline) },
        'every pipeline caught up or failed; exiting 1 (--exit-when-caught-up)',
      );
      void lifecycle.stop(EXIT_NON_RETRYABLE, 'a pipeline failed (--exit-when-caught-up)');
      return;
    }
    if (all.every(committedAll) && config.pipelines.every((p) => this.indexes.get(p.name) === 'ready')) {
      log.info('every pipeline processed and committed its whole source; exiting (--exit-when-caught-up)');
      void lifecycle.stop(0, 'caught up');
    }
  }
}
