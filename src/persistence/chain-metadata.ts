// Chain metadata (source head, processed block, first-event and ready-at times; the events count is
// kept by every batch write) on its way to `strata.pipelines` (src/pipeline/checkpoint-store.ts writes it). The processing side stages the
// latest figures with every progress report; the single writer folds a pipeline's dirty figures
// into its next batch transaction for free, and when no batch flows a throttled idle flush writes
// them through the same writer — between transactions, never concurrently with a batch write on
// the same row. A dirty flag (not a delta): the write is one small UPDATE either way.

import type { ChainMetadata } from '../protocol.ts';

export class ChainMetadataStage {
  private readonly latest = new Map<string, ChainMetadata>();
  private readonly dirty = new Set<string>();

  stage(metadata: ChainMetadata): void {
    this.latest.set(metadata.pipeline, metadata);
    this.dirty.add(metadata.pipeline);
  }

  /** The pipeline's staged figures if they are not written yet. */
  dirtyOf(pipeline: string): ChainMetadata | undefined {
    return this.dirty.has(pipeline) ? this.latest.get(pipeline) : undefined;
  }

  allDirty(): ChainMetadata[] {
    return [...this.dirty].map((pipeline) => this.latest.get(pipeline)!);
  }

  /** After a commit that wrote `metadata`: clean, unless newer figures were staged meanwhile. */
  written(metadata: ChainMetadata): void {
    if (this.latest.get(metadata.pipeline) === metadata) this.dirty.delete(metadata.pipeline);
  }

  get isDirty(): boolean {
    return this.dirty.size > 0;
  }
}
